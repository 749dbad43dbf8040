package echo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// usage is OpenAI's usage object.
type usage struct {
	PromptTokens        int `json:"prompt_tokens"`
	CompletionTokens    int `json:"completion_tokens"`
	TotalTokens         int `json:"total_tokens"`
	PromptTokensDetails struct {
		CachedTokens int `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
	CompletionTokensDetails struct {
		ReasoningTokens int `json:"reasoning_tokens"`
	} `json:"completion_tokens_details"`
}

// object is a response or stream chunk object.
type object struct {
	ID      string   `json:"id"`
	Object  string   `json:"object"`
	Created int64    `json:"created"`
	Model   string   `json:"model"`
	Choices []choice `json:"choices"`
	// Usage is omitted, null (stream chunks when include_usage is set, as
	// OpenAI does) or a *usage.
	Usage any `json:"usage,omitempty"`
}

// choice is one element of "choices"; which of Message, Delta and Text is
// set depends on the endpoint and on streaming.
type choice struct {
	Index        int      `json:"index"`
	Message      *message `json:"message,omitempty"`
	Delta        *message `json:"delta,omitempty"`
	Text         *string  `json:"text,omitempty"`
	Logprobs     any      `json:"logprobs"`
	FinishReason *string  `json:"finish_reason"`
}

// message is a chat message or a stream delta.
type message struct {
	Role    string  `json:"role,omitempty"`
	Content *string `json:"content,omitempty"`
}

// inference returns the handler of one inference endpoint.
func (s *Server) inference(ep endpoint) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBody))
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				writeError(w, http.StatusRequestEntityTooLarge, "invalid_request_error", "request body too large")
				return
			}
			writeError(w, http.StatusBadRequest, "invalid_request_error", "cannot read body: "+err.Error())
			return
		}
		s.setLastBody(body)
		if s.cfg.FailStatus != 0 {
			writeError(w, s.cfg.FailStatus, "server_error", fmt.Sprintf("echo: injected failure %d", s.cfg.FailStatus))
			return
		}
		j, err := parse(ep, body, s.cfg.MaxTokens)
		if err != nil {
			writeError(w, http.StatusBadRequest, "invalid_request_error", err.Error())
			return
		}
		id := s.seq.Add(1)
		if j.stream {
			s.stream(w, r, j, id)
		} else {
			s.whole(w, r, j, id)
		}
	}
}

// base returns the fields every object of one answer shares.
func (j *job) base(id uint64) object {
	o := object{Created: time.Now().Unix(), Model: j.model}
	if j.ep == chat {
		o.ID, o.Object = fmt.Sprintf("chatcmpl-echo-%d", id), "chat.completion"
	} else {
		o.ID, o.Object = fmt.Sprintf("cmpl-echo-%d", id), "text_completion"
	}
	return o
}

// usage returns the answer's usage.
func (j *job) usage() *usage {
	return &usage{
		PromptTokens:     j.promptTokens,
		CompletionTokens: len(j.words),
		TotalTokens:      j.promptTokens + len(j.words),
	}
}

// whole writes a non-stream answer after TokenDelay per token.
func (s *Server) whole(w http.ResponseWriter, r *http.Request, j *job, id uint64) {
	if !sleep(r.Context(), s.cfg.TokenDelay*time.Duration(len(j.words))) {
		s.cancelled.Add(1)
		return
	}
	text := strings.Join(j.words, " ")
	o := j.base(id)
	c := choice{FinishReason: &j.finish}
	if j.ep == chat {
		c.Message = &message{Role: "assistant", Content: &text}
	} else {
		c.Text = &text
	}
	o.Choices = []choice{c}
	o.Usage = j.usage()
	writeJSON(w, http.StatusOK, o)
	s.completed.Add(1)
}

// stream writes an SSE answer the way OpenAI does: a role chunk (chat), one
// chunk per token, a chunk with finish_reason, the usage chunk if asked for,
// then [DONE]; each event is flushed at once.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, j *job, id uint64) {
	ctx := r.Context()
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)

	o := j.base(id)
	if j.ep == chat {
		o.Object = "chat.completion.chunk" // completions chunks stay "text_completion"
	}
	if j.includeUsage {
		o.Usage = json.RawMessage("null")
	}
	send := func(c choice) bool {
		o.Choices = []choice{c}
		return writeEvent(w, rc, o) == nil && ctx.Err() == nil
	}
	ok := true
	if j.ep == chat {
		empty := ""
		ok = send(choice{Delta: &message{Role: "assistant", Content: &empty}})
	}
	for i := 0; ok && i < len(j.words); i++ {
		if i > 0 && !sleep(ctx, s.cfg.TokenDelay) {
			ok = false
			break
		}
		tok := j.words[i]
		if i > 0 {
			tok = " " + tok
		}
		if j.ep == chat {
			ok = send(choice{Delta: &message{Content: &tok}})
		} else {
			ok = send(choice{Text: &tok})
		}
	}
	if ok {
		last := choice{FinishReason: &j.finish}
		if j.ep == chat {
			last.Delta = &message{}
		} else {
			empty := ""
			last.Text = &empty
		}
		ok = send(last)
	}
	if ok && j.includeUsage {
		o.Choices = []choice{}
		o.Usage = j.usage()
		ok = writeEvent(w, rc, o) == nil
	}
	if ok {
		ok = writeData(w, rc, []byte("[DONE]")) == nil
	}
	if !ok {
		s.cancelled.Add(1)
		return
	}
	s.completed.Add(1)
}

// writeEvent writes v as one SSE event and flushes it.
func writeEvent(w io.Writer, rc *http.ResponseController, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return writeData(w, rc, data)
}

// writeData writes one "data:" event and flushes it.
func writeData(w io.Writer, rc *http.ResponseController, data []byte) error {
	buf := make([]byte, 0, len(data)+8)
	buf = append(buf, "data: "...)
	buf = append(buf, data...)
	buf = append(buf, "\n\n"...)
	if _, err := w.Write(buf); err != nil {
		return err
	}
	return rc.Flush()
}

// sleep waits d, or returns false as soon as ctx is done.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
