package tee

import (
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/cocoon-mesh/cocoon/internal/fields"
)

// Kind says what produced a piece of evidence.
type Kind uint8

// Evidence kinds. Numbers are part of the wire format: never reuse one.
const (
	KindTDX       Kind = 1 // an Intel TDX quote, version 4
	KindSimulated Kind = 2 // a simulated TEE: no hardware behind it, never trustworthy
)

func (k Kind) String() string {
	switch k {
	case KindTDX:
		return "tdx"
	case KindSimulated:
		return "SIMULATED (insecure)"
	}
	return fmt.Sprintf("kind(%d)", k)
}

// Limits on evidence, so a verifier refuses a hostile blob cheaply.
const (
	MaxEvidenceSize = 64 << 10
	MaxExtraItems   = 8
)

// ErrMalformed is wrapped by every evidence, hello and receipt decoding error.
var ErrMalformed = errors.New("tee: malformed")

const evidenceMagic = "CEV1"

// Item is one more piece of evidence bound to the same report data: room for AMD SEV-SNP
// reports or NVIDIA GPU attestation next to the CPU quote. Verifiers refuse items they do not
// know unless the policy says otherwise.
type Item struct {
	Type uint16
	Data []byte
}

// Evidence is what a provider produced: a primary quote of one kind, and optional extra items.
type Evidence struct {
	Kind  Kind
	Quote []byte // the TDX quote as the hardware returned it, or the simulated report
	Extra []Item
}

// Marshal encodes the evidence for the wire.
func (e *Evidence) Marshal() []byte {
	en := fields.Enc{B: make([]byte, 0, len(e.Quote)+16)}
	en.Fixed([]byte(evidenceMagic))
	en.Uvarint(uint64(e.Kind))
	en.Bytes(e.Quote)
	en.Uvarint(uint64(len(e.Extra)))
	for _, it := range e.Extra {
		en.Uvarint(uint64(it.Type))
		en.Bytes(it.Data)
	}
	return en.B
}

// Digest identifies evidence: SHA-256 of its encoding. Receipts and caches use it.
func (e *Evidence) Digest() [32]byte { return sha256.Sum256(e.Marshal()) }

// UnmarshalEvidence decodes evidence; it checks the format, not the contents (see Verifier).
func UnmarshalEvidence(p []byte) (Evidence, error) {
	var e Evidence
	if len(p) > MaxEvidenceSize {
		return e, fmt.Errorf("%w: evidence of %d bytes is over the %d byte limit", ErrMalformed, len(p), MaxEvidenceSize)
	}
	d := fields.Dec{B: p, Bad: ErrMalformed}
	if string(d.Fixed("evidence magic", len(evidenceMagic))) != evidenceMagic && d.Err == nil {
		d.Fail("evidence magic")
	}
	e.Kind = Kind(d.Bounded("evidence kind", 255))
	e.Quote = d.Bytes("quote", MaxEvidenceSize)
	n := d.Bounded("extra item count", MaxExtraItems)
	for i := uint64(0); i < n && d.Err == nil; i++ {
		t := uint16(d.Bounded("extra item type", 1<<16-1))
		e.Extra = append(e.Extra, Item{Type: t, Data: d.Bytes("extra item", MaxEvidenceSize)})
	}
	if err := d.Done(); err != nil {
		return Evidence{}, err
	}
	if e.Kind != KindTDX && e.Kind != KindSimulated {
		return Evidence{}, fmt.Errorf("%w: unknown evidence kind %d", ErrMalformed, e.Kind)
	}
	return e, nil
}
