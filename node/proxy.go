package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cocoon-mesh/cocoon/node/wire"
	"github.com/cocoon-mesh/cocoon/routing"
	"github.com/cocoon-mesh/cocoon/tee"
)

// startProxy makes the node a proxy: it takes requests from clients and adverts from
// workers, announces itself in the DHT, and keeps its worker table fresh.
func (n *Node) startProxy() error {
	n.h.SetStreamHandler(InferProtocol, n.handleProxyInfer)
	n.h.SetStreamHandler(AdvertProtocol, n.handleDirectAdvert)
	nb := &network.NotifyBundle{DisconnectedF: func(nw network.Network, c network.Conn) {
		p := c.RemotePeer()
		if nw.Connectedness(p) != network.Connected && n.ctx.Err() == nil {
			n.dropWorker(p, "connection closed")
		}
	}}
	n.h.Network().Notify(nb)
	n.goLoop(func(ctx context.Context) {
		<-ctx.Done()
		n.h.Network().StopNotify(nb)
	})
	n.goLoop(n.readAdverts)
	n.goLoop(func(ctx context.Context) {
		n.disc.Advertise(ctx, n.routedModels, n.cfg.ProvideRetry, n.cfg.ProvideInterval)
	})
	n.every(n.cfg.WorkerTTL/4, n.expireWorkers)
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
	_ = s.SetReadDeadline(time.Now().Add(requestReadTimeout))
	t, p, err := wire.NewReader(s, wire.MaxAdvertSize).ReadFrame()
	if err == nil && t != wire.FrameAdvert {
		err = fmt.Errorf("expected an advert frame, got %s", t)
	}
	var a *wire.Advert
	if err == nil {
		a, err = n.checkAdvert(p, s.Conn().RemotePeer())
	}
	if err != nil {
		n.log.Warn("direct advert rejected", "from", s.Conn().RemotePeer().String(), "err", err)
		s.Reset()
		return
	}
	n.observeAdvert(a)
}

// handleProxyInfer serves one client request: pick a worker, forward, stream the answer back,
// and fail over to the next worker while nothing has reached the client yet.
func (n *Node) handleProxyInfer(s network.Stream) {
	out := newAnswer(s)
	r, h, body, err := n.readRequest(s, true)
	if err != nil {
		out.fail(err)
		return
	}
	var payer *inChan // the channel the client pays us on
	if n.payments != nil {
		if payer, err = n.payerIn(s.Conn().RemotePeer()); err != nil {
			r.Release()
			out.fail(err)
			return
		}
		h.MaxPrice = n.workerCap(h.MaxPrice)
	}
	ctx, cancel := context.WithTimeout(n.ctx, h.Timeout)
	defer cancel()
	var preset []wire.Sealed
	if h.Presealed {
		if preset, err = wire.DecodeSealedSet(body); err != nil {
			out.fail(wire.Errorf(wire.CodeBadRequest, "%v", err))
			return
		}
		body = nil
	}
	var bodies *bodySource
	if h.Sealed {
		bodies = &bodySource{out: out, r: r, cancel: cancel, ch: make(chan lateBody, 1), pay: n.voucherSink(payer)}
	} else {
		out.watch(r, cancel, nil, n.voucherSink(payer))
	}

	var tried []peer.ID
	var lastErr error
	for attempt := 0; attempt < n.cfg.MaxAttempts; attempt++ {
		n.tableMu.Lock()
		d, err := n.table.Pick(n.now(), routing.Request{Model: h.Model, MaxPrice: h.MaxPrice, Exclude: tried})
		if err == nil {
			n.table.Begin(d.Worker)
		}
		n.tableMu.Unlock()
		if err != nil {
			if lastErr == nil {
				lastErr = routingError(err)
			}
			break
		}
		tried = append(tried, d.Worker)
		start := time.Now()
		started, firstToken, err := n.forward(ctx, d, h, body, preset, bodies, out, payer)
		latency := firstToken.Sub(start)
		n.tableMu.Lock()
		n.table.End(n.now(), d.Worker, latency, !workerFault(err))
		n.tableMu.Unlock()
		if err == nil {
			return
		}
		if !started && n.demandsPayment(err) {
			n.leaveAlone(d.Worker, errDemandsPayment)
			lastErr = wire.Errorf(wire.CodeNoCapacity, "worker %s: %v", d.Worker.String(), errDemandsPayment)
			continue
		}
		lastErr = err
		if started || ctx.Err() != nil || !asWireError(err).Code.Retryable() {
			break
		}
		n.log.Warn("worker failed before the first token; failing over", "worker", d.Worker.String(), "request", h.ID, "err", err)
	}
	if ctx.Err() != nil && errors.Is(context.Cause(ctx), context.Canceled) {
		// The client cancelled (or went away): ending the answer lets it count exactly the
		// chunks we sent.
		lastErr = wire.Errorf(wire.CodeCancelled, "the request was cancelled")
	}
	out.fail(lastErr)
}

