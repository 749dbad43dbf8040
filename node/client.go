package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net"
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

// startClient makes the node a client: it stays connected to a few proxies, follows the
// capacity gossip to know what the mesh offers, and serves the OpenAI API.
func (n *Node) startClient() error {
	n.keeper = n.disc.NewKeeper(n.cfg.MinProxies, n.cfg.DiscoveryInterval, func(ctx context.Context, p peer.ID) {
		n.attestProxy(ctx, p)
		if n.payments != nil { // open (or resume) the channel we pay it on before the first request
			n.wg.Go(func() { n.ensureChannel(n.ctx, p) })
		}
	})
	n.goLoop(n.keeper.Run)
	n.goLoop(n.readAdverts)
	n.every(n.cfg.WorkerTTL/4, n.expireWorkers)
	ln, err := net.Listen("tcp", n.cfg.APIAddr)
	if err != nil {
		return &ConfigError{"api_addr", n.cfg.APIAddr, "cannot listen: " + err.Error()}
	}
	n.apiLn = ln
	n.api = n.serveHTTP("API", ln, n.apiHandler())
	n.log.Info("client API listening", "url", "http://"+ln.Addr().String()+"/v1")
	return nil
}

// APIAddr is the address the client API listens on ("" for other roles).
func (n *Node) APIAddr() string {
	if n.apiLn == nil {
		return ""
	}
	return n.apiLn.Addr().String()
}

// chunkFunc receives one chunk of an answer; more reports that the next frame is already
// read, so the receiver can hold its flush. c.Data is valid only during the call.
type chunkFunc func(c *wire.Chunk, more bool) error

// result is what a finished request leaves besides its chunks.
type result struct {
	fin      wire.Final
	proxy    peer.ID
	receipt  string // the countersigned receipt, as handed to API callers
	workerTE string // what the worker's attestation established ("none" when unsealed and unchecked)
	cost     uint64 // nanoTON the answer cost us, at the proxy's quote (payments on)
	paid     bool   // payments are on: cost is what we pay for this answer
}

// infer sends one request into the mesh through a proxy and calls onChunk for each chunk of
// the answer, in order. While no chunk has arrived, a failing proxy is replaced by the next.
func (n *Node) infer(ctx context.Context, h wire.Header, body []byte, onChunk chunkFunc) (*result, error) {
	proxies := n.keeper.Proxies()
	if len(proxies) == 0 {
		return nil, wire.Errorf(wire.CodeUnavailable,
			"not connected to any proxy of network %q yet: check the bootstrap peers, or wait for discovery", n.cfg.Network)
	}
	first := int(n.client.next.Add(1))
	var lastErr error
	resent := false
	for i := 0; i < min(n.cfg.MaxAttempts, len(proxies)); i++ {
		p := proxies[(first+i)%len(proxies)]
		if pa := n.cachedAttestation(p); pa != nil && pa.distrusted {
			lastErr = wire.Errorf(wire.CodeUnavailable, "proxy %s is distrusted: %v", p.String(), pa.err)
			continue
		}
		if n.mismatch.has(p) {
			lastErr = wire.Errorf(wire.CodeUnavailable, "proxy %s does not match this node's payments: left alone for now", p.String())
			continue
		}
		started, res, err := n.inferVia(ctx, p, h, body, onChunk)
		if err == nil {
			return res, nil
		}
		if !started && !resent && asWireError(err).Code == wire.CodeSealSession {
			// The worker lost our session (inferVia unconfirmed it): once more, with its key.
			resent = true
			started, res, err = n.inferVia(ctx, p, h, body, onChunk)
			if err == nil {
				return res, nil
			}
		}
		if !started && n.demandsPayment(err) {
			n.leaveAlone(p, errDemandsPayment)
			lastErr = wire.Errorf(wire.CodeUnavailable, "proxy %s: %v", p.String(), errDemandsPayment)
			continue
		}
		lastErr = err
		if started || ctx.Err() != nil || !asWireError(err).Code.Retryable() {
			break
		}
		n.log.Warn("proxy failed before the first token; trying another", "proxy", p.String(), "request", h.ID, "err", err)
	}
	return nil, lastErr
}

