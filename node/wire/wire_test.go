package wire

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/cocoon-mesh/cocoon/internal/fields"
)

func TestFrameRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	h := Header{ID: "r1", Model: "llama@1:abc", Endpoint: Chat, Stream: true, MaxTokens: 128, Timeout: 1500 * time.Millisecond, MaxPrice: 7,
		Exclude: []peer.ID{"\x00\x04abcd", "\x00\x04abce"}}
	frames := []struct {
		t FrameType
		p []byte
	}{
		{FrameHeader, AppendHeader(nil, &h)},
		{FrameBody, []byte(`{"messages":[]}`)},
		{FrameChunk, AppendChunk(nil, &Chunk{Tokens: 1, Data: []byte(`{"x":1}`)})},
		{FrameFinal, AppendFinal(nil, &Final{Usage: Usage{Prompt: 3, Completion: 9, Cached: 1, Reasoning: 2, Estimated: true}, Worker: "w", Receipt: []byte("r")})},
		{FrameError, AppendError(nil, Errorf(CodeNoCapacity, "busy"))},
	}
	for _, f := range frames {
		if err := w.WriteFrame(f.t, f.p); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	r := NewReader(&buf, 1<<20)
	for _, f := range frames {
		typ, p, err := r.ReadFrame()
		if err != nil || typ != f.t || !bytes.Equal(p, f.p) {
			t.Fatalf("frame %s: got %s %q %v", f.t, typ, p, err)
		}
	}
	if _, _, err := r.ReadFrame(); err != io.EOF {
		t.Fatalf("want EOF after last frame, got %v", err)
	}

	got, err := DecodeHeader(frames[0].p)
	if err != nil || !reflect.DeepEqual(got, h) {
		t.Fatalf("header: got %+v %v", got, err)
	}
	fin, err := DecodeFinal(frames[3].p)
	if err != nil || fin.Usage.Completion != 9 || !fin.Usage.Estimated || fin.Worker != "w" {
		t.Fatalf("final: %+v %v", fin, err)
	}
	e, err := DecodeError(frames[4].p)
	if err != nil || e.Code != CodeNoCapacity || e.Message != "busy" {
		t.Fatalf("error: %+v %v", e, err)
	}
}

func TestReaderRefusesOversizedFrameBeforeReading(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	_ = w.WriteFrame(FrameBody, make([]byte, 100))
	_ = w.Flush()
	_, _, err := NewReader(&buf, 99).ReadFrame()
	if !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("want ErrFrameTooLarge, got %v", err)
	}
	// A length prefix claiming 2^60 bytes must fail without allocating it.
	huge := append([]byte{byte(FrameBody)}, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10)
	if _, _, err := NewReader(bytes.NewReader(huge), 1<<20).ReadFrame(); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("want ErrFrameTooLarge, got %v", err)
	}
	// Truncated frames are unexpected EOF, not a clean end.
	if _, _, err := NewReader(bytes.NewReader([]byte{3, 5, 'a'}), 1<<20).ReadFrame(); err != io.ErrUnexpectedEOF {
		t.Fatalf("want ErrUnexpectedEOF, got %v", err)
	}
}

func TestDecodeHeaderRejects(t *testing.T) {
	good := Header{ID: "a", Model: "m", Endpoint: Chat, Timeout: time.Second}
	cases := map[string]func(h *Header) []byte{
		"empty model":      func(h *Header) []byte { h.Model = ""; return AppendHeader(nil, h) },
		"unknown endpoint": func(h *Header) []byte { h.Endpoint = 9; return AppendHeader(nil, h) },
		"no time left":     func(h *Header) []byte { h.Timeout = 0; return AppendHeader(nil, h) },
		"long id":          func(h *Header) []byte { h.ID = strings.Repeat("x", MaxIDLen+1); return AppendHeader(nil, h) },
		"trailing bytes":   func(h *Header) []byte { return append(AppendHeader(nil, h), 0) },
		"truncated":        func(h *Header) []byte { b := AppendHeader(nil, h); return b[:len(b)-1] },
		"bad bool":         func(h *Header) []byte { b := AppendHeader(nil, h); b[len(h.ID)+len(h.Model)+3] = 7; return b },
	}
	for name, mk := range cases {
		h := good
		if _, err := DecodeHeader(mk(&h)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: want ErrMalformed, got %v", name, err)
		}
	}
}

func TestCodes(t *testing.T) {
	if CodeUnknownModel.HTTPStatus() != 404 || CodeNoCapacity.HTTPStatus() != 503 || CodeBadRequest.HTTPStatus() != 400 {
		t.Fatal("status mapping changed")
	}
	if CodeBadRequest.Retryable() || !CodeBackend.Retryable() {
		t.Fatal("retry classification changed")
	}
	if Code(999).String() != "code_999" || CodeTimeout.String() != "timeout" {
		t.Fatal("code names changed")
	}
}

