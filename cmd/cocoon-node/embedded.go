package main

import (
	"fmt"
	"os"

	"github.com/cocoon-mesh/cocoon/model"
	"github.com/cocoon-mesh/cocoon/node/backend"
	"github.com/cocoon-mesh/cocoon/node/wire"
)

// embeddedBackend makes the built-in engine's backend for a worker. Without --model-file it
// serves the model built into the binary; with one, it loads that llama2.c checkpoint, whose
// file must hash to the hash its model identity pins, so two workers advertising one identity
// really serve one model.
func embeddedBackend(s settings) (backend.Backend, error) {
	if len(s.node.Models) != 1 {
		return nil, fmt.Errorf("the embedded engine serves one model: give exactly one --model")
	}
	id := s.node.Models[0].ID
	if s.modelFile == "" {
		if id != model.EmbeddedID {
			return nil, fmt.Errorf("without --model-file the embedded engine serves %s, not %s", model.EmbeddedID, id)
		}
		m, tk, err := model.Embedded()
		if err != nil {
			return nil, err
		}
		return builtinBackend(m, tk, s.node.MaxActive)
	}
	if s.tokenizerFile == "" {
		return nil, fmt.Errorf("--model-file needs --tokenizer-file")
	}
	mid, err := wire.ParseModelID(id)
	if err != nil {
		return nil, err
	}
	weights, err := os.ReadFile(s.modelFile)
	if err != nil {
		return nil, err
	}
	if err := model.CheckHash(weights, mid.Hash); err != nil {
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
		Model: m, Tokenizer: tk, ModelID: id, BOS: bos, EOS: eos,
		MaxActive: s.node.MaxActive,
	})
}

// builtinBackend serves the model built into the binary. It was trained on paragraphs with no
// BOS or EOS token, so answers end at a blank line (or max_tokens).
func builtinBackend(m *model.Model, tk *model.Tokenizer, maxActive int) (backend.Backend, error) {
	return backend.NewEmbedded(backend.EmbeddedConfig{
		Model: m, Tokenizer: tk, ModelID: model.EmbeddedID, BOS: -1, EOS: -1,
		MaxActive: max(maxActive, 1), MaxTokens: 128, Stop: [][]byte{[]byte("\n\n")},
	})
}