// forward runs one attempt on worker d. started reports whether any chunk reached the client,
// after which failing over would duplicate output. firstToken is when the first frame came.
// A client that seals its request either sent the body sealed to d already (in preset), or
// gets a route frame naming d and its attestation and then sends the body sealed to d. Either
// way the proxy passes on ciphertext it cannot read; body is nil then.
//
// With payments on, the client pays us on payer and we pay the worker: the worker's quote is
// passed on with our commission, each chunk the worker sends is metered on our channel to it,
// and each chunk goes on to the client only within its credit window.
func (n *Node) forward(ctx context.Context, d routing.Decision, h wire.Header, body []byte, preset []wire.Sealed, bodies *bodySource, out *answer, payer *inChan) (started bool, firstToken time.Time, err error) {
	left, err := n.timeLeft(ctx)
	if err != nil {
		return false, time.Now(), err
	}
	var payee *outChan // the channel we pay the worker on
	if payer != nil {
		if payee, err = n.payOn(ctx, d.Worker); err != nil {
			return false, time.Now(), wire.Errorf(wire.CodeWorkerFailed, "%v", err)
		}
		defer payee.release()
	}
	var meter *metering // what we owe the worker
	var bill *billing   // what the client owes us
	pa, err := n.peerAttestation(ctx, d.Worker)
	if err != nil {
		return false, time.Now(), err
	}
	if !pa.trusted(n.cfg.AllowUnattested) {
		return false, time.Now(), wire.Errorf(wire.CodeWorkerFailed, "worker %s is not attested: %v", d.Worker.String(), pa.err)
	}
	h.Presealed = false
	if bodies != nil {
		// A body sealed to a key the worker no longer holds (it restarted) takes the route.
		if i := slices.IndexFunc(preset, func(s wire.Sealed) bool { return s.Worker == d.Worker && s.KeyID == pa.sealID }); i >= 0 {
			body, h.Sealed = preset[i].Body, true
			bodies.watch()
			// Not flushed: it travels with the first chunk.
			if err := out.raw(wire.FrameChosen, []byte(d.Worker), false); err != nil {
				return false, time.Now(), context.Canceled
			}
		} else if body, h.Sealed, err = n.routeClient(ctx, d.Worker, pa, bodies, out); err != nil {
			return false, time.Now(), err
		}
	}
	h.Model = d.Model // the worker serves exactly the model we routed on
	h.Timeout = left
	c, err := n.openCall(ctx, d.Worker, &h, body)
	if err != nil {
		return false, time.Now(), wire.Errorf(wire.CodeWorkerFailed, "cannot reach worker %s: %v", d.Worker.String(), err)
	}
	answerHash := tee.NewAnswerHash()
	for {
		t, p, err := c.next()
		if firstToken.IsZero() {
			firstToken = time.Now()
		}
		if err != nil {
			c.abort()
			if ctx.Err() != nil {
				return started, firstToken, context.Cause(ctx)
			}
			return started, firstToken, wire.Errorf(wire.CodeWorkerFailed, "worker %s stopped answering: %v", d.Worker.String(), err)
		}
		if payer != nil && meter == nil && (t == wire.FrameChunk || t == wire.FrameFinal) {
			c.abort()
			return started, firstToken, wire.Errorf(wire.CodeWorkerFailed, "worker %s answered without a quote", d.Worker.String())
		}
		switch t {
		case wire.FrameQuote:
			if payer == nil || meter != nil {
				c.abort()
				return started, firstToken, wire.Errorf(wire.CodeWorkerFailed, "worker %s: %v", d.Worker.String(), unexpected(t))
			}
			cq, err := n.clientQuote(p, h.MaxPrice)
			if err != nil {
				c.abort()
				return started, firstToken, wire.Errorf(wire.CodeWorkerFailed, "worker %s: %v", d.Worker.String(), err)
			}
			meter = n.newMetering(payee, cq.worker)
			bill = n.newBilling(payer, cq.client, func(owed uint64) error {
				return out.raw(wire.FrameBill, wire.AppendBill(nil, owed), true)
			})
			if err := out.raw(wire.FrameQuote, wire.AppendQuote(nil, &cq.client), false); err != nil {
				c.abort()
				return started, firstToken, context.Canceled
			}
		case wire.FrameBill:
			if meter == nil {
				c.abort()
				return started, firstToken, wire.Errorf(wire.CodeWorkerFailed, "worker %s: %v", d.Worker.String(), unexpected(t))
			}
			if err := meter.billNow(ctx, c); err != nil {
				c.abort()
				return started, firstToken, err
			}
		case wire.FrameChunk:
			ch, err := wire.DecodeChunk(p)
			if err != nil {
				c.abort()
				return started, firstToken, wire.Errorf(wire.CodeWorkerFailed, "worker %s sent a malformed chunk: %v", d.Worker.String(), err)
			}
			if meter != nil {
				if err := meter.chunk(ctx, c, ch.Tokens); err != nil {
					c.abort()
					return started, firstToken, err
				}
			}
			if ctx.Err() != nil {
				continue // cancelled: the worker's last chunks are read and paid for, not passed on
			}
			if err := bill.chunk(ctx, ch.Tokens); err != nil {
				c.abort()
				return started, firstToken, err
			}
			answerHash.Add(ch.Data)
			// Flush when nothing more is waiting: a burst of chunks goes out in one write, and a
			// lone chunk (the first token) without delay.
			if err := out.raw(t, p, !c.r.Buffered()); err != nil {
				c.abort()
				return true, firstToken, context.Canceled // the client is gone
			}
			started = true
		case wire.FrameFinal:
			meter.finish(c)
			fin, usage, err := n.countersign(p, &h, d.Worker, pa, body, answerHash.Sum())
			if err != nil {
				return true, firstToken, wire.Errorf(wire.CodeWorkerFailed, "worker %s: %v", d.Worker.String(), err)
			}
			if meter != nil {
				if err := meter.final(usage); err != nil {
					return true, firstToken, wire.Errorf(wire.CodeWorkerFailed, "worker %s: billing: %v", d.Worker.String(), err)
				}
				if err := bill.final(ctx, usage); err != nil {
					return true, firstToken, err
				}
			}
			_ = out.raw(t, fin, true) // if the client left before reading the end, the worker still served in full
			out.close()
			return true, firstToken, nil
		case wire.FrameError:
			meter.finish(c)
			if meter != nil {
				n.settleLater(payee)
			}
			we, err := wire.DecodeError(p)
			if err != nil {
				return started, firstToken, wire.Errorf(wire.CodeWorkerFailed, "worker sent a malformed error: %v", err)
			}
			return started, firstToken, we
		default:
			c.abort()
			return started, firstToken, wire.Errorf(wire.CodeWorkerFailed, "worker %s: %v", d.Worker.String(), unexpected(t))
		}
	}
}

