package backend

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// A skimmer for the few fields the backend reads from each answer. encoding/json decodes a
// stream chunk in about 1.6 us, and a worker does it for every token it meters; json.Valid plus
// this walk over the already-validated bytes costs a third of that. The walk assumes valid
// JSON: callers check json.Valid first. FuzzSkimMatchesEncodingJSON holds it to encoding/json's
// answers on arbitrary input.

// skipWS returns the index of the first non-space byte at or after i.
func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index just past the string that opens at b[i].
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// skipValue returns the index just past the value that starts at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = skipString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return len(b)
	}
	for i < len(b) {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\r', '\n':
			return i
		}
		i++
	}
	return i
}

// eachMember calls fn for every member of the object that starts at b[i], with the raw key
// (quotes included) and the raw value, in order.
func eachMember(b []byte, i int, fn func(rawKey, value []byte)) {
	i = skipWS(b, i+1) // past '{'
	for i < len(b) && b[i] == '"' {
		k := skipString(b, i)
		rawKey := b[i:k]
		v := skipWS(b, skipWS(b, k)+1) // past ':'
		end := skipValue(b, v)
		fn(rawKey, b[v:end])
		i = skipWS(b, end)
		if i < len(b) && b[i] == ',' {
			i = skipWS(b, i+1)
		}
	}
}

// keyIs reports whether a raw key names want, matching as encoding/json does (ASCII case
// folded; escaped keys are decoded first).
func keyIs(rawKey []byte, want string) bool {
	k := rawKey[1 : len(rawKey)-1]
	if len(k) == len(want) && string(k) == want {
		return true
	}
	if bytes.IndexByte(k, '\\') >= 0 {
		var s string
		if json.Unmarshal(rawKey, &s) != nil {
			return false
		}
		k = []byte(s)
	}
	return bytes.EqualFold(k, []byte(want))
}

// skimAnswer fills a from a valid JSON object, as json.Unmarshal(data, a) would.
func skimAnswer(data []byte, a *answer) error {
	var err error
	eachMember(data, skipWS(data, 0), func(k, v []byte) {
		switch {
		case err != nil:
		case keyIs(k, "object"):
			err = skimString(v, &a.Object)
		case keyIs(k, "choices"):
			err = skimChoices(v, a)
		case keyIs(k, "usage"):
			a.Usage = v
		case keyIs(k, "error"):
			a.Error = v
		case keyIs(k, "message"):
			a.Message = v
		case keyIs(k, "code"):
			a.Code = v
		}
	})
	return err
}

// errShape is what encoding/json would report as a type mismatch.
var errShape = errorf(502, "server sent JSON of an unexpected shape")

// skimString decodes a JSON string into *dst (null leaves it as it was).
func skimString(v []byte, dst *string) error {
	switch {
	case v[0] == 'n':
		return nil
	case v[0] != '"':
		return errShape
	}
	inner := v[1 : len(v)-1]
	if bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
		*dst = string(inner)
		return nil
	}
	return json.Unmarshal(v, dst)
}

func skimChoices(v []byte, a *answer) error {
	switch v[0] {
	case 'n':
		a.Choices = nil
		return nil
	case '[':
	default:
		return errShape
	}
	a.Choices = a.Choices[:0]
	i := skipWS(v, 1)
	for i < len(v) && v[i] != ']' {
		end := skipValue(v, i)
		var c choice
		switch v[i] {
		case '{':
			var err error
			eachMember(v, i, func(k, val []byte) {
				switch {
				case err != nil:
				case keyIs(k, "text"):
					c.Text = val
				case keyIs(k, "delta"):
					err = skimMessage(val, &c.Delta)
				case keyIs(k, "message"):
					err = skimMessage(val, &c.Message)
				}
			})
			if err != nil {
				return err
			}
		case 'n':
		default:
			return errShape
		}
		a.Choices = append(a.Choices, c)
		i = skipWS(v, end)
		if i < len(v) && v[i] == ',' {
			i = skipWS(v, i+1)
		}
	}
	if a.Choices == nil {
		a.Choices = []choice{}
	}
	return nil
}

func skimMessage(v []byte, dst **message) error {
	switch v[0] {
	case 'n':
		*dst = nil
		return nil
	case '{':
	default:
		return errShape
	}
	if *dst == nil {
		*dst = &message{}
	}
	m := *dst
	eachMember(v, 0, func(k, val []byte) {
		switch {
		case keyIs(k, "content"):
			m.Content = val
		case keyIs(k, "reasoning_content"):
			m.ReasoningContent = val
		case keyIs(k, "reasoning"):
			m.Reasoning = val
		case keyIs(k, "tool_calls"):
			m.ToolCalls = val
		case keyIs(k, "function_call"):
			m.FunctionCall = val
		}
	})
	return nil
}
