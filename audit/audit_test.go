package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/cocoon-mesh/cocoon/node/backend"
	"github.com/cocoon-mesh/cocoon/tee"
)

const model = "sim@v1:none"

func gpu(seed uint64) *backend.SimGPU {
	return backend.NewSimGPU(backend.SimGPUConfig{ModelID: model, Seed: seed, DecodeTokensPerSec: 1e9, PrefillTokensPerSec: 1e9})
}

func keyPair(t testing.TB) crypto.PrivKey {
	k, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// canary runs one audited request as node's proxy and worker do: the proxy seals it in a
// session of its own, the worker (answering with a SimGPU of seed) seals its chunks and signs
// the receipt, and the proxy signs the record.
func canary(t testing.TB, seed uint64, stream bool) *Record {
	r, _ := signedCanary(t, seed, stream)
	return r
}

// signedCanary is canary, and the proxy's key that signed it.
func signedCanary(t testing.TB, seed uint64, stream bool) (*Record, crypto.PrivKey) {
	t.Helper()
	workerKey, proxyKey := keyPair(t), keyPair(t)
	sk, err := tee.GenerateSealKey()
	if err != nil {
		t.Fatal(err)
	}
	sess, err := tee.NewSession(sk.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	plain := []byte(`{"model":"sim","messages":[{"role":"user","content":"what is a mesh?"}],"seed":7,"temperature":0}`)
	rec := &Record{RequestID: "canary-1", Model: model, Endpoint: backend.Chat, Stream: stream, MaxTokens: 12, At: time.UnixMilli(1_800_000_000_000)}
	if rec.Body, _, err = sess.Seal([]byte(rec.RequestID), plain); err != nil {
		t.Fatal(err)
	}
	body, ans, err := tee.NewOpener(sk).Open([]byte(rec.RequestID), rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	h := tee.NewAnswerHash()
	u, err := gpu(seed).Generate(context.Background(), backend.Request{Endpoint: backend.Chat, Model: model, Body: body, Stream: stream, MaxTokens: 12},
		func(c backend.Chunk) error {
			data := c.Data
			if stream { // as a worker sends a stream: server-sent events
				data = backend.AppendEvent(nil, data)
			}
			sealed, err := ans.Seal(nil, data)
			rec.Chunks = append(rec.Chunks, sealed)
			h.Add(sealed)
			return err
		})
	if err != nil {
		t.Fatal(err)
	}
	k := sess.Disclose()
	rec.Key = k[:]
	proxyPub, _ := crypto.MarshalPublicKey(proxyKey.GetPublic())
	rc := tee.Receipt{RequestID: rec.RequestID, Model: model, Sealed: true, RequestHash: sha256.Sum256(rec.Body), AnswerHash: h.Sum(),
		PromptTokens: uint64(u.Prompt), CompletionTokens: uint64(u.Completion), Time: rec.At, ProxyKey: proxyPub}
	if err := rc.SignWorker(workerKey); err != nil {
		t.Fatal(err)
	}
	rec.Receipt = rc.Marshal()
	if err := rec.Sign(proxyKey); err != nil {
		t.Fatal(err)
	}
	return rec, proxyKey
}

// An honest worker's canary matches the reference word for word; one whose model differs
// (another seed) does not, and the record proves it after a round trip through its encoding.
func TestVerify(t *testing.T) {
	ctx := context.Background()
	for _, stream := range []bool{false, true} {
		honest := canary(t, 1, stream)
		v, err := Verify(ctx, honest, gpu(1), 1)
		if err != nil || !v.Match || v.Agreement != 1 || len(v.Got) != 1 || v.Got[0] == "" {
			t.Fatalf("stream %t: honest canary: %+v, %v", stream, v, err)
		}
		wrong, err := Unmarshal(canary(t, 2, stream).Marshal())
		if err != nil {
			t.Fatal(err)
		}
		v, err = Verify(ctx, &wrong, gpu(1), 1)
		if err != nil || v.Match || v.Agreement >= 1 || slices.Equal(v.Want, v.Got) {
			t.Fatalf("stream %t: wrong canary: %+v, %v", stream, v, err)
		}
		if v, _ := Verify(ctx, &wrong, gpu(1), v.Agreement); !v.Match {
			t.Fatalf("stream %t: a threshold at its agreement %.2f must pass it", stream, v.Agreement)
		}
	}
}

// A record altered anywhere proves nothing: it is refused with ErrEvidence, never judged.
func TestTamperedRecordsRefused(t *testing.T) {
	for name, tamper := range map[string]func(r *Record){
		"body":        func(r *Record) { r.Body[len(r.Body)-1] ^= 1 },
		"chunk":       func(r *Record) { r.Chunks[0][0] ^= 1 },
		"chunk gone":  func(r *Record) { r.Chunks = r.Chunks[1:] },
		"key":         func(r *Record) { r.Key[0] ^= 1 },
		"request id":  func(r *Record) { r.RequestID = "canary-2" },
		"model":       func(r *Record) { r.Model = "other@v1:none" },
		"unsealed":    func(r *Record) { r.Key = nil },
		"another sig": func(r *Record) { r.Sig[0] ^= 1 },
		"other proxy": func(r *Record) { r.Sign(keyPair(t)) },
	} {
		r, proxyKey := signedCanary(t, 1, true)
		tamper(r)
		if name != "another sig" && name != "other proxy" {
			r.Sign(proxyKey) // the proxy re-signing what it altered gains nothing
		}
		if _, err := Verify(context.Background(), r, gpu(1), 1); !errors.Is(err, ErrEvidence) {
			t.Errorf("%s: want ErrEvidence, got %v", name, err)
		}
	}
}

// An answer that is not OpenAI JSON has no text: it never matches, and says why.
func TestUnreadableAnswer(t *testing.T) {
	r := canary(t, 1, true)
	c, err := r.Open()
	if err != nil {
		t.Fatal(err)
	}
	c.Answer = [][]byte{[]byte("\x00\x01 not json")}
	v, err := Compare(context.Background(), c, gpu(1), 0.5)
	if err != nil || v.Match || v.Unreadable == "" {
		t.Fatalf("%+v %v", v, err)
	}
}

func TestObjects(t *testing.T) {
	objs, err := Objects([][]byte{[]byte("data: {\"a\":1}\n\nda"), []byte("ta: {\"b\":2}\n\n: comment\ndata: [DONE]\n\n")}, true)
	if err != nil || len(objs) != 2 || string(objs[0]) != `{"a":1}` || string(objs[1]) != `{"b":2}` {
		t.Fatalf("%q %v", objs, err)
	}
	if _, err := Objects([][]byte{[]byte("garbage\n")}, true); err == nil {
		t.Fatal("a stream of no events was read")
	}
	if objs, _ := Objects([][]byte{[]byte(`{"a":`), []byte(`1}`)}, false); len(objs) != 1 || string(objs[0]) != `{"a":1}` {
		t.Fatalf("a whole answer split in two: %q", objs)
	}
}

func TestAnswerTextAndAgreement(t *testing.T) {
	got, err := AnswerText([][]byte{
		[]byte(`{"choices":[{"index":0,"delta":{"role":"assistant","content":"the"}}]}`),
		[]byte(`{"choices":[{"index":1,"text":"b"},{"index":0,"delta":{"content":" mesh"}}]}`),
		[]byte(`{"choices":[{"index":0,"message":{"content":" pays"}}],"usage":{"completion_tokens":3}}`),
	})
	if err != nil || !slices.Equal(got, []string{"the mesh pays", "b"}) {
		t.Fatalf("%q %v", got, err)
	}
	for _, c := range []struct {
		want, got []string
		agree     float64
	}{
		{[]string{"a b c d"}, []string{"a b c d"}, 1},
		{[]string{"a b c d"}, []string{"a x c d"}, 0.75},
		{[]string{"a b c d"}, []string{"a b"}, 0.5},
		{[]string{"a b"}, []string{"a b", "c d"}, 0.5},
		{nil, nil, 1},
	} {
		if a := Agreement(c.want, c.got); a != c.agree {
			t.Errorf("Agreement(%q, %q) = %v, want %v", c.want, c.got, a, c.agree)
		}
	}
}

func FuzzUnmarshal(f *testing.F) {
	good := canary(f, 1, true).Marshal()
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add(append(slices.Clone(good), 0))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, p []byte) {
		r, err := Unmarshal(p)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("refusal does not wrap ErrMalformed: %v", err)
			}
			return
		}
		if !bytes.Equal(r.Marshal(), p) {
			t.Fatal("a record that decodes does not encode back to the same bytes")
		}
		if _, err := r.Open(); err != nil && !errors.Is(err, ErrEvidence) {
			t.Fatalf("Open's refusal does not wrap ErrEvidence: %v", err)
		}
	})
}

func FuzzAnswerText(f *testing.F) {
	f.Add([]byte(`{"choices":[{"index":0,"delta":{"content":"x"}}]}`))
	f.Add([]byte(`{"choices":[{"index":99999999999}]}`))
	f.Add([]byte(`[]`))
	f.Add([]byte("data: {\"choices\":[{\"index\":0,\"text\":\"x\"}]}\n\ndata: [DONE]\n\n"))
	f.Fuzz(func(t *testing.T, p []byte) {
		for _, stream := range []bool{false, true} {
			objs, err := Objects([][]byte{p, p}, stream)
			if err != nil {
				continue
			}
			if texts, err := AnswerText(objs); err == nil && len(texts) > 128 {
				t.Fatalf("%d choices", len(texts))
			}
		}
	})
}
