package node

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/cocoon-mesh/cocoon/node/stream"
	"github.com/cocoon-mesh/cocoon/node/wire"
	"github.com/cocoon-mesh/cocoon/routing"
	"github.com/cocoon-mesh/cocoon/tee"
)

// startProxy makes the node a proxy: it takes requests from clients and adverts from
// workers, announces itself in the DHT, and keeps its worker table fresh.
func (n *Node) startProxy() error {
	n.h.SetStreamHandler(InferProtocol, n.life.handler(n.handleProxyInfer))
	n.h.SetStreamHandler(AdvertProtocol, n.life.handler(n.handleDirectAdvert))
	nb := &network.NotifyBundle{DisconnectedF: func(nw network.Network, c network.Conn) {
		p := c.RemotePeer()
		if nw.Connectedness(p) != network.Connected && n.ctx.Err() == nil {
			n.workers.drop(p, "connection closed")
		}
	}}
	n.h.Network().Notify(nb)
	n.life.Loop(func(ctx context.Context) {
		<-ctx.Done()
		n.h.Network().StopNotify(nb)
	})
	n.life.Loop(n.workers.read)
	n.life.Loop(func(ctx context.Context) {
		n.disc.Advertise(ctx, n.routedModels, n.cfg.ProvideRetry, n.cfg.ProvideInterval)
	})
	n.life.Every(n.cfg.WorkerTTL/4, n.workers.expire)
	n.log.Info("proxy started", "network", n.cfg.Network)
	return nil
}

// routedModels lists the models this proxy can route now, for its DHT model keys.
func (n *Node) routedModels() []string {
	ms := n.Models()
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Model
	}
	return out
}

// handleDirectAdvert takes an advert a worker sends straight to us when it connects, so it is
// routable before its first gossip advert arrives.
func (n *Node) handleDirectAdvert(s network.Stream) {
	defer s.Close()
	_ = s.SetReadDeadline(n.now().Add(requestReadTimeout))
	t, p, err := wire.NewReader(s, wire.MaxAdvertSize).ReadFrame()
	if err == nil && t != wire.FrameAdvert {
		err = fmt.Errorf("expected an advert frame, got %s", t)
	}
	var a *wire.Advert
	if err == nil {
		a, err = n.workers.check(p, s.Conn().RemotePeer())
	}
	if err != nil {
		n.log.Warn("direct advert rejected", "from", s.Conn().RemotePeer().String(), "err", err)
		s.Reset()
		return
	}
	n.workers.observe(a)
}

// handleProxyInfer serves one client request: pick a worker, forward, stream the answer back,
// and fail over to the next worker while nothing has reached the client yet.
func (n *Node) handleProxyInfer(s network.Stream) {
	out := n.newAnswer(s, stream.ClientProxy)
	h, body, err := out.ReadRequest(n.cfg.limits())
	if err != nil {
		out.Fail(asWireError(err))
		return
	}
	cl := &toClient{out: out}
	if n.payments != nil {
		if cl.payer, err = n.payments.payerIn(s.Conn().RemotePeer()); err != nil {
			out.Fail(asWireError(err))
			return
		}
		h.MaxPrice = n.cfg.workerCap(h.MaxPrice)
	}
	base, cancelCause := context.WithCancelCause(n.ctx)
	defer cancelCause(nil)
	ctx, cancel := context.WithTimeout(base, h.Timeout)
	defer cancel()
	var preset []wire.Sealed
	if h.Presealed {
		if preset, err = wire.DecodeSealedSet(body); err != nil {
			out.Fail(wire.Errorf(wire.CodeBadRequest, "%v", err))
			return
		}
		body = nil
	}
	out.OnRefusal(func(rj wire.Reject) {
		cl.refused(rj)
		n.log.Warn("the client refused an answer", "client", s.Conn().RemotePeer().String(), "request", h.ID, "accepted_tokens", rj.Tokens, "why", rj.Err.Message)
	})
	out.Watch(cancelCause, cl.payer.frames())
	start := n.now()
	err = n.serve(ctx, h, body, preset, cl)
	if err != nil {
		out.Fail(asWireError(err))
	}
	rec := requestRecord{role: RoleProxy, id: h.ID, model: h.Model, peer: s.Conn().RemotePeer().String(),
		at: n.now(), outcome: outcomeOf(err), err: err}
	rec.duration = rec.at.Sub(start)
	cl.mu.Lock()
	rec.usage, rec.cost = cl.usage, cl.cost
	if !cl.firstChunk.IsZero() {
		rec.answered, rec.ttft = true, cl.firstChunk.Sub(start)
	}
	cl.mu.Unlock()
	n.metrics.finished(rec)
	n.tracer.request(rec, "")
}

