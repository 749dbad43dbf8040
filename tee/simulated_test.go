package tee

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

var simVerifier = NewVerifier(Policy{AllowSimulated: true}, nil)

// simPlatform verifies a fresh report from s and returns the platform its claims name.
func simPlatform(t *testing.T, s *Simulated) string {
	t.Helper()
	rd := ReportData([]byte("peer"), []byte("seal"))
	ev, err := s.Attest(rd)
	if err != nil {
		t.Fatal(err)
	}
	c, err := simVerifier.Verify(&ev, rd, fixedNow)
	if err != nil {
		t.Fatal(err)
	}
	return c.Platform
}

func TestSimulatedPlatformRoundTrip(t *testing.T) {
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	s := NewSimulated(key)
	h := sha256.Sum256(append([]byte("cocoon simulated platform\x00"), key.Public().(ed25519.PublicKey)...))
	if want := SimulatedPlatform(h[:16]); s.Platform() != want {
		t.Fatalf("NewSimulated's platform %v, want %v", s.Platform(), want)
	}
	if NewSimulated(key).Platform() != s.Platform() {
		t.Fatal("the same key gave another platform")
	}
	got := simPlatform(t, s)
	if got != s.Platform().String() || got != "simulated:"+hex.EncodeToString(h[:16]) {
		t.Fatalf("Claims.Platform = %q, provider says %q", got, s.Platform())
	}
	if strings.HasPrefix(got, ppidPrefix) {
		t.Fatalf("a simulated platform %q looks like a real PPID", got)
	}
}

func TestSimulatedPlatformsPerMachine(t *testing.T) {
	machine := SimulatedPlatform{1, 2, 3}
	a, b := NewSimulatedOn(nil, machine), NewSimulatedOn(nil, machine)
	pa, pb := simPlatform(t, a), simPlatform(t, b)
	if pa != pb || pa != machine.String() || a.Platform() != machine {
		t.Fatalf("two identities on one machine: %q and %q, want %q", pa, pb, machine)
	}
	if a.key.Equal(b.key) {
		t.Fatal("two NewSimulatedOn(nil, ...) share a key")
	}
	if x, y := simPlatform(t, NewSimulated(nil)), simPlatform(t, NewSimulated(nil)); x == y {
		t.Fatalf("two fresh keys share the platform %q", x)
	}
}

func TestSimulatedPlatformTampering(t *testing.T) {
	rd := [64]byte{9}
	ev, _ := NewSimulatedOn(nil, SimulatedPlatform{5}).Attest(rd)
	for i := simPlatformOff; i < simKeyOff; i++ {
		bad := Evidence{Kind: KindSimulated, Quote: bytes.Clone(ev.Quote)}
		bad.Quote[i] ^= 0x80
		if _, err := simVerifier.Verify(&bad, rd, fixedNow); err == nil || !strings.Contains(err.Error(), "bad signature") {
			t.Fatalf("platform byte %d altered: err = %v, want a bad signature", i-simPlatformOff, err)
		}
	}
}

// A report in the first format (no platform), correctly signed, is refused by name.
func TestSimulatedOldFormatRefused(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(nil)
	rd := [64]byte{3}
	old := append([]byte(simulatedMagic), rd[:]...)
	old = append(old, SimulatedMRTD[:]...)
	old = append(old, key.Public().(ed25519.PublicKey)...)
	old = append(old, ed25519.Sign(key, old)...)
	if len(old) != simulatedSizeV1 {
		t.Fatalf("old report of %d bytes, want %d", len(old), simulatedSizeV1)
	}
	_, err := simVerifier.Verify(&Evidence{Kind: KindSimulated, Quote: old}, rd, fixedNow)
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("err = %v, want ErrMalformed", err)
	}
	for _, want := range []string{"old format", "platform", "upgraded"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func FuzzVerifySimulated(f *testing.F) {
	ev, _ := NewSimulatedOn(nil, SimulatedPlatform{0xaa}).Attest([64]byte{1})
	for _, n := range []int{len(ev.Quote), simulatedSizeV1, simKeyOff, simPlatformOff, len(simulatedMagic), 10, 0} {
		f.Add(ev.Quote[:n])
	}
	f.Add(append(bytes.Clone(ev.Quote), 0))
	f.Fuzz(func(t *testing.T, q []byte) {
		c, err := verifySimulated(q)
		if err != nil {
			if c != (Claims{}) {
				t.Fatalf("refused with claims %+v", c)
			}
			return
		}
		if len(q) != simulatedSize || c.Kind != KindSimulated || c.MRTD != SimulatedMRTD ||
			c.Platform != SimulatedPlatform(q[simPlatformOff:simKeyOff]).String() ||
			!ed25519.Verify(q[simKeyOff:simSigOff], q[:simSigOff], q[simSigOff:]) {
			t.Fatalf("accepted %x with claims %+v", q, c)
		}
	})
}
