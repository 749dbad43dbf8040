package node

import (
	"context"
	"crypto/sha256"
	"errors"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cocoon-mesh/cocoon/node/backend"
	"github.com/cocoon-mesh/cocoon/node/stream"
	"github.com/cocoon-mesh/cocoon/node/wire"
	"github.com/cocoon-mesh/cocoon/tee"
)

// workerState is what a worker tracks beyond the common node.
type workerState struct {
	advertEnv
	backend backend.Backend
	models  map[string]ModelConfig

	active  atomic.Int32 // requests running now
	healthy atomic.Bool  // the backend answered its last health check
	// backendErr is why the last health check failed ("" when it passed; nil before the first).
	backendErr atomic.Pointer[string]
	seq        atomic.Uint64 // advert sequence number
	tokens     atomic.Int64  // completion tokens generated since start
	rate       atomic.Uint32 // completion tokens per second over the last advert interval

	lastTokens int64 // tokens at the previous measurement (advert loop only)
	lastAt     time.Time
}

// measureRate updates the tokens/s figure; only the advert loop calls it.
func (w *workerState) measureRate(now time.Time) {
	tokens := w.tokens.Load()
	if !w.lastAt.IsZero() {
		if dt := now.Sub(w.lastAt).Seconds(); dt > 0 {
			w.rate.Store(uint32(float64(tokens-w.lastTokens) / dt))
		}
	}
	w.lastTokens, w.lastAt = tokens, now
}

func newWorkerState(env advertEnv, b backend.Backend) *workerState {
	cfg := env.cfg
	w := &workerState{advertEnv: env, backend: b, models: map[string]ModelConfig{}}
	for _, m := range cfg.Models {
		w.models[m.ID] = m
	}
	return w
}

// startWorker makes the node a worker: it serves inference streams from proxies, keeps
// connections to a few proxies, and publishes its capacity.
func (n *Node) startWorker() error {
	n.h.SetStreamHandler(InferProtocol, n.life.handler(n.handleWorkerInfer))
	n.worker.checkHealth()
	n.keeper = n.disc.NewKeeper(n.cfg.MinProxies, n.cfg.DiscoveryInterval, func(ctx context.Context, p peer.ID) {
		n.worker.sendDirectAdvert(ctx, p)
		n.attest.warm(ctx, p)
	})
	n.life.Loop(n.keeper.Run)
	n.life.Every(n.cfg.HealthInterval, n.worker.checkHealth)
	n.life.Go(func() { n.worker.publishAdvert(n.ctx) })
	n.life.Every(n.cfg.AdvertInterval, func() { n.worker.publishAdvert(n.ctx) })
	models := make([]string, 0, len(n.cfg.Models))
	for _, m := range n.cfg.Models {
		models = append(models, m.ID)
	}
	n.log.Info("worker started", "models", models, "max_active", n.cfg.MaxActive)
	return nil
}

// maxBatchedChunk bounds the JSON lines one streamed chunk frame collects.
const maxBatchedChunk = 32 << 10

// maxBilledChunk bounds the completion tokens one chunk carries when it is paid for: each
// chunk is billed as it goes out, and a small one keeps the payer's credit use smooth.
const maxBilledChunk = 16

// sendSplit sends a whole non-streamed answer. Paid for, it goes in parts of at most
// maxBilledChunk*4 tokens, each billed as it goes, so a long answer never needs more credit
// than a streamed one; the client joins them. The last part waits for the final's flush.
func sendSplit(c backend.Chunk, paid bool, send func(*wire.Chunk, bool) error) error {
	parts := 1
	if paid {
		parts = max(1, (c.Tokens+maxBilledChunk*4-1)/(maxBilledChunk*4))
		parts = min(parts, max(1, len(c.Data)))
	}
	var part wire.Chunk
	for i := range parts {
		lo, hi := len(c.Data)*i/parts, len(c.Data)*(i+1)/parts
		part.Data = c.Data[lo:hi]
		part.Tokens = uint32(c.Tokens*(i+1)/parts - c.Tokens*i/parts)
		if err := send(&part, i < parts-1); err != nil {
			return err
		}
	}
	return nil
}

