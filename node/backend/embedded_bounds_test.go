package backend

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/cocoon-mesh/cocoon/model"
)

// newBuiltin is the built-in model's backend as cmd/cocoon-node configures it.
func newBuiltin(t *testing.T) *Embedded {
	t.Helper()
	m, tk, err := model.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewEmbedded(EmbeddedConfig{Model: m, Tokenizer: tk, ModelID: model.EmbeddedID, BOS: -1, EOS: -1, MaxActive: 1, MaxTokens: 128, Stop: [][]byte{[]byte("\n\n")}})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// fill repeats unit between prefix and suffix up to about n bytes, separating units by commas.
func fill(n int, prefix, unit, suffix string) string {
	k := (n - len(prefix) - len(suffix)) / (len(unit) + 1)
	return prefix + strings.TrimSuffix(strings.Repeat(unit+",", k), ",") + suffix
}

// TestEmbeddedWorkPerRequestIsBounded: whatever a request holds, the built-in model's backend
// allocates less than 1 MiB for it, the bound its doc states, and refuses a prompt that cannot
// fit naming the context. Before prompt sizes were checked ahead of tokenizing, a 4 MiB prompt
// took about 450 MB.
func TestEmbeddedWorkPerRequestIsBounded(t *testing.T) {
	e := newBuiltin(t)
	const bound = 1 << 20
	max := e.cfg.MaxBodyBytes
	if e.promptBytes != 127*10 || max != 6*1270+bodySlack {
		t.Fatalf("prompt bytes %d, body cap %d", e.promptBytes, max)
	}
	words := strings.Repeat("Package strings implements simple functions. ", 1<<17)
	unique := func() string {
		var b strings.Builder
		b.WriteString(`{"x":0`)
		for i := 0; b.Len() < max-16; i++ {
			fmt.Fprintf(&b, `,"%x":0`, i)
		}
		return b.String() + "}"
	}()
	for _, c := range []struct {
		name string
		ep   Endpoint
		body string
		want string // in the refusal; "" = served
	}{
		{"4 MiB prompt", Completion, `{"prompt":"` + words[:4<<20-100] + `"}`, "context of 128 tokens"},
		{"4 MiB chat", Chat, `{"messages":[{"role":"user","content":"` + words[:4<<20-100] + `"}]}`, "context of 128 tokens"},
		{"just over the bytes", Completion, `{"prompt":"` + words[:1271] + `"}`, "the prompt is 1271 bytes"},
		{"too many tokens", Completion, `{"prompt":"` + words[:1200] + `"}`, "context of 128 tokens"},
		{"escapes", Completion, fill(max, `{"prompt":"`, `\u0000`, `"}`), "context of 128 tokens"},
		{"many messages", Chat, fill(max, `{"messages":[`, `{"content":""}`, `]}`), "context of 128 tokens"},
		{"many parts", Chat, fill(max, `{"messages":[{"content":[`, `{"type":"text","text":"a"}`, `]}]}`), "context of 128 tokens"},
		{"empty messages", Chat, fill(max, `{"messages":[`, `{}`, `]}`), "each message must be"},
		{"many fields", Completion, unique, "more than 1024 fields"},
		{"long stop", Completion, `{"prompt":"a","max_tokens":128,"stop":["` + strings.Repeat("x", max-80) + `"]}`, ""},
		{"fits", Completion, `{"prompt":"` + words[:300] + `","max_tokens":128}`, ""},
		{"chat fits", Chat, `{"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"` + words[:250] + `"}],"max_tokens":128}`, ""},
	} {
		for _, stream := range []bool{false, true} {
			body := []byte(c.body)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			u, err := e.Generate(context.Background(), Request{Endpoint: c.ep, Body: body, Stream: stream}, func(Chunk) error { return nil })
			runtime.ReadMemStats(&after)
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("%-20s stream %-5t body %7d B: allocated %6d B", c.name, stream, len(body), alloc)
			if alloc > bound {
				t.Errorf("%s: allocated %d bytes, over %d", c.name, alloc, bound)
			}
			switch {
			case c.want == "" && (err != nil || u.Completion == 0):
				t.Errorf("%s: %+v %v", c.name, u, err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Errorf("%s: %v, want an error naming %q", c.name, err, c.want)
			}
		}
	}
}

// TestEmbeddedRefusesWhatTheRewriteRefuses: fan-out fields, duplicate keys and bad JSON get the
// same 400 from the built-in engine as from the HTTP backend's rewrite, before any work.
func TestEmbeddedRefusesWhatTheRewriteRefuses(t *testing.T) {
	e := newTestEmbedded(t, 1)
	for _, c := range []struct {
		ep         Endpoint
		body, want string
	}{
		{Chat, `{"messages":[{"role":"user","content":"hi"}],"n":2}`, "n must be 1"},
		{Chat, `{"messages":[{"role":"user","content":"hi"}],"n":1000000}`, "n must be 1"},
		{Chat, `{"messages":[{"role":"user","content":"hi"}],"n":-1}`, "n must be 1"},
		{Completion, `{"prompt":"hi","best_of":3}`, "best_of must be 1"},
		{Completion, `{"prompt":["a","b"]}`, "prompt must be one prompt"},
		{Completion, `{"prompt":"a","max_tokens":1,"max_tokens":100}`, `duplicate field "max_tokens"`},
		{Completion, `{"prompt":"a","\u0070rompt":"b"}`, `duplicate field "prompt"`},
		{Completion, "{\"prompt\":\"\xff\"}", "not valid JSON"},
		{Completion, `{"prompt":"a"} x`, "not valid JSON"},
		{Chat, `{"messages":[{"role":"user","content":7}]}`, "each message must be"},
		{Chat, `{"messages":"hi"}`, "messages must be a list"},
		{Chat, `{"messages":[]}`, "messages must not be empty"},
		{Completion, `{"prompt":[7]}`, "prompt must be a string"},
		{Completion, `{"prompt":"a","max_tokens":1.5}`, "max_tokens"},
	} {
		_, err := e.Generate(context.Background(), Request{Endpoint: c.ep, Body: []byte(c.body)}, func(Chunk) error { return nil })
		var be *Error
		if !errors.As(err, &be) || be.Status != 400 || !strings.Contains(be.Message, c.want) {
			t.Errorf("%s: %v, want a 400 naming %q", c.body, err, c.want)
		}
	}
	for _, ok := range []string{
		`{"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url"}]},{"role":"assistant","content":null}],"n":1,"max_tokens":2}`,
		`{"messages":[{"role":"user","content":"hi"}],"n":null,"best_of":1,"max_tokens":null,"temperature":0,"seed":3,"top_p":0.5,"stop":"x","max_tokens_extra":9}`,
	} {
		if _, err := e.Generate(context.Background(), Request{Endpoint: Chat, Body: []byte(ok)}, func(Chunk) error { return nil }); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	if _, err := e.Generate(context.Background(), Request{Endpoint: Completion, Body: []byte(`{"prompt":["one"],"max_tokens":2}`)}, func(Chunk) error { return nil }); err != nil {
		t.Errorf("a list of one prompt: %v", err)
	}
}
