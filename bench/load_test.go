package bench

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestRequestBody(t *testing.T) {
	c := NewClient("http://127.0.0.1:1/v1/", 4, Shape{PromptWords: 4, MaxTokens: 3})
	if c.url != "http://127.0.0.1:1/v1/chat/completions" {
		t.Errorf("url = %q", c.url)
	}
	seen := map[string]bool{}
	for i, stream := range []bool{false, true, false} {
		body, word := c.body(stream)
		var req struct {
			Model    string `json:"model"`
			Messages []struct {
				Role, Content string
			} `json:"messages"`
			MaxTokens int   `json:"max_tokens"`
			Stream    *bool `json:"stream"`
		}
		if err := json.Unmarshal(body, &req); err != nil {
			t.Fatalf("body %d is not JSON: %v: %s", i, err, body)
		}
		if req.Model != "echo-test" || len(req.Messages) != 1 || req.Messages[0].Role != "user" || req.MaxTokens != 3 {
			t.Errorf("body %d: %s", i, body)
		}
		words := strings.Fields(req.Messages[0].Content)
		if len(words) != 4 || words[0] != string(word) || len(word) != firstWordLen {
			t.Errorf("body %d: prompt %q, first word %q", i, req.Messages[0].Content, word)
		}
		if seen[string(word)] {
			t.Errorf("first word %q repeats", word)
		}
		seen[string(word)] = true
		if (req.Stream != nil && *req.Stream) != stream {
			t.Errorf("body %d: stream field wrong: %s", i, body)
		}
	}
}

func TestAppendPadded(t *testing.T) {
	for _, tc := range []struct {
		v     uint64
		width int
		want  string
	}{
		{0, 3, "000"}, {42, 5, "00042"}, {123456, 3, "123456"}, {999999999, 9, "999999999"},
	} {
		if got := string(appendPadded([]byte("x"), tc.v, tc.width)); got != "x"+tc.want {
			t.Errorf("appendPadded(%d, %d) = %q, want x%s", tc.v, tc.width, got, tc.want)
		}
	}
}

func TestParseStatusField(t *testing.T) {
	status := []byte("Name:\tcocoon-node\nVmPeak:\t  900000 kB\nVmHWM:\t   61234 kB\nVmRSS:\t   51200 kB\nThreads:\t12\n")
	for _, tc := range []struct {
		field string
		want  int64
		err   bool
	}{
		{"VmRSS", 51200 << 10, false},
		{"VmHWM", 61234 << 10, false},
		{"VmSwap", 0, true},
		{"Threads", 0, true}, // not a size
	} {
		got, err := parseStatusField(status, tc.field)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("parseStatusField(%s) = %d, %v; want %d, error %v", tc.field, got, err, tc.want, tc.err)
		}
	}
}

func TestTailBuffer(t *testing.T) {
	b := &tailBuffer{max: 8}
	b.Write([]byte("hello "))
	b.Write([]byte("world"))
	if got := b.String(); got != "lo world" {
		t.Errorf("tail = %q, want %q", got, "lo world")
	}
}