// handleWorkerInfer runs one request from a proxy on the backend and streams the answer.
func (n *Node) handleWorkerInfer(s network.Stream) {
	if n.faults.faultOnOpen(n.ctx, s, n.cfg.beat(), n.life) {
		return
	}
	out := n.newAnswer(s, stream.ProxyWorker)
	h, body, err := out.ReadRequest(n.cfg.limits())
	if err != nil {
		out.Fail(asWireError(err))
		return
	}
	j, err := n.admitJob(s, &h, body, out)
	if err != nil {
		out.Fail(asWireError(err))
		return
	}
	defer n.worker.active.Add(-1)
	base, cancelCause := context.WithCancelCause(n.ctx)
	defer cancelCause(nil)
	ctx, cancel := context.WithTimeout(base, h.Timeout)
	defer cancel()
	out.OnRefusal(func(rj wire.Reject) {
		j.bill.refused(rj.Tokens) // j.bill is set before the watcher starts
		n.log.Warn("the proxy refused our answer", "request", h.ID, "accepted_tokens", rj.Tokens, "why", rj.Err.Message)
	})
	out.Watch(cancelCause, j.payer.frames())
	start := n.now()
	err = j.run(ctx, s)
	if err != nil {
		n.failJob(ctx, &h, out, err)
	}
	rec := requestRecord{role: RoleWorker, id: h.ID, model: h.Model, peer: s.Conn().RemotePeer().String(),
		usage: j.usage, cost: j.bill.total(), at: n.now(), duration: n.now().Sub(start), outcome: outcomeOf(err), err: err}
	n.metrics.finished(rec)
	n.tracer.request(rec, n.idStr)
}

// job is one request a worker runs: its request, the answer going back, and how it is billed.
type job struct {
	n       *Node
	h       *wire.Header
	body    []byte      // in the clear
	reqHash [32]byte    // of the body as it came (sealed, if sealed): the receipt binds it
	sealer  *tee.Answer // seals the answer back to the client (nil: the request came in the clear)
	out     *stream.Answer
	payer   *inChan // the channel the proxy pays us on (nil: payments off)
	ctx     context.Context
	quote   wire.Quote // our prices for the answer
	bill    *billing
	quoted  bool
	claim   *claims // our own backend's claims, held to the rules a proxy checks
	hash    *tee.AnswerHash
	sealed  wire.Chunk // buffer for sealed chunks
	pend    wire.Chunk // streamed events held to go with the next ones
	sent    int        // chunks sent (counted only for Faults)
	usage   wire.Usage // the answer's, once generated (for the metrics)
}

// admitJob opens a sealed request and checks that we can run it now: the model, the backend's
// health, our capacity and the proxy's payment channel. It counts the job as active.
func (n *Node) admitJob(s network.Stream, h *wire.Header, body []byte, out *stream.Answer) (*job, error) {
	w := n.worker
	j := &job{n: n, h: h, reqHash: sha256.Sum256(body), out: out, hash: tee.NewAnswerHash(), claim: newClaims(h, len(body))}
	j.body = body
	if h.Sealed {
		var err error
		if j.body, j.sealer, err = n.attest.opener.Open([]byte(h.ID), body); err != nil {
			code := wire.CodeAttestation
			if errors.Is(err, tee.ErrUnknownSession) {
				code = wire.CodeSealSession // the client resends with the session's key
			}
			return nil, wire.Errorf(code, "%v", err)
		}
		if err := n.cfg.checkBodySize(j.body); err != nil {
			return nil, err
		}
	}
	if _, ok := w.models[h.Model]; !ok {
		return nil, wire.Errorf(wire.CodeUnknownModel, "this worker does not serve %q", h.Model)
	}
	if !w.healthy.Load() {
		return nil, wire.Errorf(wire.CodeNoCapacity, "backend unhealthy")
	}
	if int(w.active.Add(1)) > n.cfg.MaxActive {
		w.active.Add(-1)
		return nil, wire.Errorf(wire.CodeNoCapacity, "worker at its limit of %d requests", n.cfg.MaxActive)
	}
	if n.payments != nil {
		var err error
		if j.payer, err = n.payments.payerIn(s.Conn().RemotePeer()); err != nil {
			w.active.Add(-1)
			return nil, err
		}
	}
	// The answer is quoted at our prices before its first chunk, and each chunk goes out only
	// within the proxy's credit window.
	j.quoted = j.payer == nil
	j.quote = n.faults.quote(wire.Quote{Prices: w.models[h.Model].Prices, Coefficient: n.cfg.Coefficient})
	j.bill = newBilling(j.payer, j.quote, out.Bill)
	return j, nil
}

