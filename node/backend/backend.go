package backend

import (
	"context"
	"fmt"
	"strconv"
)

// Endpoint names the OpenAI API an inference request targets.
type Endpoint uint8

const (
	// Chat is POST /v1/chat/completions.
	Chat Endpoint = 1
	// Completion is POST /v1/completions.
	Completion Endpoint = 2
)

// String returns the short endpoint name used in logs and protocol fields.
func (e Endpoint) String() string {
	switch e {
	case Chat:
		return "chat"
	case Completion:
		return "completions"
	}
	return "Endpoint(" + strconv.Itoa(int(e)) + ")"
}

// Path returns the endpoint's path relative to an OpenAI base URL ending in
// /v1, or "" for an unknown endpoint.
func (e Endpoint) Path() string {
	switch e {
	case Chat:
		return "/chat/completions"
	case Completion:
		return "/completions"
	}
	return ""
}

// Request is one inference call.
type Request struct {
	// Endpoint is the OpenAI API the body is meant for.
	Endpoint Endpoint
	// Model is the model as the worker advertises it (full id
	// "name@revision:hash").
	Model string
	// Body is the OpenAI JSON request body as the client sent it; fields the
	// backend does not own (tools, tool_choice, ...) pass through untouched.
	Body []byte
	// Stream reports whether the client wants a stream; it overrides any
	// "stream" field in Body.
	Stream bool
	// MaxTokens, when above zero, caps the body's max_tokens and
	// max_completion_tokens: the limit the request was routed with.
	MaxTokens uint32
}

// Chunk is one piece of the answer.
type Chunk struct {
	// Data is one OpenAI JSON object on a single line: for a stream, one
	// chat.completion.chunk / text_completion chunk (the payload of one SSE
	// event without "data: " or newlines); for a non-stream request, the
	// whole response object. Data is valid only during the emit call: a receiver that keeps it
	// copies it (the worker copies it into its frame at once).
	Data []byte
	// Tokens is the number of completion tokens this chunk carries (best
	// effort for streams; usage.completion_tokens for a non-stream answer).
	Tokens int
	// More reports that the next chunk is already at hand, so the receiver may send this one
	// together with it instead of flushing now.
	More bool
}

// Usage is the token accounting of one call, as billed.
type Usage struct {
	// Prompt is the number of prompt tokens, Cached included.
	Prompt int
	// Cached is the number of prompt tokens served from the prefix cache.
	Cached int
	// Completion is the number of generated tokens, Reasoning included.
	Completion int
	// Reasoning is the number of generated reasoning tokens.
	Reasoning int
	// Estimated is true when the server reported no usage and the numbers
	// were estimated.
	Estimated bool
}

// Backend runs inference for a worker.
type Backend interface {
	// Generate runs r, calling emit for each chunk in order. It returns when
	// the answer is complete, when emit returns an error (returned as is),
	// or when ctx is done (an error wrapping ctx.Err()); cancelling ctx stops
	// the model server's work at once.
	Generate(ctx context.Context, r Request, emit func(Chunk) error) (Usage, error)
	// Health reports whether the backend can serve now.
	Health(ctx context.Context) error
}

// Error is a failure with an HTTP-like status: 4xx means the request itself
// is bad (retrying it on another worker will not help), 5xx means the
// backend failed.
type Error struct {
	// Status is an HTTP status code, 400-599.
	Status int
	// Message is a human-readable reason; it may quote the model server's
	// own error message, but not the server's URL.
	Message string
}

// Error implements error.
func (e *Error) Error() string {
	return fmt.Sprintf("backend: %d %s", e.Status, e.Message)
}

// errorf builds an *Error with a formatted message.
func errorf(status int, format string, args ...any) *Error {
	return &Error{Status: status, Message: fmt.Sprintf(format, args...)}
}
