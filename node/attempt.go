package node

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cocoon-mesh/cocoon/node/stream"
	"github.com/cocoon-mesh/cocoon/node/wire"
	"github.com/cocoon-mesh/cocoon/reputation"
	"github.com/cocoon-mesh/cocoon/tee"
)

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
	c     *stream.Call
	payee *outChan  // the channel we pay proxy p on
	meter *metering // what we owe the proxy for this answer
	claim *claims
	ex    exchange
	pre   map[peer.ID]exchange // the workers the body went presealed to

	started    bool            // a chunk reached the sink: trying elsewhere would duplicate output
	proxyFault bool            // the proxy, not its worker, made the attempt fail
	unreached  bool            // the proxy could not be reached (or paid)
	judged     reputation.Kind // with proxyFault: what the proxy did
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
		if a.payee, err = n.payments.payOn(ctx, p); err != nil {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			var we *wire.Error
			if errors.As(err, &we) && we.Code == wire.CodePayment { // our wallet: no proxy can help
				return we
			}
			return wire.Errorf(wire.CodeUnavailable, "%v", err)
		}
		defer a.payee.end()
	}
	first := a.body
	if a.h.Sealed {
		// Sealed to the workers this proxy routed us to before, if any; otherwise the body is
		// sent once the proxy's route names the worker.
		if first, a.pre, err = n.client.preseal(p, &a.h, a.body); err != nil {
			return err
		}
	}
	a.c, err = n.openCall(ctx, p, stream.ClientProxy, a.payee != nil, &a.h, first)
	if err != nil {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		if n.h.Network().Connectedness(p) != network.Connected {
			n.keeper.Lost(p)
		}
		a.unreached = true
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

// step handles the proxy's next event; done reports that the answer ended well. The call
// checked the event's place in the answer already: a frame out of order is refused.
func (a *attempt) step(ctx context.Context) (done bool, err error) {
	c := a.c
	ev, err := c.Next()
	if bad := (*stream.BadFrame)(nil); errors.As(err, &bad) {
		return false, a.refuse(bad)
	} else if err != nil {
		return false, c.Broke(ctx, err)
	}
	switch ev.Kind {
	case stream.Quote:
		return false, a.quote(ev.Quote)
	case stream.Bill:
		return false, a.meter.billNow(ctx, c)
	case stream.Route:
		if err := a.n.client.sealTo(c, a.p, &ev.Route, &a.h, a.body, &a.ex); err != nil {
			c.Abort()
			return false, err
		}
	case stream.Chosen:
		return false, a.chosen(ev.Chosen)
	case stream.Chunk:
		return false, a.chunk(ctx, &ev.Chunk)
	case stream.Final:
		return true, a.final(&ev.Final)
	case stream.Error:
		a.meter.finish(c)
		if ev.Err.Code == wire.CodeSealSession && a.ex.session != nil {
			a.ex.session.Unconfirm()
		}
		return false, ev.Err
	}
	return false, nil
}

// refuse refuses the answer for err, accepting the tokens taken so far, logs why, and returns
// the failure: the worker's (the proxy passed on what it sent), so another may serve.
func (a *attempt) refuse(err error) error {
	why := err.Error()
	if e := (*wire.Error)(nil); errors.As(err, &e) {
		why = e.Message
	}
	we := wire.Errorf(wire.CodeWorkerFailed, "the answer from proxy %s (worker %s) was refused: %s", a.p.String(), a.workerName(), why)
	a.meter.refuseOn(a.c, a.c.Taken(), we)
	a.n.log.Warn("answer refused", "proxy", a.p.String(), "worker", a.workerName(), "request", a.h.ID, "err", err)
	return we
}

// refuseProxy refuses the answer for what the proxy alone answers for (its quote, and the
// claims it passed on: an honest proxy checks a worker's claims before passing them on): the
// proxy is distrusted for a while, and its worker not blamed.
func (a *attempt) refuseProxy(kind reputation.Kind, err error) error {
	a.proxyFault, a.judged = true, kind
	a.n.attest.distrust(a.p, err)
	return a.refuse(err)
}

// workerName is the worker serving the attempt, as far as we know it.
func (a *attempt) workerName() string {
	if a.ex.worker == "" {
		return "unknown"
	}
	return a.ex.worker.String()
}

// chosen takes the worker of the sealed set the proxy chose: the answer is checked against
// what was sealed to it.
func (a *attempt) chosen(w peer.ID) error {
	chosen, ok := a.pre[w]
	if !ok {
		return a.refuse(errors.New("chose a worker the body was not sealed to"))
	}
	chosen.hash, chosen.plain, chosen.sent = tee.NewAnswerHash(), a.ex.plain, sha256.Sum256(chosen.sentBody)
	a.ex = chosen
	return nil
}

// quote takes the proxy's prices for the answer, within our cap. A quote before any chunk
// replaces an earlier one: the proxy failed over to a worker with other prices.
func (a *attempt) quote(q wire.Quote) error {
	if a.h.MaxPrice != 0 && q.Effective() > a.h.MaxPrice {
		a.c.Abort()
		return wire.Errorf(wire.CodePriceTooHigh, "proxy %s quoted %d nanoTON per completion token, over the cap of %d", a.p.String(), q.Effective(), a.h.MaxPrice)
	}
	if err := a.n.checkProxyQuote(q, a.ex.worker, a.h.Model, a.payee); err != nil {
		return a.refuseProxy(reputation.Overcharge, err)
	}
	a.meter = newMetering(a.payee, q)
	return nil
}

// checkProxyQuote holds a proxy's quote to the prices the worker serving us advertised, with
// the proxy's commission on them: a proxy takes its commission, and no more. Where we do not
// know the worker (the request went unsealed) or its advert, the price cap alone bounds it.
func (n *Node) checkProxyQuote(q wire.Quote, worker peer.ID, model string, payee *outChan) error {
	if worker == "" {
		return nil
	}
	n.workers.mu.Lock()
	o, ok := n.workers.table.Offer(worker, model)
	n.workers.mu.Unlock()
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
func (a *attempt) chunk(ctx context.Context, ch *wire.Chunk) error {
	c := a.c
	if err := a.ex.open(ch); err != nil {
		return a.refuse(err)
	}
	if err := a.claim.chunk(ch.Tokens, len(ch.Data)); err != nil {
		return a.refuseProxy(reputation.ReceiptMismatch, err) // a proxy checks the worker's claims before it passes them on
	}
	if ctx.Err() == nil {
		if err := a.sink.chunk(ch, c.Buffered()); err != nil {
			if we := (*wire.Error)(nil); errors.As(err, &we) {
				return a.refuse(we) // the chunk itself was bad
			}
			c.Abort()
			a.started = true
			return context.Canceled // our caller is gone
		}
		a.started = true
	}
	if err := a.meter.chunk(ctx, c, ch.Tokens); err != nil {
		c.Abort()
		return err
	}
	c.Take(ch.Tokens)
	return nil
}

// final checks the end of the answer (its usage, the whole answer, the receipt) and takes it:
// the rest of its cost is paid, and the proxy learns we took it when we close the stream.
func (a *attempt) final(fin *wire.Final) error {
	if a.ex.worker == "" {
		a.ex.worker, _ = peer.Decode(fin.Worker) // unsealed: the final names it
	}
	if err := a.claim.final(fin.Usage); err != nil {
		return a.refuseProxy(reputation.ReceiptMismatch, err)
	}
	if a.sink.whole != nil {
		if err := a.sink.whole(); err != nil {
			return a.refuse(err)
		}
	}
	receipt, err := a.n.client.checkReceipt(fin, &a.h, a.p, &a.ex)
	if err != nil {
		return a.refuse(fmt.Errorf("the receipt does not check: %v", err))
	}
	if err := a.meter.final(fin.Usage); err != nil {
		a.meter.finish(a.c)
		return wire.Errorf(wire.CodeWorkerFailed, "billing: %v", err)
	}
	a.meter.finish(a.c)
	if a.ex.session != nil {
		a.ex.session.Confirm() // the worker holds the session: later bodies name it by ID
	}
	a.res = &result{fin: *fin, proxy: a.p, receipt: receipt, workerTE: a.ex.workerTE}
	if a.meter != nil {
		a.res.cost, a.res.paid = a.meter.tab.Charged(), true
	}
	return nil
}
