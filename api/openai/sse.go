package openai

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"time"

	"github.com/cocoon-mesh/cocoon/api/httpguard"
	"github.com/cocoon-mesh/cocoon/node"
	"github.com/cocoon-mesh/cocoon/node/backend"
	"github.com/cocoon-mesh/cocoon/node/wire"
)

// A streamed answer reaches an OpenAI caller as the worker's server-sent events, passed through
// as they came (the node checked them: each one JSON object on one line), with what only the
// client can add. The receipt exists only once the answer is complete, so it comes as a
// trailer and as a cocoon_receipt field on the event that ends the answer (the one with a
// finish_reason, held back until the receipt arrives just after it) and on the usage chunk, if
// asked for. An error after the first event is one more event, in OpenAI's error shape; the
// stream ends with [DONE].

// stream answers a streamed request.
func (f *Face) stream(ctx context.Context, w http.ResponseWriter, req node.Request, wantUsage bool) {
	s := &sse{w: w, ep: req.Endpoint, wantUsage: wantUsage}
	s.flusher, _ = w.(http.Flusher)
	w.Header().Set("Trailer", resultHeaders)
	res, err := f.n.Infer(ctx, req, s.chunk)
	if err != nil {
		s.fail(err)
		return
	}
	s.finish(res)
}

// sse shapes one streamed answer for its caller.
type sse struct {
	w         http.ResponseWriter
	flusher   http.Flusher // nil: the writer cannot flush
	ep        wire.Endpoint
	wantUsage bool   // stream_options.include_usage
	started   bool   // the status line and headers are out
	held      []byte // an event with a finish_reason, waiting to go out
	last      []byte // the last event's JSON, whose id, created and model the usage chunk copies
}

// begin sends the status line and the headers of a stream.
func (s *sse) begin() {
	hd := s.w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-cache")
	hd.Set("Connection", "keep-alive")
	s.w.WriteHeader(http.StatusOK)
	s.started = true
}

// chunk passes on one chunk of events, holding back one that finishes the answer. A burst of
// chunks goes out in one write: the flush waits for the last.
func (s *sse) chunk(c node.Chunk) error {
	if !s.started {
		s.begin()
	}
	if s.held != nil { // a finish event that was not the last: pass it on as it came
		if err := writeEvent(s.w, s.held); err != nil {
			return err
		}
		s.held = nil
	}
	before, lastJSON := splitLastEvent(c.Data)
	out := c.Data
	if finishes(lastJSON) {
		out, s.held = before, append(s.held[:0], lastJSON...) // c.Data is reused for the next chunk
	}
	if _, err := s.w.Write(out); err != nil {
		return err
	}
	if s.wantUsage { // the usage chunk copies id, created and model from the last event
		s.last = append(s.last[:0], lastJSON...)
	}
	if s.flusher != nil && !c.More {
		s.flusher.Flush()
	}
	return nil
}

// fail ends the answer with err: as an error answer if nothing was sent yet, else as an error
// event after the held one.
func (s *sse) fail(err error) {
	we := node.AsWireError(err)
	if !s.started {
		httpguard.WriteWireError(s.w, we)
		return
	}
	if s.held != nil {
		_ = writeEvent(s.w, s.held)
	}
	b, _ := json.Marshal(httpguard.ErrorBody(we.Code.HTTPStatus(), we.Code.String(), "", we.Message))
	_ = writeEvent(s.w, b)
}

// finish ends a complete answer: the held event with the receipt, the usage chunk if asked for,
// [DONE], and the trailers.
func (s *sse) finish(res *node.Result) {
	if !s.started { // an answer with no chunks still is a valid, empty stream
		s.w.Header().Set("Content-Type", "text/event-stream")
		s.w.WriteHeader(http.StatusOK)
	}
	if s.held != nil {
		_ = writeEvent(s.w, withReceipt(s.held, res.Receipt))
	}
	if s.wantUsage {
		_ = writeEvent(s.w, usageChunk(s.last, s.ep, res, time.Now()))
	}
	io.WriteString(s.w, "data: [DONE]\n\n")
	setResultHeaders(s.w.Header(), res)
}

// writeEvent writes one server-sent event carrying data, in one write.
func writeEvent(w io.Writer, data []byte) error {
	_, err := w.Write(backend.AppendEvent(make([]byte, 0, len(data)+8), data))
	return err
}

// splitLastEvent splits server-sent events into those before the last (framing included) and
// the last one's data.
func splitLastEvent(events []byte) (before, last []byte) {
	trimmed := bytes.TrimRight(events, "\n")
	if i := bytes.LastIndex(trimmed, []byte("\n\ndata: ")); i >= 0 {
		return events[:i+2], trimmed[i+len("\n\ndata: "):]
	}
	return nil, bytes.TrimPrefix(trimmed, []byte("data: "))
}

// finishes reports whether a chunk's JSON carries a finish_reason that is not null.
func finishes(chunk []byte) bool {
	i := bytes.Index(chunk, []byte(`"finish_reason"`))
	if i < 0 {
		return false
	}
	rest := bytes.TrimLeft(chunk[i+len(`"finish_reason"`):], " \t\r\n")
	rest = bytes.TrimLeft(bytes.TrimPrefix(rest, []byte(":")), " \t\r\n")
	return len(rest) > 0 && rest[0] == '"'
}

// withReceipt adds a cocoon_receipt field to a JSON object.
func withReceipt(obj []byte, receipt string) []byte {
	obj = bytes.TrimRight(obj, " \t\r\n")
	if len(obj) < 2 || obj[len(obj)-1] != '}' {
		return obj // not an object: leave it as the worker sent it
	}
	out := append([]byte(nil), obj[:len(obj)-1]...)
	if len(bytes.TrimSpace(obj[1:len(obj)-1])) > 0 {
		out = append(out, ',')
	}
	out = append(out, `"cocoon_receipt":"`...)
	out = append(out, receipt...) // base64url: nothing to escape
	return append(out, `"}`...)
}

// usageChunk is the final chunk OpenAI sends when stream_options.include_usage is set: no
// choices, only usage. The worker's backend always reports usage so it can be billed; the
// face re-creates this chunk only for callers that asked for it, dated now if the last event
// was not.
func usageChunk(last []byte, ep wire.Endpoint, res *node.Result, now time.Time) []byte {
	var meta struct {
		ID      string `json:"id"`
		Created int64  `json:"created"`
		Model   string `json:"model"`
	}
	_ = json.Unmarshal(last, &meta)
	if meta.Created == 0 {
		meta.Created = now.Unix()
	}
	object := "chat.completion.chunk"
	if ep == wire.Completion {
		object = "text_completion"
	}
	m := map[string]any{
		"id": meta.ID, "object": object, "created": meta.Created, "model": meta.Model,
		"choices": []any{}, "usage": openAIUsage(&res.Usage), "cocoon_receipt": res.Receipt,
	}
	if res.Paid {
		m["cocoon_cost_nanoton"] = res.Cost
	}
	b, _ := json.Marshal(m)
	return b
}

func openAIUsage(u *wire.Usage) map[string]any {
	m := map[string]any{
		"prompt_tokens":     u.Prompt,
		"completion_tokens": u.Completion,
		"total_tokens":      u.Prompt + u.Completion,
	}
	if u.Cached > 0 {
		m["prompt_tokens_details"] = map[string]any{"cached_tokens": u.Cached}
	}
	if u.Reasoning > 0 {
		m["completion_tokens_details"] = map[string]any{"reasoning_tokens": u.Reasoning}
	}
	return m
}
