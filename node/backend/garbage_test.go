package backend

import (
	"errors"
	"math/rand/v2"
	"net/http"
	"testing"
)

// garbage is what a broken or hostile model server might answer in place of JSON.
func garbage() map[string][]byte {
	random := make([]byte, 512)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	braced := append(append([]byte(`{"choices":[{"delta":{"content":"`), random...), `"}}]}`...)
	return map[string][]byte{
		"random bytes":           random,
		"random bytes in braces": braced,
		"invalid UTF-8":          []byte("{\"choices\":[{\"delta\":{\"content\":\"\xff\xfe\"},\"message\":{\"content\":\"\xc3(\"}}]}"),
		"NUL byte in a string":   []byte("{\"choices\":[{\"delta\":{\"content\":\"a\x00b\"}}]}"),
		"NUL byte after":         []byte("{\"choices\":[]}\x00"),
		"non-object":             []byte(`["choices"]`),
		"number":                 []byte(`42`),
		"truncated":              []byte(`{"choices":[{"delta":{"content":"x"}}`),
		"bad literal":            []byte(`{"choices":[{"delta":{"content":tru}}]}`),
		"bad number":             []byte(`{"choices":[{"index":01,"delta":{"content":"x"}}]}`),
		"bad escape":             []byte(`{"choices":[{"delta":{"content":"\q"}}]}`),
		"nested nonsense":        []byte(`{"choices":[{"delta":{"content":"x"},"logprobs":{"a" 1 2 3}}]}`),
		"missing separator":      []byte(`{"choices":[{"delta":{"content":"x"}}] "usage":null}`),
		"two objects":            []byte(`{"choices":[]}{"choices":[]}`),
	}
}

// TestGarbageAnswersFail: whatever a server sends in place of one JSON object, whole or as an
// event, the call fails with a 502 and nothing is relayed as an answer.
func TestGarbageAnswersFail(t *testing.T) {
	for name, g := range garbage() {
		for _, stream := range []bool{false, true} {
			h := newScripted(t, HTTPConfig{}, func(w http.ResponseWriter, r *http.Request) {
				if stream {
					w.Header().Set("Content-Type", "text/event-stream")
					_, _ = w.Write([]byte("data: "))
					_, _ = w.Write(g)
					_, _ = w.Write([]byte("\n\ndata: [DONE]\n\n"))
					return
				}
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write(g)
			})
			chunks, _, err := collect(t, h, Request{Endpoint: Chat, Model: testModel, Stream: stream, Body: chatBody("hi")})
			var be *Error
			if !errors.As(err, &be) || be.Status != 502 || len(chunks) != 0 {
				t.Errorf("%s (stream %t): %d chunks, err %v", name, stream, len(chunks), err)
			}
		}
	}
}
