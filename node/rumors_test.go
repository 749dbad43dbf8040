package node

import (
	"context"
	"strings"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cocoon-mesh/cocoon/audit"
	"github.com/cocoon-mesh/cocoon/audit/audittest"
	"github.com/cocoon-mesh/cocoon/reputation"
)

// reportMsg is a report as pubsub hands it to the validator, published by from.
func reportMsg(t *testing.T, rp *audit.Report, key crypto.PrivKey, from peer.ID) *pubsub.Message {
	t.Helper()
	if err := rp.Sign(key); err != nil {
		t.Fatal(err)
	}
	return &pubsub.Message{Message: &pb.Message{From: []byte(from), Data: rp.Marshal()}}
}

// A proxy with the model re-runs a gossiped proof: one of a wrong answer bans the worker here
// too, one of a right answer is slander and is refused; a replay, a stale report or one over
// its reporter's rate is ignored; a forged or misattributed one is refused; a stranger's
// complaint changes nothing here, a pinned partner's counts in full.
func TestReputationReports(t *testing.T) {
	partnerKey := audittest.Key(t)
	partner, _ := peer.IDFromPrivateKey(partnerKey)
	n, clk, logs := gossipNode(t, RoleProxy, func(c *Config) { c.Reputation.Pin = []peer.ID{partner} })
	n.audits = newAuditor(n, audittest.GPU(1))
	r := &rumors{n: n, seen: map[[32]byte]time.Time{}, rate: map[peer.ID]*tokenBucket{}}
	now := clk.now()
	proof := func(seed uint64) (*audit.Report, crypto.PrivKey, peer.ID) {
		rec, key := audittest.Canary(t, audittest.GPU(seed), true)
		c, err := rec.Open()
		if err != nil {
			t.Fatal(err)
		}
		return &audit.Report{Subject: c.Worker, Kind: reputation.AuditFailed, At: now, Record: rec.Marshal()}, key, c.Proxy
	}
	judge := func(m *pubsub.Message) pubsub.ValidationResult {
		res := r.validate(context.Background(), peer.ID(m.From), m)
		if ru, ok := m.ValidatorData.(*rumor); ok && res == pubsub.ValidationAccept {
			r.apply(ru)
		}
		return res
	}
	score := func(p peer.ID) float64 {
		n.workers.mu.Lock()
		defer n.workers.mu.Unlock()
		return n.workers.rep.Score(clk.now(), p)
	}

	honest, hk, hp := proof(1)
	if got := judge(reportMsg(t, honest, hk, hp)); got != pubsub.ValidationReject || !strings.Contains(logs.String(), "slander") {
		t.Fatalf("a proof of a right answer: %v, want reject as slander\n%s", got, logs)
	}
	if s := score(honest.Subject); s != 0.5 {
		t.Fatalf("the slandered worker scores %.3f here", s)
	}
	wrong, wk, wp := proof(2)
	m := reportMsg(t, wrong, wk, wp)
	if got := judge(m); got != pubsub.ValidationAccept || score(wrong.Subject) != 0 {
		t.Fatalf("a proof of a wrong answer: %v, score %.3f; want accepted and banned", got, score(wrong.Subject))
	}
	if got := judge(&pubsub.Message{Message: &pb.Message{From: m.From, Data: m.Data}}); got != pubsub.ValidationIgnore {
		t.Fatalf("a replayed proof: %v, want ignore", got)
	}
	forged := reportMsg(t, wrong, wk, wp)
	forged.Data[len(forged.Data)-3] ^= 1
	if got := judge(forged); got != pubsub.ValidationReject {
		t.Fatalf("a forged proof: %v", got)
	}
	if got := judge(reportMsg(t, &audit.Report{Subject: hp, Kind: reputation.Stalled, At: now}, wk, partner)); got != pubsub.ValidationReject {
		t.Fatalf("a report published by another than its reporter: %v", got)
	}
	if got := judge(reportMsg(t, &audit.Report{Subject: hp, Kind: reputation.Stalled, At: now.Add(-time.Hour)}, wk, wp)); got != pubsub.ValidationIgnore {
		t.Fatalf("a stale report: %v", got)
	}

	// Complaints: a stranger's weigh nothing here; past its rate, they are not even forwarded.
	subject, strangerKey := honest.Subject, audittest.Key(t)
	stranger, _ := peer.IDFromPrivateKey(strangerKey)
	for i := range reportBurst + 1 {
		got := judge(reportMsg(t, &audit.Report{Subject: subject, Kind: reputation.Stalled, At: now.Add(time.Duration(i) * time.Millisecond)}, strangerKey, stranger))
		if want := map[bool]pubsub.ValidationResult{true: pubsub.ValidationAccept, false: pubsub.ValidationIgnore}[i < reportBurst]; got != want {
			t.Fatalf("stranger's complaint %d: %v, want %v", i, got, want)
		}
	}
	if s := score(subject); s != 0.5 {
		t.Fatalf("a stranger's complaints moved the score to %.3f", s)
	}
	if got := judge(reportMsg(t, &audit.Report{Subject: subject, Kind: reputation.Stalled, At: now}, partnerKey, partner)); got != pubsub.ValidationAccept || score(subject) >= 0.5 {
		t.Fatalf("a pinned partner's complaint: %v, score %.3f; want it applied", got, score(subject))
	}
	if st := r.status(); st.Rejected != 3 || st.Ignored != 3 || st.Applied != 2 {
		t.Fatalf("counts %+v", st)
	}
}
