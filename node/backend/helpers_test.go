package backend

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cocoon-mesh/cocoon/node/backend/echo"
)

// testModel is the advertised model id the tests use, and serverModel the
// name the echo server gets after the rewrite.
const (
	testModel   = "echo@rev1:0123abcd"
	serverModel = "served-echo"
)

// newEcho starts an echo server and an HTTP backend in front of it.
func newEcho(t testing.TB, cfg echo.Config) (*echo.Server, *HTTP) {
	t.Helper()
	es := echo.New(cfg)
	ts := httptest.NewServer(es.Handler())
	t.Cleanup(ts.Close)
	return es, newBackend(t, ts.URL+"/v1", HTTPConfig{})
}

// newScripted starts a server answering every request with h, and a backend
// in front of it.
func newScripted(t testing.TB, cfg HTTPConfig, h http.HandlerFunc) *HTTP {
	t.Helper()
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return newBackend(t, ts.URL+"/v1", cfg)
}

// newBackend builds an HTTP backend for base with the test model mapping.
func newBackend(t testing.TB, base string, cfg HTTPConfig) *HTTP {
	t.Helper()
	cfg.BaseURL = base
	if cfg.Models == nil {
		cfg.Models = map[string]string{testModel: serverModel}
	}
	h, err := NewHTTP(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.CloseIdleConnections)
	return h
}

// sseHandler answers with the given raw SSE text, flushed in one piece.
func sseHandler(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = w.Write([]byte(body))
	}
}

// collect runs Generate and returns the chunks emitted.
func collect(t testing.TB, h *HTTP, r Request) ([]Chunk, Usage, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var chunks []Chunk
	u, err := h.Generate(ctx, r, func(c Chunk) error {
		c.Data = bytes.Clone(c.Data) // Data is only valid during emit
		chunks = append(chunks, c)
		return nil
	})
	return chunks, u, err
}

// chatBody builds a chat request body for the test model.
func chatBody(user string) []byte {
	b, _ := json.Marshal(map[string]any{
		"model": testModel,
		"messages": []map[string]string{
			{"role": "system", "content": "be brief"},
			{"role": "user", "content": user},
		},
	})
	return b
}

// wantStatus fails unless err is an *Error with the given status.
func wantStatus(t *testing.T, err error, status int) *Error {
	t.Helper()
	var be *Error
	if !errors.As(err, &be) {
		t.Fatalf("err = %v (%T), want *Error %d", err, err, status)
	}
	if be.Status != status {
		t.Fatalf("status = %d (%s), want %d", be.Status, be.Message, status)
	}
	return be
}

// waitFor polls cond until it holds or a bounded wait runs out.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// member decodes one top-level member of a JSON object.
func member(t *testing.T, obj []byte, name string) json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(obj, &m); err != nil {
		t.Fatalf("decode %s: %v", obj, err)
	}
	return m[name]
}

// words returns n space-separated words.
func words(n int) string {
	w := make([]string, n)
	for i := range w {
		w[i] = "w" + string(rune('a'+i%26))
	}
	return strings.Join(w, " ")
}
