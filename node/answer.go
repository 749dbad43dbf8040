package node

import (
	"context"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/cocoon-mesh/cocoon/node/wire"
)

// answer writes an inference answer back to the caller: a worker's to its proxy, a proxy's to
// its client. While the answer runs, a heartbeat fills every silence longer than beat with a
// progress frame, so a caller can tell a callee that works (a long prefill, a non-streamed
// answer being generated, a failover) from one that stopped.
type answer struct {
	s network.Stream

	wmu    sync.Mutex // the handler and the heartbeat both write
	w      *wire.Writer
	buf    []byte
	done   bool      // the answer ended: no more frames (under wmu)
	last   time.Time // when a frame last went out (under wmu)
	beat   time.Duration
	beater *Timer
	life   *life // the node's: its clock, and the goroutines Close waits for

	watched chan struct{} // closed when the caller watcher ends (nil: none started)

	// A caller that refuses the answer says so; bill (set once billing starts) takes back
	// what was counted beyond what it accepted.
	mu       sync.Mutex
	bill     *billing
	refusal  *wire.Reject
	refused  chan struct{} // closed on a refusal
	onReject func(wire.Reject)
}

// beat is how often a callee's answer fills a silence with a heartbeat: a third of the stall
// bound its caller holds it to.
func (n *Node) beat() time.Duration { return n.cfg.StallTimeout / 3 }

// newAnswer starts an answer on s, with a heartbeat every beat (0: none), under l.
func newAnswer(s network.Stream, beat time.Duration, l *life) *answer {
	a := &answer{s: s, w: wire.NewWriter(s), beat: beat, last: l.clock.Now(), life: l, refused: make(chan struct{})}
	if beat > 0 {
		a.beater = l.AfterFunc(beat, a.heartbeat)
	}
	return a
}

// heartbeat sends a progress frame if nothing went out for a beat.
func (a *answer) heartbeat() {
	a.wmu.Lock()
	defer a.wmu.Unlock()
	if a.done {
		return
	}
	if a.life.clock.Since(a.last) >= a.beat*9/10 {
		if a.w.WriteFrame(wire.FrameProgress, nil) != nil || a.w.Flush() != nil {
			return // the caller is gone: the handler finds out on its next write
		}
		a.last = a.life.clock.Now()
	}
	a.beater.Reset(a.beat)
}

// stall stops the heartbeat and every frame, as a stopped process would (Faults only).
func (a *answer) stall() {
	a.wmu.Lock()
	defer a.wmu.Unlock()
	a.done = true
	if a.beater != nil {
		a.beater.Stop()
	}
}

// watch starts the caller watcher (see watchCaller); cancel ends the request, with a
// *rejection as cause when the caller refuses the answer. The stream stays open for reading
// after the answer ends, until the caller closes it or drainTimeout passes: the caller's
// verdict on the answer, and the voucher for its last tokens, follow the final frame.
func (a *answer) watch(r *wire.Reader, cancel context.CancelCauseFunc, f callerFrames) {
	a.watched = make(chan struct{})
	f.reject = func(rj wire.Reject) {
		a.refuse(rj)
		cancel(&rejection{rj})
	}
	ended := a.watched
	if !a.life.Go(func() {
		defer close(ended)
		watchCaller(r, cancel, f)
	}) { // the node is closing
		close(ended)
		r.Release()
		cancel(context.Canceled)
	}
}

// refuse records the caller's refusal and takes back what billing counted beyond it.
func (a *answer) refuse(rj wire.Reject) {
	a.mu.Lock()
	if a.refusal != nil {
		a.mu.Unlock()
		return
	}
	a.refusal = &rj
	b, hook := a.bill, a.onReject
	close(a.refused)
	a.mu.Unlock()
	b.refused(rj.Tokens)
	if hook != nil {
		hook(rj)
	}
}

// billed attaches the answer's billing, so a refusal can take back what it counted.
func (a *answer) billed(b *billing) {
	a.mu.Lock()
	a.bill = b
	rj := a.refusal
	a.mu.Unlock()
	if rj != nil {
		b.refused(rj.Tokens)
	}
}

