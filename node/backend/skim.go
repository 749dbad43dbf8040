package backend

import (
	"bytes"
	"encoding/json"
)

// A skimmer for the few fields the backend reads from each answer. encoding/json decodes a
// stream chunk in about 1.6 us, and a worker meters every token it relays; this walk takes a
// fraction of that. It walks with the validating scanner (scan.go), so an answer it accepts is
// one valid JSON object, scalars and UTF-8 included: garbage fails the call rather than being
// relayed. It never reads out of bounds, whatever the input. FuzzSkimMatchesEncodingJSON holds
// it to encoding/json's answers on valid JSON.

// errSkim reports input whose structure the skimmer could not follow.
var errSkim = errorf(502, "server sent malformed JSON")

// walkMembers walks the object that starts at b[i] (b[i] == '{'): for each member, in order,
// it calls fn with the raw key (quotes included) and the index of the value, and fn returns the
// index just past the value, having checked it, or -1 to stop. walkMembers returns the index
// just past the object, or errSkim. Skimmers that look into a value walk it in fn, so no byte
// is scanned twice.
func walkMembers(b []byte, i int, fn func(rawKey []byte, v int) int) (int, error) {
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
		end := fn(b[i:k], v)
		if end < 0 {
			return 0, errSkim
		}
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

// eachMember calls fn for every member of the object that starts at b[i] (b[i] == '{', the
// document's top level), with the raw key (quotes included) and the raw value, in order, and
// returns the index just past the object, or errSkim.
func eachMember(b []byte, i int, fn func(rawKey, value []byte)) (int, error) {
	return walkMembers(b, i, func(k []byte, v int) int {
		end := skipValue(b, v, 1)
		if end >= 0 {
			fn(k, b[v:end])
		}
		return end
	})
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

// skimAnswer fills a from a JSON object, as json.Unmarshal(data, a) would, and fails on
// anything that is not one valid JSON object. As in encoding/json, a syntax error anywhere wins
// over a field of the wrong type.
func skimAnswer(data []byte, a *answer) error {
	i := skipWS(data, 0)
	if i >= len(data) || data[i] != '{' {
		return errSkim
	}
	var shape error
	end, err := walkMembers(data, i, func(k []byte, v int) int {
		if keyIs(k, "choices") {
			end, err := skimChoices(data, v, a)
			if err == errShape {
				shape, end = err, skipValue(data, v, 1)
			}
			return end
		}
		end := skipValue(data, v, 1)
		if end < 0 {
			return -1
		}
		switch val := data[v:end]; {
		case keyIs(k, "object"):
			if err := skimString(val, &a.Object); err != nil {
				shape = err
			}
		case keyIs(k, "usage"):
			a.Usage = val
		case keyIs(k, "error"):
			a.Error = val
		case keyIs(k, "message"):
			a.Message = val
		case keyIs(k, "code"):
			a.Code = val
		}
		return end
	})
	switch {
	case err != nil:
		return err
	case skipWS(data, end) != len(data):
		return errSkim
	}
	return shape
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
	if bytes.IndexByte(inner, '\\') < 0 { // the scanner checked the UTF-8
		*dst = string(inner)
		return nil
	}
	return json.Unmarshal(v, dst)
}

// skimChoices reads the "choices" value at b[i] (in the top-level object) into a, and returns
// the index just past it; -1 with errSkim or errShape when it is not a valid array of choices.
func skimChoices(b []byte, i int, a *answer) (int, error) {
	switch b[i] {
	case 'n':
		a.Choices = nil
		return nullAt(b, i)
	case '[':
	default:
		return -1, errShape
	}
	if a.Choices = a.Choices[:0]; a.Choices == nil {
		a.Choices = []choice{}
	}
	if i = skipWS(b, i+1); i < len(b) && b[i] == ']' {
		return i + 1, nil
	}
	for {
		var c choice
		var end int
		var err error
		switch {
		case i >= len(b):
			return -1, errSkim
		case b[i] == '{':
			end, err = skimChoice(b, i, &c)
		case b[i] == 'n':
			end, err = nullAt(b, i)
		default:
			return -1, errShape
		}
		if err != nil {
			return -1, err
		}
		a.Choices = append(a.Choices, c)
		switch i = skipWS(b, end); {
		case i >= len(b):
			return -1, errSkim
		case b[i] == ']':
			return i + 1, nil
		case b[i] != ',':
			return -1, errSkim
		}
		i = skipWS(b, i+1)
	}
}

// skimChoice reads the choice object at b[i] (an element of "choices") into c.
func skimChoice(b []byte, i int, c *choice) (int, error) {
	var shape error
	end, err := walkMembers(b, i, func(k []byte, v int) int {
		var dst **message
		switch {
		case keyIs(k, "delta"):
			dst = &c.Delta
		case keyIs(k, "message"):
			dst = &c.Message
		default:
			end := skipValue(b, v, 3) // in the object, "choices" and the choice
			if end >= 0 && keyIs(k, "text") {
				c.Text = b[v:end]
			}
			return end
		}
		end, err := skimMessage(b, v, dst)
		if err == errShape {
			shape, end = err, skipValue(b, v, 3)
		}
		return end
	})
	if err == nil {
		err = shape
	}
	return end, err
}

// skimMessage reads the message or delta object at b[i] (in a choice) into *dst.
func skimMessage(b []byte, i int, dst **message) (int, error) {
	switch b[i] {
	case 'n':
		*dst = nil
		return nullAt(b, i)
	case '{':
	default:
		return -1, errShape
	}
	if *dst == nil {
		*dst = &message{}
	}
	m := *dst
	return walkMembers(b, i, func(k []byte, v int) int {
		end := skipValue(b, v, 4) // in the object, "choices", the choice and the message
		if end < 0 {
			return -1
		}
		switch val := b[v:end]; {
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
		return end
	})
}

// nullAt returns the index just past the null at b[i].
func nullAt(b []byte, i int) (int, error) {
	if end := skipLiteral(b, i, "null"); end >= 0 {
		return end, nil
	}
	return -1, errSkim
}
