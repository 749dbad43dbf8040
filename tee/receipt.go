package tee

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cocoon-mesh/cocoon/internal/fields"
)

// Signature domains: a receipt signature can never be mistaken for another signed message.
const (
	workerReceiptDomain = "cocoon-mesh/receipt/worker/v1\x00"
	proxyReceiptDomain  = "cocoon-mesh/receipt/proxy/v1\x00"
	receiptMagic        = "CRC1"
)

// MaxReceiptSize bounds an encoded receipt.
const MaxReceiptSize = 8 << 10

// ErrReceipt is wrapped when a receipt's signatures do not check.
var ErrReceipt = errors.New("tee: receipt does not verify")

// Receipt is the signed record of one answer. The worker signs what it served; the proxy
// countersigns, so the client can later show which proxy and which attested worker answered,
// what they were sent and what they returned, and what they billed.
type Receipt struct {
	RequestID   string
	Model       string
	Sealed      bool     // the request and answer travelled sealed to the worker
	RequestHash [32]byte // SHA-256 of the request body as the worker received it (sealed, if Sealed)
	AnswerHash  [32]byte // AnswerHash over the answer's chunks as the worker sent them

	PromptTokens, CachedTokens, CompletionTokens, ReasoningTokens uint64

	Time           time.Time // when the worker finished (millisecond precision)
	WorkerKey      []byte    // the worker's libp2p public key, marshalled
	WorkerEvidence [32]byte  // digest of the worker's evidence (zero: none)
	ProxyKey       []byte    // the proxy's libp2p public key, marshalled
	ProxyEvidence  [32]byte  // digest of the proxy's evidence (zero: none)

	Worker BatchSig // the worker's signature over everything above (WorkerDigest)
	Proxy  BatchSig // the proxy's signature over everything above and Worker (ProxyDigest)
}

// appendBody encodes the fields the worker signs.
func (r *Receipt) appendBody(b []byte) []byte {
	e := fields.Enc{B: b}
	e.Fixed([]byte(receiptMagic))
	e.Str(r.RequestID)
	e.Str(r.Model)
	e.Bool(r.Sealed)
	e.Fixed(r.RequestHash[:])
	e.Fixed(r.AnswerHash[:])
	e.Uvarint(r.PromptTokens)
	e.Uvarint(r.CachedTokens)
	e.Uvarint(r.CompletionTokens)
	e.Uvarint(r.ReasoningTokens)
	e.Uvarint(uint64(r.Time.UnixMilli()))
	e.Bytes(r.WorkerKey)
	e.Fixed(r.WorkerEvidence[:])
	e.Bytes(r.ProxyKey)
	e.Fixed(r.ProxyEvidence[:])
	return e.B
}

// SignWorker sets WorkerKey from key and signs the receipt as its worker, alone in its batch.
// (A busy worker signs many receipts at once: it sets WorkerKey, then Worker from SignBatch
// over their WorkerDigests.)
func (r *Receipt) SignWorker(key crypto.PrivKey) error {
	pub, err := crypto.MarshalPublicKey(key.GetPublic())
	if err != nil {
		return err
	}
	r.WorkerKey = pub
	sigs, err := SignBatch(key, [][32]byte{r.WorkerDigest()})
	if err == nil {
		r.Worker = sigs[0]
	}
	return err
}

// CheckProxy checks that the worker named the proxy whose key is key; it does not check the
// worker's signature: CheckWorker does that, at 50 µs a time (see node.Config.ReceiptCheckEvery).
func (r *Receipt) CheckProxy(key crypto.PubKey) error {
	if len(r.ProxyKey) == 0 {
		return fmt.Errorf("%w: the worker did not name the proxy", ErrReceipt)
	}
	pub, err := crypto.UnmarshalPublicKey(r.ProxyKey)
	if err != nil || !pub.Equals(key) {
		return fmt.Errorf("%w: the worker named another proxy", ErrReceipt)
	}
	return nil
}

// Countersign checks the receipt names this proxy and signs it as its proxy, alone in its batch.
func (r *Receipt) Countersign(key crypto.PrivKey) error {
	if err := r.CheckProxy(key.GetPublic()); err != nil {
		return err
	}
	sigs, err := SignBatch(key, [][32]byte{r.ProxyDigest()})
	if err == nil {
		r.Proxy = sigs[0]
	}
	return err
}

// ProxyDigest is SHA-256 of what the proxy signs: the worker's fields and its signature.
func (r *Receipt) ProxyDigest() [32]byte {
	e := fields.Enc{B: r.appendBody([]byte(proxyReceiptDomain))}
	r.Worker.append(&e)
	return sha256.Sum256(e.B)
}

