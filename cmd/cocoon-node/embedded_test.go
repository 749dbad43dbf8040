package main

import (
	"context"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cocoon-mesh/cocoon/model"
	"github.com/cocoon-mesh/cocoon/node"
	"github.com/cocoon-mesh/cocoon/node/backend"
	"github.com/cocoon-mesh/cocoon/node/wire"
)

// letterTokenizer writes a tokenizer.bin of n one-letter pieces.
func letterTokenizer(t *testing.T, n int) string {
	b := binary.LittleEndian.AppendUint32(nil, 1)
	for i := range n {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(0))
		b = binary.LittleEndian.AppendUint32(b, 1)
		b = append(b, byte('a'+i))
	}
	path := filepath.Join(t.TempDir(), "tokenizer.bin")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestEmbeddedWorkerPinsItsWeights(t *testing.T) {
	weights := filepath.Join("..", "..", "model", "testdata", "tiny.bin")
	raw, err := os.ReadFile(weights)
	if err != nil {
		t.Fatal(err)
	}
	s := settings{node: node.DefaultConfig(), modelFile: weights, tokenizerFile: letterTokenizer(t, 11)}
	s.node.Models = []node.ModelConfig{{ID: "tiny@test:" + model.WeightsHash(raw)}}
	be, err := embeddedBackend(s)
	if err != nil {
		t.Fatal(err)
	}
	u, err := be.Generate(context.Background(), backend.Request{Endpoint: backend.Completion, Body: []byte(`{"prompt":"abc","max_tokens":4,"temperature":0}`)},
		func(backend.Chunk) error { return nil })
	if err != nil || u.Prompt != 3 || u.Completion != 4 {
		t.Fatalf("usage %+v, %v", u, err)
	}

	s.node.Models[0].ID = "tiny@test:0000000000000000"
	if _, err := embeddedBackend(s); err == nil || !strings.Contains(err.Error(), model.WeightsHash(raw)) {
		t.Fatalf("a weights file with another hash was served: %v", err)
	}
	s.node.Models[0].ID = "tiny@test:" + model.WeightsHash(raw)
	s.tokenizerFile = letterTokenizer(t, 12)
	if _, err := embeddedBackend(s); err == nil {
		t.Fatal("a tokenizer of the wrong size was accepted")
	}
}

func TestEmbeddedWorkerServesTheBuiltinModel(t *testing.T) {
	s := settings{node: node.DefaultConfig()}
	s.node.Models = []node.ModelConfig{{ID: model.EmbeddedID}}
	be, err := embeddedBackend(s)
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	u, err := be.Generate(context.Background(), backend.Request{Endpoint: backend.Completion, Stream: true,
		Body: []byte(`{"prompt":"Package strings implements","max_tokens":40,"temperature":0}`)},
		func(c backend.Chunk) error { text.Write(c.Data); return nil })
	if err != nil || u.Completion == 0 || u.Completion > 40 {
		t.Fatalf("usage %+v, %v", u, err)
	}
	t.Logf("%d tokens: %s", u.Completion, text.String())
	s.node.Models[0].ID = "other@v1:0123456789abcdef"
	if _, err := embeddedBackend(s); err == nil {
		t.Fatal("served the built-in model under another identity")
	}
}

// A worker's --prices price the built-in model when it names no --model (they were silently
// dropped, and the "paid" worker served for free); given where they price nothing, they are
// refused.
func TestPricesReachTheBuiltinModel(t *testing.T) {
	m := &Main{}
	_, s, _, err := m.runSettings([]string{"--role", "worker", "--backend", "embedded", "--prices", "1,2,3,4"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := workerBackend(&s); err != nil {
		t.Fatal(err)
	}
	if len(s.node.Models) != 1 || s.node.Models[0].Prices != (wire.Prices{Prompt: 1, Cached: 2, Completion: 3, Reasoning: 4}) {
		t.Fatalf("the built-in model is offered as %+v, want the prices 1,2,3,4", s.node.Models)
	}
	_, s, _, err = m.runSettings([]string{"--role", "worker", "--backend", "http://127.0.0.1:1/v1", "--prices", "1,2,3,4"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := workerBackend(&s); err == nil || !strings.Contains(err.Error(), "give --model") {
		t.Fatalf("--prices with nothing to price: %v, want a refusal naming --model", err)
	}
}
