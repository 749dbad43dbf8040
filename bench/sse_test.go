package bench

import (
	"io"
	"strings"
	"testing"
	"time"
)

func TestContent(t *testing.T) {
	for _, tc := range []struct {
		name, data, want, err string
	}{
		{"chat delta", `{"choices":[{"index":0,"delta":{"content":"hello"}}]}`, "hello", ""},
		{"role chunk has no content", `{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}`, "", ""},
		{"finish chunk", `{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`, "", ""},
		{"whole chat answer", `{"choices":[{"message":{"role":"assistant","content":"a b c"}}]}`, "a b c", ""},
		{"completions text", `{"choices":[{"text":" word"}]}`, " word", ""},
		{"usage only", `{"choices":[],"usage":{"prompt_tokens":3}}`, "", ""},
		{"null content", `{"choices":[{"delta":{"content":null}}]}`, "", ""},
		{"error event", `{"error":{"message":"no worker","type":"server_error"}}`, "", "error event: no worker"},
		{"not JSON", `{"choices":`, "", "not valid JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Content([]byte(tc.data))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Content error = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Content = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestReadStream(t *testing.T) {
	const (
		role  = "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n"
		first = "data: {\"choices\":[{\"delta\":{\"content\":\"q000000001\"}}]}\n\n"
		more  = "data: {\"choices\":[{\"delta\":{\"content\":\" w1\"}}]}\n\n"
		fin   = "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"
		done  = "data: [DONE]\n\n"
	)
	for _, tc := range []struct {
		name, body, first, err string
		events                 int
	}{
		{"openai chat stream", role + first + more + fin + done, "q000000001", "", 4},
		{"no role chunk", first + more + done, "q000000001", "", 2},
		{"CRLF framing, no space after colon", strings.ReplaceAll(strings.ReplaceAll(role+first+done, "\n", "\r\n"), "data: ", "data:"), "q000000001", "", 2},
		{"comments and other fields ignored", ": keep-alive\n\nevent: x\n" + first + "id: 3\n" + done, "q000000001", "", 1},
		{"completions", "data: {\"choices\":[{\"text\":\"q7\"}]}\n\n" + done, "q7", "", 1},
		{"missing DONE", role + first + fin, "q000000001", "without data: [DONE]", 3},
		{"error event before first token", role + "data: {\"error\":{\"message\":\"no capacity\"}}\n\n", "", "no capacity", 2},
		{"error event after first token", first + "data: {\"error\":{\"message\":\"worker died\"}}\n\n", "q000000001", "worker died", 2},
		{"event after DONE", first + done + more, "q000000001", "after data: [DONE]", 1},
		{"malformed before first token", "data: {oops\n\n" + done, "", "not valid JSON", 1},
		{"empty stream", "", "", "without data: [DONE]", 0},
		{"only DONE", done, "", "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			a, err := ReadStream(strings.NewReader(tc.body), start)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ReadStream error = %v, want one containing %q", err, tc.err)
				}
			} else if err != nil {
				t.Fatalf("ReadStream: %v", err)
			}
			if a.First != tc.first {
				t.Errorf("First = %q, want %q", a.First, tc.first)
			}
			if (a.TTFT > 0) != (tc.first != "") {
				t.Errorf("TTFT = %v with first token %q", a.TTFT, a.First)
			}
			if a.TTFT > time.Since(start) {
				t.Errorf("TTFT %v is later than now", a.TTFT)
			}
			if a.Events != tc.events {
				t.Errorf("Events = %d, want %d", a.Events, tc.events)
			}
		})
	}
}

// slowReader hands out its chunks one Read at a time, sleeping before each but the first.
type slowReader struct {
	chunks []string
	delay  time.Duration
	n      int
}

func (r *slowReader) Read(p []byte) (int, error) {
	if r.n >= len(r.chunks) {
		return 0, io.EOF
	}
	if r.n > 0 {
		time.Sleep(r.delay)
	}
	c := r.chunks[r.n]
	r.n++
	return copy(p, c), nil
}

func TestReadStreamTimesFirstContentNotFirstEvent(t *testing.T) {
	// The role chunk arrives at once, the first content 30ms later: TTFT must count the wait.
	r := &slowReader{delay: 30 * time.Millisecond, chunks: []string{
		"data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
		"data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n",
		"data: [DONE]\n\n",
	}}
	start := time.Now()
	a, err := ReadStream(r, start)
	if err != nil {
		t.Fatal(err)
	}
	if a.TTFT < 30*time.Millisecond {
		t.Errorf("TTFT = %v, want at least the 30ms before the first content", a.TTFT)
	}
}
