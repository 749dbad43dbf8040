package wire

import (
	"crypto/sha256"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cocoon-mesh/cocoon/internal/fields"
)

// Limits on header fields; a header is small by design, the body travels in its own frame.
const (
	MaxIDLen    = 64
	MaxModelLen = 256
	MaxTimeout  = 24 * time.Hour
)

// Endpoint names the OpenAI API a request targets.
type Endpoint uint8

// Endpoints carried by Header.Endpoint.
const (
	Chat       Endpoint = 1 // /v1/chat/completions
	Completion Endpoint = 2 // /v1/completions
)

// Header is the first frame of an inference stream: what the router needs, never the prompt.
type Header struct {
	ID        string        // request id chosen by the client, for logs and receipts
	Model     string        // requested model: "name", "name@revision" or "name@revision:hash"
	Endpoint  Endpoint      // which OpenAI API the body is for
	Stream    bool          // the caller wants chunks as they are generated
	MaxTokens uint32        // completion token limit (0: the node's default)
	Timeout   time.Duration // time left for the whole request when this hop sent it; each hop shrinks it
	MaxPrice  uint64        // cap on the effective price, nanoTON per completion token (0: no cap)
	// Sealed says the body is sealed to the worker. From a client it asks the proxy for a route
	// frame first, since the client cannot seal before it knows the worker, unless Presealed.
	Sealed bool
	// Presealed says a sealed-set frame follows the header: the body sealed to workers the
	// client already knows. If the proxy picks one of them it needs no route round trip.
	Presealed bool
	// Exclude names workers that already failed this request (at another proxy, or through
	// this one): the proxy routes it elsewhere.
	Exclude []peer.ID
}

// MaxExclude bounds Header.Exclude.
const MaxExclude = 16

// AppendHeader encodes h.
func AppendHeader(b []byte, h *Header) []byte {
	e := fields.Enc{B: b}
	e.Str(h.ID)
	e.Str(h.Model)
	e.Uvarint(uint64(h.Endpoint))
	e.Bool(h.Stream)
	e.Uvarint(uint64(h.MaxTokens))
	e.Uvarint(uint64(h.Timeout / time.Millisecond))
	e.Uvarint(h.MaxPrice)
	e.Bool(h.Sealed)
	e.Bool(h.Presealed)
	e.Uvarint(uint64(len(h.Exclude)))
	for _, w := range h.Exclude {
		e.Bytes([]byte(w))
	}
	return e.B
}

// DecodeHeader decodes and checks a Header payload.
func DecodeHeader(p []byte) (Header, error) {
	d := fields.Dec{B: p, Bad: ErrMalformed}
	var h Header
	h.ID = d.Str("request id", MaxIDLen)
	h.Model = d.Str("model", MaxModelLen)
	h.Endpoint = Endpoint(d.Bounded("endpoint", 255))
	h.Stream = d.Bool("stream flag")
	h.MaxTokens = uint32(d.Bounded("max tokens", 1<<32-1))
	h.Timeout = time.Duration(d.Bounded("timeout", uint64(MaxTimeout/time.Millisecond))) * time.Millisecond
	h.MaxPrice = d.Uvarint("max price")
	h.Sealed = d.Bool("sealed flag")
	h.Presealed = d.Bool("presealed flag")
	if n := d.Bounded("excluded workers", MaxExclude); n > 0 && d.Err == nil {
		h.Exclude = make([]peer.ID, 0, n)
		for range n {
			id := d.Bytes("excluded worker", 128)
			if d.Err != nil {
				break
			}
			w, err := peer.IDFromBytes(id)
			if err != nil {
				return Header{}, fmt.Errorf("%w: excluded worker: %v", ErrMalformed, err)
			}
			h.Exclude = append(h.Exclude, w)
		}
	}
	if err := d.Done(); err != nil {
		return Header{}, err
	}
	if h.Endpoint != Chat && h.Endpoint != Completion {
		return Header{}, fmt.Errorf("%w: unknown endpoint %d", ErrMalformed, h.Endpoint)
	}
	if h.Model == "" {
		return Header{}, fmt.Errorf("%w: empty model", ErrMalformed)
	}
	if h.Timeout <= 0 {
		return Header{}, fmt.Errorf("%w: no time left", ErrMalformed)
	}
	if h.Presealed && !h.Sealed {
		return Header{}, fmt.Errorf("%w: presealed but not sealed", ErrMalformed)
	}
	return h, nil
}

