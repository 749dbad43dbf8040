package node

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cocoon-mesh/cocoon/node/wire"
)

// clientState is what a client tracks beyond the common node.
type clientState struct {
	attest *attester
	cfg    *Config
	next   atomic.Uint64 // round-robin position over the connected proxies

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
		n.attest.warm(ctx, p)
		if n.payments != nil { // open (or resume) the channel we pay it on before the first request
			n.life.Go(func() { n.payments.ensure(n.ctx, p) })
		}
	})
	n.life.Loop(n.keeper.Run)
	n.life.Loop(n.workers.read)
	n.life.Every(n.cfg.WorkerTTL/4, n.workers.expire)
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
	order := n.proxyOrder(proxies, int(n.client.next.Add(1)))
	var lastErr error
	resent := false
	for i := 0; i < n.cfg.MaxAttempts; i++ {
		p := order[i%len(order)]
		if pa := n.attest.cached(p); pa != nil && pa.distrusted {
			lastErr = wire.Errorf(wire.CodeUnavailable, "proxy %s is distrusted: %v", p.String(), pa.err)
			continue
		}
		if n.mismatch.has(p, n.now()) {
			lastErr = wire.Errorf(wire.CodeUnavailable, "proxy %s does not match this node's payments: left alone for now", p.String())
			continue
		}
		at := &attempt{n: n, p: p, h: h, body: body, sink: sink}
		err := at.run(ctx)
		n.judgeProxy(p, at, err)
		if err == nil {
			return at.res, nil
		}
		if !at.started && !resent && asWireError(err).Code == wire.CodeSealSession {
			// The worker lost our session (the attempt unconfirmed it): once more, with its key.
			resent = true
			at = &attempt{n: n, p: p, h: h, body: body, sink: sink}
			err = at.run(ctx)
			n.judgeProxy(p, at, err)
			if err == nil {
				return at.res, nil
			}
		}
		if w := at.ex.worker; w != "" && workerFault(err) && !at.proxyFault && len(h.Exclude) < wire.MaxExclude && !slices.Contains(h.Exclude, w) {
			h.Exclude = append(slices.Clip(h.Exclude), w) // wherever we ask next, not that worker
		}
		if !at.started && demandsPayment(n.payments, err) {
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