// inferVia runs one attempt through proxy p. Unless sealing is off, the proxy first names the
// worker it chose (a route frame, again on each failover); the body is sealed to that worker's
// attested key, and the answer's chunks are opened as they come.
func (n *Node) inferVia(ctx context.Context, p peer.ID, h wire.Header, body []byte, onChunk chunkFunc) (started bool, res *result, err error) {
	left, err := n.timeLeft(ctx)
	if err != nil {
		return false, nil, err
	}
	h.Timeout = left
	h.Sealed = !n.cfg.DisableSealing
	var payee *outChan // the channel we pay proxy p on
	if n.payments != nil {
		if payee, err = n.payOn(ctx, p); err != nil {
			if ctx.Err() != nil {
				return false, nil, context.Cause(ctx)
			}
			var we *wire.Error
			if errors.As(err, &we) && we.Code == wire.CodePayment { // our wallet: no proxy can help
				return false, nil, we
			}
			return false, nil, wire.Errorf(wire.CodeUnavailable, "%v", err)
		}
		defer payee.release()
		defer n.settleLater(payee)
	}
	var meter *metering // what we owe the proxy for this answer
	first := body
	var presealed map[peer.ID]exchange
	if h.Sealed {
		// Sealed to the workers this proxy routed us to before, if any; otherwise the body is
		// sent once the proxy's route names the worker.
		first, presealed, err = n.preseal(p, &h, body)
		if err != nil {
			return false, nil, err
		}
	}
	c, err := n.openCall(ctx, p, &h, first)
	if err != nil {
		if ctx.Err() != nil {
			return false, nil, context.Cause(ctx)
		}
		if n.h.Network().Connectedness(p) != network.Connected {
			n.keeper.Lost(p)
		}
		return false, nil, wire.Errorf(wire.CodeUnavailable, "cannot reach proxy %s: %v", p.String(), err)
	}
	ex := exchange{sent: sha256.Sum256(body), hash: tee.NewAnswerHash(), workerTE: "unchecked"}
	for {
		t, payload, err := c.next()
		if err != nil {
			c.abort()
			if ctx.Err() != nil {
				return started, nil, context.Cause(ctx)
			}
			return started, nil, wire.Errorf(wire.CodeUnavailable, "proxy %s stopped answering: %v", p.String(), err)
		}
		if payee != nil && meter == nil && (t == wire.FrameChunk || t == wire.FrameFinal) {
			c.abort()
			return started, nil, wire.Errorf(wire.CodeWorkerFailed, "proxy %s answered without a quote", p.String())
		}
		switch t {
		case wire.FrameQuote:
			q, err := wire.DecodeQuote(payload)
			switch {
			case err != nil || payee == nil || meter != nil:
				err = wire.Errorf(wire.CodeWorkerFailed, "proxy %s sent a bad or unexpected quote", p.String())
			case h.MaxPrice != 0 && q.Effective() > h.MaxPrice:
				err = wire.Errorf(wire.CodePriceTooHigh, "proxy %s quoted %d nanoTON per completion token, over the cap of %d", p.String(), q.Effective(), h.MaxPrice)
			}
			if err != nil {
				c.abort()
				return started, nil, err
			}
			meter = n.newMetering(payee, q)
		case wire.FrameBill:
			if meter == nil {
				c.abort()
				return started, nil, wire.Errorf(wire.CodeWorkerFailed, "proxy %s: %v", p.String(), unexpected(t))
			}
			if err := meter.billNow(ctx, c); err != nil {
				c.abort()
				return started, nil, err
			}
		case wire.FrameRoute:
			if !h.Sealed || started {
				c.abort()
				return started, nil, wire.Errorf(wire.CodeWorkerFailed, "proxy %s: %v", p.String(), unexpected(t))
			}
			if err := n.sealTo(c, p, payload, &h, body, &ex); err != nil {
				c.abort()
				return false, nil, err
			}
		case wire.FrameChosen:
			w, err := peer.IDFromBytes(payload)
			chosen, ok := presealed[w]
			if err != nil || !ok || started {
				c.abort()
				return started, nil, wire.Errorf(wire.CodeWorkerFailed, "proxy %s chose a worker the body was not sealed to", p.String())
			}
			chosen.hash, chosen.plain, chosen.sent = tee.NewAnswerHash(), ex.plain, sha256.Sum256(chosen.sentBody)
			ex = chosen
		case wire.FrameChunk:
			ch, err := wire.DecodeChunk(payload)
			if err == nil {
				ex.hash.Add(ch.Data)
				if ex.answer != nil {
					ex.plain, err = ex.answer.Open(ex.plain[:0], ch.Data)
					ch.Data = ex.plain
				}
			}
			if err != nil {
				c.abort()
				return started, nil, wire.Errorf(wire.CodeWorkerFailed, "bad chunk: %v", err)
			}
			if meter != nil {
				if err := meter.chunk(ctx, c, ch.Tokens); err != nil {
					c.abort()
					return started, nil, err
				}
			}
			if ctx.Err() != nil {
				continue // cancelled: the last chunks are read and paid for, not passed on
			}
			if err := onChunk(&ch, c.r.Buffered()); err != nil {
				c.abort()
				var we *wire.Error
				if errors.As(err, &we) {
					return true, nil, we // the chunk itself was bad
				}
				return true, nil, context.Canceled // our caller is gone
			}
			started = true
		case wire.FrameFinal:
			meter.finish(c)
			fin, err := wire.DecodeFinal(payload)
			if err != nil {
				return true, nil, wire.Errorf(wire.CodeWorkerFailed, "malformed final message: %v", err)
			}
			if meter != nil {
				if err := meter.final(fin.Usage); err != nil {
					return true, nil, wire.Errorf(wire.CodeWorkerFailed, "billing: %v", err)
				}
			}
			receipt, err := n.checkReceipt(&fin, &h, p, &ex)
			if err != nil {
				return true, nil, wire.Errorf(wire.CodeWorkerFailed, "the answer's receipt does not check: %v", err)
			}
			if ex.session != nil {
				ex.session.Confirm() // the worker holds the session: later bodies name it by ID
			}
			res := &result{fin: fin, proxy: p, receipt: receipt, workerTE: ex.workerTE}
			if meter != nil {
				res.cost, res.paid = meter.tab.Charged(), true
			}
			return true, res, nil
		case wire.FrameError:
			meter.finish(c)
			we, err := wire.DecodeError(payload)
			if err != nil {
				return started, nil, wire.Errorf(wire.CodeWorkerFailed, "malformed error message: %v", err)
			}
			if we.Code == wire.CodeSealSession && ex.session != nil {
				ex.session.Unconfirm()
			}
			return started, nil, we
		default:
			c.abort()
			return started, nil, wire.Errorf(wire.CodeWorkerFailed, "proxy %s: %v", p.String(), unexpected(t))
		}
	}
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
