package backend

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// A skimmer for the few fields the backend reads from each answer. encoding/json decodes a
// stream chunk in about 1.6 us, and a worker meters every token it relays; this walk takes a
// fraction of that. It checks structure (strings, brackets, separators) and never reads out of
// bounds, whatever the input, but it does not validate scalars: a whole answer is checked with
// json.Valid first, while streamed events are relayed as the backend sent them, as any proxy
// would. FuzzSkimMatchesEncodingJSON holds it to encoding/json's answers on valid JSON.

// errSkim reports input whose structure the skimmer could not follow.
var errSkim = errorf(502, "server sent malformed JSON")

// skipWS returns the index of the first non-space byte at or after i.
func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index just past the string that opens at b[i], or -1.
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return -1
}

// skipValue returns the index just past the value that starts at b[i] (i < len(b)), or -1.
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		var small [32]byte
		open := small[:0] // the brackets still open, innermost last
		for i < len(b) {
			switch c := b[i]; c {
			case '"':
				if i = skipString(b, i); i < 0 {
					return -1
				}
				continue
			case '{', '[':
				open = append(open, c)
			case '}', ']':
				if len(open) == 0 || open[len(open)-1] != c-2 { // '{'+2 == '}', '['+2 == ']'
					return -1
				}
				open = open[:len(open)-1]
				if len(open) == 0 {
					return i + 1
				}
			}
			i++
		}
		return -1
	case ',', '}', ']', ':':
		return -1
	}
	start := i
	for i < len(b) {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\r', '\n':
			if i == start {
				return -1
			}
			return i
		}
		i++
	}
	return i
}

// eachMember calls fn for every member of the object that starts at b[i] (b[i] == '{'), with
// the raw key (quotes included) and the raw value, in order, and returns the index just past
// the object, or errSkim.
func eachMember(b []byte, i int, fn func(rawKey, value []byte)) (int, error) {
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return 0, errSkim
		}
		k := skipString(b, i)
		if k < 0 {
			return 0, errSkim
		}
		c := skipWS(b, k)
		if c >= len(b) || b[c] != ':' {
			return 0, errSkim
		}
		v := skipWS(b, c+1)
		if v >= len(b) {
			return 0, errSkim
		}
		end := skipValue(b, v)
		if end < 0 {
			return 0, errSkim
		}
		fn(b[i:k], b[v:end])
		i = skipWS(b, end)
		switch {
		case i >= len(b):
			return 0, errSkim
		case b[i] == ',':
			i = skipWS(b, i+1)
		case b[i] == '}':
			return i + 1, nil
		default:
			return 0, errSkim
		}
	}
}

// eachMemberOf is eachMember over a whole value that must be one object and nothing else.
func eachMemberOf(v []byte, fn func(rawKey, value []byte)) error {
	i := skipWS(v, 0)
	if i >= len(v) || v[i] != '{' {
		return errSkim
	}
	end, err := eachMember(v, i, fn)
	if err == nil && skipWS(v, end) != len(v) {
		err = errSkim
	}
	return err
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
	serr := eachMemberOf(data, func(k, v []byte) {
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
	if serr != nil {
		return serr
	}
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
		if end < 0 {
			return errSkim
		}
		var c choice
		switch v[i] {
		case '{':
			var err error
			_, serr := eachMember(v, i, func(k, val []byte) {
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
			if serr != nil {
				return serr
			}
			if err != nil {
				return err
			}
		case 'n':
		default:
			return errShape
		}
		a.Choices = append(a.Choices, c)
		i = skipWS(v, end)
		switch {
		case i < len(v) && v[i] == ',':
			i = skipWS(v, i+1)
		case i < len(v) && v[i] == ']':
		default:
			return errSkim
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
	_, err := eachMember(v, 0, func(k, val []byte) {
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
	return err
}
