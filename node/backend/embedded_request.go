package backend

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/cocoon-mesh/cocoon/model"
)

// parse reads an OpenAI request (its body within MaxBodyBytes) into a generation. The body is
// refused as the HTTP backend's rewrite refuses it (invalid JSON, a duplicate key, fan-out), and
// each size is checked before the work that grows with it: the prompt's text is decoded only
// while it can still fit the context in bytes, and tokenized only once it does; its tokens are
// counted before it runs. Fields are matched by their exact names, as model servers match them.
func (e *Embedded) parse(r Request) (model.Request, error) {
	fields, err := objectFields(r.Body)
	if err != nil {
		return model.Request{}, err
	}
	if err := checkFanOut(r.Endpoint, fields); err != nil {
		return model.Request{}, err
	}
	gen := model.Request{MaxTokens: e.cfg.MaxTokens, EOS: e.cfg.EOS}
	gen.Sampling.Temperature = 1
	gen.Sampling.Seed = uint64(time.Now().UnixNano())
	var prompt, messages []byte
	var maxTokens, maxCompletion *int
	for _, f := range fields {
		var err error
		switch f.key {
		case "prompt":
			prompt = f.value
		case "messages":
			messages = f.value
		case "max_tokens":
			err = decodeField(f, &maxTokens)
		case "max_completion_tokens":
			err = decodeField(f, &maxCompletion)
		case "temperature":
			err = decodeField(f, &gen.Sampling.Temperature)
		case "top_p":
			err = decodeField(f, &gen.Sampling.TopP)
		case "seed":
			err = decodeField(f, &gen.Sampling.Seed)
		case "stop":
			gen.Stop, err = stops(f.value)
		}
		if err != nil {
			return model.Request{}, err
		}
	}
	switch {
	case maxCompletion != nil:
		gen.MaxTokens = *maxCompletion
	case maxTokens != nil:
		gen.MaxTokens = *maxTokens
	}
	if r.MaxTokens > 0 {
		gen.MaxTokens = min(gen.MaxTokens, int(r.MaxTokens))
	}
	if gen.MaxTokens < 0 {
		return model.Request{}, errorf(400, "max_tokens must not be negative")
	}
	gen.Stop = append(gen.Stop, e.cfg.Stop...)
	var text string
	if r.Endpoint == Chat {
		gen.Stop = append(gen.Stop, []byte(model.ChatStop))
		text, err = e.chatText(messages)
	} else {
		text, err = e.completionText(prompt)
	}
	if err != nil {
		return model.Request{}, err
	}
	if gen.Prompt, err = e.tokens(text); err != nil {
		return model.Request{}, err
	}
	return gen, nil
}

// decodeField decodes one member's value into dst; null leaves it as it was.
func decodeField[T any](f field, dst *T) error {
	if err := json.Unmarshal(f.value, dst); err != nil {
		return errorf(400, "%s: %v", f.key, err)
	}
	return nil
}

// tokens encodes a prompt that fits the context in bytes, and refuses it if it does not fit in
// tokens.
func (e *Embedded) tokens(text string) ([]int, error) {
	ids, err := e.cfg.Tokenizer.Encode([]byte(text))
	if err != nil {
		return nil, errorf(400, "%v", err)
	}
	if e.cfg.BOS >= 0 {
		ids = append([]int{e.cfg.BOS}, ids...)
	}
	if len(ids) > e.promptTokens() {
		return nil, errorf(400, "the prompt is %d tokens, more than fit the model's context of %d tokens (at most %d for the prompt): shorten it",
			len(ids), e.cfg.Model.Config.SeqLen, e.promptTokens())
	}
	return ids, nil
}

// tooLong refuses a prompt of n bytes or more, more than the context can hold.
func (e *Embedded) tooLong(n int) *Error {
	return errorf(400, "the prompt is %d bytes or more, over the %d bytes the model's context of %d tokens can hold (%d tokens of at most %d bytes): shorten it",
		n, e.promptBytes, e.cfg.Model.Config.SeqLen, e.promptTokens(), e.cfg.Tokenizer.LongestPiece())
}

