package node

import (
	"errors"
	"math"
	"testing"
	"time"
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