// routeClient tells the client which worker will serve it and waits for the body it seals to
// that worker (or sends in the clear, to an unattested worker it accepts).
func (n *Node) routeClient(ctx context.Context, worker peer.ID, pa *peerAttest, bodies *bodySource, out *answer) ([]byte, bool, error) {
	route := wire.AppendRoute(nil, &wire.Route{Worker: worker, Key: pa.key, Hello: pa.hello})
	if err := out.raw(wire.FrameRoute, route, true); err != nil {
		return nil, false, context.Canceled // the client is gone
	}
	b, err := bodies.next(ctx)
	if err == nil && !b.sealed {
		err = n.checkBodySize(b.p)
	}
	return b.p, b.sealed, err
}

// bodySource yields the bodies a sealing client sends after route frames. The handler reads
// the first itself, which spares a hand-off between goroutines on every request; only then
// does the caller watcher start, to notice the client leaving and to pass on the body of a
// failover's second route.
type bodySource struct {
	out      *answer // the answer to the client, on the stream the bodies come on
	r        *wire.Reader
	cancel   context.CancelFunc
	ch       chan lateBody
	pay      func([]byte) // takes the vouchers the client sends (nil: payments off)
	watching bool
}

// watch starts the caller watcher, if the handler is not reading the stream itself first.
func (b *bodySource) watch() {
	if !b.watching {
		b.watching = true
		b.out.watch(b.r, b.cancel, b.ch, b.pay)
	}
}

func (b *bodySource) next(ctx context.Context) (lateBody, error) {
	if !b.watching {
		_ = b.out.s.SetReadDeadline(time.Now().Add(requestReadTimeout))
		t, p, err := b.r.ReadFrame()
		_ = b.out.s.SetReadDeadline(time.Time{})
		b.watch()
		switch {
		case err != nil:
			b.cancel()
			return lateBody{}, readErr("body after the route", err)
		case t != wire.FrameSealed && t != wire.FrameBody:
			b.cancel()
			return lateBody{}, wire.Errorf(wire.CodeBadRequest, "expected a body after the route, got %s", t)
		}
		return lateBody{sealed: t == wire.FrameSealed, p: p}, nil
	}
	t := time.NewTimer(requestReadTimeout)
	defer t.Stop()
	select {
	case lb := <-b.ch:
		return lb, nil
	case <-ctx.Done():
		return lateBody{}, context.Cause(ctx)
	case <-t.C:
		return lateBody{}, wire.Errorf(wire.CodeTimeout, "the client sent no body after the route")
	}
}

