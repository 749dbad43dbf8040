package node

import (
	"sync"

	"github.com/cocoon-mesh/cocoon/node/stream"
	"github.com/cocoon-mesh/cocoon/ton/channel"
)

// mailbox is an owner's queue of work and its turn: whoever holds the turn alone touches the
// channel. That is the owner's goroutine (run), or a caller that asks (ask) while the owner is
// idle, whose work then runs on its own goroutine: a reservation of credit, asked for every
// chunk, costs no hand-off between goroutines. Work posted without waiting (post, receive)
// always goes to the owner's goroutine: an answer never waits on the owner's disk.
type mailbox struct {
	mu      sync.Mutex
	queue   []work
	recv    int           // 1 + the index in queue of the value received waiting (0: none)
	running bool          // a runner holds the turn
	ended   bool          // the owner takes no more work
	wake    chan struct{} // one value when there is work for the owner's goroutine
}

// work is one piece of work posted to an owner: f to run or, with f nil, value received on
// answers' streams, merged while it waits (see receive).
type work struct {
	f     func()
	value uint64
	every uint64
	s     *stream.Call
}

// signal wakes the owner's goroutine; the caller holds mu.
func (b *mailbox) signal() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// post runs f in the owner's turn, after what was posted before; false once the owner ended.
func (o *chanOwner) post(f func()) bool { return o.enqueue(work{f: f}) }

// receive has the owner meter value received on call s (channel.Received). Value that
// arrives while the owner is busy (a voucher being written) joins the value received that
// waits already, and is paid, when due, in one voucher on the newest answer's stream, as a
// voucher paid ahead in the background did. Moving value earlier than work posted between
// is safe: that answer began before it received anything, and ends after.
//
// While the owner is idle, value that signs no voucher (channel.Channel.VoucherDue) is metered
// at once on the caller's goroutine: it writes nothing.
func (o *chanOwner) receive(value, every uint64, s *stream.Call) {
	b := &o.box
	b.mu.Lock()
	switch {
	case b.recv > 0 && !b.ended:
		w := &b.queue[b.recv-1]
		w.value, w.every, w.s = w.value+value, every, s
		b.mu.Unlock()
		return
	case !b.ended && !b.running && len(b.queue) == 0:
		b.running = true
		b.mu.Unlock()
		if !o.ch.VoucherDue(value, every) {
			_, _ = o.step(channel.Received{Value: value, Every: every, Stream: s})
			o.publish()
			o.yield(o.settle())
			return
		}
		b.mu.Lock()
		b.running = false
	}
	b.mu.Unlock()
	o.enqueue(work{value: value, every: every, s: s})
}

// enqueue adds w to the mailbox; false once the owner ended.
func (o *chanOwner) enqueue(w work) bool {
	b := &o.box
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ended {
		return false
	}
	b.queue = append(b.queue, w)
	if w.f == nil {
		b.recv = len(b.queue)
	}
	if !b.running {
		b.signal()
	}
	return true
}

// do runs f in the owner's turn: at once on this goroutine if the owner is idle, else after
// what was posted before, without waiting for it. Only work that writes nothing to the store
// runs so from an answer (which never waits on the owner's disk).
func (o *chanOwner) do(f func()) {
	if !o.inline(f) {
		o.post(f)
	}
}

// inline runs f on this goroutine if the owner is idle, and reports whether it did.
func (o *chanOwner) inline(f func()) bool {
	b := &o.box
	b.mu.Lock()
	if b.ended || b.running || len(b.queue) > 0 {
		b.mu.Unlock()
		return false
	}
	b.running = true
	b.mu.Unlock()
	f()
	o.publish()
	o.yield(o.settle())
	return true
}

// ask runs f in the owner's turn and waits for it to have run (errChannelGone if the owner
// ended first): at once on this goroutine if the owner is idle, else after what was posted
// before. It does not give up on a caller's context: what f changes, its caller must know
// of, and a turn never lasts long (a write to the store, at most).
func (o *chanOwner) ask(f func()) error {
	if o.inline(f) {
		return nil
	}
	ran := make(chan struct{})
	if !o.post(func() { f(); o.publish(); close(ran) }) {
		return errChannelGone
	}
	select {
	case <-ran:
		return nil
	case <-o.done:
		select {
		case <-ran:
			return nil
		default:
			return errChannelGone
		}
	}
}

// yield gives the turn back; the owner's goroutine takes what was posted meanwhile. With
// finished, the owner ends.
func (o *chanOwner) yield(finished bool) {
	b := &o.box
	b.mu.Lock()
	defer b.mu.Unlock()
	b.running = false
	if finished {
		b.ended, b.queue, b.recv = true, nil, 0
	}
	if len(b.queue) > 0 || b.ended {
		b.signal()
	}
}

// settle ends a turn: it arms the timer for the channel's next deadline, or, once the
// channel closed (or a new one was never stored), stops it and leaves the node's maps; it
// reports whether the owner is finished.
func (o *chanOwner) settle() bool {
	if o.fresh || (o.ch.State() != channel.Closed && (o.ch.Record().Role != 0 || o.ch.Opening())) {
		o.arm()
		return false
	}
	if o.timer != nil {
		o.timer.Stop()
	}
	o.cs.drop(o)
	return true
}

// forget ends the owner, dropping what waits: the channel's memory is lost, as a restart
// loses it (the tests' stand-in for one).
func (o *chanOwner) forget() {
	b := &o.box
	b.mu.Lock()
	b.ended, b.queue, b.recv = true, nil, 0
	b.signal()
	b.mu.Unlock()
	o.cs.drop(o)
	<-o.done
}

// run is the owner's goroutine: it runs what was posted, in order, whenever no asker holds
// the turn, until the node closes or the channel is finished.
func (o *chanOwner) run() {
	defer close(o.done)
	b := &o.box
	for {
		select {
		case <-b.wake:
		case <-o.cs.ctx.Done():
			b.mu.Lock()
			b.ended, b.queue, b.recv = true, nil, 0
			b.mu.Unlock()
			return
		}
		b.mu.Lock()
		if b.ended {
			b.mu.Unlock()
			return
		}
		if b.running || len(b.queue) == 0 {
			b.mu.Unlock()
			continue // the asker holding the turn signals when it yields
		}
		ws := b.queue
		b.queue, b.recv, b.running = nil, 0, true
		b.mu.Unlock()
		for _, w := range ws {
			if w.f != nil {
				w.f()
			} else {
				_, _ = o.step(channel.Received{Value: w.value, Every: w.every, Stream: w.s})
			}
			o.publish()
		}
		o.yield(o.settle())
	}
}
