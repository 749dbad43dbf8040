package node

import (
	"context"
	"errors"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/cocoon-mesh/cocoon/node/stream"
	"github.com/cocoon-mesh/cocoon/node/wire"
)

// Stream protocols. The same inference protocol serves both hops.
const (
	InferProtocol  protocol.ID = "/cocoon/infer/1.0.0"
	AdvertProtocol protocol.ID = "/cocoon/advert/1.0.0"
)

// requestReadTimeout bounds how long a callee waits for the header and body of a request.
const requestReadTimeout = stream.ReadTimeout

// drainTimeout is how long a callee waits for its caller's verdict after the final frame.
const drainTimeout = stream.DrainTimeout

// sealSlack is what sealing adds to a body (session id, encapsulated key, sequence number, tag)
// and a sealed set to its bodies: frames carrying them may exceed MaxBodyBytes by this much,
// while the body inside is held to the limit once it is in the clear.
const sealSlack = 4 << 10

// openCall opens an inference stream to p on hop and sends the header, then the body unless
// it is nil (see stream.Open): the caller's side of the stream, under the node's life.
func (n *Node) openCall(ctx context.Context, p peer.ID, hop stream.Hop, paid bool, h *wire.Header, body []byte) (*stream.Call, error) {
	s, err := n.h.NewStream(ctx, p, InferProtocol)
	if err != nil {
		return nil, err
	}
	return stream.Open(ctx, s, stream.CallConfig{Life: n.life, Hop: hop, Peer: p, Paid: paid,
		MaxFrame: n.cfg.MaxChunkBytes + 1024, Stall: n.cfg.StallTimeout, FirstWait: n.cfg.firstTokenWait(hop, h.Stream)}, h, body)
}

// firstTokenWait is how long a caller waits for the first chunk of an answer on hop:
// FirstTokenTimeout for a streamed one, WholeAnswerTimeout for a non-streamed one (its first
// chunk is all of it); a proxy may try MaxAttempts workers, each within that.
func (c *Config) firstTokenWait(hop stream.Hop, streamed bool) time.Duration {
	d := c.FirstTokenTimeout
	if !streamed {
		d = c.WholeAnswerTimeout
	}
	if hop == stream.ClientProxy {
		return d*time.Duration(c.MaxAttempts) + c.StallTimeout
	}
	return d
}

// beat is how often a callee's answer fills a silence with a heartbeat: a third of the stall
// bound its caller holds it to.
func (c *Config) beat() time.Duration { return c.StallTimeout / 3 }

// newAnswer starts the callee's side of inference stream s on hop, with its heartbeat.
func (n *Node) newAnswer(s network.Stream, hop stream.Hop) *stream.Answer {
	return stream.NewAnswer(s, stream.AnswerConfig{Life: n.life, Hop: hop, Beat: n.cfg.beat()})
}

// limits bound the requests this node reads.
func (c *Config) limits() stream.Limits {
	return stream.Limits{MaxFrame: c.MaxBodyBytes + sealSlack, MaxBody: c.MaxBodyBytes, MaxTokens: c.MaxTokens}
}

// checkBodySize holds a body in the clear to MaxBodyBytes.
func (c *Config) checkBodySize(body []byte) error {
	if len(body) > c.MaxBodyBytes {
		return wire.Errorf(wire.CodeTooLarge, "request body of %d bytes is over this node's limit of %d", len(body), c.MaxBodyBytes)
	}
	return nil
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
