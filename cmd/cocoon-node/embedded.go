package main

import (
	"fmt"
	"os"
	"runtime"

	"github.com/cocoon-mesh/cocoon/model"
	"github.com/cocoon-mesh/cocoon/node/backend"
	"github.com/cocoon-mesh/cocoon/node/wire"
)

// embeddedBackend loads the checkpoint a worker serves with the built-in engine. The weights
// file must hash to the hash its model identity pins, so two workers advertising one identity
// really serve one model.
func embeddedBackend(s settings) (backend.Backend, error) {
	if len(s.node.Models) != 1 {
		return nil, fmt.Errorf("the embedded engine serves one model: give exactly one --model")
	}
	if s.modelFile == "" || s.tokenizerFile == "" {
		return nil, fmt.Errorf("the embedded engine needs --model-file and --tokenizer-file")
	}
	id, err := wire.ParseModelID(s.node.Models[0].ID)
	if err != nil {
		return nil, err
	}
	weights, err := os.ReadFile(s.modelFile)
	if err != nil {
		return nil, err
	}
	if err := model.CheckHash(weights, id.Hash); err != nil {
		return nil, fmt.Errorf("%s: %w", s.modelFile, err)
	}
	m, err := model.Parse(weights)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.modelFile, err)
	}
	tb, err := os.ReadFile(s.tokenizerFile)
	if err != nil {
		return nil, err
	}
	tk, err := model.ParseTokenizer(tb, m.Config.Vocab)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.tokenizerFile, err)
	}
	bos, eos := -1, -1
	if t, ok := tk.Lookup("<s>"); ok {
		bos = t
	}
	if t, ok := tk.Lookup("</s>"); ok {
		eos = t
	}
	return backend.NewEmbedded(backend.EmbeddedConfig{
		Model: m, Tokenizer: tk, ModelID: s.node.Models[0].ID, BOS: bos, EOS: eos,
		MaxActive: min(s.node.MaxActive, 4*runtime.NumCPU()),
	})
}
