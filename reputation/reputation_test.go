package reputation

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Whatever the history, a good event never lowers a score, a fault never raises it, and the
// score stays inside (0, 1) (AuditFailed, which bans, is left to the scripts); an event stamped
// before the peer's last counts as of the last.
func TestEvidenceMovesScoresOneWay(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	b := New(Config{})
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := peer.ID("w")
	for i := range 5000 {
		now = now.Add(time.Duration(r.IntN(3600)) * time.Second)
		ev := Event{Kind: Kind(r.IntN(int(numKinds))), Paid: uint64(r.IntN(200_000))}
		if ev.Kind == AuditFailed {
			continue
		}
		before := b.Score(now, p)
		b.Record(now, p, ev)
		after := b.Score(now, p)
		good := ev.Kind == Served || ev.Kind == AuditPassed
		switch {
		case after <= 0 || after >= 1:
			t.Fatalf("step %d: score %v outside (0, 1)", i, after)
		case good && after < before-1e-12:
			t.Fatalf("step %d: %s lowered the score %v -> %v", i, ev.Kind, before, after)
		case !good && after > before+1e-12:
			t.Fatalf("step %d: %s raised the score %v -> %v", i, ev.Kind, before, after)
		}
	}
	late := b.Score(now, p)
	b.Record(now.Add(-time.Hour), p, Event{Kind: Stalled})
	if b.Score(now, p) >= late {
		t.Error("a fault stamped in the past was not counted")
	}
	if _, err := ParseKind("nonsense"); err == nil {
		t.Error("an unknown kind parsed")
	}
	for k := range numKinds {
		if got, err := ParseKind(k.String()); err != nil || got != k {
			t.Errorf("%v does not round-trip: %v %v", k, got, err)
		}
	}
}
