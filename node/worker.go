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
	"github.com/cocoon-mesh/cocoon/node/wire"
	"github.com/cocoon-mesh/cocoon/tee"
)

// workerState is what a worker tracks beyond the common node.
type workerState struct {
	backend backend.Backend
	models  map[string]ModelConfig

	active  atomic.Int32  // requests running now
	healthy atomic.Bool   // the backend answered its last health check
	seq     atomic.Uint64 // advert sequence number
	tokens  atomic.Int64  // completion tokens generated since start
	rate    atomic.Uint32 // completion tokens per second over the last advert interval

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

func newWorkerState(cfg Config, b backend.Backend) *workerState {
	w := &workerState{backend: b, models: map[string]ModelConfig{}}
	for _, m := range cfg.Models {
		w.models[m.ID] = m
	}
	return w
}

// startWorker makes the node a worker: it serves inference streams from proxies, keeps
// connections to a few proxies, and publishes its capacity.
func (n *Node) startWorker() error {
	n.h.SetStreamHandler(InferProtocol, n.handleWorkerInfer)
	n.checkHealth()
	n.keeper = n.disc.NewKeeper(n.cfg.MinProxies, n.cfg.DiscoveryInterval, func(ctx context.Context, p peer.ID) {
		n.sendDirectAdvert(ctx, p)
		n.attestProxy(ctx, p)
	})
	n.goLoop(n.keeper.Run)
	n.every(n.cfg.HealthInterval, n.checkHealth)
	n.goLoop(func(ctx context.Context) {
		n.publishAdvert(ctx)
		t := time.NewTicker(n.cfg.AdvertInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				n.publishAdvert(ctx)
			}
		}
	})
	models := make([]string, 0, len(n.cfg.Models))
	for _, m := range n.cfg.Models {
		models = append(models, m.ID)
	}
	n.log.Info("worker started", "models", models, "max_active", n.cfg.MaxActive)
	return nil
}

// checkHealth asks the backend whether it can serve, and logs changes.
func (n *Node) checkHealth() {
	ctx, cancel := context.WithTimeout(n.ctx, 3*time.Second)
	defer cancel()
	err := n.worker.backend.Health(ctx)
	if n.ctx.Err() != nil {
		return // shutting down: the check was cut short, not failed
	}
	ok := err == nil
	if was := n.worker.healthy.Swap(ok); was != ok {
		if ok {
			n.log.Info("backend healthy")
		} else {
			n.log.Warn("backend unhealthy: proxies will stop routing here", "err", err)
		}
	}
}

// advert builds the worker's current capacity advert.
func (n *Node) advert() *wire.Advert {
	w := n.worker
	now := n.now()
	a := &wire.Advert{
		Worker:       n.h.ID(),
		Seq:          w.seq.Add(1),
		Time:         now,
		Addrs:        n.h.Addrs(),
		MaxActive:    uint32(n.cfg.MaxActive),
		Running:      uint32(w.active.Load()),
		Coefficient:  n.cfg.Coefficient,
		TokensPerSec: w.rate.Load(),
		Healthy:      w.healthy.Load(),
	}
	if len(a.Addrs) > wire.MaxAdvertAddrs {
		a.Addrs = a.Addrs[:wire.MaxAdvertAddrs]
	}
	for _, m := range n.cfg.Models {
		a.Offers = append(a.Offers, wire.Offer{Model: m.ID, Prices: m.Prices})
	}
	return a
}

// signedAdvert returns the current advert, signed.
func (n *Node) signedAdvert() ([]byte, error) {
	return wire.SignAdvert(n.advert(), n.h.Peerstore().PrivKey(n.h.ID()))
}

// publishAdvert gossips the current advert.
func (n *Node) publishAdvert(ctx context.Context) {
	n.worker.measureRate(n.now())
	b, err := n.signedAdvert()
	if err == nil {
		err = n.topic.Publish(ctx, b)
	}
	if err != nil && ctx.Err() == nil {
		n.log.Warn("cannot publish capacity advert", "err", err)
	}
}

