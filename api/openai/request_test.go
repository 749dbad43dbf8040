package openai

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/cocoon-mesh/cocoon/node/wire"
)

// goNames are words of Go's own error messages that must never reach an API caller.
var goNames = []string{"Go ", "struct", "int64", "unmarshal", "completionRequest", "json:", "RawMessage"}

// A request is refused with a 400 naming the field for: duplicate or case-variant keys, values
// of the wrong type (described as JSON, never in Go's terms), and fan-out fields that would
// make one paid request many answers. What OpenAI accepts as one request passes.
func TestDecodeCompletion(t *testing.T) {
	for _, c := range []struct {
		name, body string
		ep         wire.Endpoint
		param      string // "" with ok
		ok         bool
		says       string
	}{
		{"chat", `{"model":"m","messages":[{"role":"user","content":"hi"}],"n":1,"best_of":null,"stream":true,"stream_options":{"include_usage":true}}`, wire.Chat, "", true, ""},
		{"completion string", `{"model":"m","prompt":"hi","max_tokens":5}`, wire.Completion, "", true, ""},
		{"completion tokens", `{"model":"m","prompt":[1,2,3]}`, wire.Completion, "", true, ""},
		{"one of strings", `{"model":"m","prompt":["hi"]}`, wire.Completion, "", true, ""},
		{"one token list", `{"model":"m","prompt":[[1,2]]}`, wire.Completion, "", true, ""},
		{"duplicate max_tokens", `{"model":"m","max_tokens":5,"max_tokens":99999,"messages":[{}]}`, wire.Chat, "max_tokens", false, "twice"},
		{"duplicate escaped", `{"model":"m","max_tokens":5,"max\u005ftokens":9,"messages":[{}]}`, wire.Chat, "max_tokens", false, "twice"},
		{"duplicate unknown key", `{"model":"m","tools":[],"tools":[1],"messages":[{}]}`, wire.Chat, "tools", false, "twice"},
		{"case variant", `{"model":"m","MAX_TOKENS":99999,"messages":[{}]}`, wire.Chat, "MAX_TOKENS", false, "only in case"},
		{"n many", `{"model":"m","n":1000000,"messages":[{}]}`, wire.Chat, "n", false, "n must be 1"},
		{"n negative", `{"model":"m","n":-1,"messages":[{}]}`, wire.Chat, "n", false, "n=-1"},
		{"n string", `{"model":"m","n":"2","messages":[{}]}`, wire.Chat, "n", false, "n must be 1, not a string"},
		{"best_of", `{"model":"m","best_of":5,"prompt":"x"}`, wire.Completion, "best_of", false, "best_of must be 1"},
		{"prompt list", `{"model":"m","prompt":["a","b"]}`, wire.Completion, "prompt", false, "list of 2 prompts"},
		{"prompt token lists", `{"model":"m","prompt":[[1],[2],[3]]}`, wire.Completion, "prompt", false, "list of 3 prompts"},
		{"prompt empty list", `{"model":"m","prompt":[]}`, wire.Completion, "prompt", false, "empty list"},
		{"prompt mixed", `{"model":"m","prompt":[1,"a"]}`, wire.Completion, "prompt", false, "whole numbers"},
		{"prompt object", `{"model":"m","prompt":{"a":1}}`, wire.Completion, "prompt", false, "not an object"},
		{"no prompt", `{"model":"m"}`, wire.Completion, "prompt", false, "required"},
		{"model number", `{"model":5,"messages":[{}]}`, wire.Chat, "model", false, "model must be a string, not 5"},
		{"max_tokens string", `{"model":"m","max_tokens":"5","messages":[{}]}`, wire.Chat, "max_tokens", false, "max_tokens must be a whole number, not a string"},
		{"max_tokens fraction", `{"model":"m","max_tokens":5.5,"messages":[{}]}`, wire.Chat, "max_tokens", false, "not 5.5"},
		{"stream string", `{"model":"m","stream":"yes","messages":[{}]}`, wire.Chat, "stream", false, "true or false"},
		{"include_usage string", `{"model":"m","stream_options":{"include_usage":"x"},"messages":[{}]}`, wire.Chat, "stream_options", false, "stream_options.include_usage"},
		{"stream_options list", `{"model":"m","stream_options":[],"messages":[{}]}`, wire.Chat, "stream_options", false, "not a list"},
		{"messages empty", `{"model":"m","messages":[ ]}`, wire.Chat, "messages", false, "non-empty"},
		{"messages object", `{"model":"m","messages":{}}`, wire.Chat, "messages", false, "non-empty"},
		{"not an object", `["model"]`, wire.Chat, "", false, "JSON object"},
		{"trailing", `{"model":"m","messages":[{}]} {}`, wire.Chat, "", false, "nothing after"},
		{"truncated", `{"model":"m","messages":[{}]`, wire.Chat, "", false, "ends too early"},
		{"syntax", `{"model":"m",,}`, wire.Chat, "", false, "not valid JSON"},
	} {
		req, aerr := decodeCompletion([]byte(c.body), c.ep)
		if c.ok {
			if aerr != nil {
				t.Errorf("%s: refused: %s", c.name, aerr.m)
			}
			continue
		}
		if aerr == nil {
			t.Errorf("%s: accepted: %+v", c.name, req)
			continue
		}
		if aerr.status != 400 || aerr.param != c.param || !strings.Contains(aerr.m, c.says) {
			t.Errorf("%s: %d param %q %q; want param %q saying %q", c.name, aerr.status, aerr.param, aerr.m, c.param, c.says)
		}
		for _, g := range goNames {
			if strings.Contains(aerr.m, g) {
				t.Errorf("%s: the message shows Go's %q: %s", c.name, g, aerr.m)
			}
		}
	}
	req, _ := decodeCompletion([]byte(`{"model":"m","stream":true,"stream_options":{"include_usage":true},"max_completion_tokens":7,"messages":[{}]}`), wire.Chat)
	if req.Model != "m" || !req.Stream || !req.IncludeUsage || req.MaxCompletionTokens == nil || *req.MaxCompletionTokens != 7 || req.MaxTokens != nil {
		t.Fatalf("decoded %+v", req)
	}
}

