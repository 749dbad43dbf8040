package node

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"testing"
)

// A canary is a well-formed chat request with a seed, the stream flag and token limit of the
// request it mimics, and about its size: cut to fit a short request, padded for a long one.
func TestCanaryBody(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, size := range []int{50, 200, 1000, 8000} {
		b := canaryBody(r.IntN, "m@v1:none", size, shape{stream: size > 500}, 33)
		var req struct {
			Stream    bool  `json:"stream"`
			MaxTokens int   `json:"max_tokens"`
			Seed      *int  `json:"seed"`
			Messages  []any `json:"messages"`
		}
		if err := json.Unmarshal(b, &req); err != nil {
			t.Fatalf("size %d: %v: %s", size, err, b)
		}
		if req.Stream != (size > 500) || req.MaxTokens != 33 || req.Seed == nil || len(req.Messages) != 1 {
			t.Errorf("size %d: %s", size, b)
		}
		if size >= 200 && (len(b) > size || len(b) < size-300) {
			t.Errorf("size %d: a canary of %d bytes", size, len(b))
		}
	}
}

// Audit settings out of range are refused, naming the key to change.
func TestAuditConfig(t *testing.T) {
	if err := (&AuditConfig{Rate: 0.02, Threshold: 1}).validate(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []AuditConfig{{Rate: 0, Threshold: 1}, {Rate: 1.5, Threshold: 1}, {Rate: 0.02, Threshold: 0}, {Rate: 0.02, Threshold: 2}} {
		var ce *ConfigError
		if err := bad.validate(); !errors.As(err, &ce) {
			t.Errorf("%+v: want a ConfigError, got %v", bad, err)
		}
	}
}
