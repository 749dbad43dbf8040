package node

import (
	"strings"
	"testing"

	"github.com/cocoon-mesh/cocoon/node/wire"
)

func TestClaims(t *testing.T) {
	h := &wire.Header{MaxTokens: 10}
	for _, tc := range []struct {
		name   string
		chunks [][2]int // tokens, bytes
		final  wire.Usage
		want   string // in the error ("": none)
	}{
		{"honest", [][2]int{{3, 40}, {4, 50}}, wire.Usage{Prompt: 30, Completion: 7}, ""},
		{"tokens beyond bytes", [][2]int{{5, 4}}, wire.Usage{}, "completion tokens for 4 bytes"},
		{"tokens beyond max_tokens", [][2]int{{6, 60}, {5, 60}}, wire.Usage{}, "max_tokens of 10"},
		{"final beyond max_tokens", nil, wire.Usage{Completion: 11}, "max_tokens of 10"},
		{"final beyond the answer", [][2]int{{1, 3}}, wire.Usage{Completion: 4}, "4 completion tokens for 3 bytes"},
		{"prompt beyond the request", nil, wire.Usage{Prompt: 100 + promptSlack + 1}, "prompt tokens for a request of 100 bytes"},
		{"prompt at the bound", nil, wire.Usage{Prompt: 100 + promptSlack}, ""},
		{"reasoning beyond completion", [][2]int{{2, 20}}, wire.Usage{Completion: 2, Reasoning: 3}, "reasoning tokens"},
		{"cached beyond prompt", nil, wire.Usage{Prompt: 2, Cached: 3}, "cached tokens"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClaims(h, 100)
			var err error
			for _, ch := range tc.chunks {
				if err = c.chunk(uint32(ch[0]), ch[1]); err != nil {
					break
				}
			}
			if err == nil {
				err = c.final(tc.final)
			}
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused an honest claim: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want an error saying %q", err, tc.want)
			}
		})
	}
	// With no max_tokens set, only the bytes bound completion tokens.
	c := newClaims(&wire.Header{}, 10)
	if err := c.chunk(1000, 1000); err != nil || c.final(wire.Usage{Completion: 1000}) != nil {
		t.Fatalf("no max_tokens: %v", err)
	}
}
