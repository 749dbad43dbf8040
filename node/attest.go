package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/cocoon-mesh/cocoon/node/wire"
	"github.com/cocoon-mesh/cocoon/tee"
)

// AttestProtocol is the attested handshake: the side that opens the stream reads the other's
// hello (its sealing key and evidence binding it and its libp2p key), verifies it and caches
// the result for as long as the connection lasts, up to Config.AttestTTL.
const AttestProtocol protocol.ID = "/cocoon/attest/1.0.0"

// How long a failed handshake is remembered before it is tried again: a refusal for a while,
// a handshake that could not run (no connection, a stream reset) only briefly.
const (
	failedAttestTTL      = time.Minute
	unreachableAttestTTL = 2 * time.Second
)

// attestSweepEvery is how often expired handshakes leave the cache: a peer that never
// connected (its handshake failed or could not run) has no disconnect to clear its entry.
const attestSweepEvery = 10 * time.Second

// attester is the node's own attestation and what it learnt of its peers': it serves our
// hello, runs the handshake with peers and caches its outcome, and checks the routes a proxy
// sends a client. Its cache is its own (mu); the rest is set once.
type attester struct {
	attestEnv
	provider tee.Provider // nil: this node runs outside a TEE
	verifier *tee.Verifier
	opener   *tee.Opener // our sealing key: workers open sealed requests with it
	hello    []byte      // our hello, made once at start
	digest   [32]byte    // our evidence digest; zero outside a TEE
	key      []byte      // our libp2p public key, marshalled
	priv     crypto.PrivKey
	signer   *batchSigner // signs receipts, many at a time under load

	mu    sync.Mutex
	peers map[peer.ID]*peerAttest // at most Config.MaxAttestations; see makeRoom
	full  quietCount              // handshakes left uncached because the cache was full
}

// attestEnv is what an attester runs on: the node's host, life and log, and its settings.
type attestEnv struct {
	h    host.Host
	life *life
	log  *slog.Logger
	rand *lockedRand
	cfg  *Config // AttestTTL, MaxAttestations, AllowUnattested, ReceiptCheckEvery
	// refused records the workers a client refuses to seal to (checkRoute), and why.
	refused *refusedPeers
}

func (a *attester) now() time.Time { return a.life.clock.Now() }

// peerAttest is one handshake's outcome. done is closed once the fields are set; after that
// they never change (a refresh makes a new peerAttest).
type peerAttest struct {
	done       chan struct{}
	at         time.Time
	att        tee.Attestation
	hello      []byte  // the hello as received: a proxy hands workers' hellos to clients
	key        []byte  // the peer's libp2p public key, marshalled
	err        error   // wraps tee.ErrNotAttested for a peer outside a TEE
	refreshing bool    // guarded by attester.mu
	distrusted bool    // caught with a bad receipt: no work for it until the entry expires
	unreached  bool    // the handshake could not run: err says nothing of the peer's TEE
	sealID     [8]byte // wire.SealKeyID of the sealing key it attested
}

// trusted reports whether the peer may be given work (or prompts): attested, or offering no
// attestation on a node that allows that.
func (pa *peerAttest) trusted(allowUnattested bool) bool {
	return pa.err == nil || (allowUnattested && errors.Is(pa.err, tee.ErrNotAttested))
}

// newAttester makes the node's sealing key and evidence binding it to the node's key.
func newAttester(env attestEnv, priv crypto.PrivKey, provider tee.Provider, verifier *tee.Verifier) (*attester, error) {
	sk, err := tee.GenerateSealKey()
	if err != nil {
		return nil, err
	}
	pub, err := crypto.MarshalPublicKey(priv.GetPublic())
	if err != nil {
		return nil, err
	}
	a := &attester{attestEnv: env, provider: provider, verifier: verifier, opener: tee.NewOpener(sk), key: pub, priv: priv,
		signer: &batchSigner{key: priv}, peers: make(map[peer.ID]*peerAttest)}
	hello := tee.Hello{SealKey: sk.PublicKey()}
	if provider != nil {
		ev, err := provider.Attest(tee.ReportData(pub, sk.PublicKey()))
		if err != nil {
			return nil, fmt.Errorf("node: cannot attest (%v TEE): %w", provider.Kind(), err)
		}
		hello.Evidence = &ev
		a.digest = ev.Digest()
	}
	a.hello = hello.Marshal()
	return a, nil
}

