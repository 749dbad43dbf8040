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
	// MaxBodyBytes caps a request body, refused with a 413 before it is read (0: 6 x the
	// prompt bytes the model's context can hold, the most JSON escaping can inflate them, plus
	// 64 KiB for the rest of the request).
	MaxBodyBytes int
}

// bodySlack is what a request body may hold besides its prompt by default: model, sampling
// fields, the JSON of the messages.
const bodySlack = 64 << 10

// Embedded runs requests on the in-process model (package model): the default backend of a
// local network, and of workers that serve a checkpoint from disk.
//
// Work before payment is bounded. A body over MaxBodyBytes is refused before it is read (413).
// A token decodes to at most the tokenizer's longest piece, so a prompt that fits the context
// has at most (context - 1 - BOS) x that many bytes: 1,270 for the built-in model (128 tokens,
// pieces of up to 10 bytes), whose body cap is then 71 KiB. Prompt text is decoded only while it
// can still fit in bytes, tokenized only once it does, and run only if it fits in tokens (400
// otherwise, naming the context). A request takes a slot before its body is read, so at most
// MaxActive are decoded or run at once, and each allocates at most a few times MaxBodyBytes to
// decode its fields (at most 1024 of them; stop sequences are decoded whole), about 200 bytes
// per prompt byte to tokenize, the KV cache (2 x layers x context x kv_dim floats) and its
// answer: under 1 MiB for the built-in model, whatever the request (measured: 0.33 MiB at
// most; TestEmbeddedWorkPerRequestIsBounded).
type Embedded struct {
	cfg         EmbeddedConfig
	promptBytes int // the most bytes of prompt the context can hold
	slots       chan struct{}
	nextID      atomic.Uint64
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
	e := &Embedded{cfg: cfg, slots: make(chan struct{}, cfg.MaxActive)}
	e.promptBytes = e.promptTokens() * cfg.Tokenizer.LongestPiece()
	if e.promptBytes <= 0 {
		return nil, fmt.Errorf("backend: the model's context of %d tokens holds no prompt", cfg.Model.Config.SeqLen)
	}
	if cfg.MaxBodyBytes < 0 {
		return nil, fmt.Errorf("backend: negative MaxBodyBytes")
	}
	if e.cfg.MaxBodyBytes == 0 {
		e.cfg.MaxBodyBytes = 6*e.promptBytes + bodySlack
	}
	return e, nil
}

// promptTokens is the most tokens a prompt can have, its BOS included: the model needs room for
// at least one more.
func (e *Embedded) promptTokens() int {
	n := e.cfg.Model.Config.SeqLen - 1
	if e.cfg.BOS >= 0 {
		n--
	}
	return n
}

// Health is always fine: the model is in memory.
func (e *Embedded) Health(context.Context) error { return nil }

// Generate runs one OpenAI request and answers in OpenAI's shapes, with exact usage.
func (e *Embedded) Generate(ctx context.Context, r Request, emit func(Chunk) error) (Usage, error) {
	if len(r.Body) > e.cfg.MaxBodyBytes {
		return Usage{}, errorf(413, "the request body is %d bytes, over the embedded engine's limit of %d: the model's context of %d tokens holds at most %d bytes of prompt",
			len(r.Body), e.cfg.MaxBodyBytes, e.cfg.Model.Config.SeqLen, e.promptBytes)
	}
	select {
	case e.slots <- struct{}{}:
		defer func() { <-e.slots }()
	default:
		return Usage{}, errorf(503, "embedded engine busy: %d requests running", cap(e.slots))
	}
	gen, err := e.parse(r)
	if err != nil {
		return Usage{}, err
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
	if err == model.ErrContextFull { // parse checked: a model whose context another check missed
		return Usage{}, errorf(400, "the prompt (%d tokens) does not fit the model's context of %d tokens", len(gen.Prompt), e.cfg.Model.Config.SeqLen)
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
