package backend

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Tuning of the HTTP backend. A worker sends many concurrent requests to one
// local model server, so idle connections are kept per host generously and
// warm requests never pay for a new TCP handshake.
const (
	maxIdleConnsPerHost = 256
	idleConnTimeout     = 90 * time.Second
	dialTimeout         = 10 * time.Second
	healthTimeout       = 2 * time.Second
	// maxErrorBody caps how much of an error response is read for its
	// message; the rest is dropped with the connection.
	maxErrorBody = 64 << 10
	// maxMessage caps an error message passed on to the client.
	maxMessage = 1 << 10
	// drainMax and drainWait bound the read of whatever follows [DONE]
	// (normally just the end of the chunked body), which lets the
	// connection return to the pool without trusting the server to end it.
	drainMax  = 4 << 10
	drainWait = 100 * time.Millisecond
)

// HTTPConfig configures an HTTP backend.
type HTTPConfig struct {
	// BaseURL is the server's OpenAI base, e.g. "http://127.0.0.1:8000/v1"
	// (the part before /chat/completions).
	BaseURL string
	// APIKey is an optional bearer token sent to the server.
	APIKey string
	// Models maps an advertised full model id to the model name the server
	// knows; the request body's "model" is rewritten to it. A model id not
	// in the map is refused with Error{404}.
	Models map[string]string
	// MaxBody caps one response body or one SSE event in bytes
	// (0 = DefaultMaxBody).
	MaxBody int64
	// Timeout optionally caps each call as a whole (0 = none; ctx governs).
	Timeout time.Duration
}

// HTTP is a Backend that forwards requests to an OpenAI-compatible server.
// It is safe for concurrent use.
type HTTP struct {
	base    string
	apiKey  string
	models  map[string]string
	maxBody int
	timeout time.Duration
	client  *http.Client
}

var _ Backend = (*HTTP)(nil)

// NewHTTP validates cfg and returns an HTTP backend with its own connection
// pool.
func NewHTTP(cfg HTTPConfig) (*HTTP, error) {
	u, err := url.Parse(cfg.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("backend: base URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("backend: base URL %q: scheme must be http or https", cfg.BaseURL)
	}
	if u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("backend: base URL %q: want scheme://host[:port][/path] only", cfg.BaseURL)
	}
	if len(cfg.Models) == 0 {
		return nil, errors.New("backend: no models configured")
	}
	models := make(map[string]string, len(cfg.Models))
	for id, name := range cfg.Models {
		if id == "" || name == "" {
			return nil, fmt.Errorf("backend: model %q -> %q: empty id or server name", id, name)
		}
		models[id] = name
	}
	if cfg.MaxBody < 0 || cfg.Timeout < 0 {
		return nil, errors.New("backend: negative MaxBody or Timeout")
	}
	maxBody := DefaultMaxBody
	if cfg.MaxBody > 0 {
		maxBody = int(min(cfg.MaxBody, 1<<30)) // stays an int on 32-bit platforms
	}
	return &HTTP{
		base:    strings.TrimRight(u.String(), "/"),
		apiKey:  cfg.APIKey,
		models:  models,
		maxBody: maxBody,
		timeout: cfg.Timeout,
		client:  newClient(),
	}, nil
}

// newClient builds the client of one backend.
func newClient() *http.Client {
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true) // one local server: HTTP/2 buys nothing
	tr := &http.Transport{
		// Prompts are confidential: never route them through a proxy
		// picked up from the environment.
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		Protocols:           protocols,
		MaxIdleConns:        4 * maxIdleConnsPerHost,
		MaxIdleConnsPerHost: maxIdleConnsPerHost,
		IdleConnTimeout:     idleConnTimeout,
		TLSHandshakeTimeout: dialTimeout,
		// Transparent gzip would buffer SSE and hide the real body size.
		DisableCompression: true,
		ReadBufferSize:     32 << 10,
		WriteBufferSize:    32 << 10,
	}
	return &http.Client{
		Transport: tr,
		// A redirect from a model server is a misconfiguration; following
		// it would resend the prompt somewhere else, or drop the body.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// CloseIdleConnections closes pooled connections that are not in use.
func (h *HTTP) CloseIdleConnections() { h.client.CloseIdleConnections() }

// Health implements Backend: GET BaseURL/models must answer 2xx within two
// seconds (or ctx's deadline, if sooner).
func (h *HTTP) Health(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.base+"/models", nil)
	if err != nil {
		return errorf(503, "health: %v", err)
	}
	h.authorize(req)
	resp, err := h.client.Do(req)
	if err != nil {
		return errorf(503, "health: %v", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, int64(h.maxBody)))
	if resp.StatusCode/100 != 2 {
		return errorf(503, "health: server answered %s", resp.Status)
	}
	return nil
}

// authorize adds the API key, if any.
func (h *HTTP) authorize(req *http.Request) {
	if h.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+h.apiKey)
	}
}

