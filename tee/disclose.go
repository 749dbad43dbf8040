package tee

import (
	"fmt"

	"github.com/cocoon-mesh/cocoon/internal/fields"
)

// An audit's evidence must let anyone re-open what the worker was sent and answered, without
// the worker's sealing key: a proxy seals each canary in a session of its own and discloses
// that session's key in the record. The disclosed key is bound to the worker: the worker's
// answer chunks, which the proxy cannot make, open under it (AES-GCM's tags), and the worker's
// receipt signs their hash.

// Disclose returns the session's AES-256-GCM key. Anyone holding it opens every body and
// answer of the session: disclose only a session made for one canary.
func (s *Session) Disclose() [32]byte { return s.key }

// OpenDisclosed opens a body sealed by Session.Seal (with the same aad) under the disclosed
// key of its session, and returns the body and the opener of its answer's chunks.
func OpenDisclosed(key [32]byte, aad, sealed []byte) ([]byte, *Answer, error) {
	d := fields.Dec{B: sealed, Bad: ErrMalformed}
	d.Fixed("session id", 16)
	d.Bytes("encapsulated key", maxSealedEnc)
	seq := d.Uvarint("sealed sequence")
	if d.Err != nil {
		return nil, nil, d.Err
	}
	if seq == 0 {
		return nil, nil, fmt.Errorf("%w: sequence 0", ErrMalformed)
	}
	aead, err := newGCM(key[:])
	if err != nil {
		return nil, nil, err
	}
	body, err := aead.Open(nil, nonce(seq, dirBody, 0), d.B, aad)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: request body under the disclosed key", ErrSeal)
	}
	return body, &Answer{aead: aead, seq: seq}, nil
}
