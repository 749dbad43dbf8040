package simulations

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/cocoon-mesh/cocoon/node"
)

// What happens to the network while it runs (joins, leaves, crashes), and what the nodes'
// tracers tell of each request.

// join starts sp mid-run; a new proxy's discovery is timed.
func (s *sim) join(ctx context.Context, sp spec) {
	m, err := s.startMember(ctx, sp, nil)
	if err != nil {
		s.progress(fmt.Sprintf("%s did not start: %v", sp.name, err))
		return
	}
	if sp.role == node.RoleProxy {
		s.timeDiscovery(ctx, m)
	}
}

// timeDiscovery records how long new proxy m took to route to half of the workers up: it
// learns them from their adverts. (Clients and workers keep Config.MinProxies proxies and look
// for another only when one of theirs goes away: the proxy crash scenario times that.)
func (s *sim) timeDiscovery(ctx context.Context, m *member) {
	for range 600 {
		time.Sleep(time.Second)
		if ctx.Err() != nil || m.gone {
			return
		}
		if len(m.nd.Status().Workers) >= (len(s.up(node.RoleWorker))+1)/2 {
			s.rec.add("proxy_discovery_s", time.Since(m.start).Seconds(), "proxy", m.name, "by", "routed")
			return
		}
	}
}

// crashWatch is a proxy crash whose clients have not all been served again yet.
type crashWatch struct {
	at      time.Time
	waiting map[*member]bool // clients that held the proxy, not yet served since
	worst   time.Duration
}

// crash kills proxy m without a word, and restarts it later if the scenario says so.
func (s *sim) crash(ctx context.Context, m *member) {
	w := &crashWatch{at: time.Now(), waiting: map[*member]bool{}}
	for _, c := range s.up(node.RoleClient) {
		if c.h.Network().Connectedness(m.h.ID()) == network.Connected {
			w.waiting[c] = true
		}
	}
	s.progress(fmt.Sprintf("%s crashes (%d clients held it)", m.name, len(w.waiting)))
	s.mu.Lock()
	if len(w.waiting) > 0 {
		s.crashes = append(s.crashes, w)
	}
	s.mu.Unlock()
	s.stop(m, true)
	if d := s.sc.Churn.ProxyRestart.Duration; d > 0 {
		time.Sleep(d)
		if ctx.Err() == nil {
			if _, err := s.startMember(ctx, m.spec, m); err != nil {
				s.progress(fmt.Sprintf("%s did not restart: %v", m.name, err))
			}
		}
	}
}

// recovered notes that client cl was served a request it sent at sent: a crash it was
// waiting out is over for it once a request sent after the crash is served.
func (s *sim) recovered(cl *member, sent time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := 0; i < len(s.crashes); i++ {
		w := s.crashes[i]
		if !w.waiting[cl] || sent.Before(w.at) {
			continue
		}
		delete(w.waiting, cl)
		w.worst = max(w.worst, time.Since(w.at))
		if len(w.waiting) == 0 {
			s.rec.add("recovery_s", w.worst.Seconds(), "event", "proxy_crash")
			s.crashes = slices.Delete(s.crashes, i, i+1)
			i--
		}
	}
}

// reqTrace is what the tracers told of one request.
type reqTrace struct {
	ttft      time.Duration // the client's
	lastTried string        // the last worker a proxy tried it on
}

// traceBook holds the tracers' word on each request until the request's sender takes it.
type traceBook struct {
	mu sync.Mutex
	m  map[string]*reqTrace
}

func (b *traceBook) with(id string, f func(*reqTrace)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	t := b.m[id]
	if t == nil {
		t = &reqTrace{}
		b.m[id] = t
	}
	f(t)
}

// take returns and forgets what was told of request id.
func (b *traceBook) take(id string) reqTrace {
	b.mu.Lock()
	defer b.mu.Unlock()
	t := b.m[id]
	delete(b.m, id)
	if t == nil {
		return reqTrace{}
	}
	return *t
}

// traced is every node's Tracer.Request.
func (s *sim) traced(r node.RequestTrace) {
	switch r.Role {
	case node.RoleClient:
		s.traces.with(r.ID, func(t *reqTrace) { t.ttft = r.TTFT })
	case node.RoleWorker:
		s.tally.billed(r.Cost)
	}
}

// attempted is every proxy's Tracer.Attempt.
func (s *sim) attempted(a node.AttemptTrace) {
	s.traces.with(a.ID, func(t *reqTrace) { t.lastTried = a.Worker })
	o := "ok"
	if a.Err != nil {
		o = "failed"
	}
	s.rec.add("attempt_s", a.Latency.Seconds(), "class", string(s.classOf(a.Worker)), "outcome", o)
}

// tally counts the requests' ends for the run's headline figures.
type tally struct {
	mu        sync.Mutex
	outcomes  map[outcome]int
	byClass   map[Behaviour]int // answers (right or wrong) by the class of who answered
	failures  map[string]int    // by wire code
	paidTotal uint64            // what clients paid, nanoTON
	paidWrong uint64            // of it, for wrong answers
	billedSum uint64            // what workers billed proxies
}

func (t *tally) request(o outcome, class Behaviour, cost uint64, code string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.outcomes == nil {
		t.outcomes, t.byClass, t.failures = map[outcome]int{}, map[Behaviour]int{}, map[string]int{}
	}
	t.outcomes[o]++
	t.paidTotal += cost
	switch o {
	case failed:
		t.failures[code]++
	case wrong:
		t.paidWrong += cost
		t.byClass[class]++
	default:
		t.byClass[class]++
	}
}

func (t *tally) billed(v uint64) {
	t.mu.Lock()
	t.billedSum += v
	t.mu.Unlock()
}

// done is the number of requests that ended.
func (t *tally) done() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, v := range t.outcomes {
		n += v
	}
	return n
}

// paid is what clients paid and workers billed so far.
func (t *tally) paid() (client, worker uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.paidTotal, t.billedSum
}

// sortedKeys are m's keys in order.
func sortedKeys[K cmp.Ordered, V any](m map[K]V) []K { return slices.Sorted(maps.Keys(m)) }
