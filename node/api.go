package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/cocoon-mesh/cocoon/node/backend"
	"github.com/cocoon-mesh/cocoon/node/wire"
	"github.com/cocoon-mesh/cocoon/ton"
)

// apiHandler serves the OpenAI-compatible API of a client node, and the operator endpoints.
func (n *Node) apiHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/models", n.handleModels)
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) { n.handleCompletion(w, r, wire.Chat) })
	mux.HandleFunc("POST /v1/completions", func(w http.ResponseWriter, r *http.Request) { n.handleCompletion(w, r, wire.Completion) })
	n.routeAdmin(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		apiError(w, http.StatusNotFound, "invalid_request_error", "not_found", "", fmt.Sprintf("no route for %s %s: this node serves /v1/models, /v1/chat/completions and /v1/completions, and its status and channels under /cocoon/v1/", r.Method, r.URL.Path))
	})
	return n.authorize(mux)
}

// modelEntry is one model in /v1/models, with the mesh's extra fields. Prices are those of
// the cheapest worker serving the model, as this client pays them: with the commission of the
// dearest proxy it pays, once it has learned it (when opening a channel).
type modelEntry struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
	// MinPrice is what a completion token costs this client, nanoTON: what X-Cocoon-Max-Price caps.
	MinPrice uint64 `json:"cocoon_min_price_nanoton"`
	Workers  int    `json:"cocoon_workers"`
	// Prices is what one token of each category costs this client, nanoTON.
	Prices priceList `json:"cocoon_prices"`
	// WorkerPrices, Coefficient and Commission are what Prices are made of: the worker's list
	// prices, the per-mille coefficient it applies to them, and the proxy's per-mille
	// commission on top (absent while no proxy's is known).
	WorkerPrices priceList `json:"cocoon_worker_prices"`
	Coefficient  uint32    `json:"cocoon_worker_coefficient"`
	Commission   *uint32   `json:"cocoon_proxy_commission,omitempty"`
}

// priceList is nanoTON per token by category.
type priceList struct {
	Prompt     uint64 `json:"prompt"`
	Cached     uint64 `json:"cached"`
	Completion uint64 `json:"completion"`
	Reasoning  uint64 `json:"reasoning"`
}

func (n *Node) handleModels(w http.ResponseWriter, _ *http.Request) {
	models := n.Models()
	commission, known := n.proxyCommission()
	data := make([]modelEntry, 0, len(models))
	for _, m := range models {
		o := m.Cheapest
		e := modelEntry{ID: m.Model, Object: "model", OwnedBy: "cocoon-mesh", Workers: m.Workers,
			WorkerPrices: priceList{o.Prices.Prompt, o.Prices.Cached, o.Prices.Completion, o.Prices.Reasoning},
			Coefficient:  o.Coefficient}
		prices := o.Prices
		if known {
			e.Commission = &commission
			if p, err := prices.WithCommission(commission); err == nil {
				prices = p
			}
		}
		// One token of each category, billed as answers are: coefficient applied, rounded up.
		per := func(u ton.Usage) uint64 {
			v, err := prices.Cost(u, o.Coefficient)
			if err != nil {
				return math.MaxUint64
			}
			return v
		}
		e.Prices = priceList{per(ton.Usage{Prompt: 1}), per(ton.Usage{Prompt: 1, Cached: 1}), per(ton.Usage{Completion: 1}), per(ton.Usage{Reasoning: 1})}
		e.MinPrice = e.Prices.Completion
		data = append(data, e)
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data})
}

// completionRequest is the part of an OpenAI request the client node needs to read
// (decodeCompletion reads it); the body itself travels untouched, so tools, tool_choice and any
// other field reach the backend.
type completionRequest struct {
	Model               string
	Stream              bool
	IncludeUsage        bool // stream_options.include_usage
	MaxTokens           *int64
	MaxCompletionTokens *int64
	Messages            json.RawMessage
	Prompt              json.RawMessage
}

// parseCompletion checks a request body and returns the stream header for it.
func (n *Node) parseCompletion(body []byte, ep wire.Endpoint) (completionRequest, wire.Header, *apiErr) {
	req, aerr := decodeCompletion(body, ep)
	if aerr != nil {
		return req, wire.Header{}, aerr
	}
	if req.Model == "" {
		return req, wire.Header{}, badRequest("model", "model is required: GET /v1/models lists what the mesh offers")
	}
	if len(req.Model) > wire.MaxModelLen {
		return req, wire.Header{}, badRequest("model", fmt.Sprintf("model name longer than %d bytes", wire.MaxModelLen))
	}
	var maxTokens int64
	param := "max_tokens"
	switch {
	case req.MaxCompletionTokens != nil:
		maxTokens, param = *req.MaxCompletionTokens, "max_completion_tokens"
	case req.MaxTokens != nil:
		maxTokens = *req.MaxTokens
	}
	if maxTokens < 0 {
		return req, wire.Header{}, badRequest(param, param+" must not be negative")
	}
	if maxTokens > int64(n.cfg.MaxTokens) {
		return req, wire.Header{}, badRequest(param, fmt.Sprintf("%s %d is over this node's limit of %d", param, maxTokens, n.cfg.MaxTokens))
	}
	h := wire.Header{Model: req.Model, Endpoint: ep, Stream: req.Stream, MaxTokens: uint32(maxTokens), MaxPrice: n.cfg.MaxPrice}
	return req, h, nil
}