// toClient is a proxy's answer to its client, which the relays trying one worker after
// another share.
type toClient struct {
	out   *stream.Answer
	payer *inChan // the client pays us on it (nil: payments off)

	mu      sync.Mutex
	bill    *billing     // the billing of the relay that quoted last
	refusal *wire.Reject // the client's refusal, once it came
	// What the request log and metrics report of the answer served: its usage and what the
	// client was billed for it (once final), and when the worker's first chunk came.
	usage      wire.Usage
	cost       uint64
	firstChunk time.Time
}

// served records the answer a relay finished: its usage and what b billed for it.
func (cl *toClient) served(u wire.Usage, b *billing, firstChunk time.Time) {
	cost := b.total()
	cl.mu.Lock()
	cl.usage, cl.cost, cl.firstChunk = u, cost, firstChunk
	cl.mu.Unlock()
}

// completion is the completion tokens of the answer served.
func (cl *toClient) completion() uint32 {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.usage.Completion
}

// billWith has the client's refusal take back what b counted, in place of the billing of the
// relay that quoted before.
func (cl *toClient) billWith(b *billing) {
	cl.mu.Lock()
	cl.bill = b
	rj := cl.refusal
	cl.mu.Unlock()
	if rj != nil {
		b.refused(rj.Tokens)
	}
}

// refused takes back, from the billing of the relay that quoted last, what the client's
// refusal does not accept.
func (cl *toClient) refused(rj wire.Reject) {
	cl.mu.Lock()
	cl.refusal = &rj
	b := cl.bill
	cl.mu.Unlock()
	b.refused(rj.Tokens)
}

// serve runs a client's request on one worker after another until one serves it (nil), the
// answer has started, or the request cannot succeed elsewhere; it returns the error to end the
// answer with. Each attempt's outcome feeds the routing table: any failure of the worker counts
// against it, never as a fast answer.
func (n *Node) serve(ctx context.Context, h wire.Header, body []byte, preset []wire.Sealed, cl *toClient) error {
	tried := slices.Clone(h.Exclude)
	var lastErr error
	skips := 0 // workers passed over for want of a channel: not attempts
	for attempt := 0; attempt < n.cfg.MaxAttempts; attempt++ {
		n.workers.mu.Lock()
		now := n.now()
		d, err := n.workers.table.Pick(now, routing.Request{Model: h.Model, MaxPrice: h.MaxPrice, Exclude: tried, Trust: n.workers.trust(now),
			Probation: n.workers.probation()})
		if err == nil {
			n.workers.table.Begin(d.Worker)
		}
		n.workers.mu.Unlock()
		if err != nil {
			return cmp.Or(lastErr, error(routingError(err)))
		}
		tried = append(tried, d.Worker)
		start := n.now()
		rl := &relay{n: n, d: d, cl: cl}
		err = rl.run(ctx, h, body, preset)
		if !rl.answered {
			rl.firstToken = n.now()
		}
		n.ended(rl, rl.firstToken.Sub(start), err)
		if n.tracer != nil && n.tracer.Attempt != nil {
			n.tracer.attempt(AttemptTrace{At: n.now(), ID: h.ID, Worker: d.Worker.String(), Reason: d.Reason(),
				Latency: rl.firstToken.Sub(start), Err: err, Started: rl.started})
		}
		if err == nil {
			return nil
		}
		if errors.Is(err, errUnearnedCap) && skips < maxSkips {
			skips++
			attempt--
			lastErr = err
			continue
		}
		if !rl.started && demandsPayment(n.payments, err) {
			n.leaveAlone(d.Worker, errDemandsPayment)
			lastErr = wire.Errorf(wire.CodeNoCapacity, "worker %s: %v", d.Worker.String(), errDemandsPayment)
			continue
		}
		lastErr = err
		if rl.started || ctx.Err() != nil || !asWireError(err).Code.Retryable() {
			break
		}
		n.log.Warn("worker failed before the first token; failing over", "worker", d.Worker.String(), "request", h.ID, "err", err)
	}
	if ctx.Err() != nil && errors.Is(context.Cause(ctx), context.Canceled) {
		// The client cancelled (or went away): ending the answer lets it count exactly the
		// chunks we sent.
		return wire.Errorf(wire.CodeCancelled, "the request was cancelled")
	}
	return lastErr
}

