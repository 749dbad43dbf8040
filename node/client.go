package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cocoon-mesh/cocoon/node/wire"
	"github.com/cocoon-mesh/cocoon/tee"
)

// clientState is what a client tracks beyond the common node.
type clientState struct {
	next atomic.Uint64 // round-robin position over the connected proxies

	idPrefix string        // random per client process
	ids      atomic.Uint64 // requests numbered after idPrefix

	mu    sync.Mutex
	names map[peer.ID]string // proxies as text, for response headers

	routes routeCache // workers' attestations and sealing sessions
}

// requestID names a request uniquely without a system call: a random prefix chosen at start
// and a counter.
func (c *clientState) requestID() string {
	b := make([]byte, 0, len(c.idPrefix)+14)
	b = append(b, c.idPrefix...)
	b = append(b, '-')
	return string(strconv.AppendUint(b, c.ids.Add(1), 36))
}

// peerName returns p as text, encoding each proxy's ID once (the cache is emptied when it
// grows past a few hundred, so churn cannot grow it without bound).
func (c *clientState) peerName(p peer.ID) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.names[p]; ok {
		return s
	}
	if c.names == nil || len(c.names) > 256 {
		c.names = make(map[peer.ID]string)
	}
	s := p.String()
	c.names[p] = s
	return s
}

// startClient makes the node a client: it stays connected to a few proxies and follows the
// capacity gossip to know what the mesh offers, for the faces over it (Infer) to send requests.
func (n *Node) startClient() error {
	n.keeper = n.disc.NewKeeper(n.cfg.MinProxies, n.cfg.DiscoveryInterval, func(ctx context.Context, p peer.ID) {
		n.attestProxy(ctx, p)
		if n.payments != nil { // open (or resume) the channel we pay it on before the first request
			n.life.Go(func() { n.ensureChannel(n.ctx, p) })
		}
	})
	n.goLoop(n.keeper.Run)
	n.goLoop(n.readAdverts)
	n.every(n.cfg.WorkerTTL/4, n.expireWorkers)
	return nil
}

// chunkFunc receives one chunk of an answer; more reports that the next frame is already
// read, so the receiver can hold its flush. c.Data is valid only during the call. A *wire.Error
// refuses the chunk (its content is not a valid answer); any other error means the receiver
// is gone.
type chunkFunc func(c *wire.Chunk, more bool) error

// answerSink takes an answer: each chunk as it comes, and the whole once it ended, when whole
// (if set) may still refuse it with a *wire.Error (a non-streamed answer is judged whole).
// reset, if set, forgets the chunks taken so far: the answer was not passed on yet (it is not
// streamed), so a failed one can be asked for again elsewhere.
type answerSink struct {
	chunk chunkFunc
	whole func() error
	reset func()
}

// result is what a finished request leaves besides its chunks.
type result struct {
	fin      wire.Final
	proxy    peer.ID
	receipt  string // the countersigned receipt, as handed to API callers
	workerTE string // what the worker's attestation established ("none" when unsealed and unchecked)
	cost     uint64 // nanoTON the answer cost us, at the proxy's quote (payments on)
	paid     bool   // payments are on: cost is what we pay for this answer
}

