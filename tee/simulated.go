package tee

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha512"
	"errors"
	"fmt"
)

// simulatedMagic opens every simulated report, so no one mistakes one for a quote.
const simulatedMagic = "COCOON SIMULATED TEE - NOT SECURE - NO HARDWARE\x00"

// SimulatedMRTD is the MRTD every simulated report claims: a fixed, recognisable value.
var SimulatedMRTD = Measurement(sha512.Sum384([]byte(simulatedMagic)))

// ErrSimulated is wrapped when simulated evidence meets a policy that does not allow it.
var ErrSimulated = errors.New("tee: evidence comes from a SIMULATED TEE (no hardware protects this peer); start the verifier with the insecure allow-simulated flag to accept it")

// Simulated is a TEE for machines without TDX. Its reports are signed by a key of its own,
// which proves only that the report was not altered: anyone can make one.
type Simulated struct {
	key ed25519.PrivateKey
}

// NewSimulated returns a simulated TEE that signs with key; nil makes a fresh key.
func NewSimulated(key ed25519.PrivateKey) *Simulated {
	if key == nil {
		_, key, _ = ed25519.GenerateKey(nil)
	}
	return &Simulated{key: key}
}

// Kind returns KindSimulated.
func (s *Simulated) Kind() Kind { return KindSimulated }

// Attest returns a simulated report over reportData.
func (s *Simulated) Attest(reportData [64]byte) (Evidence, error) {
	pub := s.key.Public().(ed25519.PublicKey)
	b := make([]byte, 0, simulatedSize)
	b = append(b, simulatedMagic...)
	b = append(b, reportData[:]...)
	b = append(b, SimulatedMRTD[:]...)
	b = append(b, pub...)
	b = append(b, ed25519.Sign(s.key, b)...)
	return Evidence{Kind: KindSimulated, Quote: b}, nil
}

const simulatedSize = len(simulatedMagic) + 64 + 48 + ed25519.PublicKeySize + ed25519.SignatureSize

// verifySimulated checks a simulated report's form and signature and returns its claims.
func verifySimulated(q []byte) (Claims, error) {
	if len(q) != simulatedSize || !bytes.HasPrefix(q, []byte(simulatedMagic)) {
		return Claims{}, fmt.Errorf("%w: simulated report of %d bytes", ErrMalformed, len(q))
	}
	signed := q[:simulatedSize-ed25519.SignatureSize]
	pub := ed25519.PublicKey(signed[len(signed)-ed25519.PublicKeySize:])
	if !ed25519.Verify(pub, signed, q[len(signed):]) {
		return Claims{}, errors.New("tee: simulated report: bad signature")
	}
	c := Claims{Kind: KindSimulated, MRTD: SimulatedMRTD}
	copy(c.ReportData[:], q[len(simulatedMagic):])
	if Measurement(q[len(simulatedMagic)+64:][:48]) != SimulatedMRTD {
		return Claims{}, errors.New("tee: simulated report: unexpected MRTD")
	}
	return c, nil
}
