package echo

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// response is the union of the objects the server writes.
type response struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Model   string `json:"model"`
	Choices []struct {
		Index   int    `json:"index"`
		Text    string `json:"text"`
		Message struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"message"`
		Delta struct {
			Role    string  `json:"role"`
			Content *string `json:"content"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
		TotalTokens      int `json:"total_tokens"`
	} `json:"usage"`
	Error *struct {
		Message string `json:"message"`
		Type    string `json:"type"`
		Code    int    `json:"code"`
	} `json:"error"`
	Data []struct {
		ID string `json:"id"`
	} `json:"data"`
}

// sseEvents splits an event-stream body into its data payloads, checking
// the framing on the way.
func sseEvents(t *testing.T, body []byte) []string {
	t.Helper()
	if !bytes.HasSuffix(body, []byte("data: [DONE]\n\n")) {
		t.Fatalf("stream does not end with [DONE]: %q", body)
	}
	var out []string
	for _, ev := range strings.Split(strings.TrimSuffix(string(body), "\n\n"), "\n\n") {
		data, ok := strings.CutPrefix(ev, "data: ")
		if !ok || strings.Contains(data, "\n") {
			t.Fatalf("bad event %q", ev)
		}
		out = append(out, data)
	}
	return out
}

// decode parses one response object.
func decode(t *testing.T, data string) response {
	t.Helper()
	var r response
	if err := json.Unmarshal([]byte(data), &r); err != nil {
		t.Fatalf("decode %q: %v", data, err)
	}
	return r
}