// Chunk is one piece of the answer and the completion tokens it carries: the whole OpenAI
// response when the request did not stream; otherwise one or more server-sent events, each
// "data: <OpenAI chunk object>\n\n" (a worker sends tokens the backend produced together in
// one frame, and the client passes the events on as they are).
type Chunk struct {
	Tokens uint32
	Data   []byte
}

// AppendChunk encodes c.
func AppendChunk(b []byte, c *Chunk) []byte {
	e := fields.Enc{B: b}
	e.Uvarint(uint64(c.Tokens))
	e.Bytes(c.Data)
	return e.B
}

// DecodeChunk decodes a Chunk payload; Data aliases p.
func DecodeChunk(p []byte) (Chunk, error) {
	d := fields.Dec{B: p, Bad: ErrMalformed}
	var c Chunk
	c.Tokens = uint32(d.Bounded("chunk tokens", 1<<32-1))
	c.Data = d.Bytes("chunk data", len(p))
	return c, d.Done()
}

// Usage is the token accounting of one request, by billing category.
type Usage struct {
	Prompt, Cached, Completion, Reasoning uint32
	Estimated                             bool // the backend reported no usage; the worker estimated it
}

// MaxReceiptLen bounds the receipt a final message carries.
const MaxReceiptLen = 8 << 10

// Final ends a successful answer.
type Final struct {
	Usage   Usage
	Worker  string // the worker's peer ID, as text
	Receipt []byte // signed by the worker, countersigned by the proxy (see tee.Receipt)
	// Tag is the receipt's worker digest sealed under the answer's key, on sealed answers: the
	// client learns the worker vouched for the receipt without verifying a signature.
	Tag []byte
}

// AppendFinal encodes f.
func AppendFinal(b []byte, f *Final) []byte {
	e := fields.Enc{B: b}
	e.Uvarint(uint64(f.Usage.Prompt))
	e.Uvarint(uint64(f.Usage.Cached))
	e.Uvarint(uint64(f.Usage.Completion))
	e.Uvarint(uint64(f.Usage.Reasoning))
	e.Bool(f.Usage.Estimated)
	e.Str(f.Worker)
	e.Bytes(f.Receipt)
	e.Bytes(f.Tag)
	return e.B
}

// DecodeFinal decodes a Final payload.
func DecodeFinal(p []byte) (Final, error) {
	d := fields.Dec{B: p, Bad: ErrMalformed}
	var f Final
	const m = 1<<32 - 1
	f.Usage.Prompt = uint32(d.Bounded("prompt tokens", m))
	f.Usage.Cached = uint32(d.Bounded("cached tokens", m))
	f.Usage.Completion = uint32(d.Bounded("completion tokens", m))
	f.Usage.Reasoning = uint32(d.Bounded("reasoning tokens", m))
	f.Usage.Estimated = d.Bool("estimated flag")
	f.Worker = d.Str("worker", 128)
	f.Receipt = d.Bytes("receipt", MaxReceiptLen)
	f.Tag = d.Bytes("receipt tag", 64)
	return f, d.Done()
}

// Reject is a caller refusing an answer: why, and how many of the answer's completion tokens
// it accepts (those of the chunks it took before the refusal, counted as the chunks said).
// Both sides price them with the same tab, so they agree to the nanoTON on what the accepted
// part costs; the callee takes back whatever else it counted, and ends the answer.
type Reject struct {
	Tokens uint64
	Err    Error
}

// AppendReject encodes r.
func AppendReject(b []byte, r *Reject) []byte {
	e := fields.Enc{B: b}
	e.Uvarint(r.Tokens)
	return AppendError(e.B, &r.Err)
}

