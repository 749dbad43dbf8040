package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/cocoon-mesh/cocoon/node/wire"
)

// Stream protocols. The same inference protocol serves both hops.
const (
	InferProtocol  protocol.ID = "/cocoon/infer/1.0.0"
	AdvertProtocol protocol.ID = "/cocoon/advert/1.0.0"
)

// requestReadTimeout bounds how long a callee waits for the header and body of a request.
const requestReadTimeout = 10 * time.Second

// call is the caller's side of one inference stream.
type call struct {
	s     network.Stream
	r     *wire.Reader
	stop  func() bool // detaches the cancel hook
	drain *time.Timer // resets the stream once a cancelled callee had its time to end
}

// drainTimeout is how long a cancelled callee gets to end its answer before the stream is
// reset. Ending it, rather than having it cut, lets payer and payee count the same tokens.
const drainTimeout = 2 * time.Second

// openCall opens an inference stream to p and sends the header, then the body (sealed if
// h.Sealed) unless body is nil: a client sealing its request sends the body only once the
// proxy's route frame names the worker. The stream is reset as soon as ctx ends, which is how
// cancellation travels to the next hop. The write side stays open: closing it would tell the
// callee we went away.
func (n *Node) openCall(ctx context.Context, p peer.ID, h *wire.Header, body []byte) (*call, error) {
	s, err := n.h.NewStream(ctx, p, InferProtocol)
	if err != nil {
		return nil, err
	}
	c := &call{s: s, r: wire.NewReader(s, n.cfg.MaxChunkBytes+1024), drain: time.AfterFunc(time.Hour, func() { s.Reset() })}
	c.drain.Stop()
	// Cancelling closes our side: the callee stops and ends its answer with an error, and
	// what it sent until then is still read (and paid for).
	c.stop = context.AfterFunc(ctx, func() {
		_ = s.CloseWrite()
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

// bodyFrame is the frame type a body travels in.
func bodyFrame(sealed bool) wire.FrameType {
	if sealed {
		return wire.FrameSealed
	}
	return wire.FrameBody
}

// send writes one more frame to the callee and flushes it.
func (c *call) send(t wire.FrameType, p []byte) error {
	w := wire.NewWriter(c.s)
	defer w.Release()
	if err := w.WriteFrame(t, p); err != nil {
		return err
	}
	return w.Flush()
}

// next returns the next frame of the answer. Its payload is valid until the following call:
// both hops pass each frame on at once.
func (c *call) next() (wire.FrameType, []byte, error) { return c.r.ReadFrameReuse() }

// finish closes a call whose answer was read to the end.
func (c *call) finish() {
	c.stop()
	c.drain.Stop()
	c.s.Close()
	c.r.Release()
}

// abort resets a call that is abandoned midway.
func (c *call) abort() {
	c.stop()
	c.drain.Stop()
	c.s.Reset()
	c.r.Release()
}

// readRequest reads the header and body a caller sends first on an inference stream, with
// limits: a slow or oversized request gets an error, not our memory. With routeFirst (a proxy)
// a sealed request has no body yet (the caller sends it after our route frame), or, if
// presealed, the sealed-set frame's payload stands in for the body.
func (n *Node) readRequest(s network.Stream, routeFirst bool) (*wire.Reader, wire.Header, []byte, error) {
	_ = s.SetReadDeadline(time.Now().Add(requestReadTimeout))
	defer s.SetReadDeadline(time.Time{})
	r := wire.NewReader(s, n.cfg.MaxBodyBytes+sealSlack)
	t, p, err := r.ReadFrame()
	if err != nil {
		return nil, wire.Header{}, nil, readErr("header", err)
	}
	if t != wire.FrameHeader {
		return nil, wire.Header{}, nil, wire.Errorf(wire.CodeBadRequest, "expected a header frame first, got %s", t)
	}
	h, err := wire.DecodeHeader(p)
	if err != nil {
		return nil, wire.Header{}, nil, wire.Errorf(wire.CodeBadRequest, "%v", err)
	}
	if h.MaxTokens > n.cfg.MaxTokens {
		return nil, wire.Header{}, nil, wire.Errorf(wire.CodeTooLarge, "max_tokens %d is over this node's limit of %d", h.MaxTokens, n.cfg.MaxTokens)
	}
	if routeFirst && h.Sealed && !h.Presealed {
		return r, h, nil, nil
	}
	t, body, err := r.ReadFrame()
	if err != nil {
		return nil, wire.Header{}, nil, readErr("body", err)
	}
	want := bodyFrame(h.Sealed)
	if routeFirst && h.Presealed {
		want = wire.FrameSealedSet
	}
	if t != want {
		return nil, wire.Header{}, nil, wire.Errorf(wire.CodeBadRequest, "expected a %s frame after the header, got %s", want, t)
	}
	if t == wire.FrameBody {
		if err := n.checkBodySize(body); err != nil {
			return nil, wire.Header{}, nil, err
		}
	}
	return r, h, body, nil
}

// sealSlack is what sealing adds to a body (session id, encapsulated key, sequence number, tag)
// and a sealed set to its bodies: frames carrying them may exceed MaxBodyBytes by this much,
// while the body inside is held to the limit once it is in the clear.
const sealSlack = 4 << 10

// checkBodySize holds a body in the clear to MaxBodyBytes.
func (n *Node) checkBodySize(body []byte) error {
	if len(body) > n.cfg.MaxBodyBytes {
		return wire.Errorf(wire.CodeTooLarge, "request body of %d bytes is over this node's limit of %d", len(body), n.cfg.MaxBodyBytes)
	}
	return nil
}

func readErr(what string, err error) error {
	if errors.Is(err, wire.ErrFrameTooLarge) {
		return wire.Errorf(wire.CodeTooLarge, "request %s: %v", what, err)
	}
	return wire.Errorf(wire.CodeBadRequest, "request %s: %v", what, err)
}

// lateBody is a body a client sent after a route frame.
type lateBody struct {
	sealed bool
	p      []byte
}

// watchCaller cancels the request when the caller's side of the stream ends: it keeps its
// write side open until it has the answer, so any end of our read side means it went away.
// Vouchers go to pay (nil: payments are off). Bodies the caller sends after route frames go to
// bodies (nil: none are expected); anything else, or a body nobody waits for, cancels too.
func watchCaller(r *wire.Reader, cancel context.CancelFunc, bodies chan<- lateBody, pay func([]byte)) {
	defer r.Release() // the watcher is the reader's last user
	for {
		t, p, err := r.ReadFrame()
		if err == nil && t == wire.FramePay && pay != nil {
			pay(p)
			continue
		}
		if err != nil || bodies == nil || (t != wire.FrameSealed && t != wire.FrameBody) {
			cancel()
			return
		}
		select {
		case bodies <- lateBody{sealed: t == wire.FrameSealed, p: p}:
		default:
			cancel()
			return
		}
	}
}

// answer writes an inference answer back to the caller.
type answer struct {
	s       network.Stream
	w       *wire.Writer
	buf     []byte
	watched chan struct{} // closed when a caller watcher that takes vouchers ends (nil: none)
}

// watch starts the caller watcher (see watchCaller). One that takes vouchers keeps the stream
// open for reading after the answer ends, until the caller closes it or drainTimeout passes:
// the voucher for the answer's last tokens follows its final frame.
func (a *answer) watch(r *wire.Reader, cancel context.CancelFunc, bodies chan<- lateBody, pay func([]byte)) {
	if pay == nil {
		go watchCaller(r, cancel, bodies, nil)
		return
	}
	a.watched = make(chan struct{})
	go func(ended chan struct{}) {
		watchCaller(r, cancel, bodies, pay)
		close(ended)
	}(a.watched)
}

func newAnswer(s network.Stream) *answer { return &answer{s: s, w: wire.NewWriter(s)} }

// chunk sends one chunk; with flush false it waits for the next frame's flush, which saves a
// write per request where the next frame follows at once (a non-streamed answer and its final).
func (a *answer) chunk(c *wire.Chunk, flush bool) error {
	a.buf = wire.AppendChunk(a.buf[:0], c)
	return a.raw(wire.FrameChunk, a.buf, flush)
}

// raw forwards a frame as it came, without re-encoding it, flushing if asked.
func (a *answer) raw(t wire.FrameType, p []byte, flush bool) error {
	if err := a.w.WriteFrame(t, p); err != nil {
		return err
	}
	if !flush {
		return nil
	}
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

// close ends the stream once the answer is written; a watched one once its watcher ended.
func (a *answer) close() {
	a.w.Release()
	if a.watched == nil {
		a.s.Close()
		return
	}
	_ = a.s.CloseWrite()
	go func() {
		t := time.NewTimer(drainTimeout)
		defer t.Stop()
		select {
		case <-a.watched:
		case <-t.C:
		}
		a.s.Close()
	}()
}

// asWireError classifies any error as a wire error.
func asWireError(err error) *wire.Error {
	var we *wire.Error
	switch {
	case errors.As(err, &we):
		return we
	case errors.Is(err, context.DeadlineExceeded):
		return wire.Errorf(wire.CodeTimeout, "the request ran out of time")
	case errors.Is(err, context.Canceled):
		return wire.Errorf(wire.CodeCancelled, "the request was cancelled")
	}
	return wire.Errorf(wire.CodeInternal, "%v", err)
}

// timeLeft is the time a request still has, less the hop margin, for the next hop.
func (n *Node) timeLeft(ctx context.Context) (time.Duration, error) {
	dl, ok := ctx.Deadline()
	if !ok {
		return n.cfg.RequestTimeout, nil
	}
	left := time.Until(dl) - n.cfg.HopMargin
	if left < time.Millisecond {
		return 0, wire.Errorf(wire.CodeTimeout, "no time left to forward the request")
	}
	return left, nil
}

// unexpected describes a frame that should not have come.
func unexpected(t wire.FrameType) error {
	return fmt.Errorf("unexpected %s frame in an answer", t)
}