// infer sends one request into the mesh through a proxy and hands the answer to sink, chunk by
// chunk. While no chunk has reached sink, a failing proxy is replaced by the next, and a worker
// whose answer we refused is excluded from the next attempts.
func (n *Node) infer(ctx context.Context, h wire.Header, body []byte, sink answerSink) (*result, error) {
	proxies := n.keeper.Proxies()
	if len(proxies) == 0 {
		return nil, wire.Errorf(wire.CodeUnavailable,
			"not connected to any proxy of network %q yet: check the bootstrap peers, or wait for discovery", n.cfg.Network)
	}
	first := int(n.client.next.Add(1))
	var lastErr error
	resent := false
	for i := 0; i < n.cfg.MaxAttempts; i++ {
		p := proxies[(first+i)%len(proxies)]
		if pa := n.cachedAttestation(p); pa != nil && pa.distrusted {
			lastErr = wire.Errorf(wire.CodeUnavailable, "proxy %s is distrusted: %v", p.String(), pa.err)
			continue
		}
		if n.mismatch.has(p, n.now()) {
			lastErr = wire.Errorf(wire.CodeUnavailable, "proxy %s does not match this node's payments: left alone for now", p.String())
			continue
		}
		at := &attempt{n: n, p: p, h: h, body: body, sink: sink}
		err := at.run(ctx)
		if err == nil {
			return at.res, nil
		}
		if !at.started && !resent && asWireError(err).Code == wire.CodeSealSession {
			// The worker lost our session (the attempt unconfirmed it): once more, with its key.
			resent = true
			at = &attempt{n: n, p: p, h: h, body: body, sink: sink}
			if err = at.run(ctx); err == nil {
				return at.res, nil
			}
		}
		if w := at.ex.worker; w != "" && workerFault(err) && !at.proxyFault && len(h.Exclude) < wire.MaxExclude && !slices.Contains(h.Exclude, w) {
			h.Exclude = append(slices.Clip(h.Exclude), w) // wherever we ask next, not that worker
		}
		if !at.started && n.demandsPayment(err) {
			n.leaveAlone(p, errDemandsPayment)
			lastErr = wire.Errorf(wire.CodeUnavailable, "proxy %s: %v", p.String(), errDemandsPayment)
			continue
		}
		if lastErr != nil && asWireError(err).Code == wire.CodeNoCapacity && asWireError(lastErr).Code == wire.CodeWorkerFailed {
			err = lastErr // no other worker, once the failed one is excluded: its failure says more
		}
		lastErr = err
		if ctx.Err() != nil || !asWireError(err).Code.Retryable() {
			break
		}
		if at.started {
			if sink.reset == nil {
				break
			}
			sink.reset() // nothing reached our caller yet: ask again from the start
		}
		n.log.Warn("proxy failed before the answer reached our caller; trying another", "proxy", p.String(), "request", h.ID, "err", err)
	}
	return nil, lastErr
}

// attempt is one try of a client's request through proxy p. Unless sealing is off, the proxy
// first names the worker it chose (a route frame, again on each failover); the body is sealed
// to that worker's attested key, and the answer's chunks are opened as they come. Every claim
// the answer makes is checked before it is paid for; an answer that fails a check is refused,
// and the proxy told so, with the tokens we took before it.
type attempt struct {
	n     *Node
	p     peer.ID
	h     wire.Header
	body  []byte
	sink  answerSink
	c     *call
	payee *outChan  // the channel we pay proxy p on
	meter *metering // what we owe the proxy for this answer
	claim *claims
	ex    exchange
	pre   map[peer.ID]exchange // the workers the body went presealed to

	started    bool // a chunk reached the sink: trying elsewhere would duplicate output
	proxyFault bool // the proxy, not its worker, made the attempt fail
	res        *result
}

// run makes the attempt: nil once the answer is whole, checked and taken (a.res).
func (a *attempt) run(ctx context.Context) error {
	n, p := a.n, a.p
	left, err := n.timeLeft(ctx)
	if err != nil {
		return err
	}
	a.h.Timeout = left
	a.h.Sealed = !n.cfg.DisableSealing
	if n.payments != nil {
		if a.payee, err = n.payOn(ctx, p); err != nil {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			var we *wire.Error
			if errors.As(err, &we) && we.Code == wire.CodePayment { // our wallet: no proxy can help
				return we
			}
			return wire.Errorf(wire.CodeUnavailable, "%v", err)
		}
		defer n.donePaying(a.payee)
	}
	first := a.body
	if a.h.Sealed {
		// Sealed to the workers this proxy routed us to before, if any; otherwise the body is
		// sent once the proxy's route names the worker.
		if first, a.pre, err = n.preseal(p, &a.h, a.body); err != nil {
			return err
		}
	}
	a.c, err = n.openCall(ctx, p, "proxy", &a.h, first)
	if err != nil {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		if n.h.Network().Connectedness(p) != network.Connected {
			n.keeper.Lost(p)
		}
		return wire.Errorf(wire.CodeUnavailable, "cannot reach proxy %s: %v", p.String(), err)
	}
	a.ex = exchange{sent: sha256.Sum256(a.body), hash: tee.NewAnswerHash(), workerTE: "unchecked"}
	a.claim = newClaims(&a.h, len(a.body))
	for {
		done, err := a.step(ctx)
		if done || err != nil {
			return err
		}
	}
}

