package model

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"unicode/utf8"
)

// Sampling chooses the next token from the logits.
type Sampling struct {
	Temperature float32 // 0: greedy (always the most likely token)
	TopP        float32 // nucleus: sample among the most likely tokens holding this much probability; 0 or 1: all
	Seed        uint64  // same seed, same request: same answer
}

// Sampler draws tokens; one per request, not safe for concurrent use.
type Sampler struct {
	cfg   Sampling
	rng   *rand.Rand
	order []int
}

// NewSampler returns a sampler for cfg.
func NewSampler(cfg Sampling) *Sampler {
	return &Sampler{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))}
}

// Sample picks a token from logits (which it may overwrite).
func (s *Sampler) Sample(logits []float32) int {
	if s.cfg.Temperature <= 0 {
		best := 0
		for i, v := range logits {
			if v > logits[best] {
				best = i
			}
		}
		return best
	}
	for i := range logits {
		logits[i] /= s.cfg.Temperature
	}
	softmax(logits)
	r := float32(s.rng.Float64())
	if p := s.cfg.TopP; p > 0 && p < 1 {
		return s.nucleus(logits, p, r)
	}
	var cum float32
	for i, v := range logits {
		cum += v
		if r < cum {
			return i
		}
	}
	return len(logits) - 1 // rounding left r above the total
}

// nucleus samples among the fewest most likely tokens whose probability reaches topP.
func (s *Sampler) nucleus(probs []float32, topP, r float32) int {
	s.order = s.order[:0]
	for i := range probs {
		s.order = append(s.order, i)
	}
	slices.SortFunc(s.order, func(a, b int) int {
		switch {
		case probs[a] > probs[b]:
			return -1
		case probs[a] < probs[b]:
			return 1
		}
		return a - b
	})
	var mass float32
	n := 0
	for n < len(s.order) && mass < topP {
		mass += probs[s.order[n]]
		n++
	}
	r *= mass
	var cum float32
	for _, id := range s.order[:n] {
		cum += probs[id]
		if r < cum {
			return id
		}
	}
	return s.order[n-1]
}

// Request is one generation.
type Request struct {
	Prompt    []int    // tokens, chat template and BOS already applied
	MaxTokens int      // completion tokens at most
	Stop      [][]byte // generation ends before the first of these in the output
	EOS       int      // a token that ends generation; -1: none
	Sampling  Sampling
}

// Result is what a generation produced, as billed.
type Result struct {
	PromptTokens, CompletionTokens int
	FinishReason                   string // "stop" (EOS or a stop sequence) or "length"
}

// ErrContextFull means the prompt does not fit the model's context.
var ErrContextFull = errors.New("model: prompt longer than the model's context")

// Generate runs r on the model, calling emit with each piece of text as soon as it is final
// (text that could still become part of a stop sequence is held back until it cannot) and the
// number of tokens generated since the previous call, so the counts add up to
// CompletionTokens. It stops at once when ctx ends.
func (m *Model) Generate(ctx context.Context, tk *Tokenizer, r Request, emit func(text []byte, tokens int) error) (Result, error) {
	res := Result{PromptTokens: len(r.Prompt), FinishReason: "length"}
	if len(r.Prompt) == 0 {
		return res, errors.New("model: empty prompt")
	}
	if len(r.Prompt) >= m.Config.SeqLen {
		return res, ErrContextFull
	}
	st := m.NewState()
	var logits []float32
	var err error
	for _, tok := range r.Prompt {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		if logits, err = st.Forward(tok); err != nil {
			return res, err
		}
	}
	sampler := NewSampler(r.Sampling)
	hold := 0
	for _, s := range r.Stop {
		hold = max(hold, len(s)-1)
	}
	var out []byte // generated text not yet emitted
	pending := 0   // tokens generated since the last emit
	for res.CompletionTokens < r.MaxTokens && st.Pos() < m.Config.SeqLen {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		tok := sampler.Sample(logits)
		if tok == r.EOS {
			res.FinishReason = "stop"
			break
		}
		res.CompletionTokens++
		pending++
		out = append(out, tk.Piece(tok)...)
		if cut, ok := firstStop(out, r.Stop); ok {
			out = out[:cut]
			res.FinishReason = "stop"
			break
		}
		if n := utf8Boundary(out, len(out)-hold); n > 0 {
			if err := emit(out[:n], pending); err != nil {
				return res, err
			}
			pending = 0
			out = append(out[:0], out[n:]...)
		}
		if st.Pos() >= m.Config.SeqLen {
			break
		}
		if logits, err = st.Forward(tok); err != nil {
			return res, err
		}
	}
	if len(out) > 0 || pending > 0 {
		if err := emit(out, pending); err != nil {
			return res, err
		}
	}
	return res, nil
}

// utf8Boundary moves n back to the start of a character that is not complete in b, so text is
// never emitted in the middle of one (byte-fallback tokens split characters).
func utf8Boundary(b []byte, n int) int {
	if n <= 0 {
		return 0
	}
	for i := n - 1; i >= 0 && i >= n-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:n]) {
				return i
			}
			break
		}
	}
	return n
}

// firstStop returns where the earliest stop sequence starts in text.
func firstStop(text []byte, stops [][]byte) (int, bool) {
	best := -1
	for _, s := range stops {
		if len(s) == 0 {
			continue
		}
		if i := bytes.Index(text, s); i >= 0 && (best < 0 || i < best) {
			best = i
		}
	}
	return best, best >= 0
}
