package node

import (
	"math/rand/v2"
	"sync"
	"time"

	"github.com/benbjohnson/clock"
)

// Clock is where a node reads the time and sets its timers and tickers: the wall clock by
// default (clock.New()), a clock.Mock in a unit test that moves time by hand, and in a simulation
// the wall clock of a testing/synctest bubble, whose time is virtual. Stream and connection
// deadlines are set from it too, so a clock given to a running node must agree with the time
// its host's transports read: the wall clock, or the bubble's.
type Clock = clock.Clock

// Timer is a Clock's timer.
type Timer = clock.Timer

// Ticker is a Clock's ticker.
type Ticker = clock.Ticker

// wallClock is the default Clock: real time.
func wallClock() Clock { return clock.New() }

// NewMockClock returns a clock that moves only when its Add or Set is called, at t.
func NewMockClock(t time.Time) *clock.Mock {
	m := clock.NewMock()
	m.Set(t)
	return m
}

// lockedRand is a node's source of randomness for decisions that need no secrecy (which
// receipts to check), safe for its goroutines: math/rand/v2's Rand is not.
type lockedRand struct {
	mu sync.Mutex
	r  *rand.Rand
}

// newLockedRand wraps r, or a randomly seeded source when r is nil.
func newLockedRand(r *rand.Rand) *lockedRand {
	if r == nil {
		r = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	return &lockedRand{r: r}
}

// IntN is a number in [0, k).
func (l *lockedRand) IntN(k int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.IntN(k)
}

// now is the node's time.
func (n *Node) now() time.Time { return n.clock.Now() }
