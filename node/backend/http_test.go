package backend

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cocoon-mesh/cocoon/node/backend/echo"
)

func TestEndpoint(t *testing.T) {
	for _, tc := range []struct {
		e          Endpoint
		name, path string
	}{
		{Chat, "chat", "/chat/completions"},
		{Completion, "completions", "/completions"},
		{0, "Endpoint(0)", ""},
	} {
		if tc.e.String() != tc.name || tc.e.Path() != tc.path {
			t.Errorf("%d: got %q %q, want %q %q", tc.e, tc.e.String(), tc.e.Path(), tc.name, tc.path)
		}
	}
}

func TestNewHTTPValidates(t *testing.T) {
	models := map[string]string{testModel: serverModel}
	for _, cfg := range []HTTPConfig{
		{BaseURL: "", Models: models},
		{BaseURL: "ftp://x/v1", Models: models},
		{BaseURL: "http:///v1", Models: models},
		{BaseURL: "http://x/v1?a=b", Models: models},
		{BaseURL: "http://u:p@x/v1", Models: models},
		{BaseURL: "http://x/v1"},
		{BaseURL: "http://x/v1", Models: map[string]string{testModel: ""}},
		{BaseURL: "http://x/v1", Models: models, MaxBody: -1},
	} {
		if _, err := NewHTTP(cfg); err == nil {
			t.Errorf("NewHTTP(%+v) accepted", cfg)
		}
	}
	h, err := NewHTTP(HTTPConfig{BaseURL: "http://127.0.0.1:8000/v1/", Models: models})
	if err != nil {
		t.Fatal(err)
	}
	if h.base != "http://127.0.0.1:8000/v1" || h.maxBody != DefaultMaxBody {
		t.Errorf("base %q maxBody %d", h.base, h.maxBody)
	}
}

func TestNonStream(t *testing.T) {
	es, h := newEcho(t, echo.Config{})
	for _, tc := range []struct {
		name string
		r    Request
		text string
		want Usage
	}{
		{
			name: "chat",
			r:    Request{Endpoint: Chat, Model: testModel, Body: chatBody("hello there world")},
			text: "hello there world",
			want: Usage{Prompt: 5, Completion: 3},
		},
		{
			name: "completions",
			r: Request{Endpoint: Completion, Model: testModel,
				Body: []byte(`{"model":"x","prompt":"one two three four","stream":true,"stream_options":{"include_usage":true}}`)},
			text: "one two three four",
			want: Usage{Prompt: 4, Completion: 4},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			chunks, u, err := collect(t, h, tc.r)
			if err != nil {
				t.Fatal(err)
			}
			if u != tc.want {
				t.Errorf("usage %+v, want %+v", u, tc.want)
			}
			if len(chunks) != 1 || chunks[0].Tokens != tc.want.Completion {
				t.Fatalf("chunks %+v", chunks)
			}
			var resp struct {
				Model   string `json:"model"`
				Choices []struct {
					Text    string `json:"text"`
					Message struct{ Content string }
				}
			}
			if err := json.Unmarshal(chunks[0].Data, &resp); err != nil {
				t.Fatal(err)
			}
			if resp.Model != serverModel {
				t.Errorf("model %q, want %q", resp.Model, serverModel)
			}
			if got := resp.Choices[0].Text + resp.Choices[0].Message.Content; got != tc.text {
				t.Errorf("text %q, want %q", got, tc.text)
			}
			// A non-stream call must not carry the client's stream fields.
			last := es.Stats().LastBody
			if s := string(member(t, last, "stream")); s != "false" {
				t.Errorf("sent stream=%s", s)
			}
			if member(t, last, "stream_options") != nil {
				t.Errorf("sent stream_options: %s", last)
			}
		})
	}
}

// deltaText is the text a stream chunk carries.
func deltaText(t *testing.T, data []byte) (string, bool) {
	t.Helper()
	var c struct {
		Object  string `json:"object"`
		Choices []struct {
			Text  string `json:"text"`
			Delta struct{ Content string }
		}
		Usage json.RawMessage `json:"usage"`
	}
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatalf("chunk %s: %v", data, err)
	}
	if len(c.Choices) == 0 {
		return "", false
	}
	return c.Choices[0].Text + c.Choices[0].Delta.Content, true
}

