package stream

import (
	"context"
	"sync"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cocoon-mesh/cocoon/node/wire"
)

// AnswerConfig is what a callee knows of an answer before the request is read.
type AnswerConfig struct {
	Life Life          // the node: its clock, the heartbeat, the caller watcher and the drain
	Hop  Hop           // ClientProxy: we are a proxy answering a client; ProxyWorker: a worker
	Beat time.Duration // a silence longer than this gets a progress frame (0: no heartbeat)
}

// Answer is the callee's side of one inference stream: a worker's to its proxy, a proxy's to
// its client. ReadRequest reads the request; Quote, Bill, Route, Chosen, Chunk, Final and Fail
// send the answer; Watch reads what the caller sends meanwhile (vouchers, its refusal, bodies
// after routes), each frame checked against the hop's CallOrder. While the answer runs, a
// heartbeat fills every silence longer than Beat with a progress frame, so a caller can tell a
// callee that works (a long prefill, a non-streamed answer, a failover) from one that stopped.
type Answer struct {
	s    Pipe
	cfg  AnswerConfig
	life Life

	wmu    sync.Mutex // the handler and the heartbeat both write
	w      *wire.Writer
	buf    []byte
	ended  bool      // the final frame went out: nothing more does (under wmu)
	done   bool      // the answer is closed (under wmu)
	last   time.Time // when a frame last went out (under wmu)
	beater *clock.Timer

	// The caller's side, read by ReadRequest and then by the watcher (see watch.go).
	r        *wire.Reader
	lim      Limits
	cancel   context.CancelCauseFunc
	late     Late
	bodies   chan lateBody
	watching bool          // the watcher was started (or could not be): it owns r
	watched  chan struct{} // closed when the watcher ends (nil: none started)

	mu      sync.Mutex   // order, and the caller's refusal
	order   CallOrder    // what the caller may send
	refusal *wire.Reject // the caller's refusal, once it came
	refused chan struct{}
	onRefus []func(wire.Reject)
	hooks   [2]func(wire.Reject) // onRefus's first, without an allocation
}

// NewAnswer starts an answer on s, with its heartbeat.
func NewAnswer(s Pipe, cfg AnswerConfig) *Answer {
	l := cfg.Life
	a := &Answer{s: s, cfg: cfg, life: l, w: wire.NewWriter(s), last: l.Clock().Now(),
		order: NewCallOrder(cfg.Hop), refused: make(chan struct{})}
	a.onRefus = a.hooks[:0]
	if cfg.Beat > 0 {
		a.beater = l.AfterFunc(cfg.Beat, a.heartbeat)
	}
	return a
}

// heartbeat sends a progress frame if nothing went out for a beat.
func (a *Answer) heartbeat() {
	a.wmu.Lock()
	defer a.wmu.Unlock()
	if a.done || a.ended {
		return
	}
	c := a.life.Clock()
	if c.Since(a.last) >= a.cfg.Beat*9/10 {
		if a.w.WriteFrame(wire.FrameProgress, nil) != nil || a.w.Flush() != nil {
			return // the caller is gone: the handler finds out on its next write
		}
		a.last = c.Now()
	}
	a.beater.Reset(a.cfg.Beat)
}

// Stall stops the heartbeat and every frame, as a stopped process would (fault injection).
func (a *Answer) Stall() {
	a.wmu.Lock()
	defer a.wmu.Unlock()
	a.done = true
	if a.beater != nil {
		a.beater.Stop()
	}
}

// Quote sends the prices the answer is billed at, before its first chunk; with flush false
// it travels with the next frame.
func (a *Answer) Quote(q *wire.Quote, flush bool) error {
	a.wmu.Lock()
	defer a.wmu.Unlock()
	a.buf = wire.AppendQuote(a.buf[:0], q)
	return a.write(wire.FrameQuote, a.buf, flush)
}

// Bill asks the payer for a voucher: it owes owed, and the answer waits.
func (a *Answer) Bill(owed uint64) error {
	a.wmu.Lock()
	defer a.wmu.Unlock()
	a.buf = wire.AppendBill(a.buf[:0], owed)
	return a.write(wire.FrameBill, a.buf, true)
}

// Route names the worker a proxy chose for a sealed request: the client sends the body sealed
// to it, which Body returns.
func (a *Answer) Route(r *wire.Route) error {
	a.mu.Lock()
	a.order.Routed() // before it goes out: the body may come at once
	a.mu.Unlock()
	return a.raw(wire.FrameRoute, wire.AppendRoute(nil, r), true)
}

// Chosen names the worker of the sealed set a proxy chose; it travels with the next frame. The
// request is complete: the watcher starts.
func (a *Answer) Chosen(w peer.ID) error {
	a.startWatch()
	return a.raw(wire.FrameChosen, []byte(w), false)
}

// Chunk sends one chunk; with flush false it waits for the next frame's flush, which saves a
// write where the next frame follows at once (a non-streamed answer and its final).
func (a *Answer) Chunk(c *wire.Chunk, flush bool) error {
	a.wmu.Lock()
	defer a.wmu.Unlock()
	a.buf = wire.AppendChunk(a.buf[:0], c)
	return a.write(wire.FrameChunk, a.buf, flush)
}

// ForwardChunk sends a chunk as the next hop encoded it, without re-encoding it.
func (a *Answer) ForwardChunk(p []byte, flush bool) error { return a.raw(wire.FrameChunk, p, flush) }

// Final ends a successful answer: nothing more goes out (heartbeats included), though the
// stream stays open for the caller's verdict until Close.
func (a *Answer) Final(f *wire.Final) error {
	a.wmu.Lock()
	defer a.wmu.Unlock()
	a.buf = wire.AppendFinal(a.buf[:0], f)
	err := a.write(wire.FrameFinal, a.buf, true)
	a.ended = true
	return err
}

// Fail ends the answer with an error (unless it ended already) and closes it.
func (a *Answer) Fail(we *wire.Error) {
	_ = a.raw(wire.FrameError, wire.AppendError(nil, we), true)
	a.Close()
}

func (a *Answer) raw(t wire.FrameType, p []byte, flush bool) error {
	a.wmu.Lock()
	defer a.wmu.Unlock()
	return a.write(t, p, flush)
}

// write sends one frame, flushing it if asked; the caller holds wmu.
func (a *Answer) write(t wire.FrameType, p []byte, flush bool) error {
	if a.done || a.ended {
		return ErrClosed
	}
	if err := a.w.WriteFrame(t, p); err != nil {
		return err
	}
	if !flush {
		return nil
	}
	a.last = a.life.Clock().Now()
	return a.w.Flush()
}

// Close ends the stream once the answer is written: our side at once, the whole stream once
// the caller watcher ended (the caller closed its side, or DrainTimeout passed).
func (a *Answer) Close() {
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
		if !a.watching && a.r != nil {
			a.r.Release() // no watcher took the reader
		}
		a.s.Close()
		return
	}
	_ = a.s.CloseWrite()
	if !a.life.Go(func() {
		t := a.life.Clock().Timer(DrainTimeout)
		defer t.Stop()
		select {
		case <-a.watched:
			a.s.Close()
		case <-t.C:
			a.s.Close()
		case <-a.life.Done(): // the node is closing: the watcher's read ends with the stream
			a.s.Reset()
		}
	}) {
		a.s.Reset()
	}
}
