package tee

import (
	"bytes"
	"errors"
	"testing"
)

// A canary's disclosed session key opens its body and the worker's answer, exactly as the
// worker opened and sealed them; another key, or an altered body, does not.
func TestOpenDisclosed(t *testing.T) {
	key, err := GenerateSealKey()
	if err != nil {
		t.Fatal(err)
	}
	sess, err := NewSession(key.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	over := sess.Overhead()
	sealed, _, err := sess.Seal([]byte("req-1"), []byte("the canary"))
	if err != nil {
		t.Fatal(err)
	}
	if len(sealed) != over+len("the canary") {
		t.Fatalf("sealed %d bytes, Overhead said %d + %d", len(sealed), over, len("the canary"))
	}
	body, wa, err := NewOpener(key).Open([]byte("req-1"), sealed)
	if err != nil || string(body) != "the canary" {
		t.Fatalf("worker opens %q, %v", body, err)
	}
	chunk, _ := wa.Seal(nil, []byte("the answer"))

	got, ans, err := OpenDisclosed(sess.Disclose(), []byte("req-1"), sealed)
	if err != nil || string(got) != "the canary" {
		t.Fatalf("disclosed key opens %q, %v", got, err)
	}
	if plain, err := ans.Open(nil, chunk); err != nil || !bytes.Equal(plain, []byte("the answer")) {
		t.Fatalf("disclosed key opens the answer as %q, %v", plain, err)
	}
	other := sess.Disclose()
	other[0] ^= 1
	if _, _, err := OpenDisclosed(other, []byte("req-1"), sealed); !errors.Is(err, ErrSeal) {
		t.Fatalf("another key: %v", err)
	}
	if _, _, err := OpenDisclosed(sess.Disclose(), []byte("req-2"), sealed); !errors.Is(err, ErrSeal) {
		t.Fatalf("another request's aad: %v", err)
	}
	if _, _, err := OpenDisclosed(sess.Disclose(), nil, []byte{1, 2}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("a short body: %v", err)
	}
}