// countersign checks the worker's receipt against what this proxy forwarded (request, answer,
// token counts, the worker's key) and signs it; it returns the final frame to pass on and the
// usage it reports (what the answer is billed for).
func (n *Node) countersign(p []byte, h *wire.Header, worker peer.ID, pa *peerAttest, body []byte, answerHash [32]byte) ([]byte, wire.Usage, error) {
	fin, err := wire.DecodeFinal(p)
	if err != nil {
		return nil, wire.Usage{}, fmt.Errorf("malformed final message: %v", err)
	}
	rc, err := tee.UnmarshalReceipt(fin.Receipt)
	if err != nil {
		return nil, wire.Usage{}, fmt.Errorf("receipt: %v", err)
	}
	u := fin.Usage
	switch {
	case rc.RequestID != h.ID:
		err = errors.New("receipt names another request")
	case !bytes.Equal(rc.WorkerKey, pa.key):
		err = errors.New("receipt is not signed with the worker's key")
	case rc.RequestHash != sha256.Sum256(body):
		err = errors.New("receipt's request hash is not that of the request forwarded")
	case rc.AnswerHash != answerHash:
		err = errors.New("receipt's answer hash is not that of the answer forwarded")
	case rc.PromptTokens != uint64(u.Prompt) || rc.CachedTokens != uint64(u.Cached) ||
		rc.CompletionTokens != uint64(u.Completion) || rc.ReasoningTokens != uint64(u.Reasoning):
		err = errors.New("receipt's token counts differ from the usage reported")
	case rc.ProxyEvidence != n.attest.digest:
		err = errors.New("receipt names another attestation for this proxy")
	case rc.Sealed != h.Sealed:
		err = errors.New("receipt's sealed flag is wrong")
	}
	if err == nil && n.sampleReceipt() {
		if err = rc.CheckWorker(); err != nil {
			n.distrust(worker, err)
			n.dropWorker(worker, "it signed a receipt that does not verify")
		}
	}
	if err == nil {
		err = rc.CheckProxy(n.attest.priv.GetPublic())
	}
	if err == nil {
		rc.Proxy, err = n.attest.signer.sign(rc.ProxyDigest())
	}
	if err != nil {
		return nil, wire.Usage{}, err
	}
	fin.Receipt = rc.Marshal()
	return wire.AppendFinal(make([]byte, 0, len(p)+128), &fin), u, nil
}

// workerFault reports whether err counts against the worker: a bad request or a client that
// went away is nobody's failure but the caller's.
func workerFault(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
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
	case errors.Is(err, routing.ErrPriceTooHigh):
		return wire.Errorf(wire.CodePriceTooHigh, "%v", err)
	}
	return wire.Errorf(wire.CodeNoCapacity, "%v", err)
}

// quotes are one answer's prices: the worker's, and the client's with our commission.
type quotes struct{ worker, client wire.Quote }

// clientQuote takes a worker's quote and adds our commission; the client's price must be
// within its cap (in worker terms, see workerCap).
func (n *Node) clientQuote(p []byte, workerCap uint64) (quotes, error) {
	wq, err := wire.DecodeQuote(p)
	if err != nil {
		return quotes{}, err
	}
	if workerCap != 0 && wq.Effective() > workerCap {
		return quotes{}, fmt.Errorf("quoted %d nanoTON per completion token, over the caller's cap", wq.Effective())
	}
	cp, err := wq.Prices.WithCommission(n.cfg.Payments.Commission)
	if err != nil {
		return quotes{}, err
	}
	return quotes{worker: wq, client: wire.Quote{Prices: cp, Coefficient: wq.Coefficient}}, nil
}

// workerCap turns a client's cap on what it pays per completion token into a cap on the
// worker's price, our commission taken off.
func (n *Node) workerCap(clientCap uint64) uint64 {
	if clientCap == 0 {
		return 0
	}
	// clientCap * 1000 / (1000 + commission), in 128 bits: hi < 1000 <= the divisor, so the
	// quotient fits. At least 1, since 0 means no cap.
	hi, lo := bits.Mul64(clientCap, wire.CoefficientOne)
	q, _ := bits.Div64(hi, lo, wire.CoefficientOne+uint64(n.cfg.Payments.Commission))
	return max(q, 1)
}
