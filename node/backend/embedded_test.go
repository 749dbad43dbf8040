package backend

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/cocoon-mesh/cocoon/model/modeltest"
)

func newTestEmbedded(t *testing.T, maxActive int) *Embedded {
	t.Helper()
	m, err := modeltest.Synthetic(16, 32, 2, 4, 2, 256, 256)
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewEmbedded(EmbeddedConfig{Model: m, Tokenizer: modeltest.Bytes(), ModelID: "toy@test:0", BOS: -1, EOS: -1, MaxActive: maxActive})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestEmbeddedWholeAnswer(t *testing.T) {
	e := newTestEmbedded(t, 2)
	body := `{"model":"toy","messages":[{"role":"user","content":"abc"}],"max_tokens":7,"seed":3}`
	var chunks []Chunk
	u, err := e.Generate(context.Background(), Request{Endpoint: Chat, Model: "toy@test:0", Body: []byte(body)},
		func(c Chunk) error {
			chunks = append(chunks, Chunk{Data: append([]byte(nil), c.Data...), Tokens: c.Tokens})
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if len(chunks) != 1 {
		t.Fatalf("%d chunks for a whole answer", len(chunks))
	}
	var resp struct {
		Object  string
		Model   string
		Choices []struct {
			Message      struct{ Role, Content string }
			FinishReason string `json:"finish_reason"`
		}
		Usage struct {
			Prompt     int `json:"prompt_tokens"`
			Completion int `json:"completion_tokens"`
		}
	}
	if err := json.Unmarshal(chunks[0].Data, &resp); err != nil {
		t.Fatal(err)
	}
	if resp.Object != "chat.completion" || resp.Model != "toy@test:0" || resp.Choices[0].Message.Role != "assistant" {
		t.Fatalf("%s", chunks[0].Data)
	}
	// One token per byte of the chat template: "<|user|>\nabc\n<|assistant|>\n".
	if u.Prompt != len("<|user|>\nabc\n<|assistant|>\n") || u.Completion != resp.Usage.Completion || u.Prompt != resp.Usage.Prompt ||
		u.Completion > 7 || u.Completion != chunks[0].Tokens {
		t.Fatalf("usage %+v vs %s", u, chunks[0].Data)
	}
	if !(resp.Choices[0].FinishReason == "length" && u.Completion == 7 || resp.Choices[0].FinishReason == "stop") {
		t.Fatalf("finish %q after %d tokens", resp.Choices[0].FinishReason, u.Completion)
	}
}

func TestEmbeddedStreamsTokensAndHonoursLimits(t *testing.T) {
	e := newTestEmbedded(t, 1)
	body := `{"model":"toy","prompt":"hello","max_tokens":12,"temperature":0,"stream":true}`
	var text strings.Builder
	var tokens, chunks int
	var last string
	u, err := e.Generate(context.Background(), Request{Endpoint: Completion, Model: "toy@test:0", Body: []byte(body), Stream: true},
		func(c Chunk) error {
			var ch struct {
				Object  string
				Choices []struct {
					Text         string
					FinishReason *string `json:"finish_reason"`
				}
			}
			if err := json.Unmarshal(c.Data, &ch); err != nil || ch.Object != "text_completion" {
				t.Fatalf("chunk %s: %v", c.Data, err)
			}
			text.WriteString(ch.Choices[0].Text)
			if ch.Choices[0].FinishReason != nil {
				last = *ch.Choices[0].FinishReason
			}
			tokens += c.Tokens
			chunks++
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if u.Prompt != 5 || tokens != u.Completion || u.Completion == 0 || u.Completion > 12 || last == "" || chunks < 2 {
		t.Fatalf("usage %+v, %d tokens in %d chunks, finish %q, text %q", u, tokens, chunks, last, text.String())
	}
	// Greedy answers repeat exactly.
	again := strings.Builder{}
	e.Generate(context.Background(), Request{Endpoint: Completion, Body: []byte(body), Stream: true}, func(c Chunk) error {
		var ch struct{ Choices []struct{ Text string } }
		json.Unmarshal(c.Data, &ch)
		again.WriteString(ch.Choices[0].Text)
		return nil
	})
	if again.String() != text.String() {
		t.Fatalf("greedy differs: %q vs %q", text.String(), again.String())
	}
	// The worker's max_tokens caps the body's.
	u, err = e.Generate(context.Background(), Request{Endpoint: Completion, Body: []byte(body), MaxTokens: 3}, func(Chunk) error { return nil })
	if err != nil || u.Completion > 3 {
		t.Fatalf("capped: %+v %v", u, err)
	}
	for _, bad := range []string{`{"prompt":7}`, `{"prompt":"x","stop":[1]}`, `{"prompt":"x","max_tokens":-1}`, `not json`} {
		if _, err := e.Generate(context.Background(), Request{Endpoint: Completion, Body: []byte(bad)}, func(Chunk) error { return nil }); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

func TestEmbeddedIsBoundedAndCancellable(t *testing.T) {
	e := newTestEmbedded(t, 1)
	body := []byte(`{"prompt":"x","max_tokens":200,"stream":true}`)
	started, release := make(chan struct{}), make(chan struct{})
	done := make(chan error)
	go func() {
		first := true
		_, err := e.Generate(context.Background(), Request{Endpoint: Completion, Body: body, Stream: true}, func(Chunk) error {
			if first {
				first = false
				close(started)
				<-release
			}
			return nil
		})
		done <- err
	}()
	<-started
	_, err := e.Generate(context.Background(), Request{Endpoint: Completion, Body: body}, func(Chunk) error { return nil })
	var be *Error
	if !errors.As(err, &be) || be.Status != 503 {
		t.Fatalf("second request beyond max_active: %v", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	_, err = e.Generate(ctx, Request{Endpoint: Completion, Body: body, Stream: true}, func(Chunk) error {
		if n++; n == 2 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || n > 3 {
		t.Fatalf("cancel: %v after %d chunks", err, n)
	}
}