func testAdvert(t testing.TB) (*Advert, crypto.PrivKey) {
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := peer.IDFromPrivateKey(key)
	return &Advert{
		Worker: id, Seq: 3, Time: time.UnixMilli(1_700_000_000_123),
		Addrs:     []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/4001")},
		MaxActive: 8, Running: 2, Coefficient: 1500, TokensPerSec: 420, Healthy: true,
		Offers: []Offer{{Model: "llama@1:abc", Prices: Prices{Prompt: 1, Cached: 0, Completion: 4, Reasoning: 4}}},
	}, key
}

func TestAdvertSignVerify(t *testing.T) {
	a, key := testAdvert(t)
	b, err := SignAdvert(a, key)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeAdvert(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a.Offers, got.Offers) || got.Worker != a.Worker || !got.Time.Equal(a.Time) || !got.Addrs[0].Equal(a.Addrs[0]) || got.Running != 2 {
		t.Fatalf("round trip changed the advert: %+v", got)
	}
	if p := got.EffectivePrice(got.Offers[0]); p != 6 {
		t.Fatalf("effective price %d, want 4 x 1.5 = 6", p)
	}
	// Any flipped bit breaks the signature or the structure.
	for i := range b {
		c := bytes.Clone(b)
		c[i] ^= 0x01
		if _, err := DecodeAdvert(c); err == nil {
			t.Fatalf("flipping byte %d still verified", i)
		}
	}
	// Signing someone else's advert is refused.
	other, _, _ := crypto.GenerateEd25519Key(nil)
	if _, err := SignAdvert(a, other); err == nil {
		t.Fatal("signed an advert for another peer")
	}
}