// DecodeReject decodes a Reject payload.
func DecodeReject(p []byte) (Reject, error) {
	d := fields.Dec{B: p, Bad: ErrMalformed}
	var r Reject
	r.Tokens = d.Uvarint("accepted tokens")
	if d.Err != nil {
		return Reject{}, d.Err
	}
	e, err := DecodeError(d.B)
	if err != nil {
		return Reject{}, err
	}
	r.Err = *e
	return r, nil
}

// Route tells a client which worker the proxy chose, so it can seal the body to that worker.
type Route struct {
	Worker peer.ID
	Key    []byte // the worker's libp2p public key, marshalled: the hello's report data binds it
	Hello  []byte // the worker's hello (tee.Hello), as the worker sent it to the proxy
}

// MaxHelloLen bounds a hello carried in a route.
const MaxHelloLen = 80 << 10

// AppendRoute encodes r.
func AppendRoute(b []byte, r *Route) []byte {
	e := fields.Enc{B: b}
	e.Bytes([]byte(r.Worker))
	e.Bytes(r.Key)
	e.Bytes(r.Hello)
	return e.B
}

// DecodeRoute decodes a Route payload; Key and Hello alias p.
func DecodeRoute(p []byte) (Route, error) {
	d := fields.Dec{B: p, Bad: ErrMalformed}
	var r Route
	id := d.Bytes("worker id", 128)
	r.Key = d.Bytes("worker key", 1024)
	r.Hello = d.Bytes("hello", MaxHelloLen)
	if err := d.Done(); err != nil {
		return Route{}, err
	}
	var err error
	if r.Worker, err = peer.IDFromBytes(id); err != nil {
		return Route{}, fmt.Errorf("%w: worker id: %v", ErrMalformed, err)
	}
	return r, nil
}

// MaxSealedSet bounds how many workers one request may be sealed to ahead of routing.
const MaxSealedSet = 16

// Sealed is the body sealed to one worker.
type Sealed struct {
	Worker peer.ID
	KeyID  [8]byte // which of the worker's sealing keys: a restarted worker has a new one
	Body   []byte
}

// SealKeyID names a sealing public key in a sealed set.
func SealKeyID(key []byte) [8]byte {
	h := sha256.Sum256(key)
	return [8]byte(h[:8])
}

// AppendSealedSet encodes a sealed set.
func AppendSealedSet(b []byte, set []Sealed) []byte {
	n := 0
	for _, s := range set {
		n += len(s.Worker) + len(s.Body) + 24
	}
	e := fields.Enc{B: slices.Grow(b, n)}
	e.Uvarint(uint64(len(set)))
	for _, s := range set {
		e.Bytes([]byte(s.Worker))
		e.Fixed(s.KeyID[:])
		e.Bytes(s.Body)
	}
	return e.B
}

// DecodeSealedSet decodes a sealed set; the bodies alias p. Workers must be distinct.
func DecodeSealedSet(p []byte) ([]Sealed, error) {
	d := fields.Dec{B: p, Bad: ErrMalformed}
	n := d.Bounded("sealed set size", MaxSealedSet)
	set := make([]Sealed, 0, n)
	for i := uint64(0); i < n && d.Err == nil; i++ {
		id := d.Bytes("worker id", 128)
		keyID := d.Fixed("sealing key id", 8)
		body := d.Bytes("sealed body", len(p))
		if d.Err != nil {
			break
		}
		w, err := peer.IDFromBytes(id)
		if err != nil {
			return nil, fmt.Errorf("%w: worker id: %v", ErrMalformed, err)
		}
		for _, s := range set {
			if s.Worker == w {
				return nil, fmt.Errorf("%w: worker %s twice in a sealed set", ErrMalformed, w)
			}
		}
		set = append(set, Sealed{Worker: w, KeyID: [8]byte(keyID), Body: body})
	}
	if err := d.Done(); err != nil {
		return nil, err
	}
	if len(set) == 0 {
		return nil, fmt.Errorf("%w: empty sealed set", ErrMalformed)
	}
	return set, nil
}

// Code classifies a failure; each maps to an HTTP status for the client API.
type Code uint16

