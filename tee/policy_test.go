package tee

import (
	"errors"
	"testing"
	"time"
)

var fixedNow = time.Date(2023, time.July, 1, 1, 0, 0, 0, time.UTC)

func TestSimulatedEvidenceNeedsTheInsecureFlag(t *testing.T) {
	rd := ReportData([]byte("peer key"), []byte("seal key"))
	ev, err := NewSimulated(nil).Attest(rd)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewVerifier(DefaultPolicy(), nil).Verify(&ev, rd, fixedNow); !errors.Is(err, ErrSimulated) {
		t.Fatalf("default policy: %v", err)
	}
	c, err := NewVerifier(Policy{AllowSimulated: true}, nil).Verify(&ev, rd, fixedNow)
	if err != nil || c.Kind != KindSimulated || c.MRTD != SimulatedMRTD {
		t.Fatalf("with the flag: %+v %v", c, err)
	}
	// Even with the flag: wrong binding, altered report, forged signature.
	v := NewVerifier(Policy{AllowSimulated: true}, nil)
	if _, err := v.Verify(&ev, ReportData([]byte("other peer"), []byte("seal key")), fixedNow); !errors.Is(err, ErrReportData) {
		t.Fatalf("another peer's binding: %v", err)
	}
	altered := ev
	altered.Quote = append([]byte(nil), ev.Quote...)
	altered.Quote[len(simulatedMagic)] ^= 1 // the report data, under the signature
	var want [64]byte
	copy(want[:], altered.Quote[len(simulatedMagic):])
	if _, err := v.Verify(&altered, want, fixedNow); err == nil {
		t.Fatal("altered simulated report verified")
	}
	if _, err := v.Verify(&Evidence{Kind: KindSimulated, Quote: []byte("short")}, rd, fixedNow); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short report: %v", err)
	}
}

func TestVerifyHelloBindsBothKeys(t *testing.T) {
	sk, _ := GenerateSealKey()
	peerKey := []byte("libp2p key of the peer")
	ev, _ := NewSimulated(nil).Attest(ReportData(peerKey, sk.PublicKey()))
	v := NewVerifier(Policy{AllowSimulated: true}, nil)

	h := Hello{SealKey: sk.PublicKey(), Evidence: &ev}
	att, err := v.VerifyHello(&h, peerKey, fixedNow)
	if err != nil || att.Digest != ev.Digest() {
		t.Fatalf("honest hello: %v", err)
	}
	if _, err := v.VerifyHello(&h, []byte("someone else"), fixedNow); !errors.Is(err, ErrReportData) {
		t.Fatalf("hello replayed by another peer: %v", err)
	}
	other, _ := GenerateSealKey()
	swapped := Hello{SealKey: other.PublicKey(), Evidence: &ev}
	if _, err := v.VerifyHello(&swapped, peerKey, fixedNow); !errors.Is(err, ErrReportData) {
		t.Fatalf("hello with a swapped sealing key: %v", err)
	}
	if _, err := v.VerifyHello(&Hello{SealKey: sk.PublicKey()}, peerKey, fixedNow); !errors.Is(err, ErrNotAttested) {
		t.Fatalf("hello without evidence: %v", err)
	}
	if _, err := v.VerifyHello(&Hello{SealKey: []byte("junk"), Evidence: &ev}, peerKey, fixedNow); err == nil {
		t.Fatal("junk sealing key accepted")
	}
	got, err := UnmarshalHello(h.Marshal())
	if err != nil || got.Evidence == nil || got.Evidence.Digest() != ev.Digest() {
		t.Fatalf("hello round trip: %v", err)
	}
}

func TestPolicyChecks(t *testing.T) {
	rd := [64]byte{7}
	good := Claims{Kind: KindTDX, ReportData: rd, MRTD: Measurement{1}, TCB: TCBUpToDate}
	img := good.ImageHash()
	cases := []struct {
		name   string
		policy Policy
		claims func(c *Claims)
		want   error
	}{
		{"default accepts an up-to-date TD", DefaultPolicy(), nil, nil},
		{"report data", DefaultPolicy(), func(c *Claims) { c.ReportData[0] = 8 }, ErrReportData},
		{"debug TD", DefaultPolicy(), func(c *Claims) { c.Debug = true }, ErrDebug},
		{"debug TD allowed", Policy{AllowDebug: true, MinTCB: TCBUpToDate}, func(c *Claims) { c.Debug = true }, nil},
		{"out of date", DefaultPolicy(), func(c *Claims) { c.TCB = TCBOutOfDate }, ErrTCB},
		{"SW hardening accepted at that minimum", Policy{MinTCB: TCBSWHardeningNeeded}, func(c *Claims) { c.TCB = TCBSWHardeningNeeded }, nil},
		{"unknown TCB under a minimum", DefaultPolicy(), func(c *Claims) { c.TCB = TCBUnknown }, ErrTCB},
		{"unknown TCB without a minimum", Policy{}, func(c *Claims) { c.TCB = TCBUnknown }, nil},
		{"MRTD allowed", Policy{AllowedMRTD: []Measurement{{1}}}, nil, nil},
		{"MRTD not allowed", Policy{AllowedMRTD: []Measurement{{2}}}, nil, ErrMeasurement},
		{"image allowed", Policy{AllowedImages: [][32]byte{img}}, nil, nil},
		{"RTMR changes the image hash", Policy{AllowedImages: [][32]byte{img}}, func(c *Claims) { c.RTMR[3][0] = 1 }, ErrMeasurement},
	}
	for _, tc := range cases {
		c := good
		if tc.claims != nil {
			tc.claims(&c)
		}
		err := tc.policy.Check(&c, rd)
		if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestUnknownEvidenceIsRefused(t *testing.T) {
	v := NewVerifier(DefaultPolicy(), nil)
	if _, err := v.Verify(&Evidence{Kind: KindTDX, Quote: []byte{1}}, [64]byte{}, fixedNow); err == nil {
		t.Fatal("TDX evidence accepted by a verifier with no TDX verifier")
	}
	sim, _ := NewSimulated(nil).Attest([64]byte{})
	sim.Extra = []Item{{Type: 9, Data: []byte("gpu")}}
	if _, err := NewVerifier(Policy{AllowSimulated: true}, nil).Verify(&sim, [64]byte{}, fixedNow); err == nil {
		t.Fatal("evidence with an unknown extra item accepted")
	}
}
