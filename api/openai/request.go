package openai

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/cocoon-mesh/cocoon/node/wire"
)

// completionRequest is the part of an OpenAI request the face needs to read (decodeCompletion
// reads it); the body itself travels untouched, so tools, tool_choice and any other field
// reach the backend.
type completionRequest struct {
	Model               string
	Stream              bool
	IncludeUsage        bool // stream_options.include_usage
	MaxTokens           *int64
	MaxCompletionTokens *int64
	Messages            json.RawMessage
	Prompt              json.RawMessage
}

// readFields are the top-level fields of an OpenAI request the face reads. A key that
// differs from one of them only in case is refused: Go's decoder folds case, Python's does not,
// so the client and the backend would read different values.
var readFields = []string{"model", "stream", "stream_options", "max_tokens", "max_completion_tokens",
	"messages", "prompt", "n", "best_of"}

// requestFields splits a request body into its top-level members. It refuses anything but one
// JSON object, duplicate keys (parsers keep the first or the last, so the client would check
// one value and the backend use the other) and case variants of readFields.
func requestFields(body []byte) (map[string]json.RawMessage, *apiErr) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		if err != nil {
			return nil, notJSON(err, dec)
		}
		return nil, badRequest("", "request body must be a JSON object")
	}
	fields := make(map[string]json.RawMessage)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, notJSON(err, dec)
		}
		key := tok.(string) // inside an object, the decoder yields keys as strings
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, notJSON(err, dec)
		}
		if _, dup := fields[key]; dup {
			return nil, badRequest(key, fmt.Sprintf("key %q appears twice in the request body: send it once", key))
		}
		for _, f := range readFields {
			if key != f && strings.EqualFold(key, f) {
				return nil, badRequest(key, fmt.Sprintf("key %q differs from %q only in case, which parsers read differently: spell it %s", key, f, f))
			}
		}
		fields[key] = raw
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, notJSON(err, dec)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, badRequest("", "request body must be one JSON object, with nothing after it")
	}
	return fields, nil
}

// notJSON describes a syntax error in a request body, with where it is.
func notJSON(err error, dec *json.Decoder) *apiErr {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return badRequest("", "request body is not valid JSON: it ends too early")
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return badRequest("", fmt.Sprintf("request body is not valid JSON: %s (at byte %d)", se.Error(), se.Offset))
	}
	return badRequest("", fmt.Sprintf("request body is not valid JSON (at byte %d)", dec.InputOffset()))
}

// decodeField reads fields[name] into dst when present and not null. A value of the wrong
// type is refused with the field and the type wanted, never Go's names for them.
func decodeField[T any](fields map[string]json.RawMessage, name, want string, dst *T) *apiErr {
	raw, ok := fields[name]
	if !ok || isNull(raw) {
		return nil
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return badRequest(name, fmt.Sprintf("%s must be %s, not %s", name, want, describeJSON(raw)))
	}
	return nil
}

func isNull(raw json.RawMessage) bool { return string(raw) == "null" }

// describeJSON names the kind of a JSON value for an error message; a number is shown as it is.
func describeJSON(raw json.RawMessage) string {
	switch raw[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "a list"
	case 't', 'f':
		return "true or false"
	case 'n':
		return "null"
	}
	if len(raw) > 32 {
		return string(raw[:32]) + "..."
	}
	return string(raw)
}

// decodeCompletion reads the fields of a completion request the face checks: their
// types, the input for ep, and the fan-out fields. One paid request must stay one answer, so
// n and best_of must be 1 (or absent) and a completions prompt must be one prompt.
func decodeCompletion(body []byte, ep wire.Endpoint) (completionRequest, *apiErr) {
	var req completionRequest
	fields, aerr := requestFields(body)
	if aerr != nil {
		return req, aerr
	}
	var includeUsage *bool
	var streamOptions map[string]json.RawMessage
	var n, bestOf *int64
	for _, e := range []*apiErr{ // evaluated in order: stream_options before its member
		decodeField(fields, "model", "a string", &req.Model),
		decodeField(fields, "stream", "true or false", &req.Stream),
		decodeField(fields, "stream_options", `an object such as {"include_usage": true}`, &streamOptions),
		decodeField(streamOptions, "include_usage", "true or false", &includeUsage),
		decodeField(fields, "max_tokens", "a whole number", &req.MaxTokens),
		decodeField(fields, "max_completion_tokens", "a whole number", &req.MaxCompletionTokens),
		decodeField(fields, "n", "1", &n),
		decodeField(fields, "best_of", "1", &bestOf),
	} {
		if e != nil {
			if e.param == "include_usage" {
				e.param, e.m = "stream_options", "stream_options."+e.m
			}
			return req, e
		}
	}
	req.IncludeUsage = includeUsage != nil && *includeUsage
	for name, v := range map[string]*int64{"n": n, "best_of": bestOf} {
		if v != nil && *v != 1 {
			return req, badRequest(name, fmt.Sprintf("%s=%d: this node asks for one answer per request (%s must be 1 or absent), so that one paid request stays one answer: send several requests instead", name, *v, name))
		}
	}
	req.Messages, req.Prompt = fields["messages"], fields["prompt"]
	switch ep {
	case wire.Chat:
		if m := req.Messages; len(m) == 0 || m[0] != '[' || bytes.Equal(bytes.TrimSpace(m[1:]), []byte("]")) {
			return req, badRequest("messages", "messages must be a non-empty list")
		}
	case wire.Completion:
		if aerr := checkPrompt(req.Prompt); aerr != nil {
			return req, aerr
		}
	}
	return req, nil
}

// checkPrompt accepts what OpenAI's completions take as one prompt: a string, a list of token
// IDs, or a list holding one string or one list of token IDs. A list of several prompts would
// be several answers for one paid request, and is refused.
func checkPrompt(raw json.RawMessage) *apiErr {
	const want = "prompt must be a string or a list of token IDs (whole numbers)"
	if len(raw) == 0 || isNull(raw) {
		return badRequest("prompt", "prompt is required")
	}
	switch raw[0] {
	case '"':
		return nil
	case '[':
	default:
		return badRequest("prompt", fmt.Sprintf("%s, not %s", want, describeJSON(raw)))
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil || len(items) == 0 {
		return badRequest("prompt", want+", not an empty list")
	}
	switch items[0][0] {
	case '"', '[': // a list of prompts
		if len(items) > 1 {
			return badRequest("prompt", fmt.Sprintf("prompt is a list of %d prompts: this node sends one prompt per request, so that one paid request stays one answer: send each as a request of its own", len(items)))
		}
		if items[0][0] == '"' {
			return nil
		}
		raw = items[0]
	}
	var tokens []int64
	if err := json.Unmarshal(raw, &tokens); err != nil {
		return badRequest("prompt", want+": a list of token IDs must hold whole numbers only")
	}
	return nil
}
