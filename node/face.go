package node

import (
	"context"
	"errors"
	"math"

	"github.com/cocoon-mesh/cocoon/node/backend"
	"github.com/cocoon-mesh/cocoon/node/wire"
	"github.com/cocoon-mesh/cocoon/ton"
)

// The API a face serves over. A face is an HTTP API in front of a client node (package
// api/openai is one; an Anthropic Messages or Ollama face would sit beside it): it parses its
// caller's request, hands the mesh a Request through Infer, and shapes the Chunks and the
// Result for its caller. The mesh speaks OpenAI's shapes end to end (worker backends are
// OpenAI-compatible), so a face for another API translates to and from them. Models and
// Prices list what the mesh offers; RequestID names a request before it is sent.

// Request is one inference request a face hands the mesh.
type Request struct {
	// ID names the request at every hop and in its receipt: RequestID gives one.
	ID string
	// Model is the model asked for, as the caller named it (GET /v1/models lists them).
	Model string
	// Endpoint is the OpenAI API Body is meant for: chat or completions.
	Endpoint wire.Endpoint
	// Body is an OpenAI request body, forwarded untouched (sealed to the worker) to its backend.
	Body []byte
	// Stream asks for the answer chunk by chunk (onChunk) rather than whole (Result.Answer).
	Stream bool
	// MaxTokens caps the completion tokens (0: the backend's default); at most Config.MaxTokens.
	MaxTokens uint32
	// MaxPrice caps the effective price, nanoTON per completion token (0: none). A face starts
	// from Config.MaxPrice, the node's default cap, and may let its caller lower it.
	MaxPrice uint64
}

// Chunk is one piece of a streamed answer, checked before it is handed on: one or more
// server-sent events, each exactly "data: <one OpenAI chunk object on one line>\n\n", as the
// worker framed them (backend.CheckEvents). Data is valid only during the call.
type Chunk struct {
	Data   []byte
	Tokens uint32 // completion tokens it carries, as the worker claimed and the node checked
	More   bool   // the next chunk is already at hand: a face may hold its flush for it
}

// Result is what a finished request leaves besides its chunks: who served it, what it used and
// cost, and the receipt that proves it.
type Result struct {
	// Answer is a non-streamed answer, whole: one OpenAI response object (backend.CheckAnswer).
	Answer []byte
	// Usage is what the worker reported and its receipt signs.
	Usage wire.Usage
	// Worker and Proxy are the peers that served the request; WorkerTEE and ProxyTEE what
	// their attestations established ("none" for a worker reached unsealed and unchecked).
	Worker, WorkerTEE string
	Proxy, ProxyTEE   string
	// Receipt is the worker's receipt countersigned by the proxy, base64url.
	Receipt string
	// Cost is what the answer cost this client in nanoTON, at the proxy's quote, when Paid
	// (payments are on).
	Cost uint64
	Paid bool
}

// errCallerGone is what a face's failed onChunk becomes: never a refusal of the worker's answer.
var errCallerGone = errors.New("the caller is gone")

