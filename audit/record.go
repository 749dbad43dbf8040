package audit

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cocoon-mesh/cocoon/internal/fields"
	"github.com/cocoon-mesh/cocoon/node/backend"
	"github.com/cocoon-mesh/cocoon/tee"
)

// ErrMalformed is wrapped by every refusal of a record's encoding.
var ErrMalformed = errors.New("audit: malformed evidence record")

// ErrEvidence is wrapped by every refusal of a record that decodes but does not prove what it
// claims: a bad signature, a hash that does not match, a key that does not open.
var ErrEvidence = errors.New("audit: evidence does not check")

// Bounds of a record, so a hostile file or message costs little to refuse.
const (
	MaxBody   = 1 << 20 // the request body
	MaxChunks = 1 << 14 // the answer's chunks
	MaxChunk  = 1 << 20 // one chunk
	MaxRecord = 16 << 20
)

const recordMagic = "cocoon-mesh/audit-evidence/v1"

// Record is one audited answer, as the auditing proxy saw it.
type Record struct {
	RequestID string
	Model     string // the full model identity the worker served
	Endpoint  backend.Endpoint
	Stream    bool
	MaxTokens uint32
	Body      []byte   // the request body as the worker received it (sealed, with Key)
	Key       []byte   // the canary session's disclosed key (32 bytes); empty: sent in the clear
	Chunks    [][]byte // the answer's chunk data as the worker sent it
	Receipt   []byte   // the worker's signed receipt (tee.Receipt)
	At        time.Time
	Proxy     []byte // the auditing proxy's libp2p public key, marshalled
	Sig       []byte // the proxy's signature over everything above
}

// appendBody encodes everything the proxy signs.
func (r *Record) appendBody(b []byte) []byte {
	e := fields.Enc{B: b}
	e.Fixed([]byte(recordMagic))
	e.Str(r.RequestID)
	e.Str(r.Model)
	e.Uvarint(uint64(r.Endpoint))
	e.Bool(r.Stream)
	e.Uvarint(uint64(r.MaxTokens))
	e.Bytes(r.Body)
	e.Bytes(r.Key)
	e.Uvarint(uint64(len(r.Chunks)))
	for _, c := range r.Chunks {
		e.Bytes(c)
	}
	e.Bytes(r.Receipt)
	e.Uvarint(uint64(r.At.UnixMilli()))
	e.Bytes(r.Proxy)
	return e.B
}

// Sign sets Proxy and Sig: key's holder vouches for the record.
func (r *Record) Sign(key crypto.PrivKey) error {
	pub, err := crypto.MarshalPublicKey(key.GetPublic())
	if err != nil {
		return err
	}
	r.Proxy = pub
	r.Sig, err = key.Sign(r.appendBody(nil))
	return err
}

// Marshal encodes the signed record.
func (r *Record) Marshal() []byte {
	e := fields.Enc{B: r.appendBody(nil)}
	e.Bytes(r.Sig)
	return e.B
}

// Unmarshal decodes a record; it checks the format, not what the record proves (Open).
func Unmarshal(p []byte) (Record, error) {
	var r Record
	if len(p) > MaxRecord {
		return r, fmt.Errorf("%w: %d bytes, over the %d byte limit", ErrMalformed, len(p), MaxRecord)
	}
	d := fields.Dec{B: p, Bad: ErrMalformed}
	if string(d.Fixed("magic", len(recordMagic))) != recordMagic && d.Err == nil {
		d.Fail("magic (not an evidence record, or of another version)")
	}
	r.RequestID = d.Str("request id", 128)
	r.Model = d.Str("model", 256)
	r.Endpoint = backend.Endpoint(d.Bounded("endpoint", uint64(backend.Completion)))
	r.Stream = d.Bool("stream flag")
	r.MaxTokens = uint32(d.Bounded("max tokens", 1<<31))
	r.Body = d.Bytes("body", MaxBody)
	r.Key = d.Bytes("key", 32)
	n := d.Bounded("chunk count", MaxChunks)
	for i := uint64(0); i < n && d.Err == nil; i++ {
		r.Chunks = append(r.Chunks, d.Bytes("chunk", MaxChunk))
	}
	r.Receipt = d.Bytes("receipt", tee.MaxReceiptSize)
	r.At = time.UnixMilli(int64(d.Bounded("time", 1<<50)))
	r.Proxy = d.Bytes("proxy key", 1024)
	r.Sig = d.Bytes("signature", 1024)
	if err := d.Done(); err != nil {
		return Record{}, err
	}
	if r.Endpoint == 0 {
		return Record{}, fmt.Errorf("%w: no endpoint", ErrMalformed)
	}
	if len(r.Key) != 0 && len(r.Key) != 32 {
		return Record{}, fmt.Errorf("%w: a disclosed key is 32 bytes, not %d", ErrMalformed, len(r.Key))
	}
	return r, nil
}