// maxSkips bounds the workers one request passes over for want of a payment channel.
const maxSkips = 32

// ended reports an attempt's outcome to the routing table and the reputation book, and says so
// when it ejects the worker. An attempt that ended before the worker had a say (the client
// left, or we would not open it a channel) tells nothing about the worker.
func (n *Node) ended(rl *relay, latency time.Duration, err error) {
	w, now := rl.d.Worker, n.now()
	n.workers.mu.Lock()
	var ejected time.Duration
	if errors.Is(err, context.Canceled) || errors.Is(err, errUnearnedCap) {
		n.workers.table.Drop(now, w)
	} else {
		ejected = n.workers.table.End(now, w, latency, !workerFault(err))
	}
	if ev, ok := rl.evidence(err, n.workers.claims[w]); ok {
		n.workers.record(now, w, ev, err)
	}
	n.workers.mu.Unlock()
	if err == nil {
		n.audits.served(rl, rl.cl.completion())
	}
	if ejected > 0 {
		n.log.Warn("worker ejected from routing after failing repeatedly", "worker", w.String(), "for", ejected, "last_err", err)
	}
}

// relay is one attempt to serve a client's request on worker d: it forwards the answer's
// events, checking what the worker claims, billing the client before paying the worker.
type relay struct {
	n     *Node
	d     routing.Decision
	cl    *toClient    // the answer to the client
	c     *stream.Call // to the worker
	h     wire.Header
	body  []byte // the request body as the worker got it (sealed, when sealed)
	pa    *peerAttest
	payee *outChan  // we pay the worker on it
	meter *metering // what we owe the worker for this answer
	bill  *billing  // what the client owes us for it
	claim *claims
	hash  *tee.AnswerHash

	started    bool      // a chunk reached the client: failing over would duplicate output
	answered   bool      // the worker sent a chunk, its final or an error
	firstToken time.Time // when it did (or the attempt ended without it)
}

// run makes the attempt. A client that seals its request either sent the body sealed to the
// worker already (in preset), or gets a route frame naming it and its attestation and then sends
// the body sealed to it. Either way the proxy passes on ciphertext it cannot read.
//
// With payments on, the client pays us on cl.payer and we pay the worker: the worker's quote
// must be the prices it advertised (the routed offer), our commission is added for the client,
// and each chunk is billed to the client before it is metered as owed to the worker, so we
// never owe the worker for more than the client pays us, beyond one credit window.
func (rl *relay) run(ctx context.Context, h wire.Header, body []byte, preset []wire.Sealed) error {
	n, d := rl.n, rl.d
	left, err := n.timeLeft(ctx)
	if err != nil {
		return err
	}
	if rl.cl.payer != nil {
		if rl.payee, err = n.payments.payOn(ctx, d.Worker); err != nil {
			if errors.Is(err, errUnearnedCap) {
				return err
			}
			return wire.Errorf(wire.CodeWorkerFailed, "%v", err)
		}
		defer rl.payee.end() // what the answer left unpaid, whatever ended it
	}
	if rl.pa, err = n.attest.peer(ctx, d.Worker); err != nil {
		return err
	}
	if !rl.pa.trusted(n.cfg.AllowUnattested) {
		return wire.Errorf(wire.CodeWorkerFailed, "worker %s is not attested: %v", d.Worker.String(), rl.pa.err)
	}
	sealed := h.Sealed
	h.Presealed, h.Exclude = false, nil
	if sealed {
		if body, h.Sealed, err = rl.sealedBody(ctx, preset); err != nil {
			return err
		}
	}
	h.Model = d.Offer.Model // the worker serves exactly the model we routed on
	h.Timeout = left
	rl.h, rl.body, rl.claim, rl.hash = h, body, newClaims(&h, len(body)), tee.NewAnswerHash()
	if rl.c, err = n.openCall(ctx, d.Worker, stream.ProxyWorker, rl.cl.payer != nil, &h, body); err != nil {
		return wire.Errorf(wire.CodeWorkerFailed, "cannot reach worker %s: %v", d.Worker.String(), err)
	}
	for {
		done, err := rl.step(ctx)
		if done || err != nil {
			return err
		}
	}
}