// describe summarises verified claims for logs and response headers.
func describe(c *tee.Claims) string {
	if c.Kind == tee.KindSimulated {
		return "simulated (INSECURE)"
	}
	h := c.ImageHash()
	return fmt.Sprintf("tdx image=%s tcb=%v", hex.EncodeToString(h[:8]), c.TCB)
}

// describeAttest says what a peer's handshake established, for logs and headers.
func describeAttest(pa *peerAttest) string {
	switch {
	case pa == nil:
		return "unknown"
	case pa.err == nil:
		return describe(&pa.att.Claims)
	case errors.Is(pa.err, tee.ErrNotAttested):
		return "none"
	}
	return "refused"
}

// startAttest serves our hello to any peer that asks, forgets peers' handshakes when their
// last connection closes, and says loudly when this node's own evidence is simulated.
func (a *attester) start() {
	a.h.SetStreamHandler(AttestProtocol, a.life.handler(a.handle))
	nb := &network.NotifyBundle{DisconnectedF: func(nw network.Network, c network.Conn) {
		if p := c.RemotePeer(); nw.Connectedness(p) != network.Connected {
			a.mu.Lock()
			delete(a.peers, p)
			a.mu.Unlock()
		}
	}}
	a.h.Network().Notify(nb)
	a.life.Loop(func(ctx context.Context) {
		<-ctx.Done()
		a.h.Network().StopNotify(nb)
	})
	a.life.Every(attestSweepEvery, func() {
		a.mu.Lock()
		a.sweep(a.now(), a.cfg.AttestTTL)
		a.mu.Unlock()
	})
	switch {
	case a.provider == nil:
		a.log.Info("running outside a TEE: this node offers no attestation")
	case a.provider.Kind() == tee.KindSimulated:
		a.log.Warn("!!! SIMULATED TEE: this node's attestation is FAKE and protects nothing. " +
			"Peers accept it only when started with the insecure allow-simulated flag. Never use it with real prompts or money. !!!")
	default:
		a.log.Info("attested", "tee", a.provider.Kind().String(), "evidence", hex.EncodeToString(a.digest[:8]))
	}
	pol := a.verifier.Policy()
	if pol.AllowSimulated {
		a.log.Warn("!!! INSECURE: this node accepts SIMULATED attestation from its peers: prompts may reach machines that can read them !!!")
	}
}

// warm runs the handshake with a proxy as soon as we connect to it, so that no request
// waits for it.
func (a *attester) warm(ctx context.Context, p peer.ID) { _, _ = a.peer(ctx, p) }

// handle sends our hello.
func (a *attester) handle(s network.Stream) {
	w := wire.NewWriter(s)
	defer w.Release()
	if err := w.WriteFrame(wire.FrameHello, a.hello); err != nil || w.Flush() != nil {
		s.Reset()
		return
	}
	s.Close()
}

// cached returns p's handshake if one has finished and is still good, without
// waiting or fetching.
func (a *attester) cached(p peer.ID) *peerAttest {
	a.mu.Lock()
	defer a.mu.Unlock()
	pa := a.peers[p]
	if pa == nil {
		return nil
	}
	select {
	case <-pa.done:
	default:
		return nil
	}
	if a.now().Sub(pa.at) >= a.ttl(pa) {
		return nil
	}
	return pa
}

func (a *attester) ttl(pa *peerAttest) time.Duration { return attestTTL(pa, a.cfg.AttestTTL) }

// attestTTL is how long a finished handshake is used: good is Config.AttestTTL.
func attestTTL(pa *peerAttest, good time.Duration) time.Duration {
	switch {
	case pa.unreached:
		return unreachableAttestTTL
	case pa.refused():
		return failedAttestTTL
	}
	return good
}

