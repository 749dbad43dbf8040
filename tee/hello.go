package tee

import (
	"errors"
	"fmt"

	"github.com/cocoon-mesh/cocoon/internal/fields"
)

// ErrNotAttested is wrapped when a peer offers no evidence at all.
var ErrNotAttested = errors.New("tee: the peer offers no attestation (it runs outside a TEE)")

// MaxHelloSize bounds a hello on the wire.
const MaxHelloSize = MaxEvidenceSize + 4<<10

// Hello is what each side of the attested handshake sends: the key prompts may be sealed to,
// and evidence whose report data binds it and the sender's libp2p key (nil outside a TEE).
type Hello struct {
	SealKey  []byte
	Evidence *Evidence
}

// Marshal encodes the hello for the wire.
func (h *Hello) Marshal() []byte {
	e := fields.Enc{}
	e.Bytes(h.SealKey)
	e.Bool(h.Evidence != nil)
	if h.Evidence != nil {
		e.Bytes(h.Evidence.Marshal())
	}
	return e.B
}

// UnmarshalHello decodes a hello; it checks the format, not the evidence (see VerifyHello).
func UnmarshalHello(p []byte) (Hello, error) {
	var h Hello
	if len(p) > MaxHelloSize {
		return h, fmt.Errorf("%w: hello of %d bytes is over the %d byte limit", ErrMalformed, len(p), MaxHelloSize)
	}
	d := fields.Dec{B: p, Bad: ErrMalformed}
	h.SealKey = d.Bytes("sealing key", 4096)
	var raw []byte
	if d.Bool("evidence flag") {
		raw = d.Bytes("evidence", MaxEvidenceSize)
	}
	if err := d.Done(); err != nil {
		return Hello{}, err
	}
	if raw != nil {
		ev, err := UnmarshalEvidence(raw)
		if err != nil {
			return Hello{}, err
		}
		h.Evidence = &ev
	}
	return h, nil
}

// Attestation is a peer whose hello verified: what it runs and the key to seal prompts to.
type Attestation struct {
	Claims  Claims
	SealKey []byte
	Digest  [32]byte // the evidence digest, as receipts name it
}
