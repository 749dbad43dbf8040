package tee

import (
	"crypto/sha256"
	"encoding/binary"
	"hash"
)

// AnswerHash hashes an answer chunk by chunk, each with its length in front, so a worker, a
// proxy and a client that saw the same chunks get the same value however they were split
// into writes.
type AnswerHash struct{ h hash.Hash }

// NewAnswerHash starts an answer hash.
func NewAnswerHash() *AnswerHash { return &AnswerHash{h: sha256.New()} }

// Add hashes one chunk as it travelled.
func (a *AnswerHash) Add(chunk []byte) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(chunk)))
	a.h.Write(n[:])
	a.h.Write(chunk)
}

// Sum returns the hash of the chunks added so far.
func (a *AnswerHash) Sum() [32]byte {
	var out [32]byte
	a.h.Sum(out[:0])
	return out
}
