package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/cocoon-mesh/cocoon/bench"
	"github.com/cocoon-mesh/cocoon/model"
	"github.com/cocoon-mesh/cocoon/node"
	"github.com/cocoon-mesh/cocoon/node/backend"
)

// benchEmbedded is bench's embedded-model mode: the engine's tokens/s in-process against the
// same requests through a local mesh.
func (m *Main) benchEmbedded(ctx context.Context, f *benchFlags) error {
	modelFile, tokenizerFile, prompt, maxTokens := f.modelFile, f.tokenizerFile, f.prompt, f.maxTokens
	var id string
	var newBackend func() (backend.Backend, error)
	if modelFile == "builtin" {
		m, tk, err := model.Embedded()
		if err != nil {
			return err
		}
		id = model.EmbeddedID
		// No stop at blank lines here: the bench measures decoding, so every answer runs to
		// max_tokens.
		newBackend = func() (backend.Backend, error) {
			return backend.NewEmbedded(backend.EmbeddedConfig{Model: m, Tokenizer: tk, ModelID: id, BOS: -1, EOS: -1, MaxActive: 16})
		}
	} else {
		if tokenizerFile == "" {
			return usageError("--model-file needs --tokenizer-file")
		}
		raw, err := os.ReadFile(modelFile)
		if err != nil {
			return err
		}
		id = "bench@local:" + model.WeightsHash(raw)
		s := settings{node: node.DefaultConfig(), modelFile: modelFile, tokenizerFile: tokenizerFile}
		s.node.Models = []node.ModelConfig{{ID: id}}
		newBackend = func() (backend.Backend, error) { return embeddedBackend(s) }
	}
	fmt.Fprintf(m.Stdout, "embedded model %s (%s), prompt %q, max_tokens %d, greedy\n", modelFile, id, prompt, maxTokens)
	start := time.Now()
	cfg := bench.EmbeddedConfig{NewBackend: newBackend, ModelID: id, Prompt: prompt, MaxTokens: maxTokens}
	if f.given["concurrency"] {
		cfg.Concurrency = f.conc
	}
	if f.given["requests"] {
		cfg.Requests = f.requests
	}
	cfg.Progress = func(msg string) { fmt.Fprintf(m.Stdout, "  [%5.1fs] %s\n", time.Since(start).Seconds(), msg) }
	res, err := bench.RunEmbedded(ctx, cfg)
	if err != nil {
		return err
	}
	inProc := map[int]float64{}
	for _, r := range res {
		if r.Path == "in-process" {
			inProc[r.Concurrency] = r.TokensPerSec
		}
	}
	fmt.Fprintf(m.Stdout, "\n%-11s %5s %12s %9s\n", "path", "conc", "tokens/s", "vs engine")
	for _, r := range res {
		fmt.Fprintf(m.Stdout, "%-11s %5d %12.0f %9.2f\n", r.Path, r.Concurrency, r.TokensPerSec, r.TokensPerSec/inProc[r.Concurrency])
	}
	return nil
}
