package simulations

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"

	"github.com/cocoon-mesh/cocoon/node"
	"github.com/cocoon-mesh/cocoon/node/localnet"
	"github.com/cocoon-mesh/cocoon/simulations/report"
	"github.com/cocoon-mesh/cocoon/tee"
	"github.com/cocoon-mesh/cocoon/ton/ledger"
)

// Options are how a run is made, beside its scenario.
type Options struct {
	Seed   uint64       // overrides the scenario's seed when not 0
	Logger *slog.Logger // the nodes' logs (default: none)
	// Progress, if set, hears of the run's phases.
	Progress func(msg string)
}

// settleWait is how long a run waits after its last request for the payments that settle
// it, before it counts what the honest were not paid.
const settleWait = 15 * time.Second

// sim is one run of a scenario.
type sim struct {
	sc       *Scenario
	seed     uint64
	log      *slog.Logger
	progress func(string)
	w        *world
	ledger   *ledger.Embedded // nil: payments off
	chain    *chainCount      // the ledger as every node sees it, counting
	gossip   gossipCount
	tracer   *node.Tracer
	verifier *tee.Verifier
	rec      *recorder
	traces   traceBook
	tally    tally
	cfg      node.Config // every node's, before its role
	boot     []string
	inflight atomic.Int64
	peak     atomic.Uint64 // heap in use, bytes

	mu      sync.Mutex
	members []*member
	byPeer  map[string]*member
	crashes []*crashWatch
}

// Run runs sc in the calling testing/synctest bubble, whose clock is the run's (time moves
// only while every goroutine of the run waits), and returns what it measured. Inside the
// bubble there is no wall clock: the caller times the run (report.Run.Wall).
func Run(sc *Scenario, o Options) (report.Run, error) {
	s := newSim(sc, o)
	s.progress(fmt.Sprintf("scenario %s, seed %d: %d proxies, %d workers, %d clients, %s virtual", sc.Name, s.seed,
		sc.Nodes.Proxies, sc.Nodes.Workers, sc.Nodes.Clients, sc.Duration.Duration))
	p := makePlan(sc, s.seed)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	defer s.close()
	if err := s.startAll(ctx, p); err != nil {
		return report.Run{}, err
	}
	s.progress(fmt.Sprintf("%d nodes up after %s virtual", len(s.members), time.Since(s.rec.start).Round(time.Millisecond)))
	var wg sync.WaitGroup
	stopSampling := s.sampleEvery(sc.SampleEvery.Duration)
	stopTelling := s.tellEvery(10*time.Second, wallNow())
	defer stopTelling()
	wg.Go(func() { s.runEvents(ctx, p.events) })
	s.runTraffic(ctx, p)
	wg.Wait()
	time.Sleep(settleWait) // the last answers' payments settle: what is owed after is lost
	stopSampling()
	s.progress(fmt.Sprintf("traffic done after %s virtual", time.Since(s.rec.start).Round(time.Second)))
	r := report.Run{Scenario: sc.Name, Seed: s.seed, Virtual: time.Since(s.rec.start), Samples: s.rec.samples()}
	s.mu.Lock()
	r.Nodes = len(s.members)
	s.mu.Unlock()
	r.Scalars = s.scalars(ctx)
	s.close()
	r.PeakHeap = s.peak.Load()
	return r, nil
}

func newSim(sc *Scenario, o Options) *sim {
	s := &sim{sc: sc, seed: sc.Seed, log: o.Logger, progress: o.Progress, byPeer: map[string]*member{},
		rec: &recorder{start: time.Now()}, verifier: tee.NewVerifier(tee.Policy{AllowSimulated: true}, nil)}
	if o.Seed != 0 {
		s.seed = o.Seed
	}
	if s.log == nil {
		s.log = discardLogger()
	}
	if s.progress == nil {
		s.progress = func(string) {}
	}
	s.traces.m = map[string]*reqTrace{}
	s.tracer = &node.Tracer{Request: s.traced, Attempt: s.attempted, Gossip: &s.gossip}
	s.cfg = simConfig(sc)
	return s
}

// simConfig is every node's configuration: a real node's defaults, on a network of its own.
func simConfig(sc *Scenario) node.Config {
	c := node.DefaultConfig()
	c.Network = "cocoon-sim"
	c.APIAddr = ""
	// A request waits at most this long: a run ends by draining what is under way.
	c.RequestTimeout = 2 * time.Minute
	for _, m := range sc.Traffic.Models {
		c.Models = append(c.Models, node.ModelConfig{ID: m.ID, Prices: localnet.DevPrices})
	}
	return c
}

// startAll starts the ledger and the plan's first members: proxies, then workers and clients.
func (s *sim) startAll(ctx context.Context, p *plan) error {
	s.w = newWorld(s.sc)
	if s.sc.Payments {
		var err error
		if s.ledger, err = ledger.NewEmbedded(ctx, dssync.MutexWrap(datastore.NewMapDatastore()), ledger.Options{}); err != nil {
			return err
		}
		s.chain = &chainCount{Ledger: s.ledger, ops: map[string]int{}}
	}
	for i, sp := range p.proxies {
		m, err := s.startMember(ctx, sp, nil)
		if err != nil {
			return err
		}
		if i < 2 { // the rest bootstrap from the first two
			s.boot = append(s.boot, m.nd.Status().Addrs[0])
		}
	}
	rest := slices.Concat(p.workers, p.clients)
	slices.SortStableFunc(rest, func(a, b spec) int { return cmp.Compare(a.startAt, b.startAt) })
	for _, sp := range rest {
		if d := sp.startAt - time.Since(s.rec.start); d > 0 {
			time.Sleep(d)
		}
		if _, err := s.startMember(ctx, sp, nil); err != nil {
			return err
		}
	}
	return nil
}

