package node

import (
	"context"
	crand "crypto/rand"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/xssnick/tonutils-go/address"

	"github.com/cocoon-mesh/cocoon/discovery"
	"github.com/cocoon-mesh/cocoon/node/backend"
	"github.com/cocoon-mesh/cocoon/routing"
	"github.com/cocoon-mesh/cocoon/tee"
	"github.com/cocoon-mesh/cocoon/ton/chanstore"
	"github.com/cocoon-mesh/cocoon/ton/ledger"
)

// Deps are the parts a node is built from. cmd/cocoon-node picks real ones; simulations pass
// mocknet hosts and fake clocks.
type Deps struct {
	Host    host.Host       // required
	Backend backend.Backend // required for workers
	// Reference is a proxy's own run of the pinned model its workers serve, deterministic
	// (the embedded engine, or the same server as theirs): with it the proxy audits them
	// (Config.Audit). Nil: no audits.
	Reference backend.Backend
	Logger    *slog.Logger // nil: discard
	// Clock gives the node its time and timers; nil: the wall clock. (A worker's Close waits
	// 200 ms on it, for its leaving advert to go out: a mock clock must be moved then.)
	Clock Clock
	// Rand drives the node's random choices that need no secrecy (which receipts it checks);
	// nil: seeded at random. A simulation passes a seeded one to replay a run.
	Rand *rand.Rand
	// TEE produces this node's evidence; nil runs outside a TEE (no attestation offered).
	TEE tee.Provider
	// Verifier checks peers' evidence; nil refuses all evidence (then only AllowUnattested
	// lets the node work with peers).
	Verifier *tee.Verifier
	// Ledger holds the node's payment channels' money; nil turns payments off (the node then
	// neither pays nor asks to be paid). Channels and Wallet are required with it.
	Ledger ledger.Ledger
	// Channels keeps every channel's newest state durably (in the node's datastore).
	Channels *chanstore.Store
	// Wallet is the node's TON wallet: it funds the channels it pays on and receives payouts.
	Wallet *address.Address
	// Faults make a worker misbehave on purpose (adversarial tests, simulations); nil: honest.
	Faults *Faults
	// Tracer hears of the node's requests and gossip as they happen (simulations); nil: none.
	Tracer *Tracer
}

// Node is one running peer of the mesh.
type Node struct {
	cfg   Config
	h     host.Host
	idStr string // h.ID().String(), which base58-encodes on every call
	log   *slog.Logger
	clock Clock
	rand  *lockedRand
	disc  *discovery.Service
	ps    *pubsub.PubSub

	topic  *pubsub.Topic
	keeper *discovery.Keeper // clients and workers: the proxies we hold connections to

	workers *roster  // the worker table and the admission of workers into it
	audits  *auditor // a proxy's canaries to its workers (nil: none)
	rumors  *rumors  // the reputation topic (nil until Start)

	attest *attester // this node's attestation and its peers'

	payments *channels     // nil: payments off
	mismatch mismatches    // peers whose payments do not match ours, left alone for a while
	refused  refusedPeers  // peers refused work, and why (logged once each, listed in Status)
	metrics  *metrics      // Prometheus collectors and the request log
	netCheck *networkCheck // asks bootstrap peers which network they are on

	worker *workerState // workers only
	client *clientState // clients only
	faults *Faults      // nil: an honest node
	tracer *Tracer      // nil: no one listens

	ctx    context.Context
	cancel context.CancelFunc
	life   *life

	closeOnce sync.Once
	closeErr  error
}

