package openai

import (
	"net/http"

	"github.com/cocoon-mesh/cocoon/node"
	"github.com/cocoon-mesh/cocoon/node/wire"
)

// Face serves the OpenAI API over a client node: GET /v1/models, POST /v1/chat/completions
// and POST /v1/completions. It holds no state of its own beyond the node's config.
type Face struct {
	n   *node.Node
	cfg node.Config // n.Config(), read once: it does not change
}

// New returns the OpenAI face of n, a client node.
func New(n *node.Node) *Face { return &Face{n: n, cfg: n.Config()} }

// Routes adds the face's endpoints to mux.
func (f *Face) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/models", f.handleModels)
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) { f.handleCompletion(w, r, wire.Chat) })
	mux.HandleFunc("POST /v1/completions", func(w http.ResponseWriter, r *http.Request) { f.handleCompletion(w, r, wire.Completion) })
}
