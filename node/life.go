package node

import (
	"context"
	"errors"
	"runtime/pprof"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
)

// errNodeClosed refuses work asked of a node that is closing.
var errNodeClosed = errors.New("the node is closing")

// life is what a node's goroutines, timers and stream handlers run under, so that Close
// returns only once none of them runs: after close nothing new starts (a timer that fires
// does nothing, a stream that arrives is reset), and close waits for what runs.
type life struct {
	clock  Clock
	labels context.Context // pprof labels naming the node, set on each of its goroutines
	ctx    context.Context // done once the node starts closing
	cancel context.CancelFunc

	mu      sync.Mutex
	closed  bool
	done    chan struct{}     // closed by close: waits end early
	onClose map[uint64]func() // what close calls first, by registration
	next    uint64
	wg      sync.WaitGroup
}

// newLife starts the life of the node with peer ID id on clock c.
func newLife(c Clock, id string) *life {
	ctx, cancel := context.WithCancel(context.Background())
	return &life{clock: c, labels: pprof.WithLabels(context.Background(), pprof.Labels(nodeLabel, id)),
		ctx: ctx, cancel: cancel, done: make(chan struct{}), onClose: make(map[uint64]func())}
}

// nodeLabel is the pprof label that names the node a goroutine works for (and goroutines it
// starts inherit): a profile of a process running many nodes (a simulation) splits by node,
// and a test finds what a closed node left running.
const nodeLabel = "cocoon_node"

// run runs f as one of the node's goroutines: labelled, and counted until it returns; the
// caller entered already.
func (l *life) run(f func()) {
	defer l.wg.Done()
	pprof.SetGoroutineLabels(l.labels)
	defer pprof.SetGoroutineLabels(context.Background()) // a goroutine of the host's, or the runtime's, goes on
	f()
}

// Clock is the node's clock.
func (l *life) Clock() Clock { return l.clock }

// Done is closed once the node starts closing.
func (l *life) Done() <-chan struct{} { return l.done }

// AtClose has close call f before it waits (at once, if the node closed already), unless the
// returned function is called first: a stream reset there ends whatever waits on it.
func (l *life) AtClose(f func()) (cancel func()) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		f()
		return func() {}
	}
	id := l.next
	l.next++
	l.onClose[id] = f
	l.mu.Unlock()
	return func() {
		l.mu.Lock()
		delete(l.onClose, id)
		l.mu.Unlock()
	}
}

// enter counts one more thing running, unless the node closed; each true is paired with wg.Done.
func (l *life) enter() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.wg.Add(1)
	return true
}

// Go runs f in a goroutine of the node's, and reports whether it did: not once the node closed.
func (l *life) Go(f func()) bool {
	if !l.enter() {
		return false
	}
	go l.run(f)
	return true
}

// Loop runs f in a goroutine of the node's, with a context done once the node starts closing.
func (l *life) Loop(f func(ctx context.Context)) { l.Go(func() { f(l.ctx) }) }

// Every calls f every d (on the node's clock) until the node closes.
func (l *life) Every(d time.Duration, f func()) {
	l.Loop(func(ctx context.Context) {
		t := l.clock.Ticker(d)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				f()
			}
		}
	})
}

// AfterCtx calls f in a goroutine of the node's once ctx is done (nothing, if the node closed
// first), unless the returned stop is called first, as context.AfterFunc.
func (l *life) AfterCtx(ctx context.Context, f func()) (stop func() bool) {
	return context.AfterFunc(ctx, func() {
		if l.enter() {
			l.run(f)
		}
	})
}

// AfterFunc calls f in a goroutine of the node's after d, unless the timer is stopped first or
// the node closed meanwhile.
func (l *life) AfterFunc(d time.Duration, f func()) *Timer {
	return l.clock.AfterFunc(d, func() {
		if l.enter() {
			l.run(f)
		}
	})
}

// handler wraps a stream handler so that it runs as part of the node: a stream that arrives
// after Close is reset, and Close resets the streams of the handlers running and waits for them.
func (l *life) handler(h network.StreamHandler) network.StreamHandler {
	return func(s network.Stream) {
		if !l.enter() {
			s.Reset()
			return
		}
		defer l.AtClose(func() { s.Reset() })()
		l.run(func() { h(s) })
	}
}

// close starts nothing more and waits for what runs.
func (l *life) close() {
	l.mu.Lock()
	var fs []func()
	if !l.closed {
		l.closed = true
		close(l.done)
		l.cancel()
		for _, f := range l.onClose {
			fs = append(fs, f)
		}
		l.onClose = nil
	}
	l.mu.Unlock()
	for _, f := range fs {
		f()
	}
	l.wg.Wait()
}
