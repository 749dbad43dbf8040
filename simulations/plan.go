package simulations

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/cocoon-mesh/cocoon/node"
)

// A plan is a run's whole timeline, drawn from the seed before anything starts: who is in the
// network and where, who misbehaves, who joins, leaves or crashes and when, and every request.
// Three streams of the seed draw the members, the churn and the traffic apart, so scenarios
// that differ only in their adversaries see the same traffic.

// plan is a run's timeline.
type plan struct {
	proxies, workers, clients []spec
	events                    []event // joins, leaves and crashes, in time order
	calls                     []call
}

// event is one change to the network at a time.
type event struct {
	at   time.Duration
	what eventKind
	who  spec    // join: who joins
	pick float64 // leave, crash: which of those up (a share in [0, 1))
}

type eventKind int

const (
	joinEvent eventKind = iota
	leaveEvent
	crashEvent
)

// makePlan draws sc's timeline from seed.
func makePlan(sc *Scenario, seed uint64) *plan {
	nodes := rand.New(rand.NewPCG(seed, 1))
	p := &plan{}
	mk := func(role node.Role, name string) spec {
		sp := spec{name: name, role: role, class: honest, region: pickRegion(sc.Regions, nodes.Float64())}
		for i := range sp.keySeed {
			sp.keySeed[i] = byte(nodes.Uint32())
		}
		if role == node.RoleWorker {
			sp.model = pickModel(sc.Traffic.Models, nodes.Float64())
		}
		return sp
	}
	for i := range sc.Nodes.Proxies {
		p.proxies = append(p.proxies, mk(node.RoleProxy, fmt.Sprintf("proxy%d", i+1)))
	}
	for i := range sc.Nodes.Workers {
		p.workers = append(p.workers, mk(node.RoleWorker, fmt.Sprintf("worker%d", i+1)))
	}
	for i := range sc.Nodes.Clients {
		p.clients = append(p.clients, mk(node.RoleClient, fmt.Sprintf("client%d", i+1)))
	}
	assign(sc, p, nodes)
	// Workers and clients start at times drawn over start_spread, in that order (proxies at once).
	for _, set := range [][]spec{p.workers, p.clients} {
		for i := range set {
			set[i].startAt = time.Duration(nodes.Float64() * float64(sc.StartSpread.Duration))
		}
	}
	p.events = planChurn(sc, rand.New(rand.NewPCG(seed, 2)), mk)
	p.calls = planTraffic(sc, rand.New(rand.NewPCG(seed, 3)), len(p.clients))
	return p
}

// assign makes the adversaries: each a share of the workers (or clients), drawn at random.
func assign(sc *Scenario, p *plan, rng *rand.Rand) {
	workers, clients := rng.Perm(len(p.workers)), rng.Perm(len(p.clients))
	for i := range sc.Adversaries {
		a := &sc.Adversaries[i]
		switch a.Behaviour {
		case Sybil:
			continue // they join later (planChurn)
		case WithholdPayment:
			n := share(a.Fraction, len(p.clients))
			for _, k := range clients[:n] {
				p.clients[k].class, p.clients[k].adv = a.Behaviour, a
			}
			clients = clients[n:]
		default:
			n := min(share(a.Fraction, len(p.workers)), len(workers))
			for _, k := range workers[:n] {
				p.workers[k].class, p.workers[k].adv = a.Behaviour, a
			}
			workers = workers[n:]
		}
	}
}

// share is fraction of n, rounded, at least one when fraction is above 0.
func share(fraction float64, n int) int {
	return max(1, int(math.Round(fraction*float64(n))))
}

// planChurn draws the joins, leaves and crashes.
func planChurn(sc *Scenario, rng *rand.Rand, mk func(node.Role, string) spec) []event {
	var out []event
	c := sc.Churn
	poisson := func(perMin float64, f func(at time.Duration)) {
		if perMin <= 0 {
			return
		}
		mean := float64(time.Minute) / perMin
		for at := sc.Warmup.Duration + time.Duration(rng.ExpFloat64()*mean); at < sc.Duration.Duration; at += time.Duration(rng.ExpFloat64() * mean) {
			f(at)
		}
	}
	joined := 0
	poisson(c.WorkerJoinsPerMin, func(at time.Duration) {
		joined++
		out = append(out, event{at: at, what: joinEvent, who: mk(node.RoleWorker, fmt.Sprintf("joiner%d", joined))})
	})
	poisson(c.WorkerLeavesPerMin, func(at time.Duration) {
		out = append(out, event{at: at, what: leaveEvent, pick: rng.Float64()})
	})
	for _, at := range c.ProxyCrashes {
		out = append(out, event{at: at.Duration, what: crashEvent, pick: rng.Float64()})
	}
	for i, at := range c.ProxyJoins {
		out = append(out, event{at: at.Duration, what: joinEvent, who: mk(node.RoleProxy, fmt.Sprintf("newproxy%d", i+1))})
	}
	for i := range sc.Adversaries {
		a := &sc.Adversaries[i]
		if a.Behaviour != Sybil {
			continue
		}
		at := a.At.Duration
		if at == 0 {
			at = sc.Warmup.Duration
		}
		for k := range share(a.Fraction, sc.Nodes.Workers) {
			sp := mk(node.RoleWorker, fmt.Sprintf("sybil%d", k+1))
			sp.class, sp.adv = Sybil, a
			out = append(out, event{at: at, what: joinEvent, who: sp})
		}
	}
	slices.SortStableFunc(out, func(a, b event) int { return int(a.at - b.at) })
	return out
}

// pickRegion is the region u (in [0, 1)) falls in, by the regions' shares.
func pickRegion(rs []Region, u float64) int {
	for i, r := range rs {
		if u < r.Share {
			return i
		}
		u -= r.Share
	}
	return len(rs) - 1
}
