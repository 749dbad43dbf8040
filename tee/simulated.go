package tee

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
)

// simulatedMagic opens every simulated report, so no one mistakes one for a quote.
const simulatedMagic = "COCOON SIMULATED TEE - NOT SECURE - NO HARDWARE\x00"

// SimulatedMRTD is the MRTD every simulated report claims: a fixed, recognisable value.
var SimulatedMRTD = Measurement(sha512.Sum384([]byte(simulatedMagic)))

// ErrSimulated is wrapped when simulated evidence meets a policy that does not allow it.
var ErrSimulated = errors.New("tee: evidence comes from a SIMULATED TEE (no hardware protects this peer); start the verifier with the insecure allow-simulated flag to accept it")

// SimulatedPlatform is the machine a simulated TEE claims to run on, the stand-in for a PPID.
// Nothing backs it: a simulated peer can claim any platform it likes.
type SimulatedPlatform [16]byte

// simulatedPlatformPrefix marks a simulated platform in Claims.Platform, never a real "ppid:".
const simulatedPlatformPrefix = "simulated:"

// String is the platform as Claims.Platform spells it: "simulated:" and 32 hex digits.
func (p SimulatedPlatform) String() string { return simulatedPlatformPrefix + hex.EncodeToString(p[:]) }

// Simulated is a TEE for machines without TDX. Its reports are signed by a key of its own,
// which proves only that the report was not altered: anyone can make one.
type Simulated struct {
	key      ed25519.PrivateKey
	platform SimulatedPlatform
}

// NewSimulated returns a simulated TEE that signs with key (nil makes a fresh key), on a
// platform of its own derived from the key: SHA-256("cocoon simulated platform\x00" || public key)[:16].
func NewSimulated(key ed25519.PrivateKey) *Simulated {
	if key == nil {
		_, key, _ = ed25519.GenerateKey(nil)
	}
	h := sha256.New()
	h.Write([]byte("cocoon simulated platform\x00"))
	h.Write(key.Public().(ed25519.PublicKey))
	return &Simulated{key: key, platform: SimulatedPlatform(h.Sum(nil))}
}

// NewSimulatedOn returns a simulated TEE that signs with key (nil makes a fresh key) and
// claims to run on platform, so a test or simulation can put several identities on one machine.
func NewSimulatedOn(key ed25519.PrivateKey, platform SimulatedPlatform) *Simulated {
	s := NewSimulated(key)
	s.platform = platform
	return s
}

// Kind returns KindSimulated.
func (s *Simulated) Kind() Kind { return KindSimulated }

// Platform returns the platform this simulated TEE's reports claim.
func (s *Simulated) Platform() SimulatedPlatform { return s.platform }

// A simulated report is, in order: the magic, the report data (64 bytes), SimulatedMRTD (48),
// the platform (16), the Ed25519 public key (32), and its signature over everything before it.
const (
	simRDOff       = len(simulatedMagic)
	simMRTDOff     = simRDOff + 64
	simPlatformOff = simMRTDOff + len(Measurement{})
	simKeyOff      = simPlatformOff + len(SimulatedPlatform{})
	simSigOff      = simKeyOff + ed25519.PublicKeySize
	simulatedSize  = simSigOff + ed25519.SignatureSize
	// simulatedSizeV1 is the size of the first format, which had no platform.
	simulatedSizeV1 = simulatedSize - len(SimulatedPlatform{})
)

// Attest returns a simulated report over reportData.
func (s *Simulated) Attest(reportData [64]byte) (Evidence, error) {
	b := make([]byte, 0, simulatedSize)
	b = append(b, simulatedMagic...)
	b = append(b, reportData[:]...)
	b = append(b, SimulatedMRTD[:]...)
	b = append(b, s.platform[:]...)
	b = append(b, s.key.Public().(ed25519.PublicKey)...)
	b = append(b, ed25519.Sign(s.key, b)...)
	return Evidence{Kind: KindSimulated, Quote: b}, nil
}

// verifySimulated checks a simulated report's form and signature and returns its claims.
func verifySimulated(q []byte) (Claims, error) {
	if !bytes.HasPrefix(q, []byte(simulatedMagic)) {
		return Claims{}, fmt.Errorf("%w: simulated report of %d bytes does not start with the simulated TEE's magic", ErrMalformed, len(q))
	}
	if len(q) == simulatedSizeV1 {
		return Claims{}, fmt.Errorf("%w: simulated report of %d bytes is in the old format without a platform ID; "+
			"the format gained 16 platform bytes (%d bytes in all), so the peer must be upgraded", ErrMalformed, len(q), simulatedSize)
	}
	if len(q) != simulatedSize {
		return Claims{}, fmt.Errorf("%w: simulated report of %d bytes, want %d", ErrMalformed, len(q), simulatedSize)
	}
	pub := ed25519.PublicKey(q[simKeyOff:simSigOff])
	if !ed25519.Verify(pub, q[:simSigOff], q[simSigOff:]) {
		return Claims{}, errors.New("tee: simulated report: bad signature")
	}
	if Measurement(q[simMRTDOff:simPlatformOff]) != SimulatedMRTD {
		return Claims{}, errors.New("tee: simulated report: unexpected MRTD")
	}
	c := Claims{Kind: KindSimulated, MRTD: SimulatedMRTD}
	c.ReportData = [64]byte(q[simRDOff:simMRTDOff])
	c.Platform = SimulatedPlatform(q[simPlatformOff:simKeyOff]).String()
	return c, nil
}