// run generates the answer and ends it with the final frame and its receipt.
func (j *job) run(ctx context.Context, s network.Stream) error {
	n, h := j.n, j.h
	// The receipt names the proxy by the key its connection authenticated, and by its
	// attestation if it has one (handshake cached after the first request on a connection).
	proxyKey, err := crypto.MarshalPublicKey(s.Conn().RemotePublicKey())
	if err != nil {
		return err
	}
	proxyAttest, err := n.attest.peer(ctx, s.Conn().RemotePeer())
	if err != nil {
		return err
	}
	j.ctx = ctx
	usage, err := j.generate(ctx)
	if err != nil {
		return err
	}
	n.worker.tokens.Add(int64(usage.Completion))
	fin := wire.Final{
		Usage: wire.Usage{Prompt: uint32(usage.Prompt), Cached: uint32(usage.Cached), Completion: uint32(usage.Completion),
			Reasoning: uint32(usage.Reasoning), Estimated: usage.Estimated},
		Worker: n.idStr,
	}
	j.usage = fin.Usage
	if err := j.claim.final(fin.Usage); err != nil {
		return wire.Errorf(wire.CodeBackend, "backend usage out of bounds: %v", err)
	}
	n.faults.usage(&fin.Usage)
	rc := tee.Receipt{
		RequestID: h.ID, Model: h.Model, Sealed: h.Sealed, RequestHash: j.reqHash, AnswerHash: j.hash.Sum(),
		PromptTokens: uint64(fin.Usage.Prompt), CachedTokens: uint64(fin.Usage.Cached),
		CompletionTokens: uint64(fin.Usage.Completion), ReasoningTokens: uint64(fin.Usage.Reasoning),
		Time: n.now(), WorkerKey: n.attest.key, WorkerEvidence: n.attest.digest, ProxyKey: proxyKey, ProxyEvidence: proxyAttest.att.Digest,
	}
	if rc.Worker, err = n.attest.signer.sign(rc.WorkerDigest()); err != nil {
		return err
	}
	fin.Receipt = rc.Marshal()
	if err := j.bill.final(ctx, fin.Usage); err != nil {
		return err
	}
	if j.sealer != nil {
		d := rc.WorkerDigest()
		if fin.Tag, err = j.sealer.Seal(nil, d[:]); err != nil {
			return err
		}
	}
	err = j.out.Final(&fin)
	j.out.Close()
	return err
}

// generate runs the backend, sending the answer as it comes. A streamed chunk is sent as
// server-sent events ("data: <JSON>\n\n"), ready for the client to pass on. One that the
// backend already has the next one for waits for it, and both travel in one frame: a burst of
// tokens costs one frame, a lone token goes out at once. A whole answer is one chunk, sent
// with its final frame.
func (j *job) generate(ctx context.Context) (backend.Usage, error) {
	h := j.h
	endpoint := backend.Chat
	if h.Endpoint == wire.Completion {
		endpoint = backend.Completion
	}
	paid := j.payer != nil
	usage, err := j.n.worker.backend.Generate(ctx, backend.Request{Endpoint: endpoint, Model: h.Model, Body: j.body, Stream: h.Stream, MaxTokens: h.MaxTokens},
		func(c backend.Chunk) error {
			if !h.Stream {
				return sendSplit(c, paid, j.send)
			}
			j.pend.Data = backend.AppendEvent(j.pend.Data, c.Data)
			j.pend.Tokens += uint32(c.Tokens)
			if c.More && len(j.pend.Data) < maxBatchedChunk && (!paid || j.pend.Tokens < maxBilledChunk) {
				return nil
			}
			err := j.send(&j.pend, true)
			j.pend.Data, j.pend.Tokens = j.pend.Data[:0], 0
			return err
		})
	if err == nil && h.Stream && len(j.pend.Data) > 0 {
		err = j.send(&j.pend, false) // the stream ended with a chunk still held: send it with the final
	}
	if err == nil {
		err = j.sendQuote() // an answer without chunks is quoted too
	}
	return usage, err
}

