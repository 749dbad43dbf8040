package stream

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cocoon-mesh/cocoon/node/wire"
)

// CallConfig is what a caller knows of a call before it opens it.
type CallConfig struct {
	Life     Life    // the node: its clock, the cancel hook and drain timer, the reset at its close
	Hop      Hop     // ClientProxy: we are a client; ProxyWorker: a proxy
	Peer     peer.ID // the callee
	Paid     bool    // payments are on: the answer must be quoted
	MaxFrame int     // the largest frame payload accepted from the callee
	// Stall is the longest silence allowed of the callee (it sends progress frames after a
	// third of it); FirstWait how long its first chunk may take (a non-streamed answer's first
	// chunk is all of it).
	Stall, FirstWait time.Duration
}

// Call is the caller's side of one inference stream: a client's to a proxy, a proxy's to a
// worker. Next yields the answer's frames as typed events, each checked against the hop's
// AnswerOrder; Pay, Settled, Body and Reject send what a caller sends after its request.
type Call struct {
	s     Pipe
	r     *wire.Reader
	cfg   CallConfig
	clock clock.Clock
	order AnswerOrder
	ev    Event

	stop   func() bool  // detaches the cancel hook
	drain  *clock.Timer // resets the stream once a cancelled callee had its time to end
	unlife func()       // detaches the call from the node's close, which resets the calls still open

	// Several goroutines write on the stream: the answer's reader (bodies, bills paid), the
	// voucher sender paying ahead, and the cancel hook. One frame at a time.
	wmu      sync.Mutex
	closed   bool   // our write side is closed: nothing more goes out
	left     bool   // abandoned by Leave: the drain timer releases the reader
	accepted uint64 // when we refused the answer: the completion tokens we accepted

	// taken is the completion tokens of the answer this caller took (and pays for): a refusal
	// made by the cancel hook accepts no more than that.
	taken atomic.Uint64

	stream   bool      // the answer is streamed
	firstBy  time.Time // the first chunk is due by then
	answered bool      // a chunk, final or error came: firstBy is met
	silence  silence   // why Next failed, when the callee went silent
}

// silence is how a callee went silent: not at all, before its first chunk, or mid-answer.
type silence uint8

const (
	notSilent silence = iota
	silentFirst
	silentStall
)

// Silent reports whether Next failed because the callee sent nothing in time: no first chunk
// within FirstWait (first), or nothing for Stall mid-answer (stalled). Call it from the
// goroutine that calls Next.
func (c *Call) Silent() (first, stalled bool) {
	return c.silence == silentFirst, c.silence == silentStall
}

// Rejection is why a request ended when its caller refused the answer: the refusal as the
// caller sent it. It cancels the request's context, and counts as the callee's failure.
type Rejection struct{ wire.Reject }

func (r *Rejection) Error() string { return "the caller refused the answer: " + r.Err.Error() }

// Unwrap makes a rejection the wire error it carries (code worker_failed: the worker's fault).
func (r *Rejection) Unwrap() error { return &r.Err }

// Open starts a call on s and sends the header, then the body (sealed if h.Sealed, a sealed
// set if h.Presealed) unless body is nil: a client sealing its request sends the body only
// once the proxy's route names the worker. Ending ctx closes our write side, which is how
// cancellation travels to the next hop; a ctx ended by a *Rejection (the caller refused the
// answer upstream) refuses it here too, accepting no more than what was taken. The write side
// otherwise stays open: closing it would tell the callee we went away.
func Open(ctx context.Context, s Pipe, cfg CallConfig, h *wire.Header, body []byte) (*Call, error) {
	l := cfg.Life
	c := &Call{s: s, r: wire.NewReader(s, cfg.MaxFrame), cfg: cfg, clock: l.Clock(),
		order: NewAnswerOrder(Terms{Hop: cfg.Hop, Sealed: h.Sealed, Presealed: h.Presealed, Paid: cfg.Paid})}
	c.unlife = l.AtClose(func() { s.Reset() })
	c.drain = l.AfterFunc(time.Hour, func() {
		c.unlife()
		s.Reset()
		c.wmu.Lock()
		left := c.left
		c.wmu.Unlock()
		if left { // nobody reads the call any more: the reader is ours to release
			c.r.Release()
		}
	})
	c.drain.Stop()
	c.stream, c.firstBy = h.Stream, c.clock.Now().Add(cfg.FirstWait)
	c.stop = l.AfterCtx(ctx, func() {
		if rj, ok := context.Cause(ctx).(*Rejection); ok {
			c.Reject(min(rj.Tokens, c.taken.Load()), &rj.Err)
		} else {
			c.CloseWrite()
		}
		c.drain.Reset(DrainTimeout)
	})
	w := wire.NewWriter(s)
	defer w.Release()
	err := w.WriteFrame(wire.FrameHeader, wire.AppendHeader(make([]byte, 0, 128), h))
	if err == nil && body != nil {
		t := BodyFrame(h.Sealed)
		if h.Presealed {
			t = wire.FrameSealedSet
		}
		err = w.WriteFrame(t, body)
	}
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		c.Abort()
		return nil, err
	}
	return c, nil
}

// BodyFrame is the frame type a body travels in.
func BodyFrame(sealed bool) wire.FrameType {
	if sealed {
		return wire.FrameSealed
	}
	return wire.FrameBody
}

// Peer is the callee.
func (c *Call) Peer() peer.ID { return c.cfg.Peer }

