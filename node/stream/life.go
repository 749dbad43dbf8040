package stream

import (
	"context"
	"errors"
	"io"
	"os"
	"time"

	"github.com/benbjohnson/clock"
)

// Life is what a stream needs from the node that runs it: its clock, and goroutines and timers
// the node waits for when it closes. A stream starts none of its own.
type Life interface {
	// Clock is where the stream reads the time, sets its deadlines and its timers.
	Clock() clock.Clock
	// Go runs f in a goroutine of the node's and reports whether it did (not once it closed).
	Go(f func()) bool
	// AfterFunc calls f in a goroutine of the node's after d, unless stopped first or closed.
	AfterFunc(d time.Duration, f func()) *clock.Timer
	// AfterCtx calls f in a goroutine of the node's once ctx is done, unless stop is called
	// first, as context.AfterFunc.
	AfterCtx(ctx context.Context, f func()) (stop func() bool)
	// AtClose has the node's close call f (at once if it closed), unless cancel is called first.
	AtClose(f func()) (cancel func())
	// Done is closed when the node starts closing: waits end early.
	Done() <-chan struct{}
}

// Pipe is what a stream uses of a libp2p stream; network.Stream satisfies it.
type Pipe interface {
	io.ReadWriter
	Close() error
	CloseWrite() error
	Reset() error
	SetReadDeadline(time.Time) error
}

// DrainTimeout is how long a cancelled or refused callee gets to end its answer, and a callee
// to hear its caller's verdict after the final frame, before the stream is reset. Ending it,
// rather than having it cut, lets payer and payee count the same tokens.
const DrainTimeout = 2 * time.Second

// ReadTimeout bounds how long a callee waits for the header and body of a request, and for a
// body after a route.
const ReadTimeout = 10 * time.Second

// ErrClosed refuses a frame after the stream's write side closed (the request was cancelled,
// or the answer ended).
var ErrClosed = errors.New("the stream is closed for writing")

// isTimeout reports whether err is a read deadline passing (yamux and QUIC streams each have
// their own error for it, both net.Error timeouts).
func isTimeout(err error) bool {
	var ne interface{ Timeout() bool }
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}