// add makes m known by its peer ID.
func (s *sim) add(m *member) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.members = append(s.members, m)
	s.byPeer[m.h.ID().String()] = m
}

// up returns the members of role that are up, in the order they started.
func (s *sim) up(role node.Role) []*member {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*member
	for _, m := range s.members {
		if m.role == role && !m.gone {
			out = append(out, m)
		}
	}
	return out
}

// classOf is the class of the worker with peer ID id ("none" when there is none).
func (s *sim) classOf(id string) Behaviour {
	if id == "" {
		return "none"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := s.byPeer[id]; m != nil {
		return m.class
	}
	return "unknown"
}

// runTraffic sends every planned request at its time and waits for the last to end.
func (s *sim) runTraffic(ctx context.Context, p *plan) {
	clients := s.up(node.RoleClient)
	var wg sync.WaitGroup
	for _, c := range p.calls {
		if d := c.at - time.Since(s.rec.start); d > 0 {
			time.Sleep(d)
		}
		wg.Go(func() { s.send(ctx, c, clients[c.client]) })
	}
	if d := s.sc.Duration.Duration - time.Since(s.rec.start); d > 0 {
		time.Sleep(d)
	}
	wg.Wait()
}

// runEvents makes the plan's joins, leaves and crashes happen at their times.
func (s *sim) runEvents(ctx context.Context, evs []event) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, ev := range evs {
		if d := ev.at - time.Since(s.rec.start); d > 0 {
			time.Sleep(d)
		}
		switch ev.what {
		case joinEvent:
			wg.Go(func() { s.join(ctx, ev.who) })
		case leaveEvent:
			if ws := s.up(node.RoleWorker); len(ws) > 1 {
				m := ws[int(ev.pick*float64(len(ws)))]
				s.progress(fmt.Sprintf("%s leaves", m.name))
				wg.Go(func() { s.stop(m, false) })
			}
		case crashEvent:
			if ps := s.up(node.RoleProxy); len(ps) > 0 {
				wg.Go(func() { s.crash(ctx, ps[int(ev.pick*float64(len(ps)))]) })
			}
		}
	}
}

// close stops every member and the network. Safe to call twice.
func (s *sim) close() {
	s.mu.Lock()
	ms := slices.Clone(s.members)
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, m := range ms {
		wg.Go(func() { s.stop(m, false) })
	}
	wg.Wait()
	if s.w != nil {
		s.w.close()
		s.w = nil
	}
}

// sampleEvery records the periodic samples every d until the returned function is called.
func (s *sim) sampleEvery(d time.Duration) (stop func()) {
	done, ended := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(ended)
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			s.sample()
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(done); <-ended }
}

// tellEvery reports the run's progress every d of virtual time, with the wall time since
// wallStart, until the returned function is called.
func (s *sim) tellEvery(d time.Duration, wallStart time.Time) (stop func()) {
	done := make(chan struct{})
	var once sync.Once
	go func() {
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				total := s.tally.done()
				s.progress(fmt.Sprintf("%s virtual, %s wall: %d requests done, %d in flight", time.Since(s.rec.start).Round(time.Second),
					wallNow().Sub(wallStart).Round(time.Second), total, s.inflight.Load()))
			}
		}
	}()
	return func() { once.Do(func() { close(done) }) }
}

// sample records the network's state now.
func (s *sim) sample() {
	running, count := map[Behaviour]int{}, map[Behaviour]int{}
	for _, m := range s.up(node.RoleWorker) {
		running[m.class] += m.gpu.Running()
		count[m.class]++
	}
	for _, c := range sortedKeys(count) {
		s.rec.add("worker_running", float64(running[c])/float64(count[c]), "class", string(c))
	}
	s.rec.add("proxy_inflight", float64(s.inflight.Load()))
	for _, role := range []node.Role{node.RoleProxy, node.RoleWorker, node.RoleClient} {
		s.rec.add("nodes", float64(len(s.up(role))), "role", string(role))
	}
	paid, billed := s.tally.paid()
	s.rec.add("paid_nanoton", float64(paid), "role", "client")
	s.rec.add("paid_nanoton", float64(billed), "role", "proxy")
	if s.chain != nil {
		ops, _ := s.chain.snapshot()
		for _, op := range sortedKeys(ops) {
			s.rec.add("chain_ops", float64(ops[op]), "op", op)
		}
	}
	s.rec.add("gossip_messages", float64(s.gossip.delivered.Load()), "kind", "delivered")
	s.rec.add("gossip_messages", float64(s.gossip.duplicate.Load()), "kind", "duplicate")
	s.rec.add("gossip_messages", float64(s.gossip.rejected.Load()), "kind", "rejected")
	s.rec.add("gossip_messages", float64(s.gossip.ignored.Load()), "kind", "ignored")
	s.rec.add("gossip_messages", float64(s.gossip.throttled.Load()), "kind", "throttled")
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if ms.HeapInuse > s.peak.Load() {
		s.peak.Store(ms.HeapInuse)
	}
}
