package node

import (
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"

	"github.com/cocoon-mesh/cocoon/node/wire"
)

// Tracer receives a node's events as they happen, for whoever measures the network from
// inside the process (simulations do; cmd/cocoon-node sets none and reads metrics instead).
// Every field is optional. The functions run on the node's own goroutines, on its data path:
// they must be quick and must not block.
type Tracer struct {
	// Request is called once for every request this node finished: a client's through the
	// mesh, a proxy's for a client, a worker's on its backend.
	Request func(RequestTrace)
	// Attempt is called by a proxy for every worker it tried a request on, as the try ends.
	Attempt func(AttemptTrace)
	// Gossip receives gossipsub's own events (messages delivered, duplicates, rejections).
	Gossip pubsub.RawTracer
}

// RequestTrace is one finished request, as one node saw it.
type RequestTrace struct {
	Role     Role
	At       time.Time // when it ended
	ID       string
	Model    string
	Peer     string        // the proxy a client used, the client a proxy served, the proxy that sent a worker its request
	Worker   string        // the worker that answered (a client's, when it got an answer)
	Outcome  string        // "ok", or the error's code (wire.Code's names)
	Err      error         // nil when ok
	Duration time.Duration // from the request's start to its end
	TTFT     time.Duration // to the first chunk; 0 when no answer began
	Usage    wire.Usage
	Cost     uint64 // nanoTON the answer cost (client), or billed (proxy, worker), when paid
}

// AttemptTrace is one try of a request on one worker, as a proxy saw it.
type AttemptTrace struct {
	At      time.Time // when it ended
	ID      string    // the request's
	Worker  string
	Reason  string        // why routing picked the worker (routing.Decision.Reason)
	Latency time.Duration // to the worker's first answer (or the end of the try)
	Err     error         // nil when the worker answered in full
	Started bool          // the answer reached the client: the request could not fail over
}

// request passes r to the tracer.
func (t *Tracer) request(r requestRecord, worker string) {
	if t == nil || t.Request == nil {
		return
	}
	tr := RequestTrace{Role: r.role, At: r.at, ID: r.id, Model: r.model, Peer: r.peer, Worker: worker, Outcome: r.outcome,
		Err: r.err, Duration: r.duration, Usage: r.usage, Cost: r.cost}
	if r.answered {
		tr.TTFT = r.ttft
	}
	t.Request(tr)
}

// attempt passes a proxy's try to the tracer.
func (t *Tracer) attempt(a AttemptTrace) {
	if t != nil && t.Attempt != nil {
		t.Attempt(a)
	}
}
