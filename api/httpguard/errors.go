package httpguard

import (
	"encoding/json"
	"net/http"

	"github.com/cocoon-mesh/cocoon/node/wire"
)

// Every HTTP server of a node answers errors in one envelope, OpenAI's, which SDKs read:
// {"error": {"message", "type", "param", "code"}}. The guard's refusals, the operator endpoints
// and package openai all write it here.

// ErrorType is the envelope's type for an HTTP status: the caller's fault or the server's.
func ErrorType(status int) string {
	if status >= 500 {
		return "server_error"
	}
	return "invalid_request_error"
}

// ErrorBody is the envelope of an error with status, code, param ("": none, null in the JSON)
// and message.
func ErrorBody(status int, code, param, msg string) map[string]any {
	var p any
	if param != "" {
		p = param
	}
	return map[string]any{"error": map[string]any{"message": msg, "type": ErrorType(status), "param": p, "code": code}}
}

// retryAfter is what a 503 tells its caller to wait, in seconds: a worker that reconnects,
// or a proxy found anew, is routable within a few seconds.
const retryAfter = "5"

// WriteError answers with status and the error envelope; a 503 says when to retry.
func WriteError(w http.ResponseWriter, status int, code, param, msg string) {
	if status == http.StatusServiceUnavailable && w.Header().Get("Retry-After") == "" {
		w.Header().Set("Retry-After", retryAfter)
	}
	WriteJSON(w, status, ErrorBody(status, code, param, msg))
}

// WriteWireError answers with the HTTP status and error a mesh error maps to.
func WriteWireError(w http.ResponseWriter, we *wire.Error) {
	WriteError(w, we.Code.HTTPStatus(), we.Code.String(), "", we.Message)
}

// WriteJSON answers with status and v as indented JSON.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
