package simulations

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"math/rand/v2"
	"net"
	"time"

	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"

	"github.com/cocoon-mesh/cocoon/discovery"
	"github.com/cocoon-mesh/cocoon/node"
	"github.com/cocoon-mesh/cocoon/node/backend"
	"github.com/cocoon-mesh/cocoon/tee"
	"github.com/cocoon-mesh/cocoon/ton"
	"github.com/cocoon-mesh/cocoon/ton/chanstore"
)

// A member is one simulated participant: a real node (node.New, its real protocols, routing,
// sealing, receipts and payments) on a host of the simulated network, with an in-memory
// datastore, a simulated TEE and, for a worker, a simulated GPU.

// honest is the class of a member that does not misbehave.
const honest Behaviour = "honest"

// spec is a member as the plan decides it, before it starts: everything random about it is
// drawn when the plan is made, so that one seed gives one timeline.
type spec struct {
	name    string
	role    node.Role
	class   Behaviour // honest, or the adversary's behaviour
	region  int
	model   string // a worker's
	keySeed [32]byte
	startAt time.Duration // a first member's start, within the scenario's start_spread
	adv     *Adversary    // the adversary it is (nil: honest)
}

// acts is how sp behaves: its class, or what it acts as when it is a sybil.
func (sp spec) acts() Behaviour {
	if sp.class == Sybil {
		return sp.adv.As
	}
	return sp.class
}

// member is a started spec.
type member struct {
	spec
	nd    *node.Node
	h     host.Host
	link  *link
	ds    datastore.Batching // kept over a restart
	gpu   *backend.SimGPU    // workers
	start time.Time
	gone  bool // left or crashed (under sim.mu)
}

// honestSeed is what every honest GPU of a model answers with: one pinned model, one answer.
func honestSeed(model string) uint64 {
	var h uint64 = 1469598103934665603
	for _, b := range []byte(model) {
		h = (h ^ uint64(b)) * 1099511628211
	}
	return h
}

// gpuFor is the simulated GPU of worker sp.
func (s *sim) gpuFor(sp spec) *backend.SimGPU {
	g := s.sc.GPU
	cfg := backend.SimGPUConfig{ModelID: sp.model, Seed: honestSeed(sp.model), MaxActive: g.Capacity,
		TimeToFirstToken: g.TTFT.Duration, PrefillTokensPerSec: g.PrefillTPS, DecodeTokensPerSec: g.DecodeTPS,
		BatchSlowdown: g.BatchSlowdown}
	if cfg.DecodeTokensPerSec == 0 {
		cfg.DecodeTokensPerSec = 50
	}
	switch sp.acts() {
	case Wrong:
		cfg.Seed++ // a cheaper model than the one it names: fluent, and wrong
	case Slow:
		cfg.DecodeTokensPerSec /= sp.adv.Factor
		cfg.TimeToFirstToken = time.Duration(float64(cfg.TimeToFirstToken) * sp.adv.Factor)
	}
	return backend.NewSimGPU(cfg)
}

// faultsFor is how member sp misbehaves in the node's own code (nil: it does not).
func (s *sim) faultsFor(sp spec) *node.Faults {
	a := sp.adv
	switch sp.acts() {
	case Garbage:
		return &node.Faults{Garbage: true}
	case Stall:
		return &node.Faults{StallAfter: a.After}
	case Hang:
		return &node.Faults{Hang: true}
	case CapacityLiar:
		return &node.Faults{ClaimCapacity: uint32(float64(s.sc.GPU.Capacity) * a.Factor)}
	case Slow: // claims what an honest GPU does
		return &node.Faults{ClaimTokensPerSec: uint32(s.honestRate())}
	case PriceRaise:
		return &node.Faults{QuoteFactor: uint64(a.Factor)}
	case WithholdPayment:
		return &node.Faults{WithholdPayment: true}
	case GossipSpam:
		return &node.Faults{SpamAdverts: a.Spam}
	}
	return nil
}

// honestRate is the completion tokens a second an honest GPU writes, full.
func (s *sim) honestRate() float64 {
	rate := s.sc.GPU.DecodeTPS
	if rate == 0 {
		rate = 50
	}
	return rate * float64(s.sc.GPU.Capacity)
}

