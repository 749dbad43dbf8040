package echo

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// endpoint is the OpenAI API a request came in on.
type endpoint int

const (
	chat endpoint = iota
	completions
)

// request is the part of an OpenAI request the echo server reads; all
// other fields (tools, tool_choice, temperature...) are accepted and ignored.
type request struct {
	Model    string `json:"model"`
	Messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
	Prompt        json.RawMessage `json:"prompt"`
	Stream        bool            `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	MaxTokens           *int `json:"max_tokens"`
	MaxCompletionTokens *int `json:"max_completion_tokens"`
}

// job is a parsed request: what to answer and how.
type job struct {
	ep           endpoint
	model        string
	stream       bool
	includeUsage bool
	words        []string // the answer, one word per token, already capped
	finish       string   // "stop", or "length" when capped
	promptTokens int
}

// parse validates body and works out the answer; errors are client errors.
func parse(ep endpoint, body []byte, defMax int) (*job, error) {
	var req request
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, fmt.Errorf("invalid JSON body: %v", err)
	}
	if req.Model == "" {
		return nil, errors.New("you must provide a model parameter")
	}
	if req.StreamOptions != nil && !req.Stream {
		// OpenAI and vLLM refuse this too; mirroring them catches a
		// worker that forgets to drop stream_options.
		return nil, errors.New("stream_options is only allowed when stream is true")
	}
	limit := defMax
	for _, m := range []*int{req.MaxTokens, req.MaxCompletionTokens} {
		if m != nil {
			if *m < 1 {
				return nil, errors.New("max_tokens must be at least 1")
			}
			limit = *m
		}
	}
	j := &job{
		ep:           ep,
		model:        req.Model,
		stream:       req.Stream,
		includeUsage: req.StreamOptions != nil && req.StreamOptions.IncludeUsage,
		finish:       "stop",
	}
	var answer string
	switch ep {
	case chat:
		if len(req.Messages) == 0 {
			return nil, errors.New("messages must be a non-empty array")
		}
		for i, m := range req.Messages {
			text, err := content(m.Content)
			if err != nil {
				return nil, fmt.Errorf("messages[%d].content: %v", i, err)
			}
			j.promptTokens += len(strings.Fields(text))
			if m.Role == "user" {
				answer = text
			}
		}
	case completions:
		text, err := prompt(req.Prompt)
		if err != nil {
			return nil, err
		}
		j.promptTokens = len(strings.Fields(text))
		answer = text
	}
	j.words = strings.Fields(answer)
	if len(j.words) > limit {
		j.words, j.finish = j.words[:limit], "length"
	}
	return j, nil
}

// content reads a chat message's content: a string, an array of parts (text
// parts are joined, others ignored) or null.
func content(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", errors.New("must be a string or an array of content parts")
	}
	var texts []string
	for _, p := range parts {
		if p.Type == "text" {
			texts = append(texts, p.Text)
		}
	}
	return strings.Join(texts, " "), nil
}

// prompt reads a completions prompt: a string or an array of strings (joined
// into one; the echo server answers a single choice).
func prompt(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", errors.New("prompt is required")
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil {
		return "", errors.New("prompt must be a string or an array of strings")
	}
	return strings.Join(list, " "), nil
}
