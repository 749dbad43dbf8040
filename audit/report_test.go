package audit_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cocoon-mesh/cocoon/audit"
	"github.com/cocoon-mesh/cocoon/reputation"
)

// proofOf is a proof report of rec, by the proxy that signed it.
func proofOf(t testing.TB, seed uint64) (*audit.Report, peer.ID) {
	rec, proxyKey := signedCanary(t, seed, true)
	c, err := rec.Open()
	if err != nil {
		t.Fatal(err)
	}
	r := &audit.Report{Subject: c.Worker, Kind: reputation.AuditFailed, At: time.UnixMilli(1_800_000_000_000), Record: rec.Marshal()}
	if err := r.Sign(proxyKey); err != nil {
		t.Fatal(err)
	}
	return r, c.Proxy
}

// A report decodes to what was signed and checks; altered, re-attributed or mismatched, it
// is refused.
func TestReport(t *testing.T) {
	r, proxy := proofOf(t, 1)
	got, err := audit.UnmarshalReport(r.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	reporter, claim, err := got.Check()
	if err != nil || reporter != proxy || claim == nil || claim.Worker != r.Subject {
		t.Fatalf("proof: %v %v %v", reporter, claim, err)
	}
	complaint := &audit.Report{Subject: r.Subject, Kind: reputation.Stalled, At: r.At}
	if err := complaint.Sign(keyPair(t)); err != nil {
		t.Fatal(err)
	}
	if c, err := audit.UnmarshalReport(complaint.Marshal()); err != nil {
		t.Fatal(err)
	} else if _, claim, err := c.Check(); err != nil || claim != nil {
		t.Fatalf("complaint: %v %v", claim, err)
	}

	forged := *r
	forged.Sig = slices.Clone(r.Sig)
	forged.Sig[3] ^= 1
	other, _ := proofOf(t, 1)
	stolen := *r // another proxy's record, re-signed as one's own
	stolen.Record = other.Record
	stolen.Subject = other.Subject
	stolen.Sign(keyPair(t))
	wrongSubject := *r
	wrongSubject.Subject = complaint.Subject + "x"
	wrongSubject.Sign(keyPair(t))
	for name, bad := range map[string]*audit.Report{"forged": &forged, "stolen": &stolen, "subject": &wrongSubject} {
		if _, _, err := bad.Check(); !errors.Is(err, audit.ErrEvidence) {
			t.Errorf("%s: want audit.ErrEvidence, got %v", name, err)
		}
	}
	for name, bad := range map[string]audit.Report{
		"praise":           {Subject: r.Subject, Kind: reputation.Served, At: r.At},
		"proof, no record": {Subject: r.Subject, Kind: reputation.AuditFailed, At: r.At},
		"complaint, proof": {Subject: r.Subject, Kind: reputation.Stalled, At: r.At, Record: r.Record},
	} {
		bad.Sign(keyPair(t))
		if _, err := audit.UnmarshalReport(bad.Marshal()); !errors.Is(err, audit.ErrMalformed) {
			t.Errorf("%s: want audit.ErrMalformed, got %v", name, err)
		}
	}
}

func FuzzUnmarshalReport(f *testing.F) {
	r, _ := proofOf(f, 1)
	good := r.Marshal()
	f.Add(good)
	f.Add(good[:40])
	f.Add([]byte("cocoon-mesh/reputation-report/v1"))
	f.Fuzz(func(t *testing.T, p []byte) {
		rep, err := audit.UnmarshalReport(p)
		if err != nil {
			if !errors.Is(err, audit.ErrMalformed) {
				t.Fatalf("refusal does not wrap ErrMalformed: %v", err)
			}
			return
		}
		if _, _, err := rep.Check(); err != nil && !errors.Is(err, audit.ErrEvidence) && !errors.Is(err, audit.ErrMalformed) {
			t.Fatalf("Check's refusal wraps neither audit.ErrEvidence nor ErrMalformed: %v", err)
		}
	})
}
