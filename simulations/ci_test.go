package simulations

import (
	"crypto/ed25519"
	"reflect"
	"slices"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// The small scenario CI runs (scenarios/ci.toml: about 40 nodes, 3 virtual minutes, a proxy
// crash and its restart): the simulator cannot rot without this failing.
func TestSmallNetwork(t *testing.T) {
	sc, err := Load("scenarios/ci.toml")
	if err != nil {
		t.Fatal(err)
	}
	r := runOnce(t, sc, sc.Seed)
	f := r.Scalars
	t.Logf("figures: %v", f)
	planned := len(makePlan(sc, sc.Seed).calls)
	if int(f["requests"]) != planned {
		t.Errorf("%v requests ended, %d were sent", f["requests"], planned)
	}
	if f["success_rate"] < 0.999 {
		t.Errorf("success rate %v under steady load, want at least 99.9%%", f["success_rate"])
	}
	if f["wrong_rate"] != 0 || f["adversary_share"] != 0 {
		t.Errorf("honest workers gave wrong answers: %v wrong, %v by adversaries", f["wrong_rate"], f["adversary_share"])
	}
	// Every client held the crashed proxy: each was served again within the bound (the
	// stall timeout, 15 s, plus the failover to another proxy).
	if rec, ok := f["recovery_max_s"]; !ok || rec > 30 {
		t.Errorf("clients recovered from the proxy crash after %v s (measured: %v), want within 30 s", rec, ok)
	}
	if f["client_paid_nanoton"] == 0 || f["chain_ops"] == 0 {
		t.Errorf("nobody paid: %v nanoTON, %v chain operations", f["client_paid_nanoton"], f["chain_ops"])
	}
	if count(r, "latency_s") == 0 || count(r, "ttft_s") == 0 || count(r, "gossip_messages") == 0 || count(r, "worker_running") == 0 {
		t.Error("a metric the plots need is missing")
	}
}

// One seed, one timeline: the same identities, adversaries, churn and traffic; another seed,
// others; and scenarios that differ only in their adversaries see the same traffic.
func TestSameSeedSameTimeline(t *testing.T) {
	a, err := Load("scenarios/steady.toml")
	if err != nil {
		t.Fatal(err)
	}
	b, err := Load("scenarios/garbage10.toml")
	if err != nil {
		t.Fatal(err)
	}
	p1, p2 := makePlan(a, 7), makePlan(a, 7)
	if !reflect.DeepEqual(p1, p2) {
		t.Fatal("one seed gave two plans")
	}
	if id(t, p1.workers[0]) != id(t, p2.workers[0]) {
		t.Fatal("one seed gave two identities")
	}
	p3 := makePlan(a, 8)
	if id(t, p3.workers[0]) == id(t, p1.workers[0]) || reflect.DeepEqual(p3.calls, p1.calls) {
		t.Fatal("another seed gave the same identities or traffic")
	}
	g := makePlan(b, 7)
	if !reflect.DeepEqual(g.calls, p1.calls) {
		t.Error("adding adversaries changed the traffic")
	}
	bad := slices.IndexFunc(g.workers, func(s spec) bool { return s.class == Garbage })
	if n := len(slices.DeleteFunc(slices.Clone(g.workers), func(s spec) bool { return s.class != Garbage })); n != 8 || bad < 0 {
		t.Errorf("%d garbage workers of 80, want 8 (10%%)", n)
	}
}

func id(t *testing.T, sp spec) peer.ID {
	t.Helper()
	k, err := crypto.UnmarshalEd25519PrivateKey(ed25519.NewKeyFromSeed(sp.keySeed[:]))
	if err != nil {
		t.Fatal(err)
	}
	p, err := peer.IDFromPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
