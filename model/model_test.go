package model

import (
	"bufio"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestForwardMatchesReference compares the forward pass with testdata/reference.py, an
// independent plain-Python implementation, on a tiny grouped-query, untied checkpoint.
func TestForwardMatchesReference(t *testing.T) {
	b, err := os.ReadFile("testdata/tiny.bin")
	if err != nil {
		t.Fatal(err)
	}
	m, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if c := m.Config; c.Dim != 8 || c.KVHeads != 1 || c.Heads != 2 || c.SharedCls || c.Vocab != 11 {
		t.Fatalf("config %+v", c)
	}
	f, err := os.Open("testdata/tiny_logits.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan()
	var tokens []int
	for _, s := range strings.Fields(strings.TrimPrefix(sc.Text(), "# tokens")) {
		n, _ := strconv.Atoi(s)
		tokens = append(tokens, n)
	}
	st := m.NewState()
	for pos, tok := range tokens {
		if !sc.Scan() {
			t.Fatal("reference has fewer lines than tokens")
		}
		got, err := st.Forward(tok)
		if err != nil {
			t.Fatal(err)
		}
		want := strings.Fields(sc.Text())
		if len(want) != len(got) {
			t.Fatalf("pos %d: %d logits, reference has %d", pos, len(got), len(want))
		}
		for i, w := range want {
			ref, _ := strconv.ParseFloat(w, 64)
			if math.Abs(float64(got[i])-ref) > 1e-4 {
				t.Fatalf("pos %d logit %d: got %g, reference %g", pos, i, got[i], ref)
			}
		}
	}
	if st.Pos() != len(tokens) {
		t.Fatalf("pos %d", st.Pos())
	}
}

func header(dim, hidden, layers, heads, kv, vocab, seq int32) []byte {
	b := make([]byte, headerSize)
	for i, v := range []int32{dim, hidden, layers, heads, kv, vocab, seq} {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(v))
	}
	return b
}

func TestParseRefusesBadCheckpoints(t *testing.T) {
	good, err := os.ReadFile("testdata/tiny.bin")
	if err != nil {
		t.Fatal(err)
	}
	nan := append([]byte(nil), good...)
	binary.LittleEndian.PutUint32(nan[headerSize+8:], math.Float32bits(float32(math.NaN())))
	for name, b := range map[string][]byte{
		"empty":            nil,
		"short header":     good[:10],
		"truncated":        good[:len(good)-4],
		"extra bytes":      append(append([]byte(nil), good...), 0, 0, 0, 0),
		"odd tail":         append(append([]byte(nil), good...), 0),
		"NaN weight":       nan,
		"zero dim":         header(0, 16, 2, 2, 1, 11, 8),
		"heads not divide": header(8, 16, 2, 3, 1, 11, 8),
		"kv over heads":    header(8, 16, 2, 2, 4, 11, 8),
		"odd head size":    header(6, 16, 2, 2, 1, 11, 8),
		"huge vocab":       header(8, 16, 2, 2, 1, 1<<30, 8),
		"no layers":        header(8, 16, 0, 2, 1, 11, 8),
	} {
		if _, err := Parse(b); !errors.Is(err, ErrCheckpoint) {
			t.Errorf("%s: got %v, want ErrCheckpoint", name, err)
		}
	}
}

func TestSharedClassifier(t *testing.T) {
	c := Config{Dim: 4, Hidden: 8, Layers: 1, Heads: 2, KVHeads: 2, Vocab: 5, SeqLen: 4, SharedCls: true}
	b := header(4, 8, 1, 2, 2, 5, 4)
	b = append(b, make([]byte, 4*c.weightCount())...)
	m, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if &m.Weights.Classifier[0] != &m.Weights.Embedding[0] {
		t.Fatal("a shared classifier should be the embedding itself")
	}
	st := m.NewState()
	for range 4 {
		if _, err := st.Forward(1); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.Forward(1); err == nil {
		t.Fatal("fed past the context length")
	}
	if _, err := m.NewState().Forward(5); err == nil {
		t.Fatal("accepted a token outside the vocabulary")
	}
}

func FuzzParse(f *testing.F) {
	good, _ := os.ReadFile("testdata/tiny.bin")
	f.Add(good)
	f.Add(good[:headerSize])
	f.Add(header(8, 16, 2, 2, 1, -11, 8))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			return
		}
		// Whatever parses must run.
		if _, err := m.NewState().Forward(0); err != nil {
			t.Fatal(err)
		}
	})
}

func BenchmarkForwardTiny(b *testing.B) {
	buf, _ := os.ReadFile("testdata/tiny.bin")
	m, err := Parse(buf)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		st := m.NewState()
		for tok := range m.Config.SeqLen {
			st.Forward(tok % m.Config.Vocab)
		}
	}
}

// synthetic builds a checkpoint of the given shape with small pseudo-random weights.
func synthetic(tb testing.TB, dim, hidden, layers, heads, kv, vocab, seq int32) *Model {
	c := Config{Dim: int(dim), Hidden: int(hidden), Layers: int(layers), Heads: int(heads), KVHeads: int(kv), Vocab: int(vocab), SeqLen: int(seq), SharedCls: true}
	b := header(dim, hidden, layers, heads, kv, vocab, seq)
	n := c.weightCount()
	b = append(b, make([]byte, 4*n)...)
	state := uint32(1)
	for i := int64(0); i < n; i++ {
		state = state*1664525 + 1013904223
		binary.LittleEndian.PutUint32(b[headerSize+4*i:], math.Float32bits((float32(state>>8)/(1<<24)-0.5)*0.1))
	}
	m, err := Parse(b)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// BenchmarkDecode260K decodes 256 tokens with llama2.c's stories260K shape (dim 64, hidden
// 172, 5 layers, 8 heads, 4 key/value heads, vocabulary 512), one core; tokens/s is reported.
func BenchmarkDecode260K(b *testing.B) {
	benchDecode(b, synthetic(b, 64, 172, 5, 8, 4, 512, 512), 256)
}

// benchDecode feeds n tokens per iteration through a fresh state and reports tokens/s.
func benchDecode(b *testing.B, m *Model, n int) {
	b.ResetTimer()
	for b.Loop() {
		st := m.NewState()
		for tok := range n {
			if _, err := st.Forward(tok % m.Config.Vocab); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "tokens/s")
}

func TestWeightsHash(t *testing.T) {
	b, _ := os.ReadFile("testdata/tiny.bin")
	h := WeightsHash(b)
	if len(h) != HashLen || CheckHash(b, h) != nil {
		t.Fatalf("hash %q", h)
	}
	b[100] ^= 1
	if err := CheckHash(b, h); err == nil {
		t.Fatal("a changed file passed its old hash")
	}
}

// BenchmarkDecode15M is the same at llama2.c's stories15M shape (dim 288, hidden 768, 6 layers,
// 6 heads, vocabulary 32000), synthetic weights.
func BenchmarkDecode15M(b *testing.B) {
	benchDecode(b, synthetic(b, 288, 768, 6, 6, 6, 32000, 256), 64)
}

// BenchmarkDecodeEmbedded decodes 100 tokens with the committed model.
func BenchmarkDecodeEmbedded(b *testing.B) {
	m, _, err := Embedded()
	if err != nil {
		b.Fatal(err)
	}
	benchDecode(b, m, 100)
}

// BenchmarkNewState reports, as B/op, the memory one active request holds: its KV cache and
// buffers, for the committed model.
func BenchmarkNewState(b *testing.B) {
	m, _, err := Embedded()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = m.NewState()
	}
}