// Generate implements Backend.
func (h *HTTP) Generate(ctx context.Context, r Request, emit func(Chunk) error) (Usage, error) {
	path := r.Endpoint.Path()
	if path == "" {
		return Usage{}, errorf(400, "unknown endpoint %d", r.Endpoint)
	}
	name, ok := h.models[r.Model]
	if !ok {
		return Usage{}, errorf(404, "model %q is not served here", r.Model)
	}
	body, limit, err := rewriteBody(r, name)
	if err != nil {
		return Usage{}, err
	}

	// callCtx governs the request: cancelling it aborts the connection, so
	// the server sees its client leave and stops generating.
	var callCtx context.Context
	var cancel context.CancelFunc
	if h.timeout > 0 {
		callCtx, cancel = context.WithTimeout(ctx, h.timeout)
	} else {
		callCtx, cancel = context.WithCancel(ctx)
	}
	defer cancel()

	req, err := http.NewRequestWithContext(callCtx, http.MethodPost, h.base+path, bytes.NewReader(body))
	if err != nil {
		return Usage{}, errorf(500, "build request: %v", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if r.Stream {
		req.Header.Set("Accept", "text/event-stream")
	} else {
		req.Header.Set("Accept", "application/json")
	}
	h.authorize(req)

	resp, err := h.client.Do(req)
	if err != nil {
		return Usage{}, h.failure(ctx, callCtx, "request", err)
	}
	defer resp.Body.Close()

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return Usage{}, statusError(resp)
	}
	if r.Stream {
		return h.stream(ctx, callCtx, cancel, r, limit, resp, emit)
	}
	return h.whole(ctx, callCtx, r, limit, resp, emit)
}

// failure turns a transport error into the error Generate returns: the
// caller's own cancellation, the configured timeout (504) or an unreachable
// or broken server (502).
func (h *HTTP) failure(ctx, callCtx context.Context, what string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("backend: %s aborted: %w", what, ctx.Err())
	}
	if callCtx.Err() != nil {
		return errorf(504, "%s: backend did not finish within %v", what, h.timeout)
	}
	if errors.Is(err, ErrTooLarge) {
		return errorf(502, "%s: response exceeds %d bytes", what, h.maxBody)
	}
	var be *Error
	if errors.As(err, &be) {
		return be
	}
	// The URL adds nothing for the client and names the worker's
	// internal server; keep only the cause.
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return errorf(502, "%s: %v", what, err)
}

// whole handles a non-stream answer; limit caps its completion tokens (-1: no cap).
func (h *HTTP) whole(ctx, callCtx context.Context, r Request, limit int, resp *http.Response, emit func(Chunk) error) (Usage, error) {
	data, err := readCapped(resp.Body, h.maxBody)
	if err != nil {
		return Usage{}, h.failure(ctx, callCtx, "read response", err)
	}
	data = bytes.TrimSpace(data)
	var a answer
	if err := a.decode(data); err != nil {
		return Usage{}, err
	}
	if a.failed() {
		return Usage{}, a.err(502)
	}
	line, _ := compactLine(data) // data is valid JSON (decode checked it), so it compacts
	u, ok := usageOf(a.Usage)
	if !ok {
		u = clampEstimate(Usage{
			Prompt:     estimateTokens(len(r.Body)),
			Completion: estimateTokens(a.textLen()),
			Estimated:  true,
		}, limit, len(r.Body), len(line))
	} else if err := CheckUsage(u, limit, len(r.Body), len(line)); err != nil {
		return Usage{}, err
	}
	if err := ctx.Err(); err != nil {
		return Usage{}, fmt.Errorf("backend: aborted: %w", err)
	}
	if err := emit(Chunk{Data: line, Tokens: u.Completion}); err != nil {
		return Usage{}, err
	}
	return u, nil
}

// stream handles an SSE answer; limit caps its completion tokens (-1: no cap).
func (h *HTTP) stream(ctx, callCtx context.Context, cancel context.CancelFunc, r Request, limit int, resp *http.Response, emit func(Chunk) error) (Usage, error) {
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == "application/json" {
		// The server ignored "stream": true, or reported an error with a
		// 2xx status; either way there is no stream to relay.
		data, _ := readCapped(resp.Body, maxErrorBody)
		var a answer
		if a.decode(bytes.TrimSpace(data)) == nil && a.failed() {
			return Usage{}, a.err(502)
		}
		return Usage{}, errorf(502, "server answered a stream request without a stream")
	}
	m := meter{ctx: ctx, limit: limit, body: len(r.Body), emit: emit}
	err := parseSSE(resp.Body, h.maxBody, m.event)
	switch {
	case m.emitErr != nil:
		return Usage{}, m.emitErr
	case m.done:
		// Let the connection go back to the pool: read the end of the
		// body, but never wait on a server that keeps it open.
		t := time.AfterFunc(drainWait, cancel)
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, drainMax))
		t.Stop()
	case err != nil:
		return Usage{}, h.failure(ctx, callCtx, "stream", err)
	case ctx.Err() != nil:
		return Usage{}, fmt.Errorf("backend: stream aborted: %w", ctx.Err())
	case m.chunks == 0 && !m.haveUsage:
		return Usage{}, errorf(502, "stream ended without any data")
	}
	if !m.haveUsage {
		return clampEstimate(Usage{Prompt: estimateTokens(len(r.Body)), Completion: m.content, Estimated: true}, limit, len(r.Body), m.relayed), nil
	}
	if err := CheckUsage(m.usage, limit, len(r.Body), m.relayed); err != nil {
		return Usage{}, err
	}
	return m.usage, nil
}

