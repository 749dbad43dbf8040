package model

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"unicode/utf8"
)

// letters is a tokenizer for synthetic models: token i is the letter 'a'+i, and a few tokens
// are two-byte characters so generation crosses UTF-8 boundaries.
func letters(vocab int) *Tokenizer {
	var pieces [][]byte
	var scores []float32
	for i := range vocab {
		p := []byte{byte('a' + i%26)}
		if i%5 == 4 {
			p = []byte("é")
		}
		pieces = append(pieces, p)
		scores = append(scores, 0)
	}
	return NewTokenizer(pieces, scores)
}

func generate(t *testing.T, m *Model, r Request) (string, Result) {
	t.Helper()
	var out bytes.Buffer
	tokens := 0
	res, err := m.Generate(context.Background(), letters(m.Config.Vocab), r, func(b []byte, n int) error {
		if !utf8.Valid(b) {
			t.Errorf("emitted a split character: %q", b)
		}
		out.Write(b)
		tokens += n
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if tokens != res.CompletionTokens {
		t.Fatalf("emitted token counts add up to %d, result says %d", tokens, res.CompletionTokens)
	}
	return out.String(), res
}

func TestGenerateSeedsAndGreedy(t *testing.T) {
	m := synthetic(t, 16, 32, 2, 4, 2, 40, 64)
	base := Request{Prompt: []int{1, 2, 3}, MaxTokens: 30, EOS: -1}

	greedy1, res := generate(t, m, base)
	greedy2, _ := generate(t, m, base)
	if greedy1 != greedy2 || res.CompletionTokens != 30 || res.PromptTokens != 3 || res.FinishReason != "length" {
		t.Fatalf("greedy: %q %q %+v", greedy1, greedy2, res)
	}
	hot := base
	hot.Sampling = Sampling{Temperature: 1.5, Seed: 7}
	a, _ := generate(t, m, hot)
	b, _ := generate(t, m, hot)
	hot.Sampling.Seed = 8
	c, _ := generate(t, m, hot)
	if a != b {
		t.Fatalf("same seed, different answers: %q %q", a, b)
	}
	if a == c {
		t.Fatalf("different seeds, same answer at temperature 1.5: %q", a)
	}
	hot.Sampling.TopP = 0.5
	d, _ := generate(t, m, hot)
	e, _ := generate(t, m, hot)
	if d != e {
		t.Fatalf("top_p with one seed is not deterministic: %q %q", d, e)
	}
}

func TestGenerateStopsAndCancels(t *testing.T) {
	m := synthetic(t, 16, 32, 2, 4, 2, 40, 64)
	full, _ := generate(t, m, Request{Prompt: []int{1}, MaxTokens: 20, EOS: -1})
	// Stop at a sequence taken from the middle of the greedy answer.
	stop := full[6:9]
	out, res := generate(t, m, Request{Prompt: []int{1}, MaxTokens: 20, EOS: -1, Stop: [][]byte{[]byte(stop)}})
	if res.FinishReason != "stop" || out != full[:bytes.Index([]byte(full), []byte(stop))] {
		t.Fatalf("stop %q: got %q (%+v) from %q", stop, out, res, full)
	}
	// The greedy answer's second token as EOS ends it after one token.
	st := m.NewState()
	logits, _ := st.Forward(1)
	first := NewSampler(Sampling{}).Sample(logits)
	logits, _ = st.Forward(first)
	second := NewSampler(Sampling{}).Sample(logits)
	if second != first {
		_, res = generate(t, m, Request{Prompt: []int{1}, MaxTokens: 20, EOS: second})
		if res.FinishReason != "stop" || res.CompletionTokens != 1 {
			t.Fatalf("EOS: %+v", res)
		}
	}
	_, res = generate(t, m, Request{Prompt: []int{1}, MaxTokens: 20, EOS: first})
	if res.FinishReason != "stop" || res.CompletionTokens != 0 {
		t.Fatalf("EOS first: %+v", res)
	}
	// Cancelling stops generation at once.
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	_, err := m.Generate(ctx, letters(40), Request{Prompt: []int{1}, MaxTokens: 50, EOS: -1}, func([]byte, int) error {
		if n++; n == 3 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || n > 4 {
		t.Fatalf("cancel: %v after %d pieces", err, n)
	}
	if _, err := m.Generate(context.Background(), letters(40), Request{Prompt: make([]int, 64), MaxTokens: 1}, func([]byte, int) error { return nil }); !errors.Is(err, ErrContextFull) {
		t.Fatalf("long prompt: %v", err)
	}
}

func TestSamplerDistribution(t *testing.T) {
	s := NewSampler(Sampling{Temperature: 1, Seed: 1})
	counts := make([]int, 3)
	for range 3000 {
		counts[s.Sample([]float32{0, 0, 2})]++ // probabilities about 0.106, 0.106, 0.787
	}
	if counts[2] < 2200 || counts[2] > 2500 || counts[0] < 200 || counts[1] < 200 {
		t.Fatalf("counts %v far from softmax", counts)
	}
	top := NewSampler(Sampling{Temperature: 1, TopP: 0.5, Seed: 1})
	for range 200 {
		if got := top.Sample([]float32{0, 0, 2}); got != 2 {
			t.Fatalf("top_p 0.5 sampled token %d outside the nucleus", got)
		}
	}
	if got := NewSampler(Sampling{}).Sample([]float32{0.1, 3, -1}); got != 1 {
		t.Fatalf("greedy picked %d", got)
	}
}

func TestUTF8Boundary(t *testing.T) {
	b := []byte("aé") // 'a', 0xC3, 0xA9
	for n, want := range map[int]int{0: 0, 1: 1, 2: 1, 3: 3} {
		if got := utf8Boundary(b, n); got != want {
			t.Errorf("n=%d: %d, want %d", n, got, want)
		}
	}
}
