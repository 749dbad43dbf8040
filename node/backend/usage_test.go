package backend

import "testing"

func TestParseUsage(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Usage
		ok   bool
	}{
		{`{"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}}`, Usage{Prompt: 10, Completion: 5}, true},
		{`{"usage":{"prompt_tokens":10,"completion_tokens":5,"prompt_tokens_details":{"cached_tokens":8},"completion_tokens_details":{"reasoning_tokens":2}}}`,
			Usage{Prompt: 10, Cached: 8, Completion: 5, Reasoning: 2}, true},
		{`{"usage":{"prompt_tokens":10,"prompt_tokens_details":null,"completion_tokens_details":null}}`, Usage{Prompt: 10}, true},
		{`{"usage":{}}`, Usage{}, true},
		// Parts never exceed their totals.
		{`{"usage":{"prompt_tokens":3,"completion_tokens":1,"prompt_tokens_details":{"cached_tokens":9},"completion_tokens_details":{"reasoning_tokens":9}}}`,
			Usage{Prompt: 3, Cached: 3, Completion: 1, Reasoning: 1}, true},
		// Odd numbers are tolerated, not trusted.
		{`{"usage":{"prompt_tokens":7.9,"completion_tokens":-4}}`, Usage{Prompt: 7}, true},
		{`{"usage":{"prompt_tokens":"7","completion_tokens":[1]}}`, Usage{}, true},
		{`{"usage":{"prompt_tokens":1e400,"completion_tokens":-1e400}}`, Usage{Prompt: maxCount}, true},
		{`{"usage":{"prompt_tokens":99999999999999999999}}`, Usage{Prompt: maxCount}, true},
		{`{"usage":null}`, Usage{}, false},
		{`{"choices":[]}`, Usage{}, false},
		{`{"usage":[1]}`, Usage{}, false},
		{`{"usage":"x"}`, Usage{}, false},
		{`[1]`, Usage{}, false},
		{`null`, Usage{}, false},
		{`{"usage":{"prompt_tokens":1}`, Usage{}, false},
		{``, Usage{}, false},
	} {
		u, ok := ParseUsage([]byte(tc.in))
		if u != tc.want || ok != tc.ok {
			t.Errorf("ParseUsage(%s) = %+v, %v; want %+v, %v", tc.in, u, ok, tc.want, tc.ok)
		}
	}
}

func TestEstimateTokens(t *testing.T) {
	for n, want := range map[int]int{-1: 0, 0: 0, 1: 1, 4: 1, 7: 1, 8: 2, 400: 100} {
		if got := estimateTokens(n); got != want {
			t.Errorf("estimateTokens(%d) = %d, want %d", n, got, want)
		}
	}
}
