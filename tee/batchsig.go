package tee

import (
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/cocoon-mesh/cocoon/internal/fields"
)

// A busy signer signs many receipts with one signature: it signs the root of a Merkle tree over
// their digests, and each receipt carries its digest's path to that root. A batch of one is a
// plain signature with an empty path. Leaves and inner nodes are hashed with distinct prefixes
// (as in RFC 6962), so a path cannot pass an inner node off as a leaf.

// batchDomain separates batch-root signatures from anything else the identity key signs.
const batchDomain = "cocoon-mesh/signed-batch/v1\x00"

// MaxBatch bounds a signed batch, and so a path's length.
const MaxBatch = 1024

// BatchSig is one digest's share of a batch signature.
type BatchSig struct {
	Index, Count uint32     // the digest's place in the batch, and the batch's size
	Path         [][32]byte // sibling hashes from the leaf up (none where a node had no sibling)
	Sig          []byte     // over batchDomain and the root
}

func leafHash(d [32]byte) [32]byte {
	var b [33]byte
	copy(b[1:], d[:])
	return sha256.Sum256(b[:])
}

func nodeHash(l, r [32]byte) [32]byte {
	var b [65]byte
	b[0] = 1
	copy(b[1:], l[:])
	copy(b[33:], r[:])
	return sha256.Sum256(b[:])
}

// SignBatch signs digests with one signature and returns each digest's BatchSig.
func SignBatch(key crypto.PrivKey, digests [][32]byte) ([]BatchSig, error) {
	n := len(digests)
	if n == 0 || n > MaxBatch {
		return nil, fmt.Errorf("tee: batch of %d digests (want 1 to %d)", n, MaxBatch)
	}
	out := make([]BatchSig, n)
	level := make([][32]byte, n)
	pos := make([]int, n) // each digest's node index on the current level
	for i, d := range digests {
		level[i], pos[i] = leafHash(d), i
		out[i].Index, out[i].Count = uint32(i), uint32(n)
	}
	for len(level) > 1 {
		for i := range out {
			p := pos[i]
			if sib := p ^ 1; sib < len(level) {
				out[i].Path = append(out[i].Path, level[sib])
			}
			pos[i] = p / 2
		}
		next := make([][32]byte, 0, (len(level)+1)/2)
		for j := 0; j < len(level); j += 2 {
			if j+1 < len(level) {
				next = append(next, nodeHash(level[j], level[j+1]))
			} else {
				next = append(next, level[j]) // an odd node goes up as it is
			}
		}
		level = next
	}
	sig, err := key.Sign(append([]byte(batchDomain), level[0][:]...))
	if err != nil {
		return nil, err
	}
	for i := range out {
		out[i].Sig = sig
	}
	return out, nil
}

// root recomputes the batch root from digest d and the path.
func (b *BatchSig) root(d [32]byte) ([32]byte, error) {
	if b.Count == 0 || b.Count > MaxBatch || b.Index >= b.Count {
		return [32]byte{}, errors.New("index or count out of range")
	}
	cur, idx, n, k := leafHash(d), b.Index, b.Count, 0
	for n > 1 {
		switch {
		case idx%2 == 1:
			if k >= len(b.Path) {
				return [32]byte{}, errors.New("path too short")
			}
			cur, k = nodeHash(b.Path[k], cur), k+1
		case idx+1 < n:
			if k >= len(b.Path) {
				return [32]byte{}, errors.New("path too short")
			}
			cur, k = nodeHash(cur, b.Path[k]), k+1
		}
		idx, n = idx/2, (n+1)/2
	}
	if k != len(b.Path) {
		return [32]byte{}, errors.New("path too long")
	}
	return cur, nil
}

// Verify reports whether b proves that the holder of pub signed digest d.
func (b *BatchSig) Verify(pub crypto.PubKey, d [32]byte) bool {
	r, err := b.root(d)
	if err != nil {
		return false
	}
	ok, err := pub.Verify(append([]byte(batchDomain), r[:]...), b.Sig)
	return err == nil && ok
}

func (b *BatchSig) append(e *fields.Enc) {
	e.Uvarint(uint64(b.Index))
	e.Uvarint(uint64(b.Count))
	e.Uvarint(uint64(len(b.Path)))
	for _, h := range b.Path {
		e.Fixed(h[:])
	}
	e.Bytes(b.Sig)
}

// maxPath is the longest path a batch of MaxBatch has.
const maxPath = 10

func decodeBatchSig(d *fields.Dec, what string) BatchSig {
	var b BatchSig
	b.Index = uint32(d.Bounded(what+" index", MaxBatch-1))
	b.Count = uint32(d.Bounded(what+" count", MaxBatch))
	n := d.Bounded(what+" path length", maxPath)
	for i := uint64(0); i < n && d.Err == nil; i++ {
		var h [32]byte
		copy(h[:], d.Fixed(what+" path", 32))
		b.Path = append(b.Path, h)
	}
	b.Sig = d.Bytes(what+" signature", 1024)
	return b
}
