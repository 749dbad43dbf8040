package openai

import (
	"strings"
	"testing"
	"time"

	"github.com/cocoon-mesh/cocoon/node"
	"github.com/cocoon-mesh/cocoon/node/wire"
)

func TestParseCompletion(t *testing.T) {
	f := &Face{cfg: node.DefaultConfig()}
	for _, c := range []struct {
		body, param string
		ok          bool
	}{
		{`{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":5}`, "", true},
		{`{"model":"m","messages":[{"role":"user","content":"x"}],"max_completion_tokens":6}`, "", true},
		{`{"model":"m","messages":[]}`, "messages", false},
		{`{"model":"m","messages":"hi"}`, "messages", false},
		{`{"messages":[{}]}`, "model", false},
		{`{"model":"m","messages":[{}],"max_tokens":-1}`, "max_tokens", false},
		{`{"model":"m","messages":[{}],"max_tokens":99999999}`, "max_tokens", false},
		{`[1,2]`, "", false},
	} {
		_, h, err := f.parseCompletion([]byte(c.body), wire.Chat)
		if c.ok != (err == nil) || (err != nil && err.param != c.param) {
			t.Errorf("%s: got %+v", c.body, err)
		}
		if c.ok && (h.Model != "m" || h.MaxTokens == 0) {
			t.Errorf("%s: header %+v", c.body, h)
		}
	}
	if _, _, err := f.parseCompletion([]byte(`{"model":"m"}`), wire.Completion); err == nil || err.param != "prompt" {
		t.Errorf("completion without prompt: %+v", err)
	}
}

func FuzzParseCompletion(f *testing.F) {
	f.Add([]byte(`{"model":"m","messages":[{"role":"user","content":"x"}],"stream":true,"stream_options":{"include_usage":true}}`))
	f.Add([]byte(`{"model":"m","prompt":"x","max_tokens":3}`))
	face := &Face{cfg: node.DefaultConfig()}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, ep := range []wire.Endpoint{wire.Chat, wire.Completion} {
			_, h, err := face.parseCompletion(body, ep)
			if err != nil {
				if err.status != 400 || err.m == "" {
					t.Fatalf("bad error %+v", err)
				}
				continue
			}
			// Whatever is accepted must make a header the wire accepts.
			hd := wire.Header{Model: h.Model, Endpoint: h.Endpoint, Stream: h.Stream, MaxTokens: h.MaxTokens, MaxPrice: h.MaxPrice, Timeout: time.Second}
			if _, err := wire.DecodeHeader(wire.AppendHeader(nil, &hd)); err != nil && !strings.Contains(err.Error(), "model") {
				t.Fatalf("accepted request makes a bad header: %v", err)
			}
		}
	})
}