// step handles the proxy's next frame; done reports that the answer ended well.
func (a *attempt) step(ctx context.Context) (done bool, err error) {
	c, p := a.c, a.p
	t, payload, err := c.next()
	if err != nil {
		return false, c.broke(ctx, err)
	}
	if a.payee != nil && a.meter == nil && (t == wire.FrameChunk || t == wire.FrameFinal) {
		return false, a.refuse(errors.New("answered without a quote"))
	}
	switch t {
	case wire.FrameProgress:
		return false, nil
	case wire.FrameQuote:
		return false, a.quote(payload)
	case wire.FrameBill:
		if a.meter == nil {
			return false, a.refuse(unexpected(t))
		}
		if err := a.meter.billNow(ctx, c); err != nil {
			c.abort()
			return false, err
		}
		return false, nil
	case wire.FrameRoute:
		if !a.h.Sealed || a.started {
			return false, a.refuse(unexpected(t))
		}
		if err := a.n.sealTo(c, p, payload, &a.h, a.body, &a.ex); err != nil {
			c.abort()
			return false, err
		}
		return false, nil
	case wire.FrameChosen:
		w, err := peer.IDFromBytes(payload)
		chosen, ok := a.pre[w]
		if err != nil || !ok || a.started {
			return false, a.refuse(errors.New("chose a worker the body was not sealed to"))
		}
		chosen.hash, chosen.plain, chosen.sent = tee.NewAnswerHash(), a.ex.plain, sha256.Sum256(chosen.sentBody)
		a.ex = chosen
		return false, nil
	case wire.FrameChunk:
		return false, a.chunk(ctx, payload)
	case wire.FrameFinal:
		return true, a.final(payload)
	case wire.FrameError:
		a.meter.finish(c)
		we, err := wire.DecodeError(payload)
		if err != nil {
			return false, wire.Errorf(wire.CodeWorkerFailed, "proxy %s sent a malformed error: %v", p.String(), err)
		}
		if we.Code == wire.CodeSealSession && a.ex.session != nil {
			a.ex.session.Unconfirm()
		}
		return false, we
	}
	return false, a.refuse(unexpected(t))
}

// refuse refuses the answer for err, accepting the tokens taken so far, logs why, and returns
// the failure: the worker's (the proxy passed on what it sent), so another may serve.
func (a *attempt) refuse(err error) error {
	c := a.c
	why := err.Error()
	if e := (*wire.Error)(nil); errors.As(err, &e) {
		why = e.Message
	}
	we := wire.Errorf(wire.CodeWorkerFailed, "the answer from proxy %s (worker %s) was refused: %s", a.p.String(), a.workerName(), why)
	a.meter.refuseOn(c, c.taken.Load(), we)
	a.n.log.Warn("answer refused", "proxy", a.p.String(), "worker", a.workerName(), "request", a.h.ID, "err", err)
	return we
}

// refuseProxy refuses the answer for what the proxy alone answers for (its quote, and the
// claims it passed on: an honest proxy checks a worker's claims before passing them on): the
// proxy is distrusted for a while, and its worker not blamed.
func (a *attempt) refuseProxy(err error) error {
	a.proxyFault = true
	a.n.distrust(a.p, err)
	return a.refuse(err)
}

// workerName is the worker serving the attempt, as far as we know it.
func (a *attempt) workerName() string {
	if a.ex.worker == "" {
		return "unknown"
	}
	return a.ex.worker.String()
}

// quote takes the proxy's prices for the answer, within our cap. A quote before any chunk
// replaces an earlier one: the proxy failed over to a worker with other prices.
func (a *attempt) quote(payload []byte) error {
	q, err := wire.DecodeQuote(payload)
	switch {
	case err != nil || a.payee == nil || (a.meter != nil && a.c.taken.Load() > 0):
		return a.refuse(errors.New("a bad or unexpected quote"))
	case a.h.MaxPrice != 0 && q.Effective() > a.h.MaxPrice:
		a.c.abort()
		return wire.Errorf(wire.CodePriceTooHigh, "proxy %s quoted %d nanoTON per completion token, over the cap of %d", a.p.String(), q.Effective(), a.h.MaxPrice)
	}
	if err := a.n.checkProxyQuote(q, a.ex.worker, a.h.Model, a.payee); err != nil {
		return a.refuseProxy(err)
	}
	a.meter = a.n.newMetering(a.payee, q)
	return nil
}

// checkProxyQuote holds a proxy's quote to the prices the worker serving us advertised, with
// the proxy's commission on them: a proxy takes its commission, and no more. Where we do not
// know the worker (the request went unsealed) or its advert, the price cap alone bounds it.
func (n *Node) checkProxyQuote(q wire.Quote, worker peer.ID, model string, payee *outChan) error {
	if worker == "" {
		return nil
	}
	n.tableMu.Lock()
	o, ok := n.table.Offer(worker, model)
	n.tableMu.Unlock()
	if !ok {
		return nil
	}
	want, err := o.Prices.WithCommission(payee.terms.Commission)
	if err != nil {
		return err
	}
	if q.Prices != want || q.Coefficient != o.Coefficient {
		return fmt.Errorf("quoted %v at coefficient %d: the worker advertises %v at %d, and the proxy's commission is %d per mille",
			q.Prices, q.Coefficient, o.Prices, o.Coefficient, payee.terms.Commission)
	}
	return nil
}

