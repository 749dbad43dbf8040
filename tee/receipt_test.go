package tee

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

func signedReceipt(t testing.TB) (Receipt, crypto.PrivKey, crypto.PrivKey) {
	t.Helper()
	wk, _, _ := crypto.GenerateEd25519Key(nil)
	pk, _, _ := crypto.GenerateEd25519Key(nil)
	ppub, _ := crypto.MarshalPublicKey(pk.GetPublic())
	r := Receipt{
		RequestID: "abc-1", Model: "m@v1:00", Sealed: true,
		RequestHash: [32]byte{1}, AnswerHash: [32]byte{2},
		PromptTokens: 10, CompletionTokens: 20, Time: time.UnixMilli(1700000000123).UTC(),
		WorkerEvidence: [32]byte{3}, ProxyKey: ppub, ProxyEvidence: [32]byte{4},
	}
	if err := r.SignWorker(wk); err != nil {
		t.Fatal(err)
	}
	if err := r.Countersign(pk); err != nil {
		t.Fatal(err)
	}
	return r, wk, pk
}

func TestReceiptRoundTrip(t *testing.T) {
	r, wk, pk := signedReceipt(t)
	got, err := ParseReceipt(r.String())
	if err != nil {
		t.Fatal(err)
	}
	w, p, err := got.Verify()
	if err != nil {
		t.Fatal(err)
	}
	if wid, _ := peer.IDFromPrivateKey(wk); w != wid {
		t.Fatalf("worker %s, want %s", w, wid)
	}
	if pid, _ := peer.IDFromPrivateKey(pk); p != pid {
		t.Fatalf("proxy %s, want %s", p, pid)
	}
	if !bytes.Equal(got.Marshal(), r.Marshal()) || got.CompletionTokens != 20 || got.RequestID != "abc-1" {
		t.Fatalf("round trip changed the receipt: %+v", got)
	}
}

// Every single-bit change to a signed receipt is caught: by the decoder or by a signature.
func TestReceiptTamperingFails(t *testing.T) {
	r, _, _ := signedReceipt(t)
	raw := r.Marshal()
	for i := range raw {
		for _, bit := range []byte{1, 0x80} {
			bad := bytes.Clone(raw)
			bad[i] ^= bit
			got, err := UnmarshalReceipt(bad)
			if err != nil {
				continue
			}
			if _, _, err := got.Verify(); err == nil {
				t.Fatalf("byte %d bit %x changed and the receipt still verifies", i, bit)
			}
		}
	}
}

func TestCheckWorkerAndCountersign(t *testing.T) {
	r, _, pk := signedReceipt(t)
	d := r.WorkerDigest()
	r.CompletionTokens++ // the worker signed 20
	if err := r.CheckWorker(); !errors.Is(err, ErrReceipt) {
		t.Fatalf("altered receipt passed CheckWorker: %v", err)
	}
	if r.WorkerDigest() == d {
		t.Fatal("worker digest does not cover the token counts")
	}
	if err := r.Countersign(pk); err != nil { // the proxy signs what it forwarded...
		t.Fatal(err)
	}
	if _, _, err := r.Verify(); !errors.Is(err, ErrReceipt) { // ...and the whole still fails
		t.Fatalf("receipt with a bad worker signature verified: %v", err)
	}
	r.CompletionTokens--
	other, _, _ := crypto.GenerateEd25519Key(nil)
	if err := r.Countersign(other); !errors.Is(err, ErrReceipt) {
		t.Fatalf("a proxy the worker did not name countersigned: %v", err)
	}
}

func FuzzUnmarshalReceipt(f *testing.F) {
	r, _, _ := signedReceipt(f)
	f.Add(r.Marshal())
	f.Add([]byte(receiptMagic))
	f.Fuzz(func(t *testing.T, p []byte) {
		r, err := UnmarshalReceipt(p)
		if err != nil {
			return
		}
		_, _, _ = r.Verify()
		if !bytes.Equal(r.Marshal(), p) {
			t.Fatalf("decode/encode not identical")
		}
	})
}

func BenchmarkReceiptSignAndCountersign(b *testing.B) {
	r, wk, pk := signedReceipt(b)
	for b.Loop() {
		_ = r.SignWorker(wk)
		_ = r.Countersign(pk)
	}
}