// errStopped ends parseSSE from a meter's callback.
var errStopped = errors.New("stopped")

// meter reads one stream's events: it relays each as a Chunk and attributes tokens to it,
// keeping their sum within CheckUsage's bounds at every chunk, not only at the end, because
// the worker bills as it relays.
type meter struct {
	ctx   context.Context
	limit int // completion tokens at most, -1: no cap
	body  int // bytes of the request body
	emit  func(Chunk) error

	usage     Usage // the server's last usage report
	haveUsage bool
	done      bool  // [DONE] seen
	chunks    int   // chunks emitted
	content   int   // chunks that carried generated content
	tokens    int   // sum of Chunk.Tokens so far
	relayed   int   // bytes of Chunk.Data so far
	emitErr   error // emit's error, returned as is
}

// event handles one SSE event's data.
func (m *meter) event(data []byte, more bool) error {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil
	}
	if string(data) == "[DONE]" {
		m.done = true
		return errStopped
	}
	var a answer
	if err := a.decode(data); err != nil {
		return err
	}
	if a.failed() {
		return a.err(502)
	}
	cu, hasU := usageOf(a.Usage)
	if hasU {
		m.usage, m.haveUsage = cu, true
		if len(a.Choices) == 0 {
			return nil // usage-only chunk: metered, not relayed
		}
	}
	n := 0
	if a.hasContent() {
		m.content++
		n = 1
	}
	if m.ctx.Err() != nil {
		return m.ctx.Err() // buffered events must not outlive a cancel
	}
	line, ok := compactLine(data)
	if !ok {
		return errorf(502, "server sent an event that is not one JSON object")
	}
	m.chunks++
	m.relayed += len(line)
	if hasU {
		// The server counts for us (usage on every chunk, or on the last content chunk):
		// attribute what it reports beyond what was already attributed, so chunk tokens add
		// up to its total, and refuse a count no answer this size can have.
		n = max(0, cu.Completion-m.tokens)
		claim := cu
		claim.Completion = m.tokens + n
		if err := CheckUsage(claim, m.limit, m.body, m.relayed); err != nil {
			return err
		}
	} else {
		n = clampEstimate(Usage{Completion: m.tokens + n}, m.limit, m.body, m.relayed).Completion - m.tokens
	}
	m.tokens += n
	if err := m.emit(Chunk{Data: line, Tokens: n, More: more}); err != nil {
		m.emitErr = err
		return errStopped
	}
	return nil
}

// readCapped reads all of rd, failing with ErrTooLarge beyond max bytes.
func readCapped(rd io.Reader, max int) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(rd, int64(max)+1))
	if err != nil {
		return nil, err
	}
	if len(data) > max {
		return nil, ErrTooLarge
	}
	return data, nil
}

// compactLine returns a JSON value on one line (data itself when it already
// is): an event whose data spanned several lines would otherwise break SSE
// framing when the client node re-emits it as "data: ...\n\n". ok is false
// for a multi-line value that is not valid JSON.
func compactLine(data []byte) ([]byte, bool) {
	if bytes.IndexByte(data, '\n') < 0 && bytes.IndexByte(data, '\r') < 0 {
		return data, true
	}
	var b bytes.Buffer
	if json.Compact(&b, data) != nil {
		return nil, false
	}
	return b.Bytes(), true
}

// statusError converts a non-2xx response into an *Error. Statuses that
// blame the worker's own setup rather than the client's request (bad API
// key, unknown server model, wrong path) become 502, and overload or timeout
// statuses become 503/504, so the caller retries them elsewhere instead of
// failing the client.
func statusError(resp *http.Response) error {
	data, _ := readCapped(resp.Body, maxErrorBody)
	msg := errorMessage(data)
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	status := resp.StatusCode
	switch {
	case status == 401, status == 403, status == 404, status == 405, status == 407:
		status = 502
	case status == 408:
		status = 504
	case status == 429:
		status = 503
	case status < 400 || status > 599:
		status = 502
	}
	return errorf(status, "server answered %d: %s", resp.StatusCode, msg)
}