// WorkerDigest is SHA-256 of what the worker signs. A worker also seals it into the answer of a
// sealed request, so the client knows the worker vouched for these exact fields without
// verifying a signature.
func (r *Receipt) WorkerDigest() [32]byte {
	return sha256.Sum256(r.appendBody([]byte(workerReceiptDomain)))
}

// CheckWorker verifies the worker's signature.
func (r *Receipt) CheckWorker() error {
	pub, err := crypto.UnmarshalPublicKey(r.WorkerKey)
	if err != nil {
		return fmt.Errorf("%w: worker key: %v", ErrReceipt, err)
	}
	if !r.Worker.Verify(pub, r.WorkerDigest()) {
		return fmt.Errorf("%w: bad worker signature", ErrReceipt)
	}
	return nil
}

// Verify checks both signatures and returns the worker's and the proxy's peer IDs.
func (r *Receipt) Verify() (worker, proxy peer.ID, err error) {
	if err := r.CheckWorker(); err != nil {
		return "", "", err
	}
	pub, err := crypto.UnmarshalPublicKey(r.ProxyKey)
	if err != nil {
		return "", "", fmt.Errorf("%w: proxy key: %v", ErrReceipt, err)
	}
	if !r.Proxy.Verify(pub, r.ProxyDigest()) {
		return "", "", fmt.Errorf("%w: bad proxy signature", ErrReceipt)
	}
	return r.Peers()
}

// Peers returns the peer IDs of the worker and proxy keys the receipt names, without checking
// any signature.
func (r *Receipt) Peers() (worker, proxy peer.ID, err error) {
	for _, kp := range []struct {
		what string
		key  []byte
		id   *peer.ID
	}{{"worker", r.WorkerKey, &worker}, {"proxy", r.ProxyKey, &proxy}} {
		pub, err := crypto.UnmarshalPublicKey(kp.key)
		if err != nil {
			return "", "", fmt.Errorf("%w: %s key: %v", ErrReceipt, kp.what, err)
		}
		if *kp.id, err = peer.IDFromPublicKey(pub); err != nil {
			return "", "", fmt.Errorf("%w: %s key: %v", ErrReceipt, kp.what, err)
		}
	}
	return worker, proxy, nil
}

// Marshal encodes the receipt with its signatures.
func (r *Receipt) Marshal() []byte {
	e := fields.Enc{B: r.appendBody(make([]byte, 0, 640))}
	r.Worker.append(&e)
	r.Proxy.append(&e)
	return e.B
}

// String is the receipt as the client API hands it out: base64url without padding.
func (r *Receipt) String() string { return base64.RawURLEncoding.EncodeToString(r.Marshal()) }

// UnmarshalReceipt decodes a receipt; it checks the format, not the signatures (see Verify).
func UnmarshalReceipt(p []byte) (Receipt, error) {
	var r Receipt
	if len(p) > MaxReceiptSize {
		return r, fmt.Errorf("%w: receipt of %d bytes is over the %d byte limit", ErrMalformed, len(p), MaxReceiptSize)
	}
	d := fields.Dec{B: p, Bad: ErrMalformed}
	if string(d.Fixed("receipt magic", len(receiptMagic))) != receiptMagic && d.Err == nil {
		d.Fail("receipt magic")
	}
	r.RequestID = d.Str("request id", 128)
	r.Model = d.Str("model", 256)
	r.Sealed = d.Bool("sealed flag")
	copy(r.RequestHash[:], d.Fixed("request hash", 32))
	copy(r.AnswerHash[:], d.Fixed("answer hash", 32))
	r.PromptTokens = d.Uvarint("prompt tokens")
	r.CachedTokens = d.Uvarint("cached tokens")
	r.CompletionTokens = d.Uvarint("completion tokens")
	r.ReasoningTokens = d.Uvarint("reasoning tokens")
	r.Time = time.UnixMilli(int64(d.Bounded("time", 1<<53))).UTC()
	r.WorkerKey = d.Bytes("worker key", 1024)
	copy(r.WorkerEvidence[:], d.Fixed("worker evidence digest", 32))
	r.ProxyKey = d.Bytes("proxy key", 1024)
	copy(r.ProxyEvidence[:], d.Fixed("proxy evidence digest", 32))
	r.Worker = decodeBatchSig(&d, "worker signature")
	r.Proxy = decodeBatchSig(&d, "proxy signature")
	if err := d.Done(); err != nil {
		return Receipt{}, err
	}
	return r, nil
}

// ParseReceipt decodes a receipt as String writes it.
func ParseReceipt(s string) (Receipt, error) {
	p, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return Receipt{}, fmt.Errorf("%w: receipt is not base64url: %v", ErrMalformed, err)
	}
	return UnmarshalReceipt(p)
}
