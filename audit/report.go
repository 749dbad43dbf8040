package audit

import (
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cocoon-mesh/cocoon/internal/fields"
	"github.com/cocoon-mesh/cocoon/reputation"
)

// A Report is what nodes gossip about a peer: evidence, not scores. A proof (Kind
// audit-failed, with the evidence Record) acts on every node that re-checks it; a complaint
// (any other kind, no record) is the reporter's word, which each node weighs by its own trust
// in the reporter.

// MaxReport bounds an encoded report: a proof too large for it is kept, not gossiped.
const MaxReport = 64 << 10

const reportMagic = "cocoon-mesh/reputation-report/v1"

// Report is one signed report about Subject.
type Report struct {
	Subject  peer.ID
	Kind     reputation.Kind
	At       time.Time
	Record   []byte // the evidence record proving Kind audit-failed; empty: a complaint
	Reporter []byte // the reporter's libp2p public key, marshalled
	Sig      []byte // the reporter's signature over everything above
}

func (r *Report) appendBody(b []byte) []byte {
	e := fields.Enc{B: b}
	e.Fixed([]byte(reportMagic))
	e.Str(string(r.Subject))
	e.Str(r.Kind.String())
	e.Uvarint(uint64(r.At.UnixMilli()))
	e.Bytes(r.Record)
	e.Bytes(r.Reporter)
	return e.B
}

// Sign sets Reporter and Sig.
func (r *Report) Sign(key crypto.PrivKey) error {
	pub, err := crypto.MarshalPublicKey(key.GetPublic())
	if err != nil {
		return err
	}
	r.Reporter = pub
	r.Sig, err = key.Sign(r.appendBody(nil))
	return err
}

// Marshal encodes the signed report.
func (r *Report) Marshal() []byte {
	e := fields.Enc{B: r.appendBody(nil)}
	e.Bytes(r.Sig)
	return e.B
}

// UnmarshalReport decodes a report; Check verifies it.
func UnmarshalReport(p []byte) (Report, error) {
	var r Report
	if len(p) > MaxReport {
		return r, fmt.Errorf("%w: a report of %d bytes, over the %d byte limit", ErrMalformed, len(p), MaxReport)
	}
	d := fields.Dec{B: p, Bad: ErrMalformed}
	if string(d.Fixed("magic", len(reportMagic))) != reportMagic && d.Err == nil {
		d.Fail("magic (not a reputation report, or of another version)")
	}
	subject := d.Bytes("subject", 128)
	kind := d.Str("kind", 32)
	r.At = time.UnixMilli(int64(d.Bounded("time", 1<<50)))
	r.Record = d.Bytes("record", MaxReport)
	r.Reporter = d.Bytes("reporter key", 1024)
	r.Sig = d.Bytes("signature", 1024)
	if err := d.Done(); err != nil {
		return Report{}, err
	}
	var err error
	if r.Subject, err = peer.IDFromBytes(subject); err != nil {
		return Report{}, fmt.Errorf("%w: subject: %v", ErrMalformed, err)
	}
	if r.Kind, err = reputation.ParseKind(kind); err != nil {
		return Report{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if r.Kind == reputation.Served || r.Kind == reputation.AuditPassed {
		return Report{}, fmt.Errorf("%w: a report of %s: only faults are reported", ErrMalformed, r.Kind)
	}
	if (r.Kind == reputation.AuditFailed) != (len(r.Record) > 0) {
		return Report{}, fmt.Errorf("%w: an audit failure goes with its evidence record, and only it", ErrMalformed)
	}
	return r, nil
}

// Check verifies the reporter's signature and returns the reporter; for a proof, it also opens
// the evidence record (Record.Open), which must be about Subject and signed by the reporter.
func (r *Report) Check() (reporter peer.ID, proof *Claim, err error) {
	pub, err := crypto.UnmarshalPublicKey(r.Reporter)
	if err != nil {
		return "", nil, fmt.Errorf("%w: reporter key: %v", ErrEvidence, err)
	}
	if ok, err := pub.Verify(r.appendBody(nil), r.Sig); err != nil || !ok {
		return "", nil, fmt.Errorf("%w: the reporter's signature is bad", ErrEvidence)
	}
	if reporter, err = peer.IDFromPublicKey(pub); err != nil {
		return "", nil, fmt.Errorf("%w: reporter key: %v", ErrEvidence, err)
	}
	if len(r.Record) == 0 {
		return reporter, nil, nil
	}
	rec, err := Unmarshal(r.Record)
	if err != nil {
		return "", nil, err
	}
	c, err := rec.Open()
	switch {
	case err != nil:
		return "", nil, err
	case c.Worker != r.Subject:
		return "", nil, fmt.Errorf("%w: the record is about %s, not the report's subject %s", ErrEvidence, c.Worker, r.Subject)
	case c.Proxy != reporter:
		return "", nil, fmt.Errorf("%w: the record was signed by %s, not the reporter %s", ErrEvidence, c.Proxy, reporter)
	}
	return reporter, &c, nil
}
