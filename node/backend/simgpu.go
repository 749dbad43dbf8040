package backend

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"
)

// SimGPUConfig describes a simulated GPU for simulations: how long it takes to start an
// answer, to read a prompt and to write each token, and how writing slows as more requests
// share the GPU (decoding is batched: each runs slower, all together faster).
type SimGPUConfig struct {
	ModelID   string // the identity workers advertise, name@revision:hash
	Seed      uint64 // with the prompt and the model, decides every answer
	MaxActive int    // requests at once; beyond it, 503 (default 16)
	// TimeToFirstToken is the fixed cost before the first token (scheduling, warm-up).
	TimeToFirstToken time.Duration
	// PrefillTokensPerSec and DecodeTokensPerSec are the prompt tokens read and the
	// completion tokens written a second by one request alone (defaults 5000 and 50).
	PrefillTokensPerSec, DecodeTokensPerSec float64
	// BatchSlowdown is what each other running request costs a request's decode rate:
	// rate = DecodeTokensPerSec / (1 + BatchSlowdown x (running - 1)) (default 0.05).
	BatchSlowdown float64
	// DefaultMaxTokens is the answer's length when the request sets no max_tokens (default 64).
	DefaultMaxTokens int
}

// SimGPU is a Backend that behaves like a GPU model server of SimGPUConfig's speed and
// answers deterministically: the same prompt, model and seed give the same words, so a
// simulation can check every answer. It waits on timers, which a testing/synctest bubble
// runs in virtual time.
type SimGPU struct {
	cfg     SimGPUConfig
	running atomic.Int32
	nextID  atomic.Uint64
}

// NewSimGPU returns a simulated GPU; zero fields of cfg take the defaults.
func NewSimGPU(cfg SimGPUConfig) *SimGPU {
	if cfg.MaxActive <= 0 {
		cfg.MaxActive = 16
	}
	if cfg.PrefillTokensPerSec <= 0 {
		cfg.PrefillTokensPerSec = 5000
	}
	if cfg.DecodeTokensPerSec <= 0 {
		cfg.DecodeTokensPerSec = 50
	}
	if cfg.BatchSlowdown < 0 {
		cfg.BatchSlowdown = 0
	} else if cfg.BatchSlowdown == 0 {
		cfg.BatchSlowdown = 0.05
	}
	if cfg.DefaultMaxTokens <= 0 {
		cfg.DefaultMaxTokens = 64
	}
	return &SimGPU{cfg: cfg}
}

// Running is the number of requests on the GPU now.
func (g *SimGPU) Running() int { return int(g.running.Load()) }

// Health reports the simulated GPU ready.
func (g *SimGPU) Health(context.Context) error { return nil }

// simWords are what simulated answers are made of.
var simWords = strings.Fields("the mesh routes each request to a worker whose capacity and price suit it and pays for every token as it arrives over a channel")

// SimAnswer is the answer a SimGPU of seed gives to body for model: n words, one a token.
func SimAnswer(seed uint64, model string, body []byte, n int) []string {
	h := sha256.New()
	binary.Write(h, binary.LittleEndian, seed)
	h.Write([]byte(model))
	h.Write(body)
	sum := h.Sum(nil)
	r := rand.New(rand.NewPCG(binary.LittleEndian.Uint64(sum[:8]), binary.LittleEndian.Uint64(sum[8:16])))
	out := make([]string, n)
	for i := range out {
		out[i] = simWords[r.IntN(len(simWords))]
	}
	return out
}

// Generate answers r after the simulated prefill, then writes a token at the decode rate the
// requests running now leave it.
func (g *SimGPU) Generate(ctx context.Context, r Request, emit func(Chunk) error) (Usage, error) {
	if int(g.running.Add(1)) > g.cfg.MaxActive {
		g.running.Add(-1)
		return Usage{}, errorf(503, "simulated GPU busy: %d requests running", g.cfg.MaxActive)
	}
	defer g.running.Add(-1)
	n := g.cfg.DefaultMaxTokens
	if r.MaxTokens > 0 {
		n = int(r.MaxTokens)
	}
	u := Usage{Prompt: max(1, len(r.Body)/4), Completion: n} // about four bytes a prompt token
	prefill := g.cfg.TimeToFirstToken + time.Duration(float64(u.Prompt)/g.cfg.PrefillTokensPerSec*float64(time.Second))
	if err := sleep(ctx, prefill); err != nil {
		return Usage{}, err
	}
	a := newAnswerWriter(r, g.cfg.ModelID, fmt.Sprintf("sim-%d", g.nextID.Add(1)))
	words := SimAnswer(g.cfg.Seed, g.cfg.ModelID, r.Body, n)
	for i, w := range words {
		if i > 0 { // the first token came with the prefill
			rate := g.cfg.DecodeTokensPerSec / (1 + g.cfg.BatchSlowdown*float64(g.running.Load()-1))
			if err := sleep(ctx, time.Duration(float64(time.Second)/rate)); err != nil {
				return Usage{}, err
			}
			w = " " + w
		}
		if r.Stream {
			if err := emit(Chunk{Data: a.chunk(w, ""), Tokens: 1}); err != nil {
				return Usage{}, err
			}
		}
	}
	if r.Stream {
		return u, emit(Chunk{Data: a.chunk("", "length")})
	}
	return u, emit(Chunk{Data: a.whole(strings.Join(words, " "), "length", u), Tokens: u.Completion})
}

// sleep waits d, or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("simulated GPU: %w", ctx.Err())
	}
}
