package backend

import (
	"bytes"
	"encoding/json"
	"strings"
	"unicode/utf8"
)

// answer is the part of an OpenAI response object, stream chunk or error
// object that the backend inspects. Content fields stay raw: the backend only
// asks whether they are empty, and tolerating any shape (string, array of
// parts, null) keeps odd but valid servers working.
type answer struct {
	Object  string          `json:"object"`
	Choices []choice        `json:"choices"`
	Usage   json.RawMessage `json:"usage"`
	// Error is OpenAI's {"error": {...}} (or a bare string).
	Error json.RawMessage `json:"error"`
	// Message and Code are vLLM's flat {"object": "error", ...} form.
	Message json.RawMessage `json:"message"`
	Code    json.RawMessage `json:"code"`
}

// choice is one element of "choices" in a response or chunk.
type choice struct {
	Text    json.RawMessage `json:"text"`
	Delta   *message        `json:"delta"`
	Message *message        `json:"message"`
}

// message is a chat message or a stream delta.
type message struct {
	Content          json.RawMessage `json:"content"`
	ReasoningContent json.RawMessage `json:"reasoning_content"`
	Reasoning        json.RawMessage `json:"reasoning"`
	ToolCalls        json.RawMessage `json:"tool_calls"`
	FunctionCall     json.RawMessage `json:"function_call"`
}

// decode parses one JSON object from the server, a whole answer or one streamed event;
// anything else, down to a bad byte in a string, is a 502. The skimmer validates as it walks,
// so this costs one pass.
func (a *answer) decode(data []byte) error {
	if len(data) == 0 || data[0] != '{' {
		return errorf(502, "server sent a non-object where a JSON object was expected")
	}
	return skimAnswer(data, a)
}

// failed reports whether the object is an error report.
func (a *answer) failed() bool {
	return present(a.Error) || a.Object == "error"
}

// report returns an error report's message and status: the server's
// numeric code when it is an HTTP status, def otherwise.
func (a *answer) report(def int) (msg string, status int) {
	msg, code := rawString(a.Message), a.Code
	if present(a.Error) {
		var e struct {
			Message json.RawMessage `json:"message"`
			Code    json.RawMessage `json:"code"`
		}
		if json.Unmarshal(a.Error, &e) == nil {
			msg, code = rawString(e.Message), e.Code
		} else {
			msg = rawString(a.Error)
		}
	}
	status = def
	var n float64
	if json.Unmarshal(code, &n) == nil && n >= 400 && n <= 599 && n == float64(int(n)) {
		status = int(n)
	}
	return clean(msg), status
}

// err converts an error report to an *Error.
func (a *answer) err(def int) *Error {
	msg, status := a.report(def)
	if msg == "" {
		msg = "server reported an error"
	}
	return errorf(status, "server error: %s", msg)
}

// hasContent reports whether a chunk carries generated output: text,
// content, reasoning or a tool-call delta.
func (a *answer) hasContent() bool {
	for _, c := range a.Choices {
		if present(c.Text) {
			return true
		}
		if d := c.Delta; d != nil && (present(d.Content) || present(d.ReasoningContent) ||
			present(d.Reasoning) || present(d.ToolCalls) || present(d.FunctionCall)) {
			return true
		}
	}
	return false
}

// textLen is the byte length of everything generated in a whole response,
// the basis of a usage estimate when the server reports none.
func (a *answer) textLen() int {
	n := 0
	for _, c := range a.Choices {
		n += rawLen(c.Text)
		if m := c.Message; m != nil {
			n += rawLen(m.Content) + rawLen(m.ReasoningContent) + rawLen(m.Reasoning) +
				rawLen(m.ToolCalls) + rawLen(m.FunctionCall)
		}
	}
	return n
}

// present reports whether a raw JSON value is set to something non-empty.
func present(raw json.RawMessage) bool {
	switch string(bytes.TrimSpace(raw)) {
	case "", "null", `""`, "[]", "{}", "false":
		return false
	}
	return true
}

// rawLen is the length of a string's content, or of any other value as
// written.
func rawLen(raw json.RawMessage) int {
	if !present(raw) {
		return 0
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return len(s)
	}
	return len(raw)
}

// rawString returns a JSON string's content, or any other value as written.
func rawString(raw json.RawMessage) string {
	if !present(raw) {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}

// errorMessage extracts a human-readable message from an error response
// body: OpenAI's {"error":{"message":...}}, {"error":"..."}, vLLM's flat
// {"message":...}, FastAPI's {"detail":...}, else the body itself.
func errorMessage(body []byte) string {
	body = bytes.TrimSpace(body)
	var a struct {
		answer
		Detail json.RawMessage `json:"detail"`
	}
	if len(body) > 0 && body[0] == '{' && json.Unmarshal(body, &a) == nil {
		if msg, _ := a.report(0); msg != "" {
			return msg
		}
		if s := clean(rawString(a.Detail)); s != "" {
			return s
		}
	}
	return clean(string(body))
}

// clean makes text from a server safe to pass on: valid UTF-8, trimmed and
// short.
func clean(s string) string {
	s = strings.TrimSpace(strings.ToValidUTF8(s, "\uFFFD"))
	if len(s) > maxMessage {
		s = s[:maxMessage]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
		s += "..."
	}
	return s
}