// sendQuote quotes the answer, once, before its first chunk.
func (j *job) sendQuote() error {
	if j.quoted {
		return nil
	}
	j.quoted = true
	return j.out.Quote(&j.quote, false)
}

// send bills, seals and sends one chunk. Every chunk is hashed as it is sent (sealed, if
// sealing), for the receipt, and its token count is held to what a proxy accepts. A chunk that
// cannot go out is not billed.
func (j *job) send(c *wire.Chunk, flush bool) error {
	if err := j.sendQuote(); err != nil {
		return err
	}
	if err := j.claim.chunk(c.Tokens, len(c.Data)); err != nil {
		return wire.Errorf(wire.CodeBackend, "backend token counts out of bounds: %v", err)
	}
	if j.n.faults != nil {
		if j.sent++; j.n.faults.stalls(j.sent) {
			j.out.Stall()
			<-j.ctx.Done()
			return context.Cause(j.ctx)
		}
	}
	if err := j.bill.chunk(j.ctx, c.Tokens); err != nil {
		return err
	}
	c.Data = j.n.faults.wrong(c.Data)
	if j.sealer != nil {
		var err error
		if j.sealed.Data, err = j.sealer.Seal(j.sealed.Data[:0], c.Data); err != nil {
			return err
		}
		j.sealed.Tokens = c.Tokens
		c = &j.sealed
	}
	j.n.faults.chunk(c)
	j.hash.Add(c.Data)
	if err := j.out.Chunk(c, flush); err != nil {
		j.bill.unsent()
		return err
	}
	return nil
}

// failJob ends an answer that failed, saying why.
func (n *Node) failJob(ctx context.Context, h *wire.Header, out *stream.Answer, err error) {
	var we *wire.Error
	switch cause := context.Cause(ctx); {
	case ctx.Err() != nil && errors.Is(cause, context.Canceled):
		// The proxy went away, or cancelled: the backend call is already stopped. Ending
		// the answer lets a cancelling proxy count exactly the chunks we sent.
		n.log.Debug("request cancelled by the caller", "request", h.ID)
		out.Fail(wire.Errorf(wire.CodeCancelled, "the request was cancelled"))
	case errors.As(cause, new(*stream.Rejection)):
		out.Fail(wire.Errorf(wire.CodeCancelled, "the answer was refused"))
	case errors.As(err, &we):
		out.Fail(we)
	default:
		out.Fail(backendError(ctx, err))
	}
}

// backendError classifies a backend failure: a request the backend refused is the caller's
// fault and must not be retried elsewhere; a backend that failed is worth another worker.
func backendError(ctx context.Context, err error) *wire.Error {
	var be *backend.Error
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return wire.Errorf(wire.CodeTimeout, "the request ran out of time on the worker")
	case errors.As(err, &be) && be.Status == 404:
		return wire.Errorf(wire.CodeUnknownModel, "backend: %s", be.Message)
	case errors.As(err, &be) && be.Status == 413:
		return wire.Errorf(wire.CodeTooLarge, "backend: %s", be.Message)
	case errors.As(err, &be) && be.Status >= 400 && be.Status < 500:
		return wire.Errorf(wire.CodeBadRequest, "backend: %s", be.Message)
	}
	return wire.Errorf(wire.CodeBackend, "backend failed: %v", err)
}
