package tee

import (
	"crypto/sha256"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
)

func TestBatchSignatures(t *testing.T) {
	key, _, _ := crypto.GenerateEd25519Key(nil)
	other, _, _ := crypto.GenerateEd25519Key(nil)
	for n := 1; n <= 17; n++ {
		ds := make([][32]byte, n)
		for i := range ds {
			ds[i] = sha256.Sum256([]byte{byte(n), byte(i)})
		}
		sigs, err := SignBatch(key, ds)
		if err != nil {
			t.Fatal(err)
		}
		for i, s := range sigs {
			if !s.Verify(key.GetPublic(), ds[i]) {
				t.Fatalf("n=%d: digest %d does not verify", n, i)
			}
			if s.Verify(other.GetPublic(), ds[i]) {
				t.Fatalf("n=%d: verifies under another key", n)
			}
			if n > 1 {
				if s.Verify(key.GetPublic(), ds[(i+1)%n]) {
					t.Fatalf("n=%d: digest %d's path proves digest %d", n, i, (i+1)%n)
				}
				moved := s
				moved.Index = uint32((i + 1) % n)
				if moved.Verify(key.GetPublic(), ds[i]) {
					t.Fatalf("n=%d: path verifies at another index", n)
				}
				if len(s.Path) > 0 {
					short := s
					short.Path = s.Path[1:]
					if short.Verify(key.GetPublic(), ds[i]) {
						t.Fatalf("n=%d: a shortened path verifies", n)
					}
				}
			}
		}
		// An inner node cannot pose as a leaf: a batch of two's root is nodeHash(leaf0, leaf1),
		// and no single-leaf path reaches it.
		if n == 2 {
			inner := BatchSig{Index: 0, Count: 1, Sig: sigs[0].Sig}
			if inner.Verify(key.GetPublic(), nodeHash(leafHash(ds[0]), leafHash(ds[1]))) {
				t.Fatal("an inner node verified as a leaf")
			}
		}
	}
	if _, err := SignBatch(key, nil); err == nil {
		t.Fatal("empty batch signed")
	}
}

func BenchmarkSignBatch16(b *testing.B) {
	key, _, _ := crypto.GenerateEd25519Key(nil)
	ds := make([][32]byte, 16)
	for b.Loop() {
		if _, err := SignBatch(key, ds); err != nil {
			b.Fatal(err)
		}
	}
}