// configFor is sp's node configuration: the defaults a real node has, on the simulated
// network, with its role.
func (s *sim) configFor(sp spec) node.Config {
	c := s.cfg
	c.Role = sp.role
	c.Bootstrap = s.boot
	if sp.role != node.RoleProxy && !s.sc.AllDHTServers {
		c.DHTMode = discovery.ModeClient
	}
	if sp.role == node.RoleWorker {
		c.MaxActive = s.sc.GPU.Capacity
		for _, m := range s.cfg.Models {
			if m.ID == sp.model {
				c.Models = []node.ModelConfig{m}
			}
		}
	}
	return c
}

// startMember starts sp as a new node, or restarts m (a crashed proxy) on its old address
// and datastore when m is given.
func (s *sim) startMember(ctx context.Context, sp spec, m *member) (*member, error) {
	var ip net.IP
	if m == nil {
		m = &member{spec: sp, ds: dssync.MutexWrap(datastore.NewMapDatastore())}
	} else {
		ip = m.link.ip
		m = &member{spec: sp, ds: m.ds}
	}
	key, err := crypto.UnmarshalEd25519PrivateKey(ed25519.NewKeyFromSeed(sp.keySeed[:]))
	if err != nil {
		return nil, err
	}
	if m.h, m.link, err = s.w.newHost(key, sp.region, ip); err != nil {
		return nil, fmt.Errorf("%s: %w", sp.name, err)
	}
	deps := node.Deps{Host: m.h, Logger: s.log.With("node", sp.name), Faults: s.faultsFor(sp), Tracer: s.tracer,
		Rand: rand.New(rand.NewPCG(uint64(sp.keySeed[0])<<8|uint64(sp.keySeed[1]), s.seed)),
		TEE:  tee.NewSimulated(ed25519.NewKeyFromSeed(sp.keySeed[:])), Verifier: s.verifier}
	switch sp.role {
	case node.RoleWorker:
		m.gpu = s.gpuFor(sp)
		deps.Backend = m.gpu
	case node.RoleProxy:
		deps.Reference = newReference() // proxies audit their workers
	}
	if s.ledger != nil {
		if err := s.fund(ctx, m, &deps); err != nil {
			return nil, fmt.Errorf("%s: %w", sp.name, err)
		}
	}
	if m.nd, err = node.New(s.configFor(sp), deps); err != nil {
		m.h.Close()
		return nil, fmt.Errorf("%s: %w", sp.name, err)
	}
	if err := m.nd.Start(); err != nil {
		m.nd.Close()
		m.h.Close()
		return nil, fmt.Errorf("%s: %w", sp.name, err)
	}
	m.start = time.Now()
	s.add(m)
	return m, nil
}

// fund gives m a wallet on the ledger (funded from its faucet the first time) and a channel
// store.
func (s *sim) fund(ctx context.Context, m *member, deps *node.Deps) error {
	_, err := m.ds.Get(ctx, datastore.NewKey("/sim/funded"))
	first := err != nil
	wk, err := ton.LoadOrCreateWalletKey(ctx, m.ds)
	if err != nil {
		return err
	}
	if deps.Wallet, err = ton.WalletAddress(wk.Public().(ed25519.PublicKey), false); err != nil {
		return err
	}
	if first {
		if err := s.ledger.Fund(ctx, deps.Wallet, fundsEach); err != nil {
			return err
		}
		if err := m.ds.Put(ctx, datastore.NewKey("/sim/funded"), []byte{1}); err != nil {
			return err
		}
	}
	deps.Ledger, deps.Channels = s.chain, chanstore.New(m.ds)
	return nil
}

// fundsEach is what each wallet gets from the ledger's faucet.
const fundsEach = 1000 * node.Nano

// stop ends m: gracefully (a worker's leaving advert goes out), or as a crash, with its link
// cut first so that nothing it says on the way down arrives.
func (s *sim) stop(m *member, crash bool) {
	s.mu.Lock()
	if m.gone {
		s.mu.Unlock()
		return
	}
	m.gone = true
	s.mu.Unlock()
	if crash {
		m.link.cut()
	}
	m.nd.Close()
	m.h.Close()
}