// sealedBody is the body of a sealed request for our worker: the one the client sealed to it
// ahead, if it did (a chosen frame tells it so, sent with the first chunk), or else the one
// it sends, sealed to the worker or in the clear to an unattested one it accepts, once our
// route names the worker. A body sealed to a key the worker no longer holds (it restarted)
// takes the route.
func (rl *relay) sealedBody(ctx context.Context, preset []wire.Sealed) ([]byte, bool, error) {
	w, out := rl.d.Worker, rl.cl.out
	if i := slices.IndexFunc(preset, func(s wire.Sealed) bool { return s.Worker == w && s.KeyID == rl.pa.sealID }); i >= 0 {
		if err := out.Chosen(w); err != nil {
			return nil, false, context.Canceled // the client is gone
		}
		return preset[i].Body, true, nil
	}
	if err := out.Route(&wire.Route{Worker: w, Key: rl.pa.key, Hello: rl.pa.hello}); err != nil {
		return nil, false, context.Canceled
	}
	sealed, body, err := out.Body(ctx)
	return body, sealed, err
}

// step handles the worker's next event; done reports that the answer ended well.
func (rl *relay) step(ctx context.Context) (done bool, err error) {
	c := rl.c
	ev, err := c.Next()
	if !rl.answered && (err != nil || ev.Kind == stream.Chunk || ev.Kind == stream.Final || ev.Kind == stream.Error) {
		rl.answered, rl.firstToken = true, rl.n.now()
	}
	if _, ok := context.Cause(ctx).(*stream.Rejection); ok {
		c.Leave() // the client refused the answer: the cancel hook refused it here too
		rl.meter.refuse(c.Accepted())
		return false, context.Cause(ctx)
	}
	if bad := (*stream.BadFrame)(nil); errors.As(err, &bad) {
		return false, rl.refuse(bad)
	} else if err != nil {
		return false, c.Broke(ctx, err)
	}
	switch ev.Kind {
	case stream.Quote:
		return false, rl.quote(ev.Quote)
	case stream.Bill:
		return false, rl.meter.billNow(ctx, c)
	case stream.Chunk:
		return false, rl.chunk(ctx, ev)
	case stream.Final:
		return true, rl.final(ctx, &ev.Final)
	case stream.Error:
		rl.meter.finish(c)
		return false, ev.Err
	}
	return false, nil // progress
}

// fault is a failure of the worker's, as the client sees it.
func (rl *relay) fault(err error) *wire.Error {
	return wire.Errorf(wire.CodeWorkerFailed, "worker %s: %v", rl.d.Worker.String(), err)
}

// refuse refuses the worker's answer for err, accepting the tokens we took from it so far,
// logs why, and returns the failure.
func (rl *relay) refuse(err error) error {
	we := rl.fault(err)
	rl.meter.refuseOn(rl.c, rl.c.Taken(), we)
	rl.n.log.Warn("worker's answer refused", "worker", rl.d.Worker.String(), "request", rl.h.ID, "err", err)
	return we
}

// quote checks the worker's prices against those it advertised and under the client's cap,
// and quotes the client ours.
func (rl *relay) quote(wq wire.Quote) error {
	if err := quotesAdvert(wq, rl.d.Offer); err != nil {
		return rl.refuse(err)
	}
	cq, err := rl.n.cfg.clientQuote(wq, rl.h.MaxPrice)
	if err != nil {
		return rl.refuse(err)
	}
	cq.client = rl.n.faults.quote(cq.client)
	rl.meter = newMetering(rl.payee, cq.worker)
	rl.bill = newBilling(rl.cl.payer, cq.client, rl.cl.out.Bill)
	rl.cl.billWith(rl.bill)
	if err := rl.cl.out.Quote(&cq.client, false); err != nil {
		rl.c.Abort()
		return context.Canceled
	}
	return nil
}