// chunk opens a chunk, checks its claim, hands it to the sink and pays for it. A cancelled
// request's last chunks are read and paid for, not handed on.
func (a *attempt) chunk(ctx context.Context, payload []byte) error {
	c := a.c
	ch, err := wire.DecodeChunk(payload)
	if err != nil {
		return a.refuse(fmt.Errorf("a malformed chunk: %v", err))
	}
	a.ex.hash.Add(ch.Data)
	if a.ex.answer != nil {
		if a.ex.plain, err = a.ex.answer.Open(a.ex.plain[:0], ch.Data); err != nil {
			return a.refuse(fmt.Errorf("a chunk that does not open: %v", err))
		}
		ch.Data = a.ex.plain
	}
	if err := a.claim.chunk(ch.Tokens, len(ch.Data)); err != nil {
		return a.refuseProxy(err) // a proxy checks the worker's claims before it passes them on
	}
	if ctx.Err() == nil {
		if err := a.sink.chunk(&ch, c.r.Buffered()); err != nil {
			if we := (*wire.Error)(nil); errors.As(err, &we) {
				return a.refuse(we) // the chunk itself was bad
			}
			c.abort()
			a.started = true
			return context.Canceled // our caller is gone
		}
		a.started = true
	}
	if a.meter != nil {
		if err := a.meter.chunk(ctx, c, ch.Tokens); err != nil {
			c.abort()
			return err
		}
	}
	c.taken.Add(uint64(ch.Tokens))
	return nil
}

// final checks the end of the answer (its usage, the whole answer, the receipt) and takes it:
// the rest of its cost is paid, and the proxy learns we took it when we close the stream.
func (a *attempt) final(payload []byte) error {
	fin, err := wire.DecodeFinal(payload)
	if err != nil {
		return a.refuse(fmt.Errorf("a malformed final message: %v", err))
	}
	if a.ex.worker == "" {
		a.ex.worker, _ = peer.Decode(fin.Worker) // unsealed: the final names it
	}
	if err := a.claim.final(fin.Usage); err != nil {
		return a.refuseProxy(err)
	}
	if a.sink.whole != nil {
		if err := a.sink.whole(); err != nil {
			return a.refuse(err)
		}
	}
	receipt, err := a.n.checkReceipt(&fin, &a.h, a.p, &a.ex)
	if err != nil {
		return a.refuse(fmt.Errorf("the receipt does not check: %v", err))
	}
	if a.meter != nil {
		if err := a.meter.final(fin.Usage); err != nil {
			a.meter.finish(a.c)
			return wire.Errorf(wire.CodeWorkerFailed, "billing: %v", err)
		}
	}
	a.meter.finish(a.c)
	if a.ex.session != nil {
		a.ex.session.Confirm() // the worker holds the session: later bodies name it by ID
	}
	a.res = &result{fin: fin, proxy: a.p, receipt: receipt, workerTE: a.ex.workerTE}
	if a.meter != nil {
		a.res.cost, a.res.paid = a.meter.tab.Charged(), true
	}
	return nil
}

// exchange is what a client checks an answer's receipt against.
type exchange struct {
	worker   peer.ID         // the worker the route named ("" without sealing)
	sealed   bool            // the body went sealed
	sent     [32]byte        // hash of the body as sent
	sentBody []byte          // a presealed body, hashed into sent once the proxy chooses it
	hash     *tee.AnswerHash // over the chunks as received
	answer   *tee.Answer     // opens the chunks of a sealed answer
	session  *tee.Session    // the session the body was sealed in
	plain    []byte          // buffer for opened chunks
	workerTE string
}

