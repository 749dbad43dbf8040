package model

import (
	_ "embed"
	"fmt"
)

// The project's own model, trained by model/train/train.sh on the Go standard library's doc
// comments (licence in weights/NOTICE): llama2.c's stories260K shape, 260,032 parameters, a
// 512-piece tokenizer. It is small and writes plausible-looking Go documentation, not answers;
// it exists so a network runs, and tests and simulations generate real tokens, with no
// download.
var (
	//go:embed weights/model.bin
	embeddedWeights []byte
	//go:embed weights/tokenizer.bin
	embeddedTokenizer []byte
)

// Identity of the embedded model: name, revision, and the hash of weights/model.bin, which
// Embedded checks, so the committed file cannot drift from the identity workers advertise.
const (
	EmbeddedName     = "gocomment"
	EmbeddedRevision = "v1"
	EmbeddedHash     = "f16c4408cc3fb78a"
)

// EmbeddedID is the embedded model's full identity, "name@revision:hash".
const EmbeddedID = EmbeddedName + "@" + EmbeddedRevision + ":" + EmbeddedHash

// Embedded loads the embedded model and its tokenizer.
func Embedded() (*Model, *Tokenizer, error) {
	if err := CheckHash(embeddedWeights, EmbeddedHash); err != nil {
		return nil, nil, fmt.Errorf("embedded model: %w", err)
	}
	m, err := Parse(embeddedWeights)
	if err != nil {
		return nil, nil, fmt.Errorf("embedded model: %w", err)
	}
	tk, err := ParseTokenizer(embeddedTokenizer, m.Config.Vocab)
	if err != nil {
		return nil, nil, fmt.Errorf("embedded tokenizer: %w", err)
	}
	return m, tk, nil
}