// refused reports whether the peer's handshake ran and its hello was refused (or the peer was
// distrusted since); an unattested peer is not refused, whatever the node's policy on those.
func (pa *peerAttest) refused() bool {
	return pa.err != nil && !pa.unreached && !errors.Is(pa.err, tee.ErrNotAttested)
}

// finished reports whether pa's handshake is over (its fields are set).
func (pa *peerAttest) finished() bool {
	select {
	case <-pa.done:
		return true
	default:
		return false
	}
}

// sweep drops the finished handshakes that expired; a.mu is held.
func (a *attester) sweep(now time.Time, good time.Duration) {
	maps.DeleteFunc(a.peers, func(_ peer.ID, pa *peerAttest) bool {
		return pa.finished() && now.Sub(pa.at) >= attestTTL(pa, good)
	})
}

// makeRoom evicts handshakes until the cache holds fewer than limit, and reports whether it
// does: first the expired, then those that could not run, then refusals (distrusted peers
// stay). Trusted entries are never evicted: there is one per connected peer, which the
// connection limit bounds, and each leaves when its peer disconnects. a.mu is held.
func (a *attester) makeRoom(now time.Time, good time.Duration, limit int) bool {
	if len(a.peers) < limit {
		return true
	}
	a.sweep(now, good)
	for _, evict := range []func(*peerAttest) bool{
		func(pa *peerAttest) bool { return pa.unreached },
		func(pa *peerAttest) bool { return pa.refused() && !pa.distrusted },
	} {
		if len(a.peers) < limit {
			return true
		}
		maps.DeleteFunc(a.peers, func(_ peer.ID, pa *peerAttest) bool { return pa.finished() && evict(pa) })
	}
	return len(a.peers) < limit
}