func TestStream(t *testing.T) {
	es, h := newEcho(t, echo.Config{})
	for _, tc := range []struct {
		name   string
		r      Request
		text   string
		want   Usage
		chunks int
	}{
		{
			// The client did not ask for usage: it is forced anyway.
			name: "chat",
			r:    Request{Endpoint: Chat, Model: testModel, Stream: true, Body: chatBody("alpha beta gamma")},
			text: "alpha beta gamma", want: Usage{Prompt: 5, Completion: 3},
			chunks: 5, // role, 3 words, finish
		},
		{
			// The client asked for no usage and more options: usage is
			// forced, the other option kept.
			name: "completions",
			r: Request{Endpoint: Completion, Model: testModel, Stream: true,
				Body: []byte(`{"model":"x","prompt":"a b","stream":false,"stream_options":{"include_usage":false,"continuous_usage_stats":false}}`)},
			text: "a b", want: Usage{Prompt: 2, Completion: 2},
			chunks: 3, // 2 words, finish
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			chunks, u, err := collect(t, h, tc.r)
			if err != nil {
				t.Fatal(err)
			}
			if u != tc.want {
				t.Errorf("usage %+v, want %+v", u, tc.want)
			}
			if len(chunks) != tc.chunks {
				t.Fatalf("%d chunks, want %d", len(chunks), tc.chunks)
			}
			var text strings.Builder
			tokens := 0
			for i, c := range chunks {
				s, ok := deltaText(t, c.Data)
				if !ok {
					t.Fatalf("chunk %d has no choices (usage chunk relayed?): %s", i, c.Data)
				}
				if want := min(len(s), 1); c.Tokens != want {
					t.Errorf("chunk %d %q: %d tokens, want %d", i, s, c.Tokens, want)
				}
				if bytes.ContainsAny(c.Data, "\n\r") {
					t.Errorf("chunk %d spans lines", i)
				}
				text.WriteString(s)
				tokens += c.Tokens
			}
			if text.String() != tc.text || tokens != tc.want.Completion {
				t.Errorf("text %q tokens %d", text.String(), tokens)
			}
			last := es.Stats().LastBody
			if s := string(member(t, last, "model")); s != `"`+serverModel+`"` {
				t.Errorf("sent model %s", s)
			}
			if s := string(member(t, last, "stream")); s != "true" {
				t.Errorf("sent stream=%s", s)
			}
			var opts map[string]bool
			if err := json.Unmarshal(member(t, last, "stream_options"), &opts); err != nil || !opts["include_usage"] {
				t.Errorf("sent stream_options %v (%v)", opts, err)
			}
			if tc.r.Endpoint == Completion {
				if v, ok := opts["continuous_usage_stats"]; !ok || v {
					t.Errorf("other stream_options lost: %v", opts)
				}
			}
		})
	}
}

func TestToolsPassThrough(t *testing.T) {
	es, h := newEcho(t, echo.Config{})
	tools := `[ {"type": "function", "function": {"name": "get_weather", "description": "a <b> & c \u00e9",
	  "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}} ]`
	choice := `{"type":"function","function":{"name":"get_weather"}}`
	body := `{"model": "x", "tools": ` + tools + `, "tool_choice": ` + choice +
		`, "messages": [{"role": "user", "content": "weather in Paris"}], "response_format": {"type": "text"}}`
	for _, stream := range []bool{false, true} {
		_, _, err := collect(t, h, Request{Endpoint: Chat, Model: testModel, Stream: stream, Body: []byte(body)})
		if err != nil {
			t.Fatal(err)
		}
		last := es.Stats().LastBody
		// Values are kept byte for byte; only the separators between
		// members are normalized.
		for _, part := range []string{`"tools":` + tools, `"tool_choice":` + choice, `"response_format":{"type": "text"}`} {
			if !bytes.Contains(last, []byte(part)) {
				t.Errorf("stream=%v: %s not passed through byte for byte:\n%s", stream, part, last)
			}
		}
		// Member order is kept too.
		if i, j := bytes.Index(last, []byte(`"tools"`)), bytes.Index(last, []byte(`"messages"`)); i < 0 || i > j {
			t.Errorf("member order changed: %s", last)
		}
	}
}