// preseal seals body to each worker proxy p routed this client to before for h.Model, and
// returns the sealed-set frame's payload (nil when there are none) and what each answer will be
// checked against. It marks h presealed.
func (n *Node) preseal(p peer.ID, h *wire.Header, body []byte) ([]byte, map[peer.ID]exchange, error) {
	cands := n.client.routes.candidatesFor(p, h.Model, n.now(), n.cfg.AttestTTL)
	// The set travels as one frame under the body limit: a large body is sealed to fewer
	// workers (the most recently routed to), or to none, and then takes the route.
	const perEntry = 1300 // worker id, key id, the encapsulated key of an unconfirmed session
	fit := (n.cfg.MaxBodyBytes + sealSlack) / (len(body) + perEntry)
	if len(cands) > fit {
		cands = cands[len(cands)-fit:]
	}
	if len(cands) == 0 {
		return nil, nil, nil
	}
	set := make([]wire.Sealed, len(cands))
	exs := make(map[peer.ID]exchange, len(cands))
	for i, c := range cands {
		sealed, ans, err := c.sess.Seal([]byte(h.ID), body)
		if err != nil {
			return nil, nil, wire.Errorf(wire.CodeInternal, "sealing: %v", err)
		}
		set[i] = wire.Sealed{Worker: c.worker, KeyID: c.keyID, Body: sealed}
		exs[c.worker] = exchange{worker: c.worker, sealed: true, sentBody: sealed, answer: ans, session: c.sess, workerTE: c.te}
	}
	h.Presealed = true
	return wire.AppendSealedSet(nil, set), exs, nil
}

// sealTo handles a route frame: it checks the worker's attestation and sends the body sealed
// to it (or in the clear to an unattested worker, where this node allows that). The worker
// becomes a candidate for presealing this client's next requests through proxy p.
func (n *Node) sealTo(c *call, p peer.ID, payload []byte, h *wire.Header, body []byte, ex *exchange) error {
	route, err := wire.DecodeRoute(payload)
	if err != nil {
		return wire.Errorf(wire.CodeWorkerFailed, "malformed route: %v", err)
	}
	sess, att, err := n.checkRoute(&route)
	if err != nil {
		return err
	}
	*ex = exchange{worker: route.Worker, hash: tee.NewAnswerHash(), plain: ex.plain, workerTE: "none"}
	t, sent := wire.FrameBody, body
	if sess != nil {
		if sent, ex.answer, err = sess.Seal([]byte(h.ID), body); err != nil {
			return wire.Errorf(wire.CodeInternal, "sealing: %v", err)
		}
		t, ex.sealed, ex.workerTE, ex.session = wire.FrameSealed, true, describe(&att.Claims), sess
		n.client.routes.remember(p, h.Model, candidate{worker: route.Worker, keyID: wire.SealKeyID(att.SealKey),
			sess: sess, te: ex.workerTE, at: n.now()})
	}
	ex.sent = sha256.Sum256(sent)
	if err := c.send(t, sent); err != nil {
		return wire.Errorf(wire.CodeUnavailable, "sending the body: %v", err)
	}
	return nil
}

// checkReceipt checks the receipt that ends an answer: from the worker we sealed to (or the one
// the final names) and proxy p, for this request, for exactly what we sent and received, and
// for the usage reported. A sealed answer carries the worker's own word for the receipt; the
// signatures are verified on a sample (Config.ReceiptCheckEvery), and a proxy that passes on a
// bad one is distrusted.
func (n *Node) checkReceipt(fin *wire.Final, h *wire.Header, p peer.ID, ex *exchange) (string, error) {
	rc, err := tee.UnmarshalReceipt(fin.Receipt)
	if err != nil {
		return "", err
	}
	worker, proxy, err := rc.Peers()
	if err != nil {
		return "", err
	}
	if ex.answer != nil { // the worker vouches for the receipt inside the sealed answer
		d, err := ex.answer.Open(nil, fin.Tag)
		want := rc.WorkerDigest()
		if err != nil || !bytes.Equal(d, want[:]) {
			return "", errors.New("the worker did not seal this receipt's digest into the answer")
		}
	}
	if n.sampleReceipt() {
		if _, _, err := rc.Verify(); err != nil {
			n.distrust(p, err)
			return "", err
		}
	}
	u := fin.Usage
	switch {
	case proxy != p:
		return "", errors.New("countersigned by another proxy")
	case ex.worker != "" && worker != ex.worker, fin.Worker != worker.String():
		return "", errors.New("signed by another worker")
	case rc.RequestID != h.ID:
		return "", errors.New("for another request")
	case rc.Sealed != ex.sealed:
		return "", errors.New("sealed flag is wrong")
	case rc.RequestHash != ex.sent:
		return "", errors.New("the request hash is not that of the body sent")
	case rc.AnswerHash != ex.hash.Sum():
		return "", errors.New("the answer hash is not that of the answer received")
	case rc.PromptTokens != uint64(u.Prompt) || rc.CachedTokens != uint64(u.Cached) ||
		rc.CompletionTokens != uint64(u.Completion) || rc.ReasoningTokens != uint64(u.Reasoning):
		return "", errors.New("token counts differ from the usage reported")
	}
	return base64.RawURLEncoding.EncodeToString(fin.Receipt), nil
}