func (n *Node) handleCompletion(w http.ResponseWriter, r *http.Request, ep wire.Endpoint) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(n.cfg.MaxBodyBytes)))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			apiError(w, http.StatusRequestEntityTooLarge, "invalid_request_error", wire.CodeTooLarge.String(), "", fmt.Sprintf("request body over this node's limit of %d bytes", n.cfg.MaxBodyBytes))
			return
		}
		if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
			apiError(w, http.StatusRequestTimeout, "invalid_request_error", "timeout", "", fmt.Sprintf("the request body did not arrive within %s ([http] body_timeout)", n.cfg.HTTP.BodyTimeout))
			return
		}
		apiError(w, http.StatusBadRequest, "invalid_request_error", wire.CodeBadRequest.String(), "", "cannot read request body: "+err.Error())
		return
	}
	req, h, aerr := n.parseCompletion(body, ep)
	if aerr != nil {
		aerr.write(w)
		return
	}
	if v := r.Header.Get("X-Cocoon-Max-Price"); v != "" {
		p, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			badRequest("", "X-Cocoon-Max-Price must be a whole number of nanoTON per completion token").write(w)
			return
		}
		if h.MaxPrice == 0 || p < h.MaxPrice {
			h.MaxPrice = p
		}
	}
	h.ID = r.Header.Get("X-Request-Id")
	if h.ID == "" || len(h.ID) > wire.MaxIDLen {
		h.ID = n.client.requestID()
	}
	ctx, cancel := context.WithTimeout(r.Context(), n.cfg.RequestTimeout)
	defer cancel()
	w.Header().Set("X-Request-Id", h.ID)

	if !req.Stream {
		var answer []byte
		res, err := n.infer(ctx, h, body, answerSink{chunk: func(c *wire.Chunk, _ bool) error {
			answer = append(answer, c.Data...)
			return nil
		}, whole: func() error { return checked(backend.CheckAnswer(answer)) }, reset: func() { answer = answer[:0] }})
		if err != nil {
			writeWireError(w, err)
			return
		}
		n.setResultHeaders(w.Header(), res)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		w.Write(answer)
		return
	}

	flusher, _ := w.(http.Flusher)
	started := false
	wantUsage := req.IncludeUsage
	var last []byte
	// The receipt exists only once the answer is complete. Streamed, it comes as a trailer and
	// as a cocoon_receipt field on the chunk that ends the answer (the one with a finish_reason,
	// held back until the receipt arrives just after it) and on the usage chunk, if asked for.
	var held []byte
	w.Header().Set("Trailer", "X-Cocoon-Receipt, X-Cocoon-Worker, X-Cocoon-Worker-Tee, X-Cocoon-Usage, X-Cocoon-Cost")
	res, err := n.infer(ctx, h, body, answerSink{chunk: func(c *wire.Chunk, more bool) error {
		// A streamed chunk is one or more server-sent events, written through as they came once
		// they check out (each one JSON object on one line), so a faulty worker can neither
		// break the stream's framing nor have garbage served.
		if err := checked(backend.CheckEvents(c.Data)); err != nil {
			return err
		}
		if !started {
			hd := w.Header()
			hd.Set("Content-Type", "text/event-stream")
			hd.Set("Cache-Control", "no-cache")
			hd.Set("Connection", "keep-alive")
			w.WriteHeader(http.StatusOK)
			started = true
		}
		if held != nil { // a finish event that was not the last: pass it on as it came
			if err := writeEvent(w, held); err != nil {
				return err
			}
			held = nil
		}
		before, lastJSON := splitLastEvent(c.Data)
		out := c.Data
		if finishes(lastJSON) {
			out, held = before, append(held[:0], lastJSON...) // c.Data is reused for the next chunk
		}
		if _, err := w.Write(out); err != nil {
			return err
		}
		if wantUsage { // the usage chunk copies id, created and model from the last event
			last = append(last[:0], lastJSON...)
		}
		if flusher != nil && !more { // a burst of chunks goes out in one write
			flusher.Flush()
		}
		return nil
	}})
	if err != nil {
		if !started {
			writeWireError(w, err)
			return
		}
		if held != nil {
			_ = writeEvent(w, held)
		}
		we := asWireError(err)
		b, _ := json.Marshal(errorBody(errorType(we.Code.HTTPStatus()), we.Code.String(), "", we.Message))
		_ = writeEvent(w, b)
		return
	}
	if !started { // an answer with no chunks still is a valid, empty stream
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
	}
	if held != nil {
		_ = writeEvent(w, withReceipt(held, res.receipt))
	}
	if wantUsage {
		_ = writeEvent(w, usageChunk(last, ep, res))
	}
	io.WriteString(w, "data: [DONE]\n\n")
	hd := w.Header()
	hd.Set("X-Cocoon-Receipt", res.receipt)
	hd.Set("X-Cocoon-Worker", res.fin.Worker)
	hd.Set("X-Cocoon-Worker-Tee", res.workerTE)
	hd.Set("X-Cocoon-Usage", usageHeader(&res.fin.Usage))
	setCost(hd, res)
}