func TestHandler(t *testing.T) {
	stop, length := "stop", "length"
	for _, tc := range []struct {
		name   string
		cfg    Config
		method string
		path   string
		body   string
		status int
		check  func(t *testing.T, body []byte)
	}{
		{
			name: "models", method: "GET", path: "/v1/models", status: 200,
			check: func(t *testing.T, body []byte) {
				if r := decode(t, string(body)); len(r.Data) != 1 || r.Data[0].ID != Model {
					t.Errorf("models %s", body)
				}
			},
		},
		{
			name: "chat", method: "POST", path: "/v1/chat/completions", status: 200,
			body: `{"model":"m","messages":[{"role":"system","content":"be nice"},{"role":"user","content":"hello  big\tworld"}],"tools":[{"type":"function"}]}`,
			check: func(t *testing.T, body []byte) {
				r := decode(t, string(body))
				if r.Object != "chat.completion" || r.Model != "m" || !strings.HasPrefix(r.ID, "chatcmpl-") || len(r.Choices) != 1 {
					t.Fatalf("response %s", body)
				}
				c := r.Choices[0]
				if c.Message.Role != "assistant" || c.Message.Content != "hello big world" || *c.FinishReason != stop {
					t.Errorf("choice %+v", c)
				}
				if u := r.Usage; u == nil || u.PromptTokens != 5 || u.CompletionTokens != 3 || u.TotalTokens != 8 {
					t.Errorf("usage %+v", u)
				}
			},
		},
		{
			name: "chat content parts", method: "POST", path: "/v1/chat/completions", status: 200,
			body: `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a b"},{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"c"}]},{"role":"assistant","content":null}]}`,
			check: func(t *testing.T, body []byte) {
				if r := decode(t, string(body)); r.Choices[0].Message.Content != "a b c" || r.Usage.PromptTokens != 3 {
					t.Errorf("response %s", body)
				}
			},
		},
		{
			name: "completions max_tokens", method: "POST", path: "/v1/completions", status: 200,
			body: `{"model":"m","prompt":"one two three four five","max_tokens":2}`,
			check: func(t *testing.T, body []byte) {
				r := decode(t, string(body))
				if r.Object != "text_completion" || r.Choices[0].Text != "one two" || *r.Choices[0].FinishReason != length {
					t.Errorf("response %s", body)
				}
				if r.Usage.PromptTokens != 5 || r.Usage.CompletionTokens != 2 {
					t.Errorf("usage %+v", r.Usage)
				}
			},
		},
		{
			name: "default cap", cfg: Config{MaxTokens: 3}, method: "POST", path: "/v1/completions", status: 200,
			body: `{"model":"m","prompt":["a b","c d"],"max_completion_tokens":null}`,
			check: func(t *testing.T, body []byte) {
				if r := decode(t, string(body)); r.Choices[0].Text != "a b c" || *r.Choices[0].FinishReason != length {
					t.Errorf("response %s", body)
				}
			},
		},
		{
			name: "chat stream with usage", method: "POST", path: "/v1/chat/completions", status: 200,
			body: `{"model":"m","messages":[{"role":"user","content":"x y"}],"stream":true,"stream_options":{"include_usage":true}}`,
			check: func(t *testing.T, body []byte) {
				ev := sseEvents(t, body)
				if len(ev) != 6 { // role, x, y, finish, usage, [DONE]
					t.Fatalf("events %q", ev)
				}
				var text string
				for i, data := range ev[:4] {
					r := decode(t, data)
					if r.Object != "chat.completion.chunk" || len(r.Choices) != 1 || r.Usage != nil {
						t.Errorf("chunk %d: %s", i, data)
					}
					if !strings.Contains(data, `"usage":null`) {
						t.Errorf("chunk %d lacks usage:null: %s", i, data)
					}
					if d := r.Choices[0].Delta.Content; d != nil {
						text += *d
					}
				}
				if r := decode(t, ev[0]); r.Choices[0].Delta.Role != "assistant" {
					t.Errorf("first chunk %s", ev[0])
				}
				if r := decode(t, ev[3]); r.Choices[0].FinishReason == nil || *r.Choices[0].FinishReason != stop {
					t.Errorf("last chunk %s", ev[3])
				}
				if text != "x y" {
					t.Errorf("text %q", text)
				}
				u := decode(t, ev[4])
				if !strings.Contains(ev[4], `"choices":[]`) || u.Usage == nil || u.Usage.PromptTokens != 2 || u.Usage.CompletionTokens != 2 {
					t.Errorf("usage chunk %s", ev[4])
				}
			},
		},
		{
			name: "completions stream without usage", method: "POST", path: "/v1/completions", status: 200,
			body: `{"model":"m","prompt":"p q r","stream":true,"max_tokens":2}`,
			check: func(t *testing.T, body []byte) {
				ev := sseEvents(t, body)
				if len(ev) != 4 { // p, q, finish, [DONE]
					t.Fatalf("events %q", ev)
				}
				var text string
				for _, data := range ev[:3] {
					r := decode(t, data)
					if r.Object != "text_completion" || strings.Contains(data, `"usage"`) {
						t.Errorf("chunk %s", data)
					}
					text += r.Choices[0].Text
				}
				if text != "p q" || *decode(t, ev[2]).Choices[0].FinishReason != length {
					t.Errorf("text %q, last %s", text, ev[2])
				}
			},
		},
		{name: "invalid JSON", method: "POST", path: "/v1/chat/completions", body: `{"model":`, status: 400},
		{name: "no model", method: "POST", path: "/v1/chat/completions", body: `{"messages":[{"role":"user","content":"a"}]}`, status: 400},
		{name: "no messages", method: "POST", path: "/v1/chat/completions", body: `{"model":"m"}`, status: 400},
		{name: "bad content", method: "POST", path: "/v1/chat/completions", body: `{"model":"m","messages":[{"role":"user","content":5}]}`, status: 400},
		{name: "no prompt", method: "POST", path: "/v1/completions", body: `{"model":"m"}`, status: 400},
		{name: "bad prompt", method: "POST", path: "/v1/completions", body: `{"model":"m","prompt":[1,2]}`, status: 400},
		{name: "zero max_tokens", method: "POST", path: "/v1/completions", body: `{"model":"m","prompt":"a","max_tokens":0}`, status: 400},
		{name: "stream_options without stream", method: "POST", path: "/v1/completions", body: `{"model":"m","prompt":"a","stream_options":{"include_usage":true}}`, status: 400},
		{name: "injected failure", cfg: Config{FailStatus: 503}, method: "POST", path: "/v1/completions", body: `{"model":"m","prompt":"a"}`, status: 503},
		{name: "wrong method", method: "GET", path: "/v1/chat/completions", status: 405},
		{name: "unknown path", method: "POST", path: "/v1/embeddings", body: `{}`, status: 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := New(tc.cfg)
			w := httptest.NewRecorder()
			s.Handler().ServeHTTP(w, httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body)))
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			if tc.status >= 400 && tc.status != 404 && tc.status != 405 {
				r := decode(t, w.Body.String())
				if r.Error == nil || r.Error.Message == "" || r.Error.Code != tc.status || r.Error.Type == "" {
					t.Errorf("error body %s", w.Body)
				}
			}
			if tc.check != nil {
				tc.check(t, w.Body.Bytes())
			}
			st := s.Stats()
			if tc.method == "POST" && tc.status != 404 {
				if st.Requests != 1 || string(st.LastBody) != tc.body {
					t.Errorf("stats %+v", st)
				}
				wantCompleted := int64(0)
				if tc.status == 200 {
					wantCompleted = 1
				}
				if st.Completed != wantCompleted {
					t.Errorf("completed %d, want %d", st.Completed, wantCompleted)
				}
			}
		})
	}
}

func TestStatsEndpoint(t *testing.T) {
	s := New(Config{})
	body := `{"model":"m","prompt":"a"}`
	s.Handler().ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/v1/completions", strings.NewReader(body)))
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, httptest.NewRequest("GET", "/stats", nil))
	var st Stats
	if err := json.Unmarshal(w.Body.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	if st.Requests != 1 || st.Completed != 1 || st.Cancelled != 0 || string(st.LastBody) != body {
		t.Errorf("stats %+v", st)
	}
}

func TestCancelled(t *testing.T) {
	s := New(Config{TokenDelay: 20 * time.Millisecond})
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	body := `{"model":"m","prompt":"` + strings.Repeat("w ", 100) + `","stream":true}`
	req, _ := http.NewRequestWithContext(ctx, "POST", ts.URL+"/v1/completions", strings.NewReader(body))
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type %q", ct)
	}
	// Read the first event, then go away.
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "data: ") {
		t.Fatalf("first line %q, %v", line, err)
	}
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for s.Stats().Cancelled != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v: disconnect not seen", s.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if st := s.Stats(); st.Completed != 0 || st.Requests != 1 {
		t.Errorf("stats %+v", st)
	}
}
