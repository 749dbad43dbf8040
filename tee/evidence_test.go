package tee

import (
	"bytes"
	"errors"
	"testing"
)

func TestEvidenceRoundTrip(t *testing.T) {
	ev := Evidence{Kind: KindTDX, Quote: []byte("quote"), Extra: []Item{{Type: 7, Data: []byte("gpu")}}}
	got, err := UnmarshalEvidence(ev.Marshal())
	if err != nil || got.Kind != KindTDX || string(got.Quote) != "quote" || len(got.Extra) != 1 || got.Extra[0].Type != 7 {
		t.Fatalf("%+v %v", got, err)
	}
	if got.Digest() != ev.Digest() {
		t.Fatal("digest changed in a round trip")
	}
	for _, bad := range [][]byte{nil, []byte("CEV1"), append([]byte("CEV1"), 9, 0, 0), append(ev.Marshal(), 0)} {
		if _, err := UnmarshalEvidence(bad); !errors.Is(err, ErrMalformed) {
			t.Fatalf("%x: %v", bad, err)
		}
	}
	if _, err := UnmarshalEvidence(make([]byte, MaxEvidenceSize+1)); !errors.Is(err, ErrMalformed) {
		t.Fatal("oversized evidence accepted")
	}
}

func FuzzUnmarshalEvidence(f *testing.F) {
	sim, _ := NewSimulated(nil).Attest([64]byte{1})
	f.Add(sim.Marshal())
	f.Add((&Evidence{Kind: KindTDX, Quote: []byte{1, 2}, Extra: []Item{{1, nil}}}).Marshal())
	v := NewVerifier(Policy{AllowSimulated: true}, nil)
	f.Fuzz(func(t *testing.T, p []byte) {
		ev, err := UnmarshalEvidence(p)
		if err != nil {
			return
		}
		if !bytes.Equal(ev.Marshal(), p) {
			t.Fatal("decode/encode not identical")
		}
		_, _ = v.Verify(&ev, [64]byte{1}, fixedNow) // must not panic
	})
}

func FuzzUnmarshalHello(f *testing.F) {
	k, _ := GenerateSealKey()
	sim, _ := NewSimulated(nil).Attest(ReportData([]byte("peer"), k.PublicKey()))
	f.Add((&Hello{SealKey: k.PublicKey(), Evidence: &sim}).Marshal())
	f.Add((&Hello{SealKey: k.PublicKey()}).Marshal())
	v := NewVerifier(Policy{AllowSimulated: true}, nil)
	f.Fuzz(func(t *testing.T, p []byte) {
		h, err := UnmarshalHello(p)
		if err != nil {
			return
		}
		_, _ = v.VerifyHello(&h, []byte("peer"), fixedNow) // must not panic
	})
}