func TestRequestErrors(t *testing.T) {
	es, h := newEcho(t, echo.Config{})
	for _, tc := range []struct {
		name   string
		r      Request
		status int
	}{
		{"unknown model", Request{Endpoint: Chat, Model: "other@r:h", Body: chatBody("hi")}, 404},
		{"advertised name only", Request{Endpoint: Chat, Model: serverModel, Body: chatBody("hi")}, 404},
		{"invalid JSON", Request{Endpoint: Chat, Model: testModel, Body: []byte(`{"model":`)}, 400},
		{"empty body", Request{Endpoint: Chat, Model: testModel}, 400},
		{"array body", Request{Endpoint: Chat, Model: testModel, Body: []byte(`[1,2]`)}, 400},
		{"null body", Request{Endpoint: Chat, Model: testModel, Body: []byte(`null`)}, 400},
		{"duplicate model", Request{Endpoint: Chat, Model: testModel, Body: []byte(`{"model":"a","mod\u0065l":"b"}`)}, 400},
		{"unknown endpoint", Request{Endpoint: 9, Model: testModel, Body: chatBody("hi")}, 400},
		// The echo server's own 400 comes back as a 400.
		{"server 400", Request{Endpoint: Chat, Model: testModel, Body: []byte(`{"model":"x"}`)}, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := collect(t, h, tc.r)
			be := wantStatus(t, err, tc.status)
			if be.Message == "" {
				t.Error("empty message")
			}
		})
	}
	if n := es.Stats().Requests; n != 1 {
		t.Errorf("%d requests reached the server, want only the last", n)
	}
}

func TestServerErrors(t *testing.T) {
	t.Run("openai shape", func(t *testing.T) {
		_, h := newEcho(t, echo.Config{FailStatus: 500})
		for _, stream := range []bool{false, true} {
			_, _, err := collect(t, h, Request{Endpoint: Chat, Model: testModel, Stream: stream, Body: chatBody("hi")})
			if be := wantStatus(t, err, 500); !strings.Contains(be.Message, "injected failure 500") {
				t.Errorf("message %q", be.Message)
			}
		}
	})
	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   int
		msg    string
	}{
		{"plain text", 503, "  overloaded, go away\n", 503, "overloaded, go away"},
		{"vllm flat", 400, `{"object":"error","message":"too long","type":"BadRequestError","code":400}`, 400, "too long"},
		{"fastapi", 422, `{"detail":"bad field"}`, 422, "bad field"},
		{"bad api key", 401, `{"error":{"message":"invalid key"}}`, 502, "invalid key"},
		{"rate limited", 429, ``, 503, "Too Many Requests"},
		{"redirect", 302, ``, 502, "Found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newScripted(t, HTTPConfig{}, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Location", "http://example.invalid/")
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			})
			_, _, err := collect(t, h, Request{Endpoint: Chat, Model: testModel, Body: chatBody("hi")})
			if be := wantStatus(t, err, tc.want); !strings.Contains(be.Message, tc.msg) {
				t.Errorf("message %q, want %q in it", be.Message, tc.msg)
			}
		})
	}
	t.Run("error with 200", func(t *testing.T) {
		h := newScripted(t, HTTPConfig{}, func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte(`{"error":{"message":"boom","code":"internal"}}`))
		})
		_, _, err := collect(t, h, Request{Endpoint: Chat, Model: testModel, Body: chatBody("hi")})
		wantStatus(t, err, 502)
	})
	t.Run("unreachable", func(t *testing.T) {
		h := newBackend(t, "http://127.0.0.1:1/v1", HTTPConfig{})
		_, _, err := collect(t, h, Request{Endpoint: Chat, Model: testModel, Body: chatBody("hi")})
		wantStatus(t, err, 502)
	})
}

