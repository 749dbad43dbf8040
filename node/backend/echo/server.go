package echo

import (
	"encoding/json"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Model is the only model the echo server lists. It accepts any non-empty
// model name in requests, since a worker rewrites the name anyway.
const Model = "echo-test"

// defaultMaxTokens caps an answer when the request sets no limit.
const defaultMaxTokens = 64

// maxRequestBody caps a request body; tests never come near it.
const maxRequestBody = 16 << 20

// Config configures an echo server.
type Config struct {
	// TokenDelay is slept between streamed tokens (and per token before a
	// non-stream answer), so tests can observe cancellation; 0 = none.
	TokenDelay time.Duration
	// MaxTokens caps answer tokens when the request has no max_tokens or
	// max_completion_tokens (default 64).
	MaxTokens int
	// FailStatus, when non-zero, makes every inference request fail with
	// this HTTP status and an OpenAI-shaped error, for tests of error paths.
	FailStatus int
}

// Stats is what the server has seen so far.
type Stats struct {
	// Requests counts inference requests received.
	Requests int64 `json:"requests"`
	// Completed counts answers delivered in full.
	Completed int64 `json:"completed"`
	// Cancelled counts requests whose client went away before the answer
	// was complete.
	Cancelled int64 `json:"cancelled"`
	// LastBody is the last inference request body received, byte for byte
	// (base64 in the JSON of GET /stats, as encoding/json writes []byte).
	LastBody []byte `json:"last_body"`
}

// Server is an echo server. It is safe for concurrent use.
type Server struct {
	cfg Config
	mux *http.ServeMux
	seq atomic.Uint64 // response ids

	requests, completed, cancelled atomic.Int64

	mu       sync.Mutex
	lastBody []byte
}

// New returns an echo server.
func New(cfg Config) *Server {
	if cfg.MaxTokens <= 0 {
		cfg.MaxTokens = defaultMaxTokens
	}
	cfg.TokenDelay = max(cfg.TokenDelay, 0)
	s := &Server{cfg: cfg, mux: http.NewServeMux()}
	s.mux.HandleFunc("GET /v1/models", s.models)
	s.mux.HandleFunc("POST /v1/chat/completions", s.inference(chat))
	s.mux.HandleFunc("POST /v1/completions", s.inference(completions))
	s.mux.HandleFunc("GET /stats", s.stats)
	return s
}

// Handler returns the server's routes: GET /v1/models,
// POST /v1/chat/completions, POST /v1/completions and GET /stats.
func (s *Server) Handler() http.Handler { return s.mux }

// Stats returns a snapshot of what the server has seen.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	last := append([]byte(nil), s.lastBody...)
	s.mu.Unlock()
	return Stats{
		Requests:  s.requests.Load(),
		Completed: s.completed.Load(),
		Cancelled: s.cancelled.Load(),
		LastBody:  last,
	}
}

// models serves GET /v1/models.
func (s *Server) models(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"object": "list",
		"data": []map[string]any{
			{"id": Model, "object": "model", "created": 0, "owned_by": "cocoon-test-fixture"},
		},
	})
}

// stats serves GET /stats.
func (s *Server) stats(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.Stats())
}

// setLastBody records body for Stats.
func (s *Server) setLastBody(body []byte) {
	s.mu.Lock()
	s.lastBody = body
	s.mu.Unlock()
}

// writeJSON writes v as a JSON response.
func writeJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(data)
}

// writeError writes an error in OpenAI's shape.
func writeError(w http.ResponseWriter, status int, typ, message string) {
	writeJSON(w, status, map[string]any{
		"error": map[string]any{"message": message, "type": typ, "param": nil, "code": status},
	})
}