// verdict waits, at most wait, for the caller to take the ended answer (it closes its side)
// or refuse it; nil means taken (or no word in time, which is no refusal).
func (a *answer) verdict(wait time.Duration) *wire.Reject {
	if a.watched == nil {
		return nil
	}
	t := a.life.clock.Timer(wait)
	defer t.Stop()
	select {
	case <-a.watched:
	case <-a.refused:
	case <-t.C:
	case <-a.life.done:
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.refusal
}

// chunk sends one chunk; with flush false it waits for the next frame's flush, which saves a
// write per request where the next frame follows at once (a non-streamed answer and its final).
func (a *answer) chunk(c *wire.Chunk, flush bool) error {
	a.wmu.Lock()
	defer a.wmu.Unlock()
	a.buf = wire.AppendChunk(a.buf[:0], c)
	return a.rawLocked(wire.FrameChunk, a.buf, flush)
}

// raw forwards a frame as it came, without re-encoding it, flushing if asked.
func (a *answer) raw(t wire.FrameType, p []byte, flush bool) error {
	a.wmu.Lock()
	defer a.wmu.Unlock()
	return a.rawLocked(t, p, flush)
}

func (a *answer) rawLocked(t wire.FrameType, p []byte, flush bool) error {
	if a.done {
		return errCallClosed
	}
	if err := a.w.WriteFrame(t, p); err != nil {
		return err
	}
	if !flush {
		return nil
	}
	a.last = a.life.clock.Now()
	return a.w.Flush()
}

// final ends a successful answer and closes the stream.
func (a *answer) final(f *wire.Final) error {
	err := a.raw(wire.FrameFinal, wire.AppendFinal(nil, f), true)
	a.close()
	return err
}

// fail ends the answer with an error and closes the stream.
func (a *answer) fail(err error) {
	_ = a.raw(wire.FrameError, wire.AppendError(nil, asWireError(err)), true)
	a.close()
}

// close ends the stream once the answer is written: our side at once, the whole stream once the
// caller watcher ended (the caller closed its side, or drainTimeout passed).
func (a *answer) close() {
	a.wmu.Lock()
	if a.done {
		a.wmu.Unlock()
		return
	}
	a.done = true
	if a.beater != nil {
		a.beater.Stop()
	}
	a.w.Release()
	a.wmu.Unlock()
	if a.watched == nil {
		a.s.Close()
		return
	}
	_ = a.s.CloseWrite()
	if !a.life.Go(func() {
		t := a.life.clock.Timer(drainTimeout)
		defer t.Stop()
		select {
		case <-a.watched:
			a.s.Close()
		case <-t.C:
			a.s.Close()
		case <-a.life.done: // the node is closing: the watcher's read ends with the stream
			a.s.Reset()
		}
	}) {
		a.s.Reset()
	}
}

// callerFrames say what a callee does with what its caller sends after the request.
type callerFrames struct {
	pay     func([]byte)      // a voucher (nil: payments are off)
	settled func([]byte)      // a voucher answering a bill: it pays all the caller received
	reject  func(wire.Reject) // the caller refused the answer (set by answer.watch)
	bodies  chan<- lateBody   // bodies after route frames (nil: none are expected)
}

// watchCaller cancels the request when the caller's side of the stream ends: it keeps its
// write side open until it has the answer, so any end of our read side means it went away.
// Vouchers and refusals go to f; so do bodies sent after route frames, where expected.
// Anything else, or a body nobody waits for, cancels too. After a refusal it keeps reading:
// vouchers for what the caller accepted may still come.
func watchCaller(r *wire.Reader, cancel context.CancelCauseFunc, f callerFrames) {
	defer r.Release() // the watcher is the reader's last user
	for {
		t, p, err := r.ReadFrame()
		switch {
		case err != nil:
			cancel(context.Canceled)
			return
		case t == wire.FramePay && f.pay != nil:
			f.pay(p)
			continue
		case t == wire.FrameSettled && f.settled != nil:
			f.settled(p)
			continue
		case t == wire.FrameReject:
			rj, err := wire.DecodeReject(p)
			if err != nil {
				rj = wire.Reject{Err: *wire.Errorf(wire.CodeBadRequest, "malformed refusal: %v", err)}
			}
			f.reject(rj)
			continue
		case f.bodies == nil || (t != wire.FrameSealed && t != wire.FrameBody):
			cancel(context.Canceled)
			return
		}
		select {
		case f.bodies <- lateBody{sealed: t == wire.FrameSealed, p: p}:
		default:
			cancel(context.Canceled)
			return
		}
	}
}
