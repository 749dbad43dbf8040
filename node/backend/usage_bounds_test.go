package backend

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// TestUsageClaimsAreBounded: a server claiming more tokens than the call can have used fails
// the call, naming the numbers, before the claim is billed; an estimate is kept within bounds.
func TestUsageClaimsAreBounded(t *testing.T) {
	const answer = `{"choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":%d,"completion_tokens":%d}}`
	tok := `{"choices":[{"delta":{"content":"x"}}]}`
	body := chatBody("hi")
	for _, c := range []struct {
		name     string
		body     string // default: chatBody("hi")
		stream   bool
		cap      uint32
		reply    string
		want     []string // in the refusal; nil: accepted
		tokens   int      // accepted: sum of chunk tokens
		estimate bool
	}{
		{name: "honest whole", cap: 10, reply: fmt.Sprintf(answer, 9, 3), tokens: 3},
		{name: "over the cap", cap: 10, reply: fmt.Sprintf(answer, 9, 11), want: []string{"11 completion tokens", "capped at 10"}},
		{name: "over the body's max_tokens", body: `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`, reply: fmt.Sprintf(answer, 9, 6), want: []string{"capped at 5"}},
		{name: "over the answer's bytes", reply: fmt.Sprintf(answer, 9, 200000), want: []string{"200000 completion tokens", "bytes of answer"}},
		{name: "prompt over the body", reply: fmt.Sprintf(answer, 1000000, 1), want: []string{"1000000 prompt tokens", fmt.Sprint(len(body) + PromptSlack)}},
		{
			name: "one chunk claims 200000", stream: true,
			reply: `data: {"choices":[{"delta":{"content":"x"}}],"usage":{"prompt_tokens":9,"completion_tokens":200000}}` + "\n\n",
			want:  []string{"200000 completion tokens"},
		},
		{
			name: "usage chunk over the cap", stream: true, cap: 2,
			reply: "data: " + tok + "\n\ndata: " + tok + "\n\n" + `data: {"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":500}}` + "\n\ndata: [DONE]\n\n",
			want:  []string{"500 completion tokens", "capped at 2"},
		},
		{
			name: "estimate held to the cap", stream: true, cap: 2,
			reply:  strings.Repeat("data: "+tok+"\n\n", 5) + "data: [DONE]\n\n",
			tokens: 2, estimate: true,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newScripted(t, HTTPConfig{}, func(w http.ResponseWriter, r *http.Request) {
				if c.stream {
					w.Header().Set("Content-Type", "text/event-stream")
				}
				_, _ = w.Write([]byte(c.reply))
			})
			b := body
			if c.body != "" {
				b = []byte(c.body)
			}
			chunks, u, err := collect(t, h, Request{Endpoint: Chat, Model: testModel, Stream: c.stream, Body: b, MaxTokens: c.cap})
			if c.want != nil {
				be := wantStatus(t, err, 502)
				for _, w := range c.want {
					if !strings.Contains(be.Message, w) {
						t.Errorf("message %q does not name %q", be.Message, w)
					}
				}
				for _, ch := range chunks {
					if ch.Tokens > 1 {
						t.Errorf("a chunk was billed %d tokens before the refusal", ch.Tokens)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			sum := 0
			for _, ch := range chunks {
				sum += ch.Tokens
			}
			if sum != c.tokens || u.Completion != c.tokens || u.Estimated != c.estimate {
				t.Errorf("chunk tokens %d, usage %+v, want %d", sum, u, c.tokens)
			}
		})
	}
}

func TestCheckUsage(t *testing.T) {
	ok := []struct {
		u                      Usage
		max, body, answerBytes int
	}{
		{Usage{Prompt: 300, Completion: 10}, 10, 44, 10},
		{Usage{Prompt: 0, Completion: 0}, 0, 0, 0},
		{Usage{Completion: 1 << 30}, -1, 0, 1 << 30},
	}
	for _, c := range ok {
		if err := CheckUsage(c.u, c.max, c.body, c.answerBytes); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
	}
	for _, c := range ok {
		for _, bad := range []Usage{
			{Prompt: c.u.Prompt, Completion: c.u.Completion + 1},
			{Prompt: c.body + PromptSlack + 1, Completion: c.u.Completion},
		} {
			if err := CheckUsage(bad, c.max, c.body, c.answerBytes); err == nil {
				t.Errorf("%+v accepted for cap %d, body %d, answer %d", bad, c.max, c.body, c.answerBytes)
			}
		}
	}
}
