package bench

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/cocoon-mesh/cocoon/node/backend"
)

// maxEvent caps one SSE event or one whole answer the load generator reads.
const maxEvent = 1 << 20

// answerObject is the part of an OpenAI answer (a whole response or a stream chunk) the load
// generator reads: the generated text, or an error.
type answerObject struct {
	Choices []struct {
		Delta   *struct{ Content string } `json:"delta"`
		Message *struct{ Content string } `json:"message"`
		Text    string                    `json:"text"`
	} `json:"choices"`
	Error *struct {
		Message string `json:"message"`
	} `json:"error"`
}

// Content returns the generated text an OpenAI answer object carries: the first choice's
// delta.content (chat stream chunk), message.content (whole chat answer) or text
// (completions). An object with an "error" member is an error.
func Content(data []byte) (string, error) {
	var a answerObject
	if err := json.Unmarshal(data, &a); err != nil {
		return "", fmt.Errorf("answer is not valid JSON: %v (%.120q)", err, data)
	}
	if a.Error != nil {
		return "", fmt.Errorf("error event: %s", a.Error.Message)
	}
	if len(a.Choices) == 0 {
		return "", nil
	}
	c := a.Choices[0]
	switch {
	case c.Delta != nil && c.Delta.Content != "":
		return c.Delta.Content, nil
	case c.Message != nil && c.Message.Content != "":
		return c.Message.Content, nil
	}
	return c.Text, nil
}

// StreamAnswer is what ReadStream saw of an SSE answer.
type StreamAnswer struct {
	First  string        // content of the first event carrying non-empty content
	TTFT   time.Duration // from start until that event was parsed; 0 if none came
	Events int           // data events before [DONE]
	Done   bool          // "data: [DONE]" arrived
}

// errorPrefix starts an error event: the mesh and OpenAI send {"error":{...}}.
var errorPrefix = []byte(`{"error"`)

// ReadStream reads an OpenAI SSE answer from r to its end, timing the first token from start.
// The first token is the first "data:" event whose choices carry non-empty content (the role
// chunk OpenAI sends first has empty content and does not count). It fails on a malformed
// event before the first token, an error event, or a stream without "data: [DONE]".
//
// To keep the load generator light, events after the first token are not decoded: only
// [DONE] and error events are recognised there.
func ReadStream(r io.Reader, start time.Time) (StreamAnswer, error) {
	var a StreamAnswer
	err := backend.ParseSSE(r, maxEvent, func(data []byte) error {
		if bytes.Equal(data, []byte("[DONE]")) {
			a.Done = true
			return nil
		}
		if a.Done {
			return errors.New("event after data: [DONE]")
		}
		a.Events++
		if a.TTFT != 0 && !bytes.HasPrefix(data, errorPrefix) {
			return nil
		}
		c, err := Content(data)
		if err != nil {
			return err
		}
		if c != "" && a.TTFT == 0 {
			a.TTFT = max(time.Since(start), 1) // never 0: 0 means "no token yet"
			a.First = c
		}
		return nil
	})
	if err != nil {
		return a, err
	}
	if !a.Done {
		return a, errors.New("stream ended without data: [DONE]")
	}
	return a, nil
}