// sendDirectAdvert hands a newly connected proxy our advert, so it can route to us at once.
func (n *Node) sendDirectAdvert(ctx context.Context, p peer.ID) {
	b, err := n.signedAdvert()
	if err != nil {
		n.log.Warn("cannot sign advert", "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := n.h.NewStream(ctx, p, AdvertProtocol)
	if err != nil {
		n.log.Warn("cannot send advert to proxy", "proxy", p.String(), "err", err)
		return
	}
	w := wire.NewWriter(s)
	defer w.Release()
	err = w.WriteFrame(wire.FrameAdvert, b)
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		s.Reset()
		return
	}
	s.Close()
}

// maxBatchedChunk bounds the JSON lines one streamed chunk frame collects.
const maxBatchedChunk = 32 << 10

// handleWorkerInfer runs one request from a proxy on the backend and streams the answer.
func (n *Node) handleWorkerInfer(s network.Stream) {
	out := newAnswer(s)
	r, h, body, err := n.readRequest(s, false)
	if err != nil {
		out.fail(err)
		return
	}
	w := n.worker
	requestHash := sha256.Sum256(body)
	var sealer *tee.Answer // seals the answer back to the client when the request came sealed
	if h.Sealed {
		if body, sealer, err = n.attest.opener.Open([]byte(h.ID), body); err != nil {
			r.Release()
			code := wire.CodeAttestation
			if errors.Is(err, tee.ErrUnknownSession) {
				code = wire.CodeSealSession // the client resends with the session's key
			}
			out.fail(wire.Errorf(code, "%v", err))
			return
		}
		if err := n.checkBodySize(body); err != nil {
			out.fail(err)
			return
		}
	}
	endpoint := backend.Chat
	if h.Endpoint == wire.Completion {
		endpoint = backend.Completion
	}
	if _, ok := w.models[h.Model]; !ok {
		out.fail(wire.Errorf(wire.CodeUnknownModel, "this worker does not serve %q", h.Model))
		return
	}
	if !w.healthy.Load() {
		out.fail(wire.Errorf(wire.CodeNoCapacity, "backend unhealthy"))
		return
	}
	if int(w.active.Add(1)) > n.cfg.MaxActive {
		w.active.Add(-1)
		out.fail(wire.Errorf(wire.CodeNoCapacity, "worker at its limit of %d requests", n.cfg.MaxActive))
		return
	}
	defer w.active.Add(-1)

	ctx, cancel := context.WithTimeout(n.ctx, h.Timeout)
	defer cancel()
	go watchCaller(r, cancel, nil)
	// The receipt names the proxy by the key its connection authenticated, and by its
	// attestation if it has one (handshake cached after the first request on a connection).
	proxyKey, err := crypto.MarshalPublicKey(s.Conn().RemotePublicKey())
	if err != nil {
		out.fail(err)
		return
	}
	proxyAttest, err := n.peerAttestation(ctx, s.Conn().RemotePeer())
	if err != nil {
		out.fail(err)
		return
	}

	// Every chunk is hashed as it is sent (sealed, if sealing), for the receipt.
	answerHash := tee.NewAnswerHash()
	var sealed wire.Chunk
	send := func(c *wire.Chunk, flush bool) error {
		if sealer != nil {
			var err error
			if sealed.Data, err = sealer.Seal(sealed.Data[:0], c.Data); err != nil {
				return err
			}
			sealed.Tokens = c.Tokens
			c = &sealed
		}
		answerHash.Add(c.Data)
		return out.chunk(c, flush)
	}

	// A streamed chunk is sent as server-sent events ("data: <JSON>\n\n"), ready for the
	// client to pass on. One that the backend already has the next one for waits for it, and
	// both travel in one frame: a burst of tokens costs one frame, a lone token goes out at
	// once. A whole answer is one chunk, sent with its final frame.
	var pend wire.Chunk
	usage, err := w.backend.Generate(ctx, backend.Request{Endpoint: endpoint, Model: h.Model, Body: body, Stream: h.Stream, MaxTokens: h.MaxTokens},
		func(c backend.Chunk) error {
			if !h.Stream {
				pend.Tokens, pend.Data = uint32(c.Tokens), c.Data
				return send(&pend, false)
			}
			pend.Data = append(pend.Data, "data: "...)
			pend.Data = append(pend.Data, c.Data...)
			pend.Data = append(pend.Data, "\n\n"...)
			pend.Tokens += uint32(c.Tokens)
			if c.More && len(pend.Data) < maxBatchedChunk {
				return nil
			}
			err := send(&pend, true)
			pend.Data, pend.Tokens = pend.Data[:0], 0
			return err
		})
	if err == nil && h.Stream && len(pend.Data) > 0 {
		err = send(&pend, false) // the stream ended with a chunk still held: send it with the final
	}
	if err != nil {
		if ctx.Err() != nil && errors.Is(context.Cause(ctx), context.Canceled) {
			s.Reset() // the proxy went away: the backend call is already stopped
			n.log.Debug("request cancelled by the caller", "request", h.ID)
			return
		}
		out.fail(backendError(ctx, err))
		return
	}
	w.tokens.Add(int64(usage.Completion))
	fin := wire.Final{
		Usage: wire.Usage{Prompt: uint32(usage.Prompt), Cached: uint32(usage.Cached), Completion: uint32(usage.Completion),
			Reasoning: uint32(usage.Reasoning), Estimated: usage.Estimated},
		Worker: n.idStr,
	}
	rc := tee.Receipt{
		RequestID: h.ID, Model: h.Model, Sealed: h.Sealed, RequestHash: requestHash, AnswerHash: answerHash.Sum(),
		PromptTokens: uint64(fin.Usage.Prompt), CachedTokens: uint64(fin.Usage.Cached),
		CompletionTokens: uint64(fin.Usage.Completion), ReasoningTokens: uint64(fin.Usage.Reasoning),
		Time: n.now(), WorkerKey: n.attest.key, WorkerEvidence: n.attest.digest, ProxyKey: proxyKey, ProxyEvidence: proxyAttest.att.Digest,
	}
	if rc.Worker, err = n.attest.signer.sign(rc.WorkerDigest()); err != nil {
		out.fail(err)
		return
	}
	fin.Receipt = rc.Marshal()
	if sealer != nil {
		d := rc.WorkerDigest()
		if fin.Tag, err = sealer.Seal(nil, d[:]); err != nil {
			out.fail(err)
			return
		}
	}
	out.final(&fin)
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