// role is what the callee is to us, for errors.
func (c *Call) role() string {
	if c.cfg.Hop == ClientProxy {
		return "proxy"
	}
	return "worker"
}

// Next returns the answer's next event, waiting no longer than the call's bounds: a callee
// that sends nothing for Stall, or no first chunk within FirstWait, has failed (a
// *wire.Error). A frame out of order, or malformed, is a *BadFrame and changes nothing. The
// event is valid until the following call.
func (c *Call) Next() (*Event, error) {
	dl := c.clock.Now().Add(c.cfg.Stall)
	first := !c.answered && c.firstBy.Before(dl)
	if first {
		dl = c.firstBy
	}
	_ = c.s.SetReadDeadline(dl)
	t, p, err := c.r.ReadFrameReuse()
	switch {
	case err != nil && isTimeout(err):
		c.silence = silentStall
		if first {
			c.silence = silentFirst
			what := "token"
			if !c.stream {
				what = "answer" // a non-streamed one: its first chunk is all of it
			}
			return nil, wire.Errorf(wire.CodeWorkerFailed, "%s %s sent no %s within %s", c.role(), c.cfg.Peer.String(), what, c.cfg.FirstWait)
		}
		return nil, wire.Errorf(wire.CodeWorkerFailed, "%s %s stalled: nothing for %s", c.role(), c.cfg.Peer.String(), c.cfg.Stall)
	case err != nil:
		return nil, err
	}
	next, err := c.order.next(t)
	if err == nil {
		err = c.ev.decode(t, p)
	}
	if err != nil {
		return nil, err
	}
	c.order.st = next
	if t == wire.FrameChunk || t == wire.FrameFinal || t == wire.FrameError {
		c.answered = true
	}
	return &c.ev, nil
}

// Buffered reports whether the next frame is already in memory, so a forwarder can hold its
// flush for it.
func (c *Call) Buffered() bool { return c.r.Buffered() }

// Pay sends a voucher.
func (c *Call) Pay(voucher []byte) error { return c.send(wire.FramePay, voucher) }

// Settled sends a voucher answering a bill: it pays all we received.
func (c *Call) Settled(voucher []byte) error { return c.send(wire.FrameSettled, voucher) }

// Body sends the request's body after the proxy's route named the worker.
func (c *Call) Body(sealed bool, body []byte) error { return c.send(BodyFrame(sealed), body) }

// send writes one more frame to the callee and flushes it.
func (c *Call) send(t wire.FrameType, p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closed {
		return ErrClosed
	}
	return c.write(t, p)
}

// write sends one frame; the caller holds wmu.
func (c *Call) write(t wire.FrameType, p []byte) error {
	w := wire.NewWriter(c.s)
	defer w.Release()
	if err := w.WriteFrame(t, p); err != nil {
		return err
	}
	return w.Flush()
}

// CloseWrite tells the callee we want nothing more (a cancel).
func (c *Call) CloseWrite() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if !c.closed {
		c.closed = true
		_ = c.s.CloseWrite()
	}
}

// Reject refuses the answer, accepting its first tokens completion tokens: the callee takes
// back what it counted beyond them, and ends. Nothing goes out after it.
func (c *Call) Reject(tokens uint64, why *wire.Error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closed {
		return
	}
	_ = c.write(wire.FrameReject, wire.AppendReject(nil, &wire.Reject{Tokens: tokens, Err: *why}))
	c.closed, c.accepted = true, tokens
	_ = c.s.CloseWrite()
}

// Accepted is the completion tokens we accepted when we refused the answer.
func (c *Call) Accepted() uint64 {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.accepted
}

// Take counts tokens more completion tokens of the answer as taken (and paid for).
func (c *Call) Take(tokens uint32) { c.taken.Add(uint64(tokens)) }

// Taken is the completion tokens taken so far.
func (c *Call) Taken() uint64 { return c.taken.Load() }

// Broke ends a call whose next event did not come, and says why: our request ended, a bound
// passed (Next's own error), or the callee's stream broke.
func (c *Call) Broke(ctx context.Context, err error) error {
	c.Abort()
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if we := (*wire.Error)(nil); errors.As(err, &we) {
		return we
	}
	code := wire.CodeWorkerFailed
	if c.cfg.Hop == ClientProxy {
		code = wire.CodeUnavailable // another proxy may do better
	}
	return wire.Errorf(code, "%s %s stopped answering: %v", c.role(), c.cfg.Peer.String(), err)
}

// Detach stops the request's end from closing the call: the answer is whole, and what is left
// (a voucher, the verdict) decides how the call ends.
func (c *Call) Detach() { c.stop() }

// Finish closes a call whose answer was read to the end.
func (c *Call) Finish() {
	c.stop()
	c.drain.Stop()
	c.unlife()
	c.s.Close()
	c.r.Release()
}

// Abort resets a call that is abandoned midway.
func (c *Call) Abort() {
	c.stop()
	c.drain.Stop()
	c.unlife()
	c.s.Reset()
	c.r.Release()
}

// Leave abandons a call we refused: the callee gets DrainTimeout to read the refusal and end,
// then the stream is reset. Nothing reads it meanwhile.
func (c *Call) Leave() {
	c.stop()
	c.wmu.Lock()
	c.left = true
	c.wmu.Unlock()
	c.drain.Reset(DrainTimeout)
}