// text decodes a JSON string of prompt text to follow used bytes of prompt. One that cannot fit
// the context is refused before it is decoded, from its encoded length: an escape stands for
// at least one byte in six.
func (e *Embedded) text(raw []byte, used int) (string, error) {
	if (len(raw)-2)/6 > e.promptBytes-used {
		return "", e.tooLong(used + (len(raw)-2)/6)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", errorf(400, "prompt text: %v", err)
	}
	if used+len(s) > e.promptBytes {
		return "", e.tooLong(used + len(s))
	}
	return s, nil
}

// completionText is a completion's prompt: a string, or a list of one.
func (e *Embedded) completionText(raw []byte) (string, error) {
	bad := errorf(400, "prompt must be a string (or a list of one)")
	if len(raw) > 0 && raw[0] == '[' {
		i := skipWS(raw, 1)
		if i >= len(raw) || raw[i] != '"' {
			return "", bad
		}
		end := skipString(raw, i)
		if skipWS(raw, end) != len(raw)-1 { // raw is a valid list: only its ']' may follow
			return "", bad
		}
		raw = raw[i:end]
	}
	if len(raw) == 0 || raw[0] != '"' {
		return "", bad
	}
	return e.text(raw, 0)
}

// chatText renders a chat's messages a turn at a time, refusing it as soon as the prompt is
// longer than the context can hold.
func (e *Embedded) chatText(raw []byte) (string, error) {
	if len(raw) == 0 || raw[0] != '[' {
		return "", errorf(400, "messages must be a list of messages")
	}
	var b strings.Builder
	for i := skipWS(raw, 1); i < len(raw) && raw[i] != ']'; {
		end := skipValue(raw, i, 2) // in the body and messages; validated with the body
		m, err := e.message(raw[i:end], b.Len())
		if err != nil {
			return "", err
		}
		b.WriteString(model.ChatTurn(m))
		if b.Len()+len(model.ChatOpen) > e.promptBytes {
			return "", e.tooLong(b.Len() + len(model.ChatOpen))
		}
		if i = skipWS(raw, end); raw[i] == ',' {
			i = skipWS(raw, i+1)
		}
	}
	if b.Len() == 0 {
		return "", errorf(400, "messages must not be empty")
	}
	b.WriteString(model.ChatOpen)
	return b.String(), nil
}

// message decodes one chat message whose text may take the prompt from used bytes to the
// context's limit: its role, and its content as text or a list of text parts.
func (e *Embedded) message(raw []byte, used int) (model.Message, error) {
	bad := errorf(400, "each message must be an object with a role and content as text or a list of text parts")
	var m model.Message
	var role, content []byte
	if raw[0] != '{' || eachMemberOf(raw, func(k, v []byte) {
		switch string(k) {
		case `"role"`:
			role = v
		case `"content"`:
			content = v
		}
	}) != nil || len(content) == 0 {
		return m, bad
	}
	if role != nil && json.Unmarshal(role, &m.Role) != nil {
		return m, bad
	}
	switch content[0] {
	case 'n': // an assistant turn that only called tools
		return m, nil
	case '"':
		var err error
		m.Content, err = e.text(content, used)
		return m, err
	case '[':
	default:
		return m, bad
	}
	var b strings.Builder
	for i := skipWS(content, 1); i < len(content) && content[i] != ']'; {
		end := skipValue(content, i, 4) // in the body, messages, the message and content
		var typ, text []byte
		if content[i] != '{' || eachMemberOf(content[i:end], func(k, v []byte) {
			switch string(k) {
			case `"type"`:
				typ = v
			case `"text"`:
				text = v
			}
		}) != nil {
			return m, bad
		}
		if string(typ) == `"text"` && len(text) > 0 {
			if text[0] != '"' {
				return m, bad
			}
			s, err := e.text(text, used+b.Len())
			if err != nil {
				return m, err
			}
			b.WriteString(s)
		}
		if i = skipWS(content, end); content[i] == ',' {
			i = skipWS(content, i+1)
		}
	}
	m.Content = b.String()
	return m, nil
}

// stops reads OpenAI's "stop": a string or a list of up to 4.
func stops(raw json.RawMessage) ([][]byte, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return [][]byte{[]byte(one)}, nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil || len(list) > 4 {
		return nil, errorf(400, "stop must be a string or a list of at most 4 strings")
	}
	out := make([][]byte, len(list))
	for i, s := range list {
		out[i] = []byte(s)
	}
	return out, nil
}
