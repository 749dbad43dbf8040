package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/network"

	"github.com/cocoon-mesh/cocoon/node/stream"
	"github.com/cocoon-mesh/cocoon/node/wire"
)

// Faults make a node misbehave on purpose, in its real code path: the adversarial tests run
// rogue workers and proxies with them, and simulations their adversaries. A nil *Faults is an
// honest node; cmd/cocoon-node sets them only in a binary built for the adversarial tests
// (build tag rogue). Each field is one misbehaviour, applied to every request; a proxy acts
// on QuoteFactor and ClaimTokens (on the chunks it passes on), a worker on all.
type Faults struct {
	// QuoteFactor quotes every answer at this multiple of the honest prices: a worker's
	// advertised prices, a proxy's with its commission (0 or 1: honest).
	QuoteFactor uint64
	// ClaimTokens makes every chunk claim this many completion tokens, whatever it carries.
	ClaimTokens uint32
	// ClaimPrompt makes every final claim this many prompt tokens.
	ClaimPrompt uint32
	// Garbage replaces every chunk's data with random bytes (after sealing, when sealed): what
	// the client gets neither opens nor decodes.
	Garbage bool
	// WrongAnswer alters the text of every answer (before sealing), keeping it well-formed
	// OpenAI JSON: a worker running another model than it advertises, which only an audit
	// against the pinned model catches.
	WrongAnswer bool
	// Hang takes each request and then sends nothing at all, heartbeats included.
	Hang bool
	// Idle takes each request and keeps it alive with heartbeats, but never sends a token: a
	// worker whose backend never starts answering.
	Idle bool
	// Reset resets every inference stream as soon as it opens.
	Reset bool
	// StallAfter stops answering (no more frames, no heartbeats) after this many chunks of a
	// streamed answer (0: never).
	StallAfter int
	// ClaimCapacity makes a worker's adverts claim this many concurrent requests and none
	// running, while it still admits only Config.MaxActive and answers busy beyond (0: honest).
	ClaimCapacity uint32
	// ClaimTokensPerSec makes a worker's adverts claim this speed, whatever it measured (0:
	// honest): a worker slower than it says.
	ClaimTokensPerSec uint32
	// WithholdPayment makes a payer (a client, or a proxy paying its workers) sign and store
	// its vouchers as usual but never send them: it takes answers and does not pay.
	WithholdPayment bool
	// SpamAdverts makes a worker publish this many junk messages on the capacity topic with
	// each of its adverts: gossip spam, which validators reject.
	SpamAdverts int
}

// advert applies the capacity and speed claims to an honest advert.
func (f *Faults) advert(a *wire.Advert) {
	if f == nil {
		return
	}
	if f.ClaimCapacity > 0 {
		a.MaxActive, a.Running = f.ClaimCapacity, 0
	}
	if f.ClaimTokensPerSec > 0 {
		a.TokensPerSec = f.ClaimTokensPerSec
	}
}

// spams reports whether a worker publishes junk: its own node then does not validate what it
// publishes (pubsub would drop the junk before it left), as a spammer's modified node would not.
func (f *Faults) spams() bool { return f != nil && f.SpamAdverts > 0 }

// withholds reports whether a payer keeps its vouchers to itself.
func (f *Faults) withholds() bool { return f != nil && f.WithholdPayment }

// spam publishes SpamAdverts junk messages on topic.
func (f *Faults) spam(ctx context.Context, topic *pubsub.Topic) {
	if f == nil || f.SpamAdverts <= 0 || topic == nil {
		return
	}
	junk := make([]byte, 512)
	for range f.SpamAdverts {
		_, _ = rand.Read(junk)
		_ = topic.Publish(ctx, junk)
	}
}

// faultOnOpen applies the faults that act before a request is read: it reports whether the
// stream was taken care of (reset, or held until the caller gives up or the node closes, which
// ctx ends). An idle answer keeps l's heartbeat every beat.
func (f *Faults) faultOnOpen(ctx context.Context, s network.Stream, beat time.Duration, l *life) bool {
	if f == nil || !(f.Reset || f.Idle || f.Hang) {
		return false
	}
	if f.Reset {
		s.Reset()
		return true
	}
	var a *stream.Answer
	if f.Idle {
		a = stream.NewAnswer(s, stream.AnswerConfig{Life: l, Hop: stream.ProxyWorker, Beat: beat})
	}
	// Never a token: the caller's bounds must end it. Held until it closes or resets (or the
	// node stops).
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()
	_, _ = io.Copy(io.Discard, s)
	if a != nil {
		a.Close()
	} else {
		s.Reset()
	}
	return true
}

// quote applies QuoteFactor to an honest quote.
func (f *Faults) quote(q wire.Quote) wire.Quote {
	if f == nil || f.QuoteFactor <= 1 {
		return q
	}
	p := &q.Prices
	p.Prompt, p.Cached, p.Completion, p.Reasoning = p.Prompt*f.QuoteFactor, p.Cached*f.QuoteFactor, p.Completion*f.QuoteFactor, p.Reasoning*f.QuoteFactor
	return q
}

// stalls reports whether the answer stops before its chunk number n (StallAfter went out).
func (f *Faults) stalls(n int) bool { return f != nil && f.StallAfter > 0 && n > f.StallAfter }

// chunk applies ClaimTokens and Garbage to a chunk about to go out.
func (f *Faults) chunk(c *wire.Chunk) {
	if f == nil {
		return
	}
	if f.ClaimTokens > 0 {
		c.Tokens = f.ClaimTokens
	}
	if f.Garbage {
		junk := make([]byte, max(len(c.Data), 16))
		_, _ = rand.Read(junk)
		c.Data = junk
	}
}

// wrong applies WrongAnswer to a chunk's plain data: each piece of text gains a mark.
func (f *Faults) wrong(data []byte) []byte {
	if f == nil || !f.WrongAnswer {
		return data
	}
	data = bytes.ReplaceAll(data, []byte(`"content":"`), []byte(`"content":"~`))
	return bytes.ReplaceAll(data, []byte(`"text":"`), []byte(`"text":"~`))
}

// usage applies ClaimPrompt to an honest final's usage.
func (f *Faults) usage(u *wire.Usage) {
	if f != nil && f.ClaimPrompt > 0 {
		u.Prompt = f.ClaimPrompt
	}
}