func TestStreamScripted(t *testing.T) {
	const (
		role = `{"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}`
		tok  = `{"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"x"}}]}`
		tool = `{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{"}}]}}]}`
		rsn  = `{"choices":[{"index":0,"delta":{"reasoning_content":"hmm"}}]}`
		fin  = `{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`
		use  = `{"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3,"prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":1}}}`
	)
	body := chatBody("hi")
	est := estimateTokens(len(body))
	for _, tc := range []struct {
		name   string
		sse    string
		tokens []int // per emitted chunk
		want   Usage
		status int // expected *Error status, 0 = success
	}{
		{
			name:   "usage chunk",
			sse:    "data: " + role + "\n\ndata: " + rsn + "\n\ndata: " + tool + "\n\ndata: " + tok + "\n\ndata: " + fin + "\n\ndata: " + use + "\n\ndata: [DONE]\n\n",
			tokens: []int{0, 1, 1, 1, 0},
			want:   Usage{Prompt: 7, Cached: 4, Completion: 3, Reasoning: 1},
		},
		{
			name:   "no space, CRLF, comments, event and id lines",
			sse:    ": keep-alive\r\nevent: message\r\nid: 1\r\ndata:" + tok + "\r\n\r\nretry: 10\r\ndata:" + use + "\r\n\r\ndata:[DONE]\r\n\r\n",
			tokens: []int{1},
			want:   Usage{Prompt: 7, Cached: 4, Completion: 3, Reasoning: 1},
		},
		{
			name:   "multi-line data",
			sse:    "data: {\"choices\":\ndata: [{\"text\":\"hi\"}]}\n\ndata: [DONE]\n\n",
			tokens: []int{1},
			want:   Usage{Prompt: est, Completion: 1, Estimated: true},
		},
		{
			name:   "no usage: estimated",
			sse:    "data: " + role + "\n\ndata: " + tok + "\n\ndata: " + tok + "\n\ndata: " + fin + "\n\ndata: [DONE]\n\n",
			tokens: []int{0, 1, 1, 0},
			want:   Usage{Prompt: est, Completion: 2, Estimated: true},
		},
		{
			// Usage on every chunk (vLLM continuous_usage_stats): chunk
			// tokens follow the server's count.
			name: "continuous usage",
			sse: `data: {"choices":[{"delta":{"content":"ab"}}],"usage":{"prompt_tokens":5,"completion_tokens":2}}` + "\n\n" +
				`data: {"choices":[{"delta":{"content":"c"}}],"usage":{"prompt_tokens":5,"completion_tokens":3}}` + "\n\n" +
				`data: {"choices":[{"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":3}}` + "\n\n" +
				"data: [DONE]\n\n",
			tokens: []int{2, 1, 0},
			want:   Usage{Prompt: 5, Completion: 3},
		},
		{
			name:   "usage null on content chunks",
			sse:    `data: {"choices":[{"delta":{"content":"a"}}],"usage":null}` + "\n\ndata: " + use + "\n\ndata: [DONE]\n\n",
			tokens: []int{1},
			want:   Usage{Prompt: 7, Cached: 4, Completion: 3, Reasoning: 1},
		},
		{
			name:   "no [DONE] after data is fine",
			sse:    "data: " + tok + "\n\ndata: " + use + "\n\n",
			tokens: []int{1},
			want:   Usage{Prompt: 7, Cached: 4, Completion: 3, Reasoning: 1},
		},
		{
			name:   "nothing at all",
			sse:    ": just a comment\n\n",
			status: 502,
		},
		{
			name:   "error event with code",
			sse:    "data: " + tok + "\n\ndata: {\"error\":{\"message\":\"context too long\",\"code\":400}}\n\n",
			status: 400,
		},
		{
			name:   "error event without code",
			sse:    "data: {\"error\":{\"message\":\"oom\"}}\n\n",
			status: 502,
		},
		{
			name:   "garbage event",
			sse:    "data: {not json\n\n",
			status: 502,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newScripted(t, HTTPConfig{}, sseHandler(tc.sse))
			chunks, u, err := collect(t, h, Request{Endpoint: Chat, Model: testModel, Stream: true, Body: body})
			if tc.status != 0 {
				wantStatus(t, err, tc.status)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if u != tc.want {
				t.Errorf("usage %+v, want %+v", u, tc.want)
			}
			var got []int
			for _, c := range chunks {
				got = append(got, c.Tokens)
				if bytes.ContainsAny(c.Data, "\r\n") || !json.Valid(c.Data) {
					t.Errorf("chunk data %q", c.Data)
				}
			}
			if !slices.Equal(got, tc.tokens) {
				t.Errorf("tokens %v, want %v", got, tc.tokens)
			}
		})
	}
}

