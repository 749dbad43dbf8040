package backend

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/cocoon-mesh/cocoon/model"
)

// EmbeddedConfig configures the embedded engine as a backend.
type EmbeddedConfig struct {
	Model     *model.Model
	Tokenizer *model.Tokenizer
	ModelID   string // the identity the worker advertises, "name@revision:hash"
	BOS, EOS  int    // token ids; -1 where the model has none
	MaxActive int    // requests generated at once (default 1 per core is the caller's choice; 0 means 4)
	MaxTokens int    // completion tokens when a request sets none (default 256)
	// Stop ends every answer at the first of these, besides the request's own stop sequences
	// (the built-in model ends a paragraph with a blank line).
	Stop [][]byte
}

// Embedded runs requests on the in-process model (package model): the default backend of a
// local network, and of workers that serve a checkpoint from disk.
type Embedded struct {
	cfg    EmbeddedConfig
	slots  chan struct{}
	nextID atomic.Uint64
}

// NewEmbedded checks cfg and returns the backend.
func NewEmbedded(cfg EmbeddedConfig) (*Embedded, error) {
	if cfg.Model == nil || cfg.Tokenizer == nil {
		return nil, fmt.Errorf("backend: embedded engine needs a model and a tokenizer")
	}
	if cfg.Tokenizer.Vocab() != cfg.Model.Config.Vocab {
		return nil, fmt.Errorf("backend: tokenizer has %d pieces, model %d", cfg.Tokenizer.Vocab(), cfg.Model.Config.Vocab)
	}
	if cfg.MaxActive <= 0 {
		cfg.MaxActive = 4
	}
	if cfg.MaxTokens <= 0 {
		cfg.MaxTokens = 256
	}
	return &Embedded{cfg: cfg, slots: make(chan struct{}, cfg.MaxActive)}, nil
}

// Health is always fine: the model is in memory.
func (e *Embedded) Health(context.Context) error { return nil }

