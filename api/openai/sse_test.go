package openai

import (
	"encoding/json"
	"testing"
)

func TestSplitLastEvent(t *testing.T) {
	for _, tc := range []struct{ in, before, last string }{
		{"data: {\"a\":1}\n\n", "", `{"a":1}`},
		{"data: {\"a\":1}\n\ndata: {\"b\":2}\n\n", "data: {\"a\":1}\n\n", `{"b":2}`},
		{"data: {\"t\":\"x\\n\\ndata: y\"}\n\n", "", `{"t":"x\n\ndata: y"}`},
	} {
		before, last := splitLastEvent([]byte(tc.in))
		if string(before) != tc.before || string(last) != tc.last {
			t.Errorf("%q: got %q + %q, want %q + %q", tc.in, before, last, tc.before, tc.last)
		}
	}
}

func TestFinishesAndWithReceipt(t *testing.T) {
	for chunk, want := range map[string]bool{
		`{"choices":[{"delta":{"content":"x"},"finish_reason":null}]}`: false,
		`{"choices":[{"delta":{},"finish_reason":"stop"}]}`:            true,
		`{"choices":[{"delta":{},"finish_reason" : "length"}]}`:        true,
		`{"choices":[{"delta":{"content":"finish_reason"}}]}`:          false,
	} {
		if got := finishes([]byte(chunk)); got != want {
			t.Errorf("finishes(%s) = %t", chunk, got)
		}
	}
	for _, obj := range []string{`{"id":"x","choices":[]}`, `{}`, "{\"a\":1}\n"} {
		var m map[string]any
		if err := json.Unmarshal(withReceipt([]byte(obj), "abc-_"), &m); err != nil || m["cocoon_receipt"] != "abc-_" {
			t.Errorf("withReceipt(%q): %v %v", obj, m, err)
		}
	}
}
