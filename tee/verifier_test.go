package tee

import (
	"errors"
	"testing"

	"github.com/google/go-tdx-guest/testing/testdata"
)

// The real Intel-signed sample quote passes its signature and chain checks, then the policy
// decides: wrong report data, an MRTD or image outside the allowed lists are each refused by
// name, while the quote's own values pass.
func TestSampleQuoteThroughPolicy(t *testing.T) {
	ev := Evidence{Kind: KindTDX, Quote: testdata.RawQuote}
	q := sampleQuote(t)
	var rd [64]byte
	copy(rd[:], q.GetTdQuoteBody().GetReportData())
	noCollateral := Policy{MinTCB: TCBUnknown} // signatures and chain only: the TCB is not judged

	v := NewVerifier(noCollateral, &TDXVerifier{})
	c, err := v.Verify(&ev, rd, sampleTime)
	if err != nil {
		t.Fatalf("sample quote with its own report data: %v", err)
	}
	if c.Kind != KindTDX || c.Debug || c.TCB != TCBUnknown {
		t.Fatalf("claims: %+v", c)
	}
	other := rd
	other[0] ^= 1
	if _, err := v.Verify(&ev, other, sampleTime); !errors.Is(err, ErrReportData) {
		t.Fatalf("report-data mismatch: %v", err)
	}
	if len(v.cache) != 1 {
		t.Fatalf("%d cache entries for one quote verified twice, want 1", len(v.cache))
	}

	p := noCollateral
	p.AllowedMRTD = []Measurement{{1}}
	if _, err := NewVerifier(p, &TDXVerifier{}).Verify(&ev, rd, sampleTime); !errors.Is(err, ErrMeasurement) {
		t.Fatalf("MRTD outside the policy: %v", err)
	}
	p.AllowedMRTD = []Measurement{c.MRTD}
	if _, err := NewVerifier(p, &TDXVerifier{}).Verify(&ev, rd, sampleTime); err != nil {
		t.Fatalf("MRTD in the policy: %v", err)
	}
	p.AllowedImages = [][32]byte{{9}}
	if _, err := NewVerifier(p, &TDXVerifier{}).Verify(&ev, rd, sampleTime); !errors.Is(err, ErrMeasurement) {
		t.Fatalf("image outside the policy: %v", err)
	}
	p.AllowedImages = [][32]byte{c.ImageHash()}
	if _, err := NewVerifier(p, &TDXVerifier{}).Verify(&ev, rd, sampleTime); err != nil {
		t.Fatalf("image in the policy: %v", err)
	}
	// The default policy wants an up-to-date TCB, which needs collateral.
	if _, err := NewVerifier(DefaultPolicy(), &TDXVerifier{}).Verify(&ev, rd, sampleTime); !errors.Is(err, ErrTCB) {
		t.Fatalf("default policy without collateral: %v", err)
	}
	// A flipped byte fails before any policy.
	bad := Evidence{Kind: KindTDX, Quote: append([]byte(nil), testdata.RawQuote...)}
	bad.Quote[600] ^= 1
	if _, err := NewVerifier(noCollateral, &TDXVerifier{}).Verify(&bad, rd, sampleTime); err == nil || errors.Is(err, ErrReportData) {
		t.Fatalf("flipped byte: %v", err)
	}
}