// embeddedRequest is what the engine reads from an OpenAI request.
type embeddedRequest struct {
	Messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
	Prompt              json.RawMessage `json:"prompt"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	Temperature         *float32        `json:"temperature"`
	TopP                *float32        `json:"top_p"`
	Seed                *uint64         `json:"seed"`
	Stop                json.RawMessage `json:"stop"`
}

// Generate runs one OpenAI request and answers in OpenAI's shapes, with exact usage.
func (e *Embedded) Generate(ctx context.Context, r Request, emit func(Chunk) error) (Usage, error) {
	var req embeddedRequest
	if err := json.Unmarshal(r.Body, &req); err != nil {
		return Usage{}, errorf(400, "request body is not valid JSON: %v", err)
	}
	text, err := promptText(r.Endpoint, &req)
	if err != nil {
		return Usage{}, err
	}
	ids, err := e.cfg.Tokenizer.Encode([]byte(text))
	if err != nil {
		return Usage{}, errorf(400, "%v", err)
	}
	if e.cfg.BOS >= 0 {
		ids = append([]int{e.cfg.BOS}, ids...)
	}
	gen := model.Request{Prompt: ids, MaxTokens: e.cfg.MaxTokens, EOS: e.cfg.EOS}
	switch {
	case req.MaxCompletionTokens != nil:
		gen.MaxTokens = *req.MaxCompletionTokens
	case req.MaxTokens != nil:
		gen.MaxTokens = *req.MaxTokens
	}
	if r.MaxTokens > 0 {
		gen.MaxTokens = min(gen.MaxTokens, int(r.MaxTokens))
	}
	if gen.MaxTokens < 0 {
		return Usage{}, errorf(400, "max_tokens must not be negative")
	}
	gen.Sampling.Temperature = 1
	if req.Temperature != nil {
		gen.Sampling.Temperature = *req.Temperature
	}
	if req.TopP != nil {
		gen.Sampling.TopP = *req.TopP
	}
	if req.Seed != nil {
		gen.Sampling.Seed = *req.Seed
	} else {
		gen.Sampling.Seed = uint64(time.Now().UnixNano())
	}
	if gen.Stop, err = stops(req.Stop); err != nil {
		return Usage{}, err
	}
	gen.Stop = append(gen.Stop, e.cfg.Stop...)
	if r.Endpoint == Chat {
		gen.Stop = append(gen.Stop, []byte(model.ChatStop))
	}

	select {
	case e.slots <- struct{}{}:
		defer func() { <-e.slots }()
	default:
		return Usage{}, errorf(503, "embedded engine busy: %d requests running", cap(e.slots))
	}

	a := newAnswerWriter(r, e.cfg.ModelID, fmt.Sprintf("cmpl-%d", e.nextID.Add(1)))
	var whole []byte
	res, err := e.cfg.Model.Generate(ctx, e.cfg.Tokenizer, gen, func(piece []byte, tokens int) error {
		if !r.Stream {
			whole = append(whole, piece...)
			return nil
		}
		return emit(Chunk{Data: a.chunk(string(piece), ""), Tokens: tokens})
	})
	if err == model.ErrContextFull {
		return Usage{}, errorf(400, "the prompt (%d tokens) does not fit the model's context of %d", len(ids), e.cfg.Model.Config.SeqLen)
	}
	if err != nil {
		return Usage{}, err
	}
	u := Usage{Prompt: res.PromptTokens, Completion: res.CompletionTokens}
	if r.Stream {
		err = emit(Chunk{Data: a.chunk("", res.FinishReason), Tokens: 0})
	} else {
		err = emit(Chunk{Data: a.whole(string(whole), res.FinishReason, u), Tokens: u.Completion})
	}
	return u, err
}

// promptText renders the request as the text the model continues.
func promptText(ep Endpoint, req *embeddedRequest) (string, error) {
	if ep == Completion {
		var s string
		if err := json.Unmarshal(req.Prompt, &s); err == nil {
			return s, nil
		}
		var list []string
		if err := json.Unmarshal(req.Prompt, &list); err == nil && len(list) == 1 {
			return list[0], nil
		}
		return "", errorf(400, "prompt must be a string (or a list of one)")
	}
	if len(req.Messages) == 0 {
		return "", errorf(400, "messages must not be empty")
	}
	msgs := make([]model.Message, 0, len(req.Messages))
	for _, m := range req.Messages {
		var text string
		if err := json.Unmarshal(m.Content, &text); err != nil {
			var parts []struct {
				Type, Text string
			}
			if err := json.Unmarshal(m.Content, &parts); err != nil {
				return "", errorf(400, "message content must be text or a list of text parts")
			}
			for _, p := range parts {
				if p.Type == "text" {
					text += p.Text
				}
			}
		}
		msgs = append(msgs, model.Message{Role: m.Role, Content: text})
	}
	return model.ChatPrompt(msgs), nil
}

// stops reads OpenAI's "stop": a string or a list of up to 4.
func stops(raw json.RawMessage) ([][]byte, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return [][]byte{[]byte(one)}, nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil || len(list) > 4 {
		return nil, errorf(400, "stop must be a string or a list of at most 4 strings")
	}
	out := make([][]byte, len(list))
	for i, s := range list {
		out[i] = []byte(s)
	}
	return out, nil
}

// answerWriter renders OpenAI response objects for one request.
type answerWriter struct {
	ep      Endpoint
	model   string
	id      string
	created int64
	first   bool
}

func newAnswerWriter(r Request, modelID, id string) *answerWriter {
	return &answerWriter{ep: r.Endpoint, model: modelID, id: id, created: time.Now().Unix(), first: true}
}

// chunk is one stream chunk with text (and a finish reason on the last).
func (a *answerWriter) chunk(text, finish string) []byte {
	var fin any
	if finish != "" {
		fin = finish
	}
	var choice map[string]any
	if a.ep == Completion {
		choice = map[string]any{"index": 0, "text": text, "finish_reason": fin}
	} else {
		delta := map[string]any{}
		if a.first {
			delta["role"] = "assistant"
		}
		if text != "" || a.first {
			delta["content"] = text
		}
		choice = map[string]any{"index": 0, "delta": delta, "finish_reason": fin}
	}
	a.first = false
	object := "chat.completion.chunk"
	if a.ep == Completion {
		object = "text_completion"
	}
	b, _ := json.Marshal(map[string]any{"id": a.id, "object": object, "created": a.created, "model": a.model, "choices": []any{choice}})
	return b
}

// whole is the non-streamed response.
func (a *answerWriter) whole(text, finish string, u Usage) []byte {
	var choice map[string]any
	object := "chat.completion"
	if a.ep == Completion {
		object = "text_completion"
		choice = map[string]any{"index": 0, "text": text, "finish_reason": finish}
	} else {
		choice = map[string]any{"index": 0, "message": map[string]any{"role": "assistant", "content": text}, "finish_reason": finish}
	}
	b, _ := json.Marshal(map[string]any{
		"id": a.id, "object": object, "created": a.created, "model": a.model, "choices": []any{choice},
		"usage": map[string]any{"prompt_tokens": u.Prompt, "completion_tokens": u.Completion, "total_tokens": u.Prompt + u.Completion},
	})
	return b
}
