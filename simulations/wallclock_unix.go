//go:build unix

package simulations

import (
	"syscall"
	"time"
)

// wallNow is the time by the OS's clock. Inside a testing/synctest bubble time.Now is the
// bubble's virtual clock; a long run's progress lines say how fast virtual time goes by this one.
func wallNow() time.Time {
	var tv syscall.Timeval
	if syscall.Gettimeofday(&tv) != nil {
		return time.Time{}
	}
	return time.Unix(tv.Unix())
}