// Error codes carried by Error frames.
const (
	CodeBadRequest   Code = 1  // the request itself is wrong: do not retry elsewhere
	CodeUnknownModel Code = 2  // no worker serves the model
	CodePriceTooHigh Code = 3  // workers exist, all above the caller's price cap
	CodeNoCapacity   Code = 4  // all workers busy or unhealthy: retry later
	CodeTooLarge     Code = 5  // body or max_tokens over the limit
	CodeTimeout      Code = 6  // the deadline passed
	CodeCancelled    Code = 7  // the caller went away
	CodeBackend      Code = 8  // the model backend failed
	CodeWorkerFailed Code = 9  // the worker failed after the answer had started
	CodeInternal     Code = 10 // a bug or an unexpected local failure
	CodeUnavailable  Code = 11 // this node cannot serve now (no proxy, shutting down)
	CodeAttestation  Code = 12 // a peer's attestation is missing or refused, or sealed data did not open
	CodeSealSession  Code = 13 // the worker no longer holds the client's sealing session: resend with its key
	CodePayment      Code = 14 // no payment channel, a refused voucher, or a payer that stopped paying
)

var codeNames = map[Code]string{
	CodeBadRequest: "bad_request", CodeUnknownModel: "model_not_found", CodePriceTooHigh: "price_too_high",
	CodeNoCapacity: "no_capacity", CodeTooLarge: "too_large", CodeTimeout: "timeout",
	CodeCancelled: "cancelled", CodeBackend: "backend_error", CodeWorkerFailed: "worker_failed",
	CodeInternal: "internal_error", CodeUnavailable: "unavailable", CodeAttestation: "attestation_failed",
	CodeSealSession: "seal_session_unknown", CodePayment: "payment_required",
}

// String returns the code's stable name, used as OpenAI's error "code".
func (c Code) String() string {
	if s, ok := codeNames[c]; ok {
		return s
	}
	return fmt.Sprintf("code_%d", uint16(c))
}

// HTTPStatus is the status the client API answers with for c.
func (c Code) HTTPStatus() int {
	switch c {
	case CodeBadRequest:
		return http.StatusBadRequest
	case CodeUnknownModel:
		return http.StatusNotFound
	case CodePriceTooHigh, CodePayment:
		return http.StatusPaymentRequired
	case CodeNoCapacity, CodeUnavailable:
		return http.StatusServiceUnavailable
	case CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case CodeTimeout:
		return http.StatusGatewayTimeout
	case CodeCancelled:
		return 499 // client closed request, as nginx names it
	case CodeBackend, CodeWorkerFailed, CodeAttestation, CodeSealSession:
		return http.StatusBadGateway
	}
	return http.StatusInternalServerError
}

// Retryable reports whether another worker could succeed where this one failed.
func (c Code) Retryable() bool {
	switch c {
	case CodeNoCapacity, CodeBackend, CodeWorkerFailed, CodeUnavailable, CodeInternal:
		return true
	}
	return false
}

// Error is a failure sent in place of an answer. It implements error.
type Error struct {
	Code    Code
	Message string
}

// MaxErrorLen bounds an error message on the wire.
const MaxErrorLen = 4096

// Error returns "code_name: message".
func (e *Error) Error() string { return e.Code.String() + ": " + e.Message }

// Errorf builds an *Error.
func Errorf(c Code, format string, args ...any) *Error {
	return &Error{Code: c, Message: fmt.Sprintf(format, args...)}
}

// AppendError encodes e; an over-long message is cut.
func AppendError(b []byte, e *Error) []byte {
	msg := e.Message
	if len(msg) > MaxErrorLen {
		msg = msg[:MaxErrorLen]
	}
	en := fields.Enc{B: b}
	en.Uvarint(uint64(e.Code))
	en.Str(msg)
	return en.B
}

// DecodeError decodes an Error payload.
func DecodeError(p []byte) (*Error, error) {
	d := fields.Dec{B: p, Bad: ErrMalformed}
	e := &Error{}
	e.Code = Code(d.Bounded("error code", 1<<16-1))
	e.Message = d.Str("error message", MaxErrorLen)
	if err := d.Done(); err != nil {
		return nil, err
	}
	return e, nil
}
