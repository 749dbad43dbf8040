package node

import (
	"context"
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cocoon-mesh/cocoon/node/wire"
)

// call is the caller's side of one inference stream: a client's to a proxy, a proxy's to a
// worker.
type call struct {
	s     network.Stream
	r     *wire.Reader
	peer  peer.ID
	role  string      // what the callee is to us, "worker" or "proxy", for errors
	stop  func() bool // detaches the cancel hook
	drain *Timer      // resets the stream once a cancelled callee had its time to end
	clock Clock
	// unlife detaches the call from the node's close, which resets the calls still open.
	unlife func()

	// Several goroutines write on the stream: the answer's reader (bodies, bills paid), the
	// voucher sender paying ahead, and the cancel hook. One frame at a time.
	wmu      sync.Mutex
	closed   bool   // our write side is closed: nothing more goes out
	left     bool   // abandoned by leave: the drain timer releases the reader
	accepted uint64 // when we refused the answer: the completion tokens we accepted

	// taken is the completion tokens of the answer this caller took (and pays for): a refusal
	// made by the cancel hook accepts no more than that.
	taken atomic.Uint64

	// Waits on the callee: it must send something at least every stall, and its first chunk
	// (of a non-streamed answer: the whole answer) by firstBy.
	stall     time.Duration
	stream    bool // the answer is streamed
	firstWait time.Duration
	firstBy   time.Time
	answered  bool // a chunk, final or error came: firstBy is met
}

// drainTimeout is how long a cancelled callee gets to end its answer before the stream is
// reset. Ending it, rather than having it cut, lets payer and payee count the same tokens.
const drainTimeout = 2 * time.Second

// rejection is why a request ended when its caller refused the answer: the refusal as the
// caller sent it. It cancels the request's context, and counts as the callee's failure.
type rejection struct{ wire.Reject }

func (r *rejection) Error() string { return "the caller refused the answer: " + r.Err.Error() }

// Unwrap makes a rejection the wire error it carries (code worker_failed: the worker's fault).
func (r *rejection) Unwrap() error { return &r.Err }

// openCall opens an inference stream to p and sends the header, then the body (sealed if
// h.Sealed) unless body is nil: a client sealing its request sends the body only once the
// proxy's route frame names the worker. Ending ctx closes our write side, which is how
// cancellation travels to the next hop; a ctx ended by a rejection (the caller refused the
// answer upstream) refuses it here too, accepting no more than what was taken. The write side
// otherwise stays open: closing it would tell the callee we went away.
func (n *Node) openCall(ctx context.Context, p peer.ID, role string, h *wire.Header, body []byte) (*call, error) {
	s, err := n.h.NewStream(ctx, p, InferProtocol)
	if err != nil {
		return nil, err
	}
	c := &call{s: s, r: wire.NewReader(s, n.cfg.MaxChunkBytes+1024), peer: p, role: role, stall: n.cfg.StallTimeout, clock: n.clock}
	c.unlife = n.life.atClose(func() { s.Reset() })
	c.drain = n.life.AfterFunc(time.Hour, func() {
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
	c.stream, c.firstWait = h.Stream, n.firstTokenWait(role, h.Stream)
	c.firstBy = n.now().Add(c.firstWait)
	c.stop = n.life.afterCtx(ctx, func() {
		if rj, ok := context.Cause(ctx).(*rejection); ok {
			c.reject(min(rj.Tokens, c.taken.Load()), &rj.Err)
		} else {
			c.closeWrite()
		}
		c.drain.Reset(drainTimeout)
	})
	w := wire.NewWriter(s)
	defer w.Release()
	hdr := wire.AppendHeader(make([]byte, 0, 128), h)
	err = w.WriteFrame(wire.FrameHeader, hdr)
	if err == nil && body != nil {
		t := bodyFrame(h.Sealed)
		if h.Presealed {
			t = wire.FrameSealedSet
		}
		err = w.WriteFrame(t, body)
	}
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		c.abort()
		return nil, err
	}
	return c, nil
}

// firstTokenWait is how long a caller waits for the first chunk of an answer from a callee in
// role: FirstTokenTimeout for a streamed one, WholeAnswerTimeout for a non-streamed one (its
// first chunk is all of it); a proxy may try MaxAttempts workers, each within that.
func (n *Node) firstTokenWait(role string, stream bool) time.Duration {
	d := n.cfg.FirstTokenTimeout
	if !stream {
		d = n.cfg.WholeAnswerTimeout
	}
	if role == "proxy" {
		return d*time.Duration(n.cfg.MaxAttempts) + n.cfg.StallTimeout
	}
	return d
}

// bodyFrame is the frame type a body travels in.
func bodyFrame(sealed bool) wire.FrameType {
	if sealed {
		return wire.FrameSealed
	}
	return wire.FrameBody
}

// errCallClosed refuses a frame after our write side closed (the request was cancelled).
var errCallClosed = errors.New("the call is closed for writing")

// send writes one more frame to the callee and flushes it.
func (c *call) send(t wire.FrameType, p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closed {
		return errCallClosed
	}
	return c.write(t, p)
}

// write sends one frame; the caller holds wmu.
func (c *call) write(t wire.FrameType, p []byte) error {
	w := wire.NewWriter(c.s)
	defer w.Release()
	if err := w.WriteFrame(t, p); err != nil {
		return err
	}
	return w.Flush()
}

// closeWrite tells the callee we want nothing more (a cancel).
func (c *call) closeWrite() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if !c.closed {
		c.closed = true
		_ = c.s.CloseWrite()
	}
}

