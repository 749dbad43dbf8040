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
	s    network.Stream
	r    *wire.Reader
	stop func() bool // detaches the reset-on-cancel hook
}

// openCall opens an inference stream to p and sends the request. The stream is reset as soon
// as ctx ends, which is how cancellation travels to the next hop. The write side stays open:
// closing it would tell the callee we went away.
func (n *Node) openCall(ctx context.Context, p peer.ID, h *wire.Header, body []byte) (*call, error) {
	s, err := n.h.NewStream(ctx, p, InferProtocol)
	if err != nil {
		return nil, err
	}
	c := &call{s: s, r: wire.NewReader(s, n.cfg.MaxChunkBytes+1024)}
	c.stop = context.AfterFunc(ctx, func() { s.Reset() })
	w := wire.NewWriter(s)
	defer w.Release()
	hdr := wire.AppendHeader(make([]byte, 0, 128), h)
	err = w.WriteFrame(wire.FrameHeader, hdr)
	if err == nil {
		err = w.WriteFrame(wire.FrameBody, body)
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

// next returns the next frame of the answer. Its payload is valid until the following call:
// both hops pass each frame on at once.
func (c *call) next() (wire.FrameType, []byte, error) { return c.r.ReadFrameReuse() }

// finish closes a call whose answer was read to the end.
func (c *call) finish() {
	c.stop()
	c.s.Close()
	c.r.Release()
}

// abort resets a call that is abandoned midway.
func (c *call) abort() {
	c.stop()
	c.s.Reset()
	c.r.Release()
}

// readRequest reads the header and body a caller sends first on an inference stream, with
// limits: a slow or oversized request gets an error, not our memory.
func (n *Node) readRequest(s network.Stream) (*wire.Reader, wire.Header, []byte, error) {
	_ = s.SetReadDeadline(time.Now().Add(requestReadTimeout))
	defer s.SetReadDeadline(time.Time{})
	r := wire.NewReader(s, n.cfg.MaxBodyBytes)
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
	t, body, err := r.ReadFrame()
	if err != nil {
		return nil, wire.Header{}, nil, readErr("body", err)
	}
	if t != wire.FrameBody {
		return nil, wire.Header{}, nil, wire.Errorf(wire.CodeBadRequest, "expected a body frame after the header, got %s", t)
	}
	return r, h, body, nil
}

func readErr(what string, err error) error {
	if errors.Is(err, wire.ErrFrameTooLarge) {
		return wire.Errorf(wire.CodeTooLarge, "request %s: %v", what, err)
	}
	return wire.Errorf(wire.CodeBadRequest, "request %s: %v", what, err)
}

// watchCaller cancels the request when the caller's side of the stream ends: it keeps its
// write side open until it has the answer, so any end of our read side means it went away.
func watchCaller(r *wire.Reader, cancel context.CancelFunc) {
	_, _, _ = r.ReadFrame()
	cancel()
	r.Release() // the watcher is the reader's last user
}

// answer writes an inference answer back to the caller.
type answer struct {
	s   network.Stream
	w   *wire.Writer
	buf []byte
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

// close ends the stream once the answer is written.
func (a *answer) close() {
	a.s.Close()
	a.w.Release()
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
