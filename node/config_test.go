package node

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/cocoon-mesh/cocoon/node/wire"
)

func TestConfigValidate(t *testing.T) {
	worker := func(c *Config) { c.Role = RoleWorker; c.Models = []ModelConfig{{ID: "m@1:abc"}} }
	for _, c := range []struct {
		name  string
		tweak func(*Config)
		field string // "" means valid
	}{
		{"defaults", func(c *Config) {}, ""},
		{"worker", worker, ""},
		{"bad role", func(c *Config) { c.Role = "miner" }, "role"},
		{"bad dht mode", func(c *Config) { c.DHTMode = "sometimes" }, "dht_mode"},
		{"client-mode proxy", func(c *Config) { c.Role = RoleProxy; c.DHTMode = "client" }, "dht_mode"},
		{"bootstrap without peer id", func(c *Config) { c.Bootstrap = []string{"/ip4/127.0.0.1/tcp/1"} }, "bootstrap"},
		{"bootstrap garbage", func(c *Config) { c.Bootstrap = []string{"not an address"} }, "bootstrap"},
		{"worker without models", func(c *Config) { c.Role = RoleWorker }, "models"},
		{"unpinned model", func(c *Config) { worker(c); c.Models[0].ID = "llama" }, "models.id"},
		{"model twice", func(c *Config) { worker(c); c.Models = append(c.Models, c.Models[0]) }, "models.id"},
		{"tiny body limit", func(c *Config) { c.MaxBodyBytes = 10 }, "max_body_bytes"},
		{"hop margin too big", func(c *Config) { c.HopMargin = time.Minute; c.RequestTimeout = time.Minute }, "hop_margin"},
		{"negative max workers", func(c *Config) { c.MaxWorkers = -1 }, "gossip.max_workers"},
		{"negative admit rate", func(c *Config) { c.AdmitRate = -1 }, "gossip.admit_rate"},
		{"NaN admit rate", func(c *Config) { c.AdmitRate = math.NaN() }, "gossip.admit_rate"},
		{"negative admit burst", func(c *Config) { c.AdmitBurst = -5 }, "gossip.admit_burst"},
		{"tiny attestation cache", func(c *Config) { c.MaxAttestations = 3 }, "tee.max_attestations"},
	} {
		cfg := DefaultConfig()
		c.tweak(&cfg)
		err := cfg.validate()
		var ce *ConfigError
		switch {
		case c.field == "" && err != nil:
			t.Errorf("%s: unexpected error %v", c.name, err)
		case c.field != "" && (!errors.As(err, &ce) || ce.Field != c.field || !errors.Is(err, ErrConfig)):
			t.Errorf("%s: got %v, want an error on %s", c.name, err, c.field)
		}
	}
	// Zero fields take defaults.
	var cfg Config
	cfg.Role = RoleClient
	if err := cfg.validate(); err != nil || cfg.MaxTokens != DefaultConfig().MaxTokens || cfg.Network == "" {
		t.Fatalf("zero config not defaulted: %v %+v", err, cfg)
	}
}

func TestParseCompletion(t *testing.T) {
	n := &Node{cfg: DefaultConfig()}
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
		_, h, err := n.parseCompletion([]byte(c.body), wire.Chat)
		if c.ok != (err == nil) || (err != nil && err.param != c.param) {
			t.Errorf("%s: got %+v", c.body, err)
		}
		if c.ok && (h.Model != "m" || h.MaxTokens == 0) {
			t.Errorf("%s: header %+v", c.body, h)
		}
	}
	if _, _, err := n.parseCompletion([]byte(`{"model":"m"}`), wire.Completion); err == nil || err.param != "prompt" {
		t.Errorf("completion without prompt: %+v", err)
	}
}

func FuzzParseCompletion(f *testing.F) {
	f.Add([]byte(`{"model":"m","messages":[{"role":"user","content":"x"}],"stream":true,"stream_options":{"include_usage":true}}`))
	f.Add([]byte(`{"model":"m","prompt":"x","max_tokens":3}`))
	n := &Node{cfg: DefaultConfig()}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, ep := range []wire.Endpoint{wire.Chat, wire.Completion} {
			_, h, err := n.parseCompletion(body, ep)
			if err != nil {
				if err.status != 400 || err.m == "" {
					t.Fatalf("bad error %+v", err)
				}
				continue
			}
			// Whatever is accepted must make a header the wire accepts.
			h.Timeout = time.Second
			if _, err := wire.DecodeHeader(wire.AppendHeader(nil, &h)); err != nil && !strings.Contains(err.Error(), "model") {
				t.Fatalf("accepted request makes a bad header: %v", err)
			}
		}
	})
}