// chunk checks a chunk's claim, bills it to the client, meters it as owed to the worker, and
// passes it on. A cancelled request's last chunks are read and paid for, not passed on.
func (rl *relay) chunk(ctx context.Context, ev *stream.Event) error {
	ch, p := ev.Chunk, ev.Raw
	if err := rl.claim.chunk(ch.Tokens, len(ch.Data)); err != nil {
		return rl.refuse(err)
	}
	cancelled := ctx.Err() != nil
	billed := ch.Tokens
	if f := rl.n.faults; f != nil && f.ClaimTokens > 0 { // a rogue proxy inflates what it passes on
		billed = f.ClaimTokens
		p = wire.AppendChunk(nil, &wire.Chunk{Tokens: billed, Data: ch.Data})
	}
	if !cancelled {
		if err := rl.bill.chunk(ctx, billed); err != nil {
			rl.meter.refuseOn(rl.c, rl.c.Taken(), asWireError(err)) // the client does not pay for it: neither do we
			return err
		}
	}
	if err := rl.meter.chunk(ctx, rl.c, ch.Tokens); err != nil {
		rl.c.Abort()
		return err
	}
	rl.c.Take(ch.Tokens)
	if cancelled {
		return nil
	}
	rl.hash.Add(ch.Data)
	// Flush when nothing more is waiting: a burst of chunks goes out in one write, and a
	// lone chunk (the first token) without delay.
	rl.started = true
	if err := rl.cl.out.ForwardChunk(p, !rl.c.Buffered()); err != nil {
		rl.bill.unsent()
		rl.c.Abort()
		return context.Canceled // the client is gone
	}
	return nil
}

// final checks the worker's receipt and usage, countersigns the receipt, bills the client for
// the rest of the answer and passes the final on; once the client took the answer (it did not
// refuse it), the worker is paid the rest too.
func (rl *relay) final(ctx context.Context, fin *wire.Final) error {
	c := rl.c
	err := rl.n.countersign(fin, &rl.h, rl.d.Worker, rl.pa, rl.body, rl.hash.Sum())
	if err == nil {
		err = rl.claim.final(fin.Usage)
	}
	if err != nil {
		return rl.refuse(err)
	}
	if err := rl.bill.final(ctx, fin.Usage); err != nil {
		rl.meter.refuseOn(c, c.Taken(), asWireError(err))
		return err
	}
	c.Detach() // from here the verdict, not the request ending, decides what the worker gets
	rl.started = true
	rl.cl.served(fin.Usage, rl.bill, rl.firstToken)
	_ = rl.cl.out.Final(fin) // if the client left before reading the end, the worker still served in full
	if rj := rl.cl.out.Verdict(drainTimeout); rj != nil {
		rl.meter.refuseOn(c, min(rj.Tokens, c.Taken()), &rj.Err)
		return &stream.Rejection{Reject: *rj}
	}
	if err := rl.meter.final(fin.Usage); err != nil {
		rl.meter.finish(c)
		return rl.fault(fmt.Errorf("billing: %v", err))
	}
	rl.meter.finish(c)
	rl.cl.out.Close()
	return nil
}

// workerFault reports whether err counts against the worker: a bad request or a client that
// went away is nobody's failure but the caller's.
func workerFault(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, errUnearnedCap) {
		return false
	}
	c := asWireError(err).Code
	return c.Retryable() || c == wire.CodeTimeout
}

// routingError turns a routing refusal into the error the client sees.
func routingError(err error) *wire.Error {
	switch {
	case errors.Is(err, routing.ErrUnknownModel):
		return wire.Errorf(wire.CodeUnknownModel, "%v", err)
	case errors.Is(err, routing.ErrNoWorkers):
		return wire.Errorf(wire.CodeNoCapacity, "%v; retry in a while", err)
	case errors.Is(err, routing.ErrPriceTooHigh):
		return wire.Errorf(wire.CodePriceTooHigh, "%v", err)
	}
	return wire.Errorf(wire.CodeNoCapacity, "%v", err)
}
