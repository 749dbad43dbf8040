// Package modeltest builds small models for other packages' tests: pseudo-random weights in a
// given shape and a byte tokenizer. Their output is noise; they exist to exercise code paths
// (and are never served to users as a model).
package modeltest

import (
	"encoding/binary"
	"math"

	"github.com/cocoon-mesh/cocoon/model"
)

// Synthetic returns a model of the given shape with small pseudo-random weights and a shared
// classifier.
func Synthetic(dim, hidden, layers, heads, kvHeads, vocab, seqLen int) (*model.Model, error) {
	var b []byte
	for _, v := range []int{dim, hidden, layers, heads, kvHeads, vocab, seqLen} {
		b = binary.LittleEndian.AppendUint32(b, uint32(int32(v)))
	}
	hs := dim / heads
	kv := kvHeads * hs
	n := vocab*dim + layers*dim + layers*dim*dim + 2*layers*kv*dim + layers*dim*dim +
		layers*dim + 3*layers*hidden*dim + dim + seqLen*hs
	state := uint32(1)
	for range n {
		state = state*1664525 + 1013904223
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits((float32(state>>8)/(1<<24)-0.5)*0.1))
	}
	return model.Parse(b)
}

// Bytes is a tokenizer of 256 pieces, one per byte, so any text encodes to one token per
// byte and every model of vocabulary 256 can use it.
func Bytes() *model.Tokenizer {
	pieces := make([][]byte, 256)
	scores := make([]float32, 256)
	for i := range pieces {
		pieces[i] = []byte{byte(i)}
	}
	return model.NewTokenizer(pieces, scores)
}
