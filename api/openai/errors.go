package openai

import (
	"net/http"

	"github.com/cocoon-mesh/cocoon/api/httpguard"
	"github.com/cocoon-mesh/cocoon/node/wire"
)

// apiErr is an error in OpenAI's JSON shape, for the caller's request: its status, code, the
// parameter at fault ("": none) and the message.
type apiErr struct {
	status         int
	code, param, m string
}

// badRequest refuses a request for what param holds.
func badRequest(param, msg string) *apiErr {
	return &apiErr{http.StatusBadRequest, wire.CodeBadRequest.String(), param, msg}
}

func (e *apiErr) write(w http.ResponseWriter) {
	httpguard.WriteError(w, e.status, e.code, e.param, e.m)
}
