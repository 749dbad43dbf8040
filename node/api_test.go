package node

import "testing"

func TestLastEvent(t *testing.T) {
	for in, want := range map[string]string{
		"data: {\"a\":1}\n\n":                    `{"a":1}`,
		"data: {\"a\":1}\n\ndata: {\"b\":2}\n\n": `{"b":2}`,
		"data: {\"t\":\"x\\n\\ndata: y\"}\n\n":   `{"t":"x\n\ndata: y"}`,
	} {
		if got := string(lastEvent([]byte(in))); got != want {
			t.Errorf("%q: got %q, want %q", in, got, want)
		}
	}
}
