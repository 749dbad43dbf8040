package backend

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func simRequest(stream bool, prompt string, maxTokens int) Request {
	return Request{Endpoint: Chat, Model: "sim@1:abc", Stream: stream, MaxTokens: uint32(maxTokens),
		Body: []byte(`{"model":"sim@1:abc","messages":[{"role":"user","content":"` + prompt + `"}]}`)}
}

// A simulated GPU answers in valid OpenAI objects, deterministically from the prompt, model
// and seed: the same request, the same words, streamed or whole; another seed, others.
func TestSimGPUAnswersDeterministically(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := NewSimGPU(SimGPUConfig{ModelID: "sim@1:abc", Seed: 7})
		var streamed strings.Builder
		u, err := g.Generate(context.Background(), simRequest(true, "hello", 12), func(c Chunk) error {
			var ev struct{ Object string }
			if err := json.Unmarshal(c.Data, &ev); err != nil || ev.Object != "chat.completion.chunk" {
				t.Fatalf("chunk %s: %v", c.Data, err)
			}
			streamed.Write(c.Data)
			return nil
		})
		if err != nil || u.Completion != 12 {
			t.Fatalf("%+v %v", u, err)
		}
		var whole []byte
		if _, err := g.Generate(context.Background(), simRequest(false, "hello", 12), func(c Chunk) error { whole = c.Data; return nil }); err != nil {
			t.Fatal(err)
		}
		if err := CheckAnswer(whole); err != nil {
			t.Fatalf("answer %s: %v", whole, err)
		}
		words := SimAnswer(7, "sim@1:abc", simRequest(true, "hello", 12).Body, 12)
		if !strings.Contains(string(whole), strings.Join(words, " ")) {
			t.Errorf("the whole answer %s is not %q", whole, words)
		}
		if strings.Join(SimAnswer(8, "sim@1:abc", simRequest(true, "hello", 12).Body, 12), " ") == strings.Join(words, " ") {
			t.Error("another seed gave the same answer")
		}
	})
}

// In virtual time, an answer takes exactly the time to first token, the prefill of its prompt
// and a decode step per token after the first; requests sharing the GPU each decode slower.
func TestSimGPUTakesItsTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := NewSimGPU(SimGPUConfig{ModelID: "sim@1:abc", TimeToFirstToken: 100 * time.Millisecond,
			PrefillTokensPerSec: 1000, DecodeTokensPerSec: 10, BatchSlowdown: 1})
		r := simRequest(false, "hello", 11)
		prefill := 100*time.Millisecond + time.Duration(float64(len(r.Body)/4)/1000*float64(time.Second))
		start := time.Now()
		if _, err := g.Generate(context.Background(), r, func(Chunk) error { return nil }); err != nil {
			t.Fatal(err)
		}
		if got, want := time.Since(start), prefill+10*100*time.Millisecond; got != want {
			t.Errorf("alone: %v, want %v", got, want)
		}
		start = time.Now()
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() { g.Generate(context.Background(), r, func(Chunk) error { return nil }) })
		}
		wg.Wait()
		if got, alone := time.Since(start), prefill+time.Second; got < alone+500*time.Millisecond {
			t.Errorf("two together took %v, alone %v: sharing the GPU should slow each", got, alone)
		}
	})
}

// Past MaxActive the simulated GPU is busy (503), as a real server is; a cancelled request
// stops at once.
func TestSimGPUBoundsAndCancels(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := NewSimGPU(SimGPUConfig{ModelID: "sim@1:abc", MaxActive: 1, DecodeTokensPerSec: 1})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			_, err := g.Generate(ctx, simRequest(true, "long", 100), func(Chunk) error { return nil })
			done <- err
		}()
		synctest.Wait()
		if _, err := g.Generate(context.Background(), simRequest(true, "x", 1), func(Chunk) error { return nil }); err == nil || !strings.Contains(err.Error(), "busy") {
			t.Errorf("a second request on a full GPU: %v", err)
		}
		cancel()
		if err := <-done; err == nil || !strings.Contains(err.Error(), "canceled") {
			t.Errorf("cancelled: %v", err)
		}
	})
}
