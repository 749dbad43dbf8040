package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
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

// readRequest reads the header and body a caller sends first on an inference stream, with
// limits: a slow or oversized request gets an error, not our memory. With routeFirst (a proxy)
// a sealed request has no body yet (the caller sends it after our route frame), or, if
// presealed, the sealed-set frame's payload stands in for the body.
func (n *Node) readRequest(s network.Stream, routeFirst bool) (*wire.Reader, wire.Header, []byte, error) {
	_ = s.SetReadDeadline(n.now().Add(requestReadTimeout))
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
	left := n.clock.Until(dl) - n.cfg.HopMargin
	if left < time.Millisecond {
		return 0, wire.Errorf(wire.CodeTimeout, "no time left to forward the request")
	}
	return left, nil
}

// unexpected describes a frame that should not have come.
func unexpected(t wire.FrameType) error {
	return fmt.Errorf("unexpected %s frame in an answer", t)
}