func TestAdvertRejectsBadModelAndFreshness(t *testing.T) {
	a, key := testAdvert(t)
	a.Offers[0].Model = "no-revision"
	b, _ := SignAdvert(a, key)
	if _, err := DecodeAdvert(b); !errors.Is(err, ErrMalformed) {
		t.Fatalf("want ErrMalformed for a bad model id, got %v", err)
	}
	now := a.Time
	if err := a.CheckFresh(now.Add(time.Minute), 30*time.Second, time.Second); !errors.Is(err, ErrStale) {
		t.Fatalf("want ErrStale, got %v", err)
	}
	if err := a.CheckFresh(now.Add(-time.Minute), 30*time.Second, time.Second); !errors.Is(err, ErrFuture) {
		t.Fatalf("want ErrFuture, got %v", err)
	}
	if err := a.CheckFresh(now.Add(time.Second), 30*time.Second, time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestParseModelID(t *testing.T) {
	for _, ok := range []string{"llama@1:abc", "org/model-7b@v1.2:0f3a", "a@b:c"} {
		m, err := ParseModelID(ok)
		if err != nil || m.String() != ok {
			t.Errorf("%q: %v %v", ok, m, err)
		}
	}
	for _, bad := range []string{"", "llama", "llama@1", "llama@1:", "@1:abc", "llama@:abc", "lla ma@1:abc", "x@1:ab/c"} {
		if _, err := ParseModelID(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestReadFrameReuse(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	small, big := []byte("first"), bytes.Repeat([]byte{7}, maxReuse+1)
	_ = w.WriteFrame(FrameChunk, small)
	_ = w.WriteFrame(FrameChunk, []byte("2nd"))
	_ = w.WriteFrame(FrameChunk, big)
	_ = w.Flush()
	r := NewReader(&buf, 1<<20)
	_, p1, err := r.ReadFrameReuse()
	if err != nil || string(p1) != "first" {
		t.Fatalf("%q %v", p1, err)
	}
	_, p2, _ := r.ReadFrameReuse()
	if string(p2) != "2nd" || &p1[0] != &p2[0] {
		t.Fatal("small payloads should share the buffer")
	}
	_, p3, _ := r.ReadFrameReuse()
	if !bytes.Equal(p3, big) || &p3[0] == &p2[0] {
		t.Fatal("a large payload must get its own slice")
	}
}

func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{1, 3, 'a', 'b', 'c'})
	f.Add([]byte{3, 0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := NewReader(bytes.NewReader(b), 1<<16)
		for i := 0; i < 64; i++ {
			if _, p, err := r.ReadFrame(); err != nil {
				return
			} else if len(p) > 1<<16 {
				t.Fatalf("frame of %d bytes passed a 64 KiB limit", len(p))
			}
		}
	})
}

func FuzzDecodeMessages(f *testing.F) {
	f.Add(AppendHeader(nil, &Header{ID: "x", Model: "m", Endpoint: Chat, Timeout: time.Second}))
	f.Add(AppendChunk(nil, &Chunk{Tokens: 1, Data: []byte("{}")}))
	f.Add(AppendFinal(nil, &Final{Usage: Usage{Prompt: 1}}))
	f.Add(AppendError(nil, Errorf(CodeTimeout, "late")))
	f.Add(AppendFinal(nil, &Final{Worker: "w", Receipt: []byte("receipt")}))
	f.Add(AppendSealedSet(nil, []Sealed{{Worker: peer.ID("\x00\x04abcd"), KeyID: [8]byte{1}, Body: []byte("x")}, {Worker: peer.ID("\x00\x04abce")}}))
	f.Add(AppendRoute(nil, &Route{Worker: peer.ID("\x00\x04abcd"), Key: []byte("k"), Hello: []byte("h")}))
	f.Add(AppendHeader(nil, &Header{ID: "x", Model: "m", Endpoint: Chat, Timeout: time.Second, Exclude: []peer.ID{"\x00\x04abcd"}}))
	f.Add(AppendReject(nil, &Reject{Tokens: 42, Err: *Errorf(CodeWorkerFailed, "chunk did not open")}))
	f.Fuzz(func(t *testing.T, b []byte) {
		if h, err := DecodeHeader(b); err == nil && !bytes.Equal(AppendHeader(nil, &h), b) {
			t.Fatalf("header does not round-trip: %+v", h)
		}
		if r, err := DecodeReject(b); err == nil && !bytes.Equal(AppendReject(nil, &r), b) {
			t.Fatalf("reject does not round-trip: %+v", r)
		}
		if c, err := DecodeChunk(b); err == nil && !bytes.Equal(AppendChunk(nil, &c), b) {
			t.Fatal("chunk does not round-trip")
		}
		if fin, err := DecodeFinal(b); err == nil && !bytes.Equal(AppendFinal(nil, &fin), b) {
			t.Fatal("final does not round-trip")
		}
		if e, err := DecodeError(b); err == nil && !bytes.Equal(AppendError(nil, e), b) {
			t.Fatal("error does not round-trip")
		}
		if r, err := DecodeRoute(b); err == nil && !bytes.Equal(AppendRoute(nil, &r), b) {
			t.Fatal("route does not round-trip")
		}
		if set, err := DecodeSealedSet(b); err == nil && !bytes.Equal(AppendSealedSet(nil, set), b) {
			t.Fatal("sealed set does not round-trip")
		}
	})
}

func FuzzDecodeAdvert(f *testing.F) {
	a, key := testAdvert(f)
	good, _ := SignAdvert(a, key)
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := DecodeAdvert(b)
		if err != nil {
			return
		}
		// Whatever verifies must re-encode to the same signed body.
		if len(got.Offers) > MaxAdvertModels || len(got.Addrs) > MaxAdvertAddrs {
			t.Fatal("limits not enforced")
		}
	})
}

func TestAdvertFromAHashedPeerID(t *testing.T) {
	key, _, err := crypto.GenerateECDSAKeyPair(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := peer.IDFromPrivateKey(key)
	a := &Advert{Worker: id, Time: time.UnixMilli(1), Coefficient: 1000, Offers: []Offer{{Model: "m@1:a"}}}
	b, err := SignAdvert(a, key)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := DecodeAdvert(b); err != nil || got.Worker != id {
		t.Fatalf("ECDSA-keyed advert: %v", err)
	}
	// Someone else's key in the advert does not pass for the worker's.
	other, _, _ := crypto.GenerateEd25519Key(nil)
	otherPub, _ := crypto.MarshalPublicKey(other.GetPublic())
	e := fields.Enc{}
	e.Bytes([]byte(id))
	e.Bytes(otherPub)
	forged := append(e.B, a.appendBody(nil, otherPub)[len(e.B):]...)
	sig, _ := other.Sign(append([]byte(advertDomain), forged...))
	fe := fields.Enc{B: forged}
	fe.Bytes(sig)
	if _, err := DecodeAdvert(fe.B); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("advert with a stranger's key: %v", err)
	}
}

func TestReaderReleaseIsIdempotent(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	_ = w.WriteFrame(FrameChunk, []byte("x"))
	_ = w.Flush()
	w.Release()
	r := NewReader(&buf, 16)
	if _, p, err := r.ReadFrameReuse(); err != nil || string(p) != "x" {
		t.Fatalf("%q %v", p, err)
	}
	r.Release()
	r.Release()
	// A fresh reader from the pool starts clean.
	if _, _, err := NewReader(bytes.NewReader(nil), 16).ReadFrame(); err != io.EOF {
		t.Fatalf("recycled reader kept state: %v", err)
	}
}