// peer returns p's handshake: cached, or fetched now (one fetch per peer at a
// time). A good one is refreshed in the background once it is three quarters through its TTL,
// so a request never waits for a refresh.
func (a *attester) peer(ctx context.Context, p peer.ID) (*peerAttest, error) {
	a.mu.Lock()
	pa := a.peers[p]
	if pa != nil {
		select {
		case <-pa.done:
			age, ttl := a.now().Sub(pa.at), a.ttl(pa)
			if age < ttl {
				if age > ttl*3/4 && !pa.refreshing && pa.err == nil {
					pa.refreshing = true
					a.life.Go(func() { a.fetch(p, pa) })
				}
				a.mu.Unlock()
				return pa, nil
			}
			pa = nil // expired: fetch anew
		default:
		}
	}
	if pa == nil {
		pa = &peerAttest{done: make(chan struct{})}
		_, replaces := a.peers[p]
		cached := replaces || a.makeRoom(a.now(), a.cfg.AttestTTL, a.cfg.MaxAttestations)
		if cached {
			a.peers[p] = pa
		}
		count, logNow := 0, false
		if !cached {
			count, logNow = a.full.note(a.now(), refusalLogEvery)
		}
		a.mu.Unlock()
		if logNow {
			a.log.Warn("attestation cache full of trusted, distrusted and running handshakes: new ones run uncached", "uncached", count,
				"max_attestations", a.cfg.MaxAttestations, "fix", "raise tee.max_attestations above host.max_conns")
		}
		a.fetch(p, pa)
		return pa, nil
	}
	a.mu.Unlock()
	select {
	case <-pa.done:
		return pa, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// fetch runs the handshake with p and stores the outcome: into pa when pa is still
// pending, or as a new entry replacing pa when pa is being refreshed.
func (a *attester) fetch(p peer.ID, pa *peerAttest) {
	ctx, cancel := context.WithTimeout(a.life.ctx, requestReadTimeout)
	defer cancel()
	res := &peerAttest{done: make(chan struct{})}
	res.hello, res.key, res.att, res.err = a.handshake(ctx, p)
	res.at = a.now()
	res.unreached = res.err != nil && res.hello == nil
	if res.err == nil {
		res.sealID = wire.SealKeyID(res.att.SealKey)
	}
	if res.refused() {
		res.hello, res.key = nil, nil // nothing reads a refused peer's hello: do not hold it
	}
	switch {
	case res.unreached:
		a.log.Debug("attestation handshake could not run", "peer", p.String(), "err", res.err)
	case res.err == nil:
		a.log.Info("peer attested", "peer", p.String(), "tee", describe(&res.att.Claims))
	case errors.Is(res.err, tee.ErrNotAttested):
		a.log.Debug("peer offers no attestation", "peer", p.String())
	default:
		a.log.Warn("peer attestation refused", "peer", p.String(), "err", res.err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	select {
	case <-pa.done: // a refresh: swap in the new outcome if pa is still the current one
		close(res.done)
		switch {
		case res.unreached:
			pa.refreshing = false // a hiccup says nothing against the good entry: try again later
		case a.peers[p] == pa:
			a.peers[p] = res
		}
	default:
		pa.at, pa.att, pa.hello, pa.key, pa.err, pa.unreached, pa.sealID = res.at, res.att, res.hello, res.key, res.err, res.unreached, res.sealID
		close(pa.done)
	}
}

// handshake reads p's hello and verifies it against the key p's connection authenticated.
func (a *attester) handshake(ctx context.Context, p peer.ID) (hello, key []byte, att tee.Attestation, err error) {
	s, err := a.h.NewStream(ctx, p, AttestProtocol)
	if err != nil {
		return nil, nil, att, fmt.Errorf("attestation handshake with %s: %w", p.String(), err)
	}
	defer s.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = s.SetReadDeadline(dl)
	}
	r := wire.NewReader(s, tee.MaxHelloSize)
	defer r.Release()
	t, payload, err := r.ReadFrame()
	if err == nil && t != wire.FrameHello {
		err = fmt.Errorf("expected a hello frame, got %s", t)
	}
	if err != nil {
		s.Reset()
		return nil, nil, att, fmt.Errorf("attestation handshake with %s: %w", p.String(), err)
	}
	pub := s.Conn().RemotePublicKey()
	if pub == nil {
		return nil, nil, att, fmt.Errorf("attestation handshake with %s: the connection has no public key", p.String())
	}
	key, err = crypto.MarshalPublicKey(pub)
	if err != nil {
		return nil, nil, att, err
	}
	att, err = a.verifyHello(payload, key)
	return payload, key, att, err
}

// verifyHello decodes and verifies a hello for the peer whose marshalled public key is key.
func (a *attester) verifyHello(raw, key []byte) (tee.Attestation, error) {
	h, err := tee.UnmarshalHello(raw)
	if err != nil {
		return tee.Attestation{}, err
	}
	return a.verifier.VerifyHello(&h, key, a.now())
}

// distrust marks p as refused for failedAttestTTL, as a failed handshake would: a peer caught
// cheating gets no work until it attests again. The mark is kept even past the cache's cap
// (only a connected peer can be caught, so there are few).
func (a *attester) distrust(p peer.ID, why error) {
	pa := &peerAttest{done: make(chan struct{}), at: a.now(), err: fmt.Errorf("distrusted: %w", why), distrusted: true}
	close(pa.done)
	a.mu.Lock()
	a.makeRoom(a.now(), a.cfg.AttestTTL, a.cfg.MaxAttestations)
	a.peers[p] = pa
	a.mu.Unlock()
	a.log.Warn("peer distrusted", "peer", p.String(), "err", why)
}

// sampleReceipt says whether to verify this receipt's signatures (one in ReceiptCheckEvery).
func (a *attester) sampleReceipt() bool {
	return a.cfg.ReceiptCheckEvery <= 1 || a.rand.IntN(a.cfg.ReceiptCheckEvery) == 0
}

// routeCache remembers the worker hellos a client verified, by a hash of key and hello, one
// sealing session per worker key (a route costs a hash and a map lookup once seen), and, per
// proxy and model, the workers that proxy routed it to: later requests are sealed to those
// ahead of routing, so the proxy needs no round trip when it picks one of them again.
type routeCache struct {
	mu         sync.Mutex
	verified   map[[32]byte]routeEntry
	sessions   map[string]*tee.Session
	candidates map[candidateKey][]candidate
}

type candidateKey struct {
	proxy peer.ID
	model string // as the client's caller named it
}

// candidate is a worker a request may be sealed to before the proxy picks.
type candidate struct {
	worker peer.ID
	keyID  [8]byte // the sealing key sess seals to
	sess   *tee.Session
	te     string // what its attestation established
	at     time.Time
}

// remember adds (or refreshes) worker as a candidate for model through proxy.
func (rc *routeCache) remember(proxy peer.ID, model string, c candidate) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	k := candidateKey{proxy, model}
	cs := slices.DeleteFunc(rc.candidates[k], func(o candidate) bool { return o.worker == c.worker })
	if len(cs) >= wire.MaxSealedSet {
		cs = cs[1:] // the least recently routed to goes
	}
	if len(rc.candidates) >= maxRouteCache {
		clear(rc.candidates)
	}
	rc.candidates[k] = append(cs, c)
}

// candidatesFor returns the workers a request for model through proxy may be sealed to: those
// the proxy routed this client to within ttl.
func (rc *routeCache) candidatesFor(proxy peer.ID, model string, now time.Time, ttl time.Duration) []candidate {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	k := candidateKey{proxy, model}
	cs := slices.DeleteFunc(rc.candidates[k], func(c candidate) bool { return now.Sub(c.at) > ttl })
	rc.candidates[k] = cs
	return slices.Clone(cs)
}

type routeEntry struct {
	att tee.Attestation
	err error
	at  time.Time
}

// maxRouteCache bounds the client's caches; past it they start over.
const maxRouteCache = 1024

// checkRoute verifies the worker a proxy routed us to and returns the session to seal to it;
// nil with no error means the worker is unattested and this node allows sending it plaintext.
func (a *attester) checkRoute(rc *routeCache, r *wire.Route) (*tee.Session, tee.Attestation, error) {
	pub, err := crypto.UnmarshalPublicKey(r.Key)
	if err == nil && !r.Worker.MatchesPublicKey(pub) {
		err = errors.New("the key is not the worker's")
	}
	if err != nil {
		return nil, tee.Attestation{}, wire.Errorf(wire.CodeAttestation, "proxy sent a bad route to worker %s: %v", r.Worker.String(), err)
	}
	h := sha256.New()
	h.Write(r.Key)
	h.Write(r.Hello)
	k := [32]byte(h.Sum(nil))
	now := a.now()
	rc.mu.Lock()
	e, ok := rc.verified[k]
	rc.mu.Unlock()
	if !ok || now.Sub(e.at) > a.cfg.AttestTTL || (e.err != nil && now.Sub(e.at) > failedAttestTTL) {
		e = routeEntry{at: now}
		// The route aliases the stream's read buffer; what the cache keeps must not.
		e.att, e.err = a.verifyHello(bytes.Clone(r.Hello), r.Key)
		rc.mu.Lock()
		if len(rc.verified) >= maxRouteCache {
			clear(rc.verified)
		}
		rc.verified[k] = e
		rc.mu.Unlock()
	}
	if e.err != nil {
		if errors.Is(e.err, tee.ErrNotAttested) && a.cfg.AllowUnattested {
			return nil, tee.Attestation{}, nil
		}
		reason, fix := attestRefusal(e.err, RoleClient)
		if a.refused.note(now, r.Worker, reason, fix) {
			a.log.Warn("worker refused", "worker", r.Worker.String(), "reason", reason, "fix", fix)
		}
		return nil, tee.Attestation{}, wire.Errorf(wire.CodeAttestation, "worker %s: %s: %s", r.Worker.String(), reason, fix)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	s := rc.sessions[string(e.att.SealKey)]
	if s == nil {
		if s, err = tee.NewSession(e.att.SealKey); err != nil {
			return nil, tee.Attestation{}, wire.Errorf(wire.CodeAttestation, "worker %s: %v", r.Worker.String(), err)
		}
		if len(rc.sessions) >= maxRouteCache {
			clear(rc.sessions)
		}
		rc.sessions[string(e.att.SealKey)] = s
	}
	return s, e.att, nil
}
