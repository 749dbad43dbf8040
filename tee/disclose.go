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

// Overhead is what sealing adds to a body now: the session ID, the encapsulated key until
// the worker confirmed the session, the sequence number and the tag. An auditor sizes a canary
// with it, so that sealed it is as long as the client request it mimics.
func (s *Session) Overhead() int {
	enc := 0
	if !s.confirmed.Load() {
		enc = len(s.enc)
	}
	return 16 + uvarintLen(uint64(enc)) + enc + uvarintLen(s.seq.Load()+1) + 16
}

func uvarintLen(v uint64) int {
	n := 1
	for ; v >= 0x80; v >>= 7 {
		n++
	}
	return n
}

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