// Infer sends req into the mesh through a proxy and returns once the answer is complete and
// checked. A streamed answer goes to onChunk chunk by chunk (a non-streamed one never does:
// onChunk may be nil); an error from onChunk means the face's caller is gone, and cancels the
// request. While nothing reached onChunk, a failing
// proxy is replaced by the next, and a worker whose answer fails a check by another. The
// request gets Config.RequestTimeout at most. The error is a *wire.Error, whose Code says what
// went wrong (Code.HTTPStatus maps it to HTTP). Only a started client node serves requests.
func (n *Node) Infer(ctx context.Context, req Request, onChunk func(Chunk) error) (*Result, error) {
	if n.client == nil {
		return nil, wire.Errorf(wire.CodeUnavailable, "this node is a %s: only a client sends requests into the mesh", n.cfg.Role)
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
	defer cancel()
	h := wire.Header{ID: n.RequestID(req.ID), Model: req.Model, Endpoint: req.Endpoint, Stream: req.Stream,
		MaxTokens: req.MaxTokens, MaxPrice: req.MaxPrice}
	rec := requestRecord{role: RoleClient, id: h.ID, model: req.Model}
	start := n.now()
	first := func() {
		if !rec.answered {
			rec.answered, rec.ttft = true, n.now().Sub(start)
		}
	}
	var answer []byte
	sink := answerSink{chunk: func(c *wire.Chunk, more bool) error {
		// A streamed chunk is passed on as it came once it checks out (each event one JSON
		// object on one line), so a faulty worker can neither break the stream's framing nor
		// have garbage served.
		if err := checked(backend.CheckEvents(c.Data)); err != nil {
			return err
		}
		first()
		if err := onChunk(Chunk{Data: c.Data, Tokens: c.Tokens, More: more}); err != nil {
			return errCallerGone
		}
		return nil
	}}
	if !req.Stream {
		sink = answerSink{chunk: func(c *wire.Chunk, _ bool) error {
			first()
			answer = append(answer, c.Data...)
			return nil
		}, whole: func() error { return checked(backend.CheckAnswer(answer)) }, reset: func() { answer = answer[:0] }}
	}
	res, err := n.infer(ctx, h, req.Body, sink)
	if err != nil {
		err = n.workers.explainModel(asWireError(err), req.Model)
	}
	rec.at = n.now()
	rec.duration, rec.outcome, rec.err = rec.at.Sub(start), outcomeOf(err), err
	if res != nil {
		rec.usage, rec.cost, rec.peer = res.fin.Usage, res.cost, n.client.peerName(res.proxy)
	}
	n.metrics.finished(rec)
	if res != nil {
		n.tracer.request(rec, res.fin.Worker)
	} else {
		n.tracer.request(rec, "")
	}
	if err != nil {
		return nil, err
	}
	return &Result{Answer: answer, Usage: res.fin.Usage, Worker: res.fin.Worker, WorkerTEE: res.workerTE,
		Proxy: n.client.peerName(res.proxy), ProxyTEE: describeAttest(n.attest.cached(res.proxy)),
		Receipt: res.receipt, Cost: res.cost, Paid: res.paid}, nil
}

// explainModel says more of a proxy's "no worker serves this model": a model this client
// heard of lately (its workers' adverts) is one with no worker right now, to retry later (503
// with Retry-After); any other is not served by this network, and /v1/models lists what is.
func (ro *roster) explainModel(we *wire.Error, model string) *wire.Error {
	if we.Code != wire.CodeUnknownModel {
		return we
	}
	if ro.servedLately(model) {
		return wire.Errorf(wire.CodeNoCapacity, "no worker serves model %q right now (its workers left or are out of reach): retry in a while", model)
	}
	return wire.Errorf(wire.CodeUnknownModel, "model %q is not served by this network: GET /v1/models lists the models it serves", model)
}

// checked makes a failed check of what a worker sent the worker's failure, refusing its answer.
func checked(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if be := (*backend.Error)(nil); errors.As(err, &be) {
		msg = be.Message
	}
	return wire.Errorf(wire.CodeWorkerFailed, "%s", msg)
}

// RequestID returns given if it can name a request on the wire (not empty, at most
// wire.MaxIDLen bytes), else a new ID, unique to this client. A face calls it to tell its
// caller the ID before the answer starts.
func (n *Node) RequestID(given string) string {
	if given != "" && len(given) <= wire.MaxIDLen {
		return given
	}
	if n.client == nil {
		return ""
	}
	return n.client.requestID()
}

// AsWireError classifies any error a node's methods return as a mesh error: its Code says what
// went wrong (a context's end is a timeout or a cancellation; anything unnamed is internal).
func AsWireError(err error) *wire.Error { return asWireError(err) }

// ModelPrice is what one model the mesh offers costs this client: the cheapest worker's offer,
// with the commission of the dearest proxy it pays once it has learned it (when opening a
// channel).
type ModelPrice struct {
	Model   string
	Workers int // serving it
	// Worker, Coefficient and Commission are what PerToken is made of: the worker's list
	// prices, the per-mille coefficient it applies to them, and the proxy's per-mille
	// commission on top (only when CommissionKnown).
	Worker          wire.Prices
	Coefficient     uint32
	Commission      uint32
	CommissionKnown bool
	// PerToken is what one token of each category costs this client, nanoTON, billed as answers
	// are: coefficient applied, rounded up (math.MaxUint64 where that does not fit). Its
	// Completion price is what Request.MaxPrice caps.
	PerToken wire.Prices
}

// Prices lists what each model the workers this node knows of offer costs it, in the order of
// Models.
func (n *Node) Prices() []ModelPrice {
	models := n.Models()
	var commission uint32
	var known bool
	if n.payments != nil { // the highest commission among the proxies this client pays
		commission, known = n.payments.commission()
	}
	out := make([]ModelPrice, 0, len(models))
	for _, m := range models {
		o := m.Cheapest
		mp := ModelPrice{Model: m.Model, Workers: m.Workers, Worker: o.Prices, Coefficient: o.Coefficient}
		prices := o.Prices
		if known {
			mp.Commission, mp.CommissionKnown = commission, true
			if p, err := prices.WithCommission(commission); err == nil {
				prices = p
			}
		}
		per := func(u ton.Usage) uint64 {
			v, err := prices.Cost(u, o.Coefficient)
			if err != nil {
				return math.MaxUint64
			}
			return v
		}
		mp.PerToken = wire.Prices{Prompt: per(ton.Usage{Prompt: 1}), Cached: per(ton.Usage{Prompt: 1, Cached: 1}),
			Completion: per(ton.Usage{Completion: 1}), Reasoning: per(ton.Usage{Reasoning: 1})}
		out = append(out, mp)
	}
	return out
}
