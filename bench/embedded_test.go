package bench

import (
	"context"
	"testing"
	"time"

	"github.com/cocoon-mesh/cocoon/model/modeltest"
	"github.com/cocoon-mesh/cocoon/node/backend"
)

func TestRunEmbedded(t *testing.T) {
	m, err := modeltest.Synthetic(16, 32, 2, 4, 2, 256, 128)
	if err != nil {
		t.Fatal(err)
	}
	newBackend := func() (backend.Backend, error) {
		return backend.NewEmbedded(backend.EmbeddedConfig{Model: m, Tokenizer: modeltest.Bytes(), ModelID: "toy@test:0", BOS: -1, EOS: -1})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := RunEmbedded(ctx, EmbeddedConfig{NewBackend: newBackend, ModelID: "toy@test:0", Prompt: "hi", MaxTokens: 10, Requests: 4, Concurrency: []int{1, 2}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 4 {
		t.Fatalf("%d results", len(res))
	}
	for _, r := range res {
		// Greedy and max_tokens 10: both paths generate exactly 40 tokens per measurement.
		if r.Tokens != 40 || r.TokensPerSec <= 0 {
			t.Fatalf("%+v", r)
		}
	}
}
