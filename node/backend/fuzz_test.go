package backend

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"testing/iotest"

	"github.com/cocoon-mesh/cocoon/model"
	"github.com/cocoon-mesh/cocoon/model/modeltest"
)

// syntheticModel is a small model for the byte tokenizer, with a context of 64 tokens.
func syntheticModel(tb testing.TB) *model.Model {
	m, err := modeltest.Synthetic(16, 32, 1, 4, 2, 256, 64)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

func FuzzParseSSE(f *testing.F) {
	for _, s := range []string{
		"data: {\"choices\":[]}\n\ndata: [DONE]\n\n",
		"data:a\r\ndata:b\r\n\r\n",
		"data: a\r\rdata: b\r",
		": c\nevent: e\nid: 1\nretry: 2\n\n",
		"\xef\xbb\xbfdata: x",
		"data",
		"\r\n\r\n\n\r",
		"data: " + string(bytes.Repeat([]byte("x"), 300)) + "\n\n",
	} {
		f.Add([]byte(s), uint16(64))
	}
	f.Fuzz(func(t *testing.T, in []byte, max16 uint16) {
		max := int(max16%2048) + 1
		// Feeding the input whole or byte by byte must make no difference,
		// and no event may exceed max, whatever the input.
		var whole, bytewise [][]byte
		check := func(out *[][]byte) func([]byte) error {
			return func(d []byte) error {
				if len(d) == 0 || len(d) > max {
					t.Fatalf("event of %d bytes, max %d", len(d), max)
				}
				if bytes.IndexByte(d, '\r') >= 0 {
					t.Fatalf("CR in event data %q", d)
				}
				*out = append(*out, bytes.Clone(d))
				return nil
			}
		}
		err1 := ParseSSE(bytes.NewReader(in), max, check(&whole))
		err2 := ParseSSE(iotest.OneByteReader(bytes.NewReader(in)), max, check(&bytewise))
		if (err1 == nil) != (err2 == nil) || err1 != nil && !errors.Is(err1, ErrTooLarge) {
			t.Fatalf("errors differ or unexpected: %v / %v", err1, err2)
		}
		if err1 == nil {
			if len(whole) != len(bytewise) {
				t.Fatalf("%d events whole, %d byte by byte", len(whole), len(bytewise))
			}
			for i := range whole {
				if !bytes.Equal(whole[i], bytewise[i]) {
					t.Fatalf("event %d: %q vs %q", i, whole[i], bytewise[i])
				}
			}
		}
		if len(in) <= max && err1 != nil {
			t.Fatalf("input of %d bytes refused with max %d: %v", len(in), max, err1)
		}
	})
}

func FuzzParseUsage(f *testing.F) {
	for _, s := range []string{
		`{"usage":{"prompt_tokens":10,"completion_tokens":5,"prompt_tokens_details":{"cached_tokens":8},"completion_tokens_details":{"reasoning_tokens":2}}}`,
		`{"usage":null,"choices":[]}`,
		`{"usage":{"prompt_tokens":1e999,"completion_tokens":-3.5}}`,
		`{"usage":{"prompt_tokens":"x"}}`,
		`[]`,
		``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		u, ok := ParseUsage(in)
		if !ok && u != (Usage{}) {
			t.Fatalf("not ok but %+v", u)
		}
		if u.Prompt < 0 || u.Completion < 0 || u.Prompt > maxCount || u.Completion > maxCount ||
			u.Cached < 0 || u.Cached > u.Prompt || u.Reasoning < 0 || u.Reasoning > u.Completion || u.Estimated {
			t.Fatalf("inconsistent usage %+v", u)
		}
	})
}

func FuzzRewriteBody(f *testing.F) {
	for _, s := range []string{
		`{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function"}]}`,
		`{"stream":true,"stream_options":{"include_usage":false,"x":1}}`,
		`{"a":1,"\u0061":2}`,
		` {} `,
		`[]`,
	} {
		f.Add([]byte(s), true)
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, in []byte, stream bool) {
		out, _, err := rewriteBody(Request{Endpoint: Chat, Body: in, Stream: stream}, "srv")
		if err != nil {
			var be *Error
			if !errors.As(err, &be) || be.Status != 400 {
				t.Fatalf("err = %v, want *Error 400", err)
			}
			return
		}
		var before, after map[string]json.RawMessage
		if err := json.Unmarshal(in, &before); err != nil {
			t.Fatalf("accepted %q: %v", in, err)
		}
		if err := json.Unmarshal(out, &after); err != nil {
			t.Fatalf("produced invalid JSON %q: %v", out, err)
		}
		if string(after["model"]) != `"srv"` || string(after["stream"]) != map[bool]string{true: "true", false: "false"}[stream] {
			t.Fatalf("model/stream not set: %s", out)
		}
		if stream {
			var opts struct {
				IncludeUsage bool `json:"include_usage"`
			}
			if json.Unmarshal(after["stream_options"], &opts) != nil || !opts.IncludeUsage {
				t.Fatalf("include_usage not forced: %s", out)
			}
		} else if _, ok := after["stream_options"]; ok {
			t.Fatalf("stream_options kept without a stream: %s", out)
		}
		for k, v := range before {
			switch k {
			case "model", "stream", "stream_options":
				continue
			}
			if !bytes.Equal(after[k], v) {
				t.Fatalf("member %q changed: %s -> %s", k, v, after[k])
			}
		}
		if len(after) < len(before) {
			t.Fatalf("members lost: %s -> %s", in, out)
		}
	})
}

func FuzzEmbeddedParse(f *testing.F) {
	for _, s := range []string{
		`{"prompt":"hello","max_tokens":3,"stop":["a","b"],"temperature":0.5,"seed":1}`,
		`{"messages":[{"role":"system","content":"x"},{"role":"user","content":[{"type":"text","text":"y"}]}],"n":1}`,
		`{"prompt":["a"]}`, `{"prompt":["a","b"]}`, `{"messages":[{"content":null}]}`, `{"prompt":"\u0000\u00e9"}`,
		`{"messages":[{"role":"user","content":"hi","role":"x"}],"best_of":2}`, `{"prompt":"a","prompt":"b"}`,
	} {
		f.Add([]byte(s), true)
		f.Add([]byte(s), false)
	}
	e, err := NewEmbedded(EmbeddedConfig{Model: syntheticModel(f), Tokenizer: modeltest.Bytes(), ModelID: "toy@test:0", BOS: 1, EOS: -1})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte, chat bool) {
		ep := Completion
		if chat {
			ep = Chat
		}
		gen, err := e.parse(Request{Endpoint: ep, Body: body})
		if err != nil {
			var be *Error
			if !errors.As(err, &be) || be.Status != 400 || be.Message == "" {
				t.Fatalf("%q: %v, want a 400 *Error", body, err)
			}
			return
		}
		if !json.Valid(body) || len(gen.Prompt) == 0 || len(gen.Prompt) > e.promptTokens() || gen.Prompt[0] != 1 || gen.MaxTokens < 0 {
			t.Fatalf("%q accepted as %d prompt tokens (at most %d), max_tokens %d", body, len(gen.Prompt), e.promptTokens(), gen.MaxTokens)
		}
	})
}