// reject refuses the answer, accepting its first tokens completion tokens: the callee takes
// back what it counted beyond them, and ends. Nothing goes out after it.
func (c *call) reject(tokens uint64, why *wire.Error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closed {
		return
	}
	_ = c.write(wire.FrameReject, wire.AppendReject(nil, &wire.Reject{Tokens: tokens, Err: *why}))
	c.closed, c.accepted = true, tokens
	_ = c.s.CloseWrite()
}

// acceptedTokens is the completion tokens we accepted when we refused the answer.
func (c *call) acceptedTokens() uint64 {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.accepted
}

// next returns the next frame of the answer, waiting no longer than the call's bounds: a
// callee that sends nothing for StallTimeout, or no first chunk of a streamed answer in time,
// has failed. Its payload is valid until the following call: both hops pass each frame on at
// once.
func (c *call) next() (wire.FrameType, []byte, error) {
	dl := c.clock.Now().Add(c.stall)
	first := !c.answered && c.firstBy.Before(dl)
	if first {
		dl = c.firstBy
	}
	_ = c.s.SetReadDeadline(dl)
	t, p, err := c.r.ReadFrameReuse()
	switch {
	case err != nil && isTimeout(err):
		if first {
			what := "token"
			if !c.stream {
				what = "answer" // a non-streamed one: its first chunk is all of it
			}
			return 0, nil, wire.Errorf(wire.CodeWorkerFailed, "%s %s sent no %s within %s", c.role, c.peer.String(), what, c.firstWait)
		}
		return 0, nil, wire.Errorf(wire.CodeWorkerFailed, "%s %s stalled: nothing for %s", c.role, c.peer.String(), c.stall)
	case err != nil:
		return 0, nil, err
	case t == wire.FrameChunk || t == wire.FrameFinal || t == wire.FrameError:
		c.answered = true
	}
	return t, p, nil
}

// broke ends a call whose next frame did not come, and says why: our request ended, a bound
// passed (next's own error), or the callee's stream broke.
func (c *call) broke(ctx context.Context, err error) error {
	c.abort()
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if we := (*wire.Error)(nil); errors.As(err, &we) {
		return we
	}
	code := wire.CodeWorkerFailed
	if c.role == "proxy" {
		code = wire.CodeUnavailable // another proxy may do better
	}
	return wire.Errorf(code, "%s %s stopped answering: %v", c.role, c.peer.String(), err)
}

// isTimeout reports whether err is a read deadline passing (yamux and QUIC streams each have
// their own error for it, both net.Error timeouts).
func isTimeout(err error) bool {
	var ne interface{ Timeout() bool }
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// finish closes a call whose answer was read to the end.
func (c *call) finish() {
	c.stop()
	c.drain.Stop()
	c.unlife()
	c.s.Close()
	c.r.Release()
}

// abort resets a call that is abandoned midway.
func (c *call) abort() {
	c.stop()
	c.drain.Stop()
	c.unlife()
	c.s.Reset()
	c.r.Release()
}

// leave abandons a call we refused: the callee gets drainTimeout to read the refusal and end,
// then the stream is reset. Nothing reads it meanwhile.
func (c *call) leave() {
	c.stop()
	c.wmu.Lock()
	c.left = true
	c.wmu.Unlock()
	c.drain.Reset(drainTimeout)
}
