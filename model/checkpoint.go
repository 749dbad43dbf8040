package model

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Config is a checkpoint's shape, as llama2.c's header states it.
type Config struct {
	Dim       int  // width of the residual stream
	Hidden    int  // width of the feed-forward layer
	Layers    int  // transformer blocks
	Heads     int  // query heads
	KVHeads   int  // key/value heads (fewer than Heads: grouped-query attention)
	Vocab     int  // tokens
	SeqLen    int  // longest context
	SharedCls bool // the output head reuses the token embedding
}

// HeadSize is the width of one attention head.
func (c Config) HeadSize() int { return c.Dim / c.Heads }

// KVDim is the width of the keys and values of one position.
func (c Config) KVDim() int { return c.KVHeads * c.HeadSize() }

// Limits on a checkpoint's header, so a hostile file is refused before anything is allocated.
const (
	headerSize = 7 * 4
	maxDim     = 1 << 16
	maxLayers  = 1 << 10
	maxVocab   = 1 << 20
	maxSeqLen  = 1 << 20
)

// ErrCheckpoint wraps every reason a checkpoint is refused.
var ErrCheckpoint = errors.New("model: bad checkpoint")

func bad(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCheckpoint, fmt.Sprintf(format, args...))
}

// parseConfig reads and checks the header.
func parseConfig(b []byte) (Config, error) {
	if len(b) < headerSize {
		return Config{}, bad("%d bytes is shorter than the %d-byte header", len(b), headerSize)
	}
	v := func(i int) int { return int(int32(binary.LittleEndian.Uint32(b[4*i:]))) }
	c := Config{Dim: v(0), Hidden: v(1), Layers: v(2), Heads: v(3), KVHeads: v(4), Vocab: v(5), SeqLen: v(6)}
	c.SharedCls = c.Vocab > 0
	if c.Vocab < 0 {
		c.Vocab = -c.Vocab
	}
	switch {
	case c.Dim <= 0 || c.Dim > maxDim || c.Hidden <= 0 || c.Hidden > 4*maxDim:
		return Config{}, bad("dim %d, hidden %d out of range", c.Dim, c.Hidden)
	case c.Layers <= 0 || c.Layers > maxLayers:
		return Config{}, bad("%d layers out of range", c.Layers)
	case c.Heads <= 0 || c.Dim%c.Heads != 0 || c.HeadSize()%2 != 0:
		return Config{}, bad("%d heads do not split dim %d into even head sizes", c.Heads, c.Dim)
	case c.KVHeads <= 0 || c.KVHeads > c.Heads || c.Heads%c.KVHeads != 0:
		return Config{}, bad("%d key/value heads do not divide %d heads", c.KVHeads, c.Heads)
	case c.Vocab == 0 || c.Vocab > maxVocab:
		return Config{}, bad("vocabulary of %d out of range", c.Vocab)
	case c.SeqLen <= 0 || c.SeqLen > maxSeqLen:
		return Config{}, bad("sequence length %d out of range", c.SeqLen)
	}
	return c, nil
}

// weightCount is the number of float32 values after the header, legacy RoPE tables included.
func (c Config) weightCount() int64 {
	d, h, l, kv := int64(c.Dim), int64(c.Hidden), int64(c.Layers), int64(c.KVDim())
	n := int64(c.Vocab)*d + // token embedding
		l*d + // attention RMSNorm
		l*d*d + 2*l*kv*d + l*d*d + // wq, wk, wv, wo
		l*d + // feed-forward RMSNorm
		3*l*h*d + // w1, w2, w3
		d + // final RMSNorm
		int64(c.SeqLen)*int64(c.HeadSize()) // legacy freq_cis_real and _imag, unused
	if !c.SharedCls {
		n += int64(c.Vocab) * d
	}
	return n
}

// Weights are a checkpoint's tensors, row-major; matrices are (out, in).
type Weights struct {
	Embedding      []float32 // (vocab, dim)
	RMSAtt, RMSFFN []float32 // (layers, dim)
	WQ, WO         []float32 // (layers, dim, dim)
	WK, WV         []float32 // (layers, kvdim, dim)
	W1, W3         []float32 // (layers, hidden, dim)
	W2             []float32 // (layers, dim, hidden)
	RMSFinal       []float32 // (dim)
	Classifier     []float32 // (vocab, dim): Embedding itself when shared
}

// Model is a loaded checkpoint.
type Model struct {
	Config  Config
	Weights Weights
}

// Parse decodes a llama2.c checkpoint (the legacy format: a 7-int header, then float32
// weights). A file whose length does not match its header, or whose weights are not finite,
// is refused; nothing larger than the file itself is allocated.
func Parse(b []byte) (*Model, error) {
	c, err := parseConfig(b)
	if err != nil {
		return nil, err
	}
	want := c.weightCount()
	got := int64(len(b)-headerSize) / 4
	if (len(b)-headerSize)%4 != 0 || got != want {
		return nil, bad("header promises %d weights, file holds %d bytes after it", want, len(b)-headerSize)
	}
	all := make([]float32, want)
	for i := range all {
		f := math.Float32frombits(binary.LittleEndian.Uint32(b[headerSize+4*i:]))
		if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
			return nil, bad("weight %d is not a finite number", i)
		}
		all[i] = f
	}
	d, h, l, kv := c.Dim, c.Hidden, c.Layers, c.KVDim()
	take := func(n int) []float32 {
		s := all[:n:n]
		all = all[n:]
		return s
	}
	var w Weights
	w.Embedding = take(c.Vocab * d)
	w.RMSAtt = take(l * d)
	w.WQ = take(l * d * d)
	w.WK = take(l * kv * d)
	w.WV = take(l * kv * d)
	w.WO = take(l * d * d)
	w.RMSFFN = take(l * d)
	w.W1 = take(l * h * d)
	w.W2 = take(l * d * h)
	w.W3 = take(l * h * d)
	w.RMSFinal = take(d)
	take(c.SeqLen * c.HeadSize()) // legacy RoPE tables: recomputed, as llama2.c does
	w.Classifier = w.Embedding
	if !c.SharedCls {
		w.Classifier = take(c.Vocab * d)
	}
	return &Model{Config: c, Weights: w}, nil
}