func TestStreamNotAStream(t *testing.T) {
	h := newScripted(t, HTTPConfig{}, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"choices":[{"message":{"content":"hi"}}]}`))
	})
	_, _, err := collect(t, h, Request{Endpoint: Chat, Model: testModel, Stream: true, Body: chatBody("hi")})
	wantStatus(t, err, 502)
}

func TestStreamBrokenConnection(t *testing.T) {
	h := newScripted(t, HTTPConfig{}, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Content-Length", "1000") // promise more than is sent
		_, _ = w.Write([]byte("data: {\"choices\":[{\"text\":\"a\"}]}\n\n"))
	})
	_, _, err := collect(t, h, Request{Endpoint: Completion, Model: testModel, Stream: true, Body: []byte(`{"prompt":"a"}`)})
	wantStatus(t, err, 502)
}

func TestTooLarge(t *testing.T) {
	big := strings.Repeat("a", 4096)
	for _, tc := range []struct {
		name   string
		stream bool
		h      http.HandlerFunc
	}{
		{"event", true, sseHandler("data: {\"choices\":[{\"text\":\"" + big + "\"}]}\n\n")},
		{"line without end", true, sseHandler(": " + big)},
		{"multi-line event", true, sseHandler(strings.Repeat("data: "+big[:600]+"\n", 4) + "\n")},
		{"body", false, func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte(`{"choices":[{"text":"` + big + `"}]}`))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newScripted(t, HTTPConfig{MaxBody: 1024}, tc.h)
			_, _, err := collect(t, h, Request{Endpoint: Completion, Model: testModel, Stream: tc.stream, Body: []byte(`{"prompt":"a"}`)})
			if be := wantStatus(t, err, 502); !strings.Contains(be.Message, "exceeds") {
				t.Errorf("message %q", be.Message)
			}
		})
	}
}

func TestCancelMidStream(t *testing.T) {
	es, h := newEcho(t, echo.Config{TokenDelay: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var chunks int
	start := time.Now()
	// 40 words at 50ms would take 2s; cancelling after the first chunk
	// must end the call (and the server's work) at once.
	_, err := h.Generate(ctx, Request{Endpoint: Chat, Model: testModel, Stream: true, Body: chatBody(words(40))},
		func(Chunk) error {
			chunks++
			cancel()
			return nil
		})
	elapsed := time.Since(start)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if chunks != 1 {
		t.Errorf("%d chunks emitted after cancel, want 1", chunks)
	}
	if elapsed > time.Second {
		t.Errorf("Generate took %v after cancel", elapsed)
	}
	waitFor(t, "the server to see the disconnect", func() bool { return es.Stats().Cancelled == 1 })
	if s := es.Stats(); s.Completed != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestCancelNonStream(t *testing.T) {
	es, h := newEcho(t, echo.Config{TokenDelay: 50 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := h.Generate(ctx, Request{Endpoint: Chat, Model: testModel, Body: chatBody(words(40))},
		func(Chunk) error { return nil })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want context.DeadlineExceeded", err)
	}
	waitFor(t, "the server to see the disconnect", func() bool { return es.Stats().Cancelled == 1 })
}

func TestTimeout(t *testing.T) {
	es := echo.New(echo.Config{TokenDelay: 50 * time.Millisecond})
	h := newScripted(t, HTTPConfig{Timeout: 100 * time.Millisecond}, es.Handler().ServeHTTP)
	_, _, err := collect(t, h, Request{Endpoint: Chat, Model: testModel, Stream: true, Body: chatBody(words(40))})
	wantStatus(t, err, 504)
}

func TestEmitError(t *testing.T) {
	es, h := newEcho(t, echo.Config{TokenDelay: 10 * time.Millisecond})
	stop := errors.New("client gone")
	for _, stream := range []bool{false, true} {
		_, err := h.Generate(context.Background(), Request{Endpoint: Chat, Model: testModel, Stream: stream, Body: chatBody(words(20))},
			func(Chunk) error { return stop })
		if err != stop {
			t.Errorf("stream=%v: err = %v, want the emit error itself", stream, err)
		}
	}
	// Stopping a stream early drops the connection, so the server stops.
	waitFor(t, "the server to see the disconnect", func() bool { return es.Stats().Cancelled == 1 })
}

func TestConnectionReuse(t *testing.T) {
	es := echo.New(echo.Config{})
	url, conns := newCountingServer(t, es.Handler())
	h := newBackend(t, url+"/v1", HTTPConfig{})
	for i := range 20 {
		if _, _, err := collect(t, h, Request{Endpoint: Chat, Model: testModel, Stream: i%2 == 0, Body: chatBody("a b c")}); err != nil {
			t.Fatal(err)
		}
	}
	if n := conns(); n != 1 {
		t.Errorf("%d connections for 20 sequential calls, want 1", n)
	}
}

func TestHealth(t *testing.T) {
	_, h := newEcho(t, echo.Config{})
	if err := h.Health(context.Background()); err != nil {
		t.Fatal(err)
	}
	bad := newScripted(t, HTTPConfig{}, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "loading", http.StatusServiceUnavailable)
	})
	if err := bad.Health(context.Background()); err == nil {
		t.Error("Health ok on a 503")
	}
	gone := newBackend(t, "http://127.0.0.1:1/v1", HTTPConfig{})
	if err := gone.Health(context.Background()); err == nil {
		t.Error("Health ok on a closed port")
	}
	block := make(chan struct{})
	defer close(block)
	slow := newScripted(t, HTTPConfig{}, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := slow.Health(ctx); err == nil {
		t.Error("Health ok on a hung server")
	}
}

func TestAPIKey(t *testing.T) {
	var got []string
	h := newScripted(t, HTTPConfig{APIKey: "sekrit"}, func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Header.Get("Authorization"))
		_, _ = w.Write([]byte(`{"data":[]}`))
	})
	_ = h.Health(context.Background())
	if len(got) != 1 || got[0] != "Bearer sekrit" {
		t.Errorf("Authorization %q", got)
	}
}