// Claim is what a record proves: worker was sent Request and answered Answer (plain chunk
// data), by its own signature; proxy stands behind the record.
type Claim struct {
	Worker, Proxy peer.ID
	Request       backend.Request
	Answer        [][]byte
	Receipt       tee.Receipt
}

// Open checks the record and returns what it proves: the proxy's signature, the worker's
// receipt (its signature, and that it names this request and model, this body and these
// chunks), and, for a sealed canary, that the disclosed key opens the body and every chunk.
func (r *Record) Open() (Claim, error) {
	var c Claim
	pub, err := crypto.UnmarshalPublicKey(r.Proxy)
	if err != nil {
		return c, fmt.Errorf("%w: proxy key: %v", ErrEvidence, err)
	}
	if ok, err := pub.Verify(r.appendBody(nil), r.Sig); err != nil || !ok {
		return c, fmt.Errorf("%w: the proxy's signature over the record is bad", ErrEvidence)
	}
	if c.Proxy, err = peer.IDFromPublicKey(pub); err != nil {
		return c, fmt.Errorf("%w: proxy key: %v", ErrEvidence, err)
	}
	if c.Receipt, err = tee.UnmarshalReceipt(r.Receipt); err != nil {
		return c, fmt.Errorf("%w: %v", ErrEvidence, err)
	}
	if err := r.checkReceipt(&c.Receipt); err != nil {
		return c, err
	}
	if c.Worker, _, err = c.Receipt.Peers(); err != nil {
		return c, fmt.Errorf("%w: %v", ErrEvidence, err)
	}
	if !bytes.Equal(c.Receipt.ProxyKey, r.Proxy) {
		return c, fmt.Errorf("%w: the receipt names another proxy than the record's signer", ErrEvidence)
	}
	body, answer, err := r.open()
	if err != nil {
		return c, err
	}
	c.Request = backend.Request{Endpoint: r.Endpoint, Model: r.Model, Body: body, Stream: r.Stream, MaxTokens: r.MaxTokens}
	c.Answer = answer
	return c, nil
}

// checkReceipt checks that rc is the worker's word for this record's request and answer.
func (r *Record) checkReceipt(rc *tee.Receipt) error {
	h := tee.NewAnswerHash()
	for _, ch := range r.Chunks {
		h.Add(ch)
	}
	var why string
	switch {
	case rc.RequestID != r.RequestID:
		why = "the receipt names another request"
	case rc.Model != r.Model:
		why = "the receipt names another model"
	case rc.Sealed != (len(r.Key) > 0):
		why = "the receipt's sealed flag disagrees with the record"
	case rc.RequestHash != sha256.Sum256(r.Body):
		why = "the receipt's request hash is not that of the body"
	case rc.AnswerHash != h.Sum():
		why = "the receipt's answer hash is not that of the chunks"
	}
	if why != "" {
		return fmt.Errorf("%w: %s", ErrEvidence, why)
	}
	if err := rc.CheckWorker(); err != nil {
		return fmt.Errorf("%w: %v", ErrEvidence, err)
	}
	return nil
}

// open returns the plain body and chunks, opened under the disclosed key if sealed.
func (r *Record) open() ([]byte, [][]byte, error) {
	if len(r.Key) == 0 {
		return r.Body, r.Chunks, nil
	}
	body, ans, err := tee.OpenDisclosed([32]byte(r.Key), []byte(r.RequestID), r.Body)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrEvidence, err)
	}
	out := make([][]byte, len(r.Chunks))
	for i, ch := range r.Chunks {
		if out[i], err = ans.Open(nil, ch); err != nil {
			return nil, nil, fmt.Errorf("%w: the disclosed key does not open chunk %d of the answer", ErrEvidence, i)
		}
	}
	if len(out) == 0 {
		return nil, nil, fmt.Errorf("%w: an answer of no chunks binds no key to the worker", ErrEvidence)
	}
	return body, out, nil
}
