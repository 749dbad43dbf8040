package audit_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/cocoon-mesh/cocoon/audit"
	"github.com/cocoon-mesh/cocoon/audit/audittest"
	"github.com/cocoon-mesh/cocoon/node/backend"
)

func gpu(seed uint64) *backend.SimGPU { return audittest.GPU(seed) }

func keyPair(t testing.TB) crypto.PrivKey { return audittest.Key(t) }

func canary(t testing.TB, seed uint64, stream bool) *audit.Record {
	r, _ := audittest.Canary(t, gpu(seed), stream)
	return r
}

func signedCanary(t testing.TB, seed uint64, stream bool) (*audit.Record, crypto.PrivKey) {
	return audittest.Canary(t, gpu(seed), stream)
}

// An honest worker's canary matches the reference word for word; one whose model differs
// (another seed) does not, and the record proves it after a round trip through its encoding.
func TestVerify(t *testing.T) {
	ctx := context.Background()
	for _, stream := range []bool{false, true} {
		honest := canary(t, 1, stream)
		v, err := audit.Verify(ctx, honest, gpu(1), 1)
		if err != nil || !v.Match || v.Agreement != 1 || len(v.Got) != 1 || v.Got[0] == "" {
			t.Fatalf("stream %t: honest canary: %+v, %v", stream, v, err)
		}
		wrong, err := audit.Unmarshal(canary(t, 2, stream).Marshal())
		if err != nil {
			t.Fatal(err)
		}
		v, err = audit.Verify(ctx, &wrong, gpu(1), 1)
		if err != nil || v.Match || v.Agreement >= 1 || slices.Equal(v.Want, v.Got) {
			t.Fatalf("stream %t: wrong canary: %+v, %v", stream, v, err)
		}
		if v, _ := audit.Verify(ctx, &wrong, gpu(1), v.Agreement); !v.Match {
			t.Fatalf("stream %t: a threshold at its agreement %.2f must pass it", stream, v.Agreement)
		}
	}
}

// A record altered anywhere proves nothing: it is refused with audit.ErrEvidence, never judged.
func TestTamperedRecordsRefused(t *testing.T) {
	for name, tamper := range map[string]func(r *audit.Record){
		"body":        func(r *audit.Record) { r.Body[len(r.Body)-1] ^= 1 },
		"chunk":       func(r *audit.Record) { r.Chunks[0][0] ^= 1 },
		"chunk gone":  func(r *audit.Record) { r.Chunks = r.Chunks[1:] },
		"key":         func(r *audit.Record) { r.Key[0] ^= 1 },
		"request id":  func(r *audit.Record) { r.RequestID = "canary-2" },
		"model":       func(r *audit.Record) { r.Model = "other@v1:none" },
		"unsealed":    func(r *audit.Record) { r.Key = nil },
		"another sig": func(r *audit.Record) { r.Sig[0] ^= 1 },
		"other proxy": func(r *audit.Record) { r.Sign(keyPair(t)) },
	} {
		r, proxyKey := signedCanary(t, 1, true)
		tamper(r)
		if name != "another sig" && name != "other proxy" {
			r.Sign(proxyKey) // the proxy re-signing what it altered gains nothing
		}
		if _, err := audit.Verify(context.Background(), r, gpu(1), 1); !errors.Is(err, audit.ErrEvidence) {
			t.Errorf("%s: want audit.ErrEvidence, got %v", name, err)
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
	v, err := audit.Compare(context.Background(), c, gpu(1), 0.5)
	if err != nil || v.Match || v.Unreadable == "" {
		t.Fatalf("%+v %v", v, err)
	}
}

func TestObjects(t *testing.T) {
	objs, err := audit.Objects([][]byte{[]byte("data: {\"a\":1}\n\nda"), []byte("ta: {\"b\":2}\n\n: comment\ndata: [DONE]\n\n")}, true)
	if err != nil || len(objs) != 2 || string(objs[0]) != `{"a":1}` || string(objs[1]) != `{"b":2}` {
		t.Fatalf("%q %v", objs, err)
	}
	if _, err := audit.Objects([][]byte{[]byte("garbage\n")}, true); err == nil {
		t.Fatal("a stream of no events was read")
	}
	if objs, _ := audit.Objects([][]byte{[]byte(`{"a":`), []byte(`1}`)}, false); len(objs) != 1 || string(objs[0]) != `{"a":1}` {
		t.Fatalf("a whole answer split in two: %q", objs)
	}
}

func TestAnswerTextAndAgreement(t *testing.T) {
	got, err := audit.AnswerText([][]byte{
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
		if a := audit.Agreement(c.want, c.got); a != c.agree {
			t.Errorf("audit.Agreement(%q, %q) = %v, want %v", c.want, c.got, a, c.agree)
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
		r, err := audit.Unmarshal(p)
		if err != nil {
			if !errors.Is(err, audit.ErrMalformed) {
				t.Fatalf("refusal does not wrap ErrMalformed: %v", err)
			}
			return
		}
		if !bytes.Equal(r.Marshal(), p) {
			t.Fatal("a record that decodes does not encode back to the same bytes")
		}
		if _, err := r.Open(); err != nil && !errors.Is(err, audit.ErrEvidence) {
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
			objs, err := audit.Objects([][]byte{p, p}, stream)
			if err != nil {
				continue
			}
			if texts, err := audit.AnswerText(objs); err == nil && len(texts) > 128 {
				t.Fatalf("%d choices", len(texts))
			}
		}
	})
}