// New builds a node; nothing runs until Start.
func New(cfg Config, deps Deps) (*Node, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if deps.Host == nil {
		return nil, errors.New("node: no libp2p host given")
	}
	if cfg.Role == RoleWorker && deps.Backend == nil {
		return nil, errors.New("node: a worker needs a model backend")
	}
	n := &Node{cfg: cfg, h: deps.Host, idStr: deps.Host.ID().String(), log: deps.Logger, clock: deps.Clock, rand: newLockedRand(deps.Rand), faults: deps.Faults, tracer: deps.Tracer}
	if n.log == nil {
		n.log = slog.New(slog.DiscardHandler)
	}
	if n.clock == nil {
		n.clock = wallClock()
	}
	n.life = newLife(n.clock, n.idStr)
	n.log = n.log.With("role", string(cfg.Role), "peer", n.h.ID().String())
	verifier := deps.Verifier
	if verifier == nil {
		verifier = tee.NewVerifier(tee.DefaultPolicy(), nil)
	}
	priv := n.h.Peerstore().PrivKey(n.h.ID())
	if priv == nil {
		return nil, errors.New("node: the host holds no private key for its own peer ID")
	}
	var err error
	env := attestEnv{h: n.h, life: n.life, log: n.log, rand: n.rand, cfg: &n.cfg, refused: &n.refused}
	if n.attest, err = newAttester(env, priv, deps.TEE, verifier); err != nil {
		return nil, err
	}
	if deps.Ledger != nil && (deps.Channels == nil || deps.Wallet == nil) {
		return nil, errors.New("node: payments need a channel store and a wallet besides the ledger")
	}
	n.ctx, n.cancel = n.life.ctx, n.life.cancel
	if deps.Ledger != nil {
		if n.payments, err = newChannels(n, deps.Ledger, deps.Channels, priv, deps.Wallet); err != nil {
			n.cancel()
			return nil, err
		}
	}

	n.workers = &roster{h: n.h, life: n.life, log: n.log, cfg: &n.cfg, attest: n.attest, mismatch: &n.mismatch, refused: &n.refused,
		table: routing.New(routing.Config{TTL: cfg.WorkerTTL, MinTrust: cfg.Reputation.MinTrust}), admit: newAdmissions(cfg),
		rep: newBook(cfg.Reputation), claims: map[peer.ID]capacityClaim{}}
	if n.payments != nil {
		n.workers.joined = n.checkTakesPayments
	}
	n.audits = newAuditor(n, deps.Reference)
	n.metrics = newMetrics(n)
	n.workers.metrics = n.metrics
	boot, _ := cfg.bootstrapPeers() // validated above
	n.netCheck = &networkCheck{h: n.h, life: n.life, log: n.log, network: cfg.Network, boot: map[peer.ID]bool{}, refused: &n.refused}
	for _, ai := range boot {
		n.netCheck.boot[ai.ID] = true
	}
	n.disc, err = discovery.New(n.h, discovery.Config{Network: cfg.Network, Mode: cfg.DHTMode, Bootstrap: boot, Logger: n.log})
	if err != nil {
		n.cancel()
		return nil, err
	}
	if err := n.startGossip(); err != nil {
		n.disc.Close()
		n.cancel()
		return nil, err
	}
	switch cfg.Role {
	case RoleWorker:
		n.worker = newWorkerState(advertEnv{h: n.h, life: n.life, log: n.log, cfg: &n.cfg, topic: n.topic, fault: n.faults}, deps.Backend)
	case RoleClient:
		n.client = &clientState{attest: n.attest, cfg: &n.cfg, idPrefix: crand.Text()[:12], routes: routeCache{
			verified: make(map[[32]byte]routeEntry), sessions: make(map[string]*tee.Session),
			candidates: make(map[candidateKey][]candidate)}}
	}
	return n, nil
}

// ID is the node's peer ID.
func (n *Node) ID() peer.ID { return n.h.ID() }

// Host is the node's libp2p host.
func (n *Node) Host() host.Host { return n.h }

// Config is the node's configuration with defaults filled in.
func (n *Node) Config() Config { return n.cfg }

// Start joins the mesh and starts the role's work. It returns once the node serves; finding
// peers continues in the background. The node serves no HTTP itself: package api serves a
// client's API and any node's admin endpoints over it, once it started.
func (n *Node) Start() error {
	n.netCheck.start() // before the bootstrap dials, so that it hears of their connections
	n.life.Go(func() {
		ctx, cancel := context.WithTimeout(n.ctx, 30*time.Second)
		defer cancel()
		if err := n.disc.Bootstrap(ctx); err != nil {
			n.log.Warn("bootstrap failed; the DHT keeps retrying its bootstrap peers", "err", err)
		}
	})
	n.attest.start()
	if err := n.startRumors(); err != nil {
		return err
	}
	if n.payments != nil {
		n.h.SetStreamHandler(ChannelProtocol, n.life.handler(n.payments.handle))
		n.life.Go(n.payments.watchChannels)
	}
	switch n.cfg.Role {
	case RoleProxy:
		n.workers.startAdmissions()
		return n.startProxy()
	case RoleWorker:
		return n.startWorker()
	default:
		return n.startClient()
	}
}

// Close stops the node: the loops, gossip and the DHT. It returns once every goroutine, timer
// and stream handler the node started has ended (streams still open are reset). It does not
// close the host, which belongs to the caller, nor the HTTP servers over it (package api),
// which close first. Only the first call does anything.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		if n.worker != nil && n.topic != nil {
			n.worker.publishLeaving()
		}
		n.cancel()
		for _, p := range []protocol.ID{InferProtocol, AdvertProtocol, AttestProtocol, ChannelProtocol, NetworkProtocol} {
			n.h.RemoveStreamHandler(p)
		}
		n.life.close()
		// Gossip needs no separate teardown: pubsub lives on n.ctx, cancelled above.
		n.closeErr = n.disc.Close()
	})
	return n.closeErr
}

// Models summarises the models offered by the workers this node knows of.
func (n *Node) Models() []routing.ModelSummary {
	n.workers.mu.Lock()
	defer n.workers.mu.Unlock()
	return n.workers.table.Models()
}