// FuzzDecodeCompletion: any body is either refused with a 400 in plain words, or is one JSON
// object without duplicate keys, whose fan-out fields ask for one answer.
func FuzzDecodeCompletion(f *testing.F) {
	for _, s := range []string{`{"model":"m","messages":[{"role":"user","content":"hi"}]}`, `{"model":"m","prompt":[[1,2]],"n":1}`,
		`{"model":"m","max_tokens":5,"max_tokens":9}`, `{"a":{"b":[1,2,{"c":null}]},"n":2}`, `{"Model":"x"}`, `[1]`, `{"prompt":["a","b"]}`} {
		f.Add([]byte(s), true)
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, body []byte, chat bool) {
		ep := wire.Completion
		if chat {
			ep = wire.Chat
		}
		_, aerr := decodeCompletion(body, ep)
		if aerr != nil {
			if aerr.status != 400 || aerr.m == "" {
				t.Fatalf("refusal %+v", aerr)
			}
			for _, g := range goNames {
				if strings.Contains(aerr.m, g) {
					t.Fatalf("the message shows Go's %q: %s", g, aerr.m)
				}
			}
			return
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("accepted a body that is not a JSON object: %v", err)
		}
		for _, k := range []string{"n", "best_of"} {
			if v, ok := m[k]; ok && string(v) != "1" && string(v) != "null" {
				t.Fatalf("accepted %s=%s", k, v)
			}
		}
		if p := m["prompt"]; ep == wire.Completion && len(p) > 0 && p[0] == '[' {
			var items []json.RawMessage
			if json.Unmarshal(p, &items) == nil && len(items) > 1 && (items[0][0] == '"' || items[0][0] == '[') {
				t.Fatalf("accepted a list of %d prompts", len(items))
			}
		}
	})
}