// checked makes a failed check of what a worker sent the worker's failure, refusing its answer.
func checked(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if be := (*backend.Error)(nil); errors.As(err, &be) {
		msg = be.Message
	}
	return wire.Errorf(wire.CodeWorkerFailed, "%s", msg)
}

// setCost tells the caller what the answer cost, in nanoTON, when payments are on.
func setCost(h http.Header, res *result) {
	if res.paid {
		h.Set("X-Cocoon-Cost", strconv.FormatUint(res.cost, 10))
	}
}

// writeEvent writes one server-sent event carrying data, in one write.
func writeEvent(w io.Writer, data []byte) error {
	b := make([]byte, 0, len(data)+8)
	b = append(b, "data: "...)
	b = append(b, data...)
	b = append(b, "\n\n"...)
	_, err := w.Write(b)
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
// client re-creates this chunk only for callers that asked for it.
func usageChunk(last []byte, ep wire.Endpoint, res *result) []byte {
	var meta struct {
		ID      string `json:"id"`
		Created int64  `json:"created"`
		Model   string `json:"model"`
	}
	_ = json.Unmarshal(last, &meta)
	if meta.Created == 0 {
		meta.Created = time.Now().Unix()
	}
	object := "chat.completion.chunk"
	if ep == wire.Completion {
		object = "text_completion"
	}
	m := map[string]any{
		"id": meta.ID, "object": object, "created": meta.Created, "model": meta.Model,
		"choices": []any{}, "usage": openAIUsage(&res.fin.Usage), "cocoon_receipt": res.receipt,
	}
	if res.paid {
		m["cocoon_cost_nanoton"] = res.cost
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

// setResultHeaders tells the caller who served the request, what their attestation showed,
// what it used, and hands over the receipt.
func (n *Node) setResultHeaders(h http.Header, res *result) {
	h.Set("X-Cocoon-Proxy", n.client.peerName(res.proxy))
	h.Set("X-Cocoon-Proxy-Tee", describeAttest(n.cachedAttestation(res.proxy)))
	h.Set("X-Cocoon-Worker", res.fin.Worker)
	h.Set("X-Cocoon-Worker-Tee", res.workerTE)
	h.Set("X-Cocoon-Usage", usageHeader(&res.fin.Usage))
	h.Set("X-Cocoon-Receipt", res.receipt)
	setCost(h, res)
}

func usageHeader(u *wire.Usage) string {
	return fmt.Sprintf("prompt=%d cached=%d completion=%d reasoning=%d estimated=%t",
		u.Prompt, u.Cached, u.Completion, u.Reasoning, u.Estimated)
}

// apiErr is an error in OpenAI's JSON shape.
type apiErr struct {
	status              int
	typ, code, param, m string
}

func badRequest(param, msg string) *apiErr {
	return &apiErr{http.StatusBadRequest, "invalid_request_error", wire.CodeBadRequest.String(), param, msg}
}

func (e *apiErr) write(w http.ResponseWriter) { apiError(w, e.status, e.typ, e.code, e.param, e.m) }

func errorType(status int) string {
	if status >= 500 {
		return "server_error"
	}
	return "invalid_request_error"
}

func errorBody(typ, code, param, msg string) map[string]any {
	var p any
	if param != "" {
		p = param
	}
	return map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": p, "code": code}}
}

func apiError(w http.ResponseWriter, status int, typ, code, param, msg string) {
	writeJSON(w, status, errorBody(typ, code, param, msg))
}

// writeWireError answers with the HTTP status and OpenAI error a mesh error maps to.
func writeWireError(w http.ResponseWriter, err error) {
	we := asWireError(err)
	st := we.Code.HTTPStatus()
	apiError(w, st, errorType(st), we.Code.String(), "", we.Message)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
