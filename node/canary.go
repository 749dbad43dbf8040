package node

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cocoon-mesh/cocoon/audit"
	"github.com/cocoon-mesh/cocoon/node/backend"
	"github.com/cocoon-mesh/cocoon/node/stream"
	"github.com/cocoon-mesh/cocoon/node/wire"
	"github.com/cocoon-mesh/cocoon/routing"
	"github.com/cocoon-mesh/cocoon/tee"
)

// The canary's own path to a worker: what a relay does for a client's request, with the proxy
// as its own client. It is sealed in the auditor's session with the worker, paid on the
// proxy's channel at the worker's advertised prices, and its answer kept as the worker sent it,
// for the evidence record.

// defaultCanaryTokens is a canary's token limit when the requests it mimics set none.
const defaultCanaryTokens = 64

// canary sends w one canary for model shaped like sh, and returns its signed record and the
// completion tokens it took.
func (a *auditor) canary(ctx context.Context, w peer.ID, model string, sh shape) (*audit.Record, uint64, error) {
	n := a.n
	pa, err := n.attest.peer(ctx, w)
	if err != nil {
		return nil, 0, err
	}
	if !pa.trusted(n.cfg.AllowUnattested) {
		return nil, 0, fmt.Errorf("worker %s is not attested: %v", w.String(), pa.err)
	}
	n.workers.mu.Lock()
	offer, ok := n.workers.table.Offer(w, model)
	n.workers.mu.Unlock()
	if !ok {
		return nil, 0, fmt.Errorf("worker %s no longer offers %s", w.String(), model)
	}
	maxTokens := cmp.Or(sh.maxTokens, defaultCanaryTokens)
	h := wire.Header{ID: a.requestID(), Model: model, Endpoint: wire.Chat, Stream: sh.stream, MaxTokens: maxTokens, Timeout: n.cfg.RequestTimeout}
	rec := &audit.Record{RequestID: h.ID, Model: model, Endpoint: backend.Chat, Stream: sh.stream, MaxTokens: maxTokens}
	var sess *tee.Session
	if pa.err == nil { // attested: sealed, as every client's request to it is
		if sess = a.session(pa.att.SealKey); sess == nil {
			return nil, 0, fmt.Errorf("worker %s: its sealing key does not set up a session", w.String())
		}
		plain := canaryBody(n.rand.IntN, model, sh.size-sess.Overhead(), sh, maxTokens)
		if rec.Body, _, err = sess.Seal([]byte(h.ID), plain); err != nil {
			return nil, 0, err
		}
		k := sess.Disclose()
		rec.Key, h.Sealed = k[:], true
	} else {
		rec.Body = canaryBody(n.rand.IntN, model, sh.size, sh, maxTokens)
	}
	var payee *outChan
	if n.payments != nil {
		if payee, err = n.payments.payOn(ctx, w); err != nil {
			return nil, 0, err
		}
		defer payee.end()
	}
	c, err := n.openCall(ctx, w, stream.ProxyWorker, payee != nil, &h, rec.Body)
	if err != nil {
		return nil, 0, fmt.Errorf("cannot reach worker %s: %v", w.String(), err)
	}
	cr := &canaryRun{c: c, payee: payee, offer: offer, rec: rec}
	if err = cr.run(ctx); err != nil {
		if sess != nil && len(rec.Chunks) == 0 {
			sess.Unconfirm() // it may no longer hold the session: the next canary carries the key
		}
		return nil, cr.tokens, err
	}
	if sess != nil {
		sess.Confirm()
	}
	rec.At = n.now()
	if err := rec.Sign(n.attest.priv); err != nil {
		return nil, cr.tokens, err
	}
	return rec, cr.tokens, nil
}

// canaryRun reads one canary's answer.
type canaryRun struct {
	c      *stream.Call
	payee  *outChan
	offer  routing.Offer
	meter  *metering
	rec    *audit.Record
	tokens uint64
}

// run reads the answer to its end, paying for it as a relay does, keeping every chunk.
func (cr *canaryRun) run(ctx context.Context) error {
	c := cr.c
	for {
		ev, err := c.Next()
		if err != nil {
			return c.Broke(ctx, err)
		}
		switch ev.Kind {
		case stream.Quote:
			if err := quotesAdvert(ev.Quote, cr.offer); err != nil {
				c.Abort()
				return err
			}
			cr.meter = newMetering(cr.payee, ev.Quote)
		case stream.Bill:
			if err := cr.meter.billNow(ctx, c); err != nil {
				return err
			}
		case stream.Chunk:
			if err := cr.meter.chunk(ctx, c, ev.Chunk.Tokens); err != nil {
				c.Abort()
				return err
			}
			c.Take(ev.Chunk.Tokens)
			cr.tokens += uint64(ev.Chunk.Tokens)
			cr.rec.Chunks = append(cr.rec.Chunks, slices.Clone(ev.Chunk.Data))
		case stream.Final:
			cr.rec.Receipt = slices.Clone(ev.Final.Receipt)
			cr.tokens = max(cr.tokens, uint64(ev.Final.Usage.Completion))
			err := cr.meter.final(ev.Final.Usage)
			cr.meter.finish(c)
			return err
		case stream.Error:
			cr.meter.finish(c)
			return ev.Err
		}
	}
}

// session is the auditor's sealing session with the worker holding key: one per worker,
// reused as a client's is, so that a canary does not stand out by carrying a fresh
// encapsulated key. A failed audit discloses it, and the worker is banned with it.
func (a *auditor) session(key []byte) *tee.Session {
	a.mu.Lock()
	defer a.mu.Unlock()
	if s := a.sessions[string(key)]; s != nil {
		return s
	}
	s, err := tee.NewSession(key)
	if err != nil {
		return nil
	}
	if len(a.sessions) >= maxRouteCache {
		clear(a.sessions)
	}
	a.sessions[string(key)] = s
	return s
}

// requestID names a canary as a client names its requests: a random prefix and a counter.
func (a *auditor) requestID() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ids++
	return a.idPrefix + "-" + strconv.FormatUint(a.ids, 36)
}
