package backend

import (
	"encoding/json"
	"strconv"
	"strings"
)

// field is one member of a JSON object: the key decoded (for matching) and
// as written (for byte-exact passthrough), and the raw value.
type field struct {
	key    string
	rawKey []byte
	value  []byte
}

// maxFields bounds the members of an object objectFields splits, and so its memory: no OpenAI
// request has more than a few dozen.
const maxFields = 1024

// objectFields splits a JSON object into its members, in order, and fails unless obj is one
// valid JSON object (the scanner validates every value it steps over). The bytes of keys and
// values are sub-slices of obj, exactly as written, so re-emitting them changes nothing
// (encoding/json would compact and HTML-escape them).
// Duplicate keys are refused: different JSON parsers keep the first or the last one, and that
// ambiguity would let a client smuggle a second "model" past the rewrite.
func objectFields(obj []byte) ([]field, error) {
	i := skipWS(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return nil, errorf(400, "request body must be a JSON object")
	}
	var fields []field
	var seen map[string]bool // only for objects with many members: a scan is cheaper below that
	var err error
	serr := eachMemberOf(obj, func(rawKey, value []byte) {
		if err != nil {
			return
		}
		key := string(rawKey[1 : len(rawKey)-1])
		if strings.IndexByte(key, '\\') >= 0 {
			if json.Unmarshal(rawKey, &key) != nil {
				err = errorf(400, "request body is not valid JSON")
				return
			}
		}
		dup := false
		if seen != nil {
			dup = seen[key]
		} else {
			for _, f := range fields {
				dup = dup || f.key == key
			}
		}
		if dup {
			err = errorf(400, "duplicate field %q in request body", key)
			return
		}
		if len(fields) == maxFields {
			err = errorf(400, "request body has more than %d fields in one object", maxFields)
			return
		}
		fields = append(fields, field{key: key, rawKey: rawKey, value: value})
		if len(fields) == 16 {
			seen = make(map[string]bool, 32)
			for _, f := range fields {
				seen[f.key] = true
			}
		} else if seen != nil {
			seen[key] = true
		}
	})
	if serr != nil {
		return nil, errorf(400, "request body is not valid JSON")
	}
	return fields, err
}

// set replaces the value of key, or appends the member if it is missing.
func set(fields []field, key string, value []byte) []field {
	for i := range fields {
		if fields[i].key == key {
			fields[i].value = value
			return fields
		}
	}
	rawKey, _ := json.Marshal(key)
	return append(fields, field{key: key, rawKey: rawKey, value: value})
}

// remove drops key if present.
func remove(fields []field, key string) []field {
	for i := range fields {
		if fields[i].key == key {
			return append(fields[:i], fields[i+1:]...)
		}
	}
	return fields
}

// appendObject writes fields as a JSON object.
func appendObject(dst []byte, fields []field) []byte {
	dst = append(dst, '{')
	for i, f := range fields {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, f.rawKey...)
		dst = append(dst, ':')
		dst = append(dst, f.value...)
	}
	return append(dst, '}')
}

// rewriteBody prepares a client's request body for the model server: the
// model is replaced by the server's name for it, and the stream fields are
// set by the worker rather than the client. A stream always asks for usage
// (stream_options.include_usage) because the worker must meter it; other
// stream_options keys are kept. A non-stream call sends "stream": false and
// no stream_options, which servers reject without a stream. Every other
// member passes through byte for byte, except that r.MaxTokens above zero caps max_tokens and
// max_completion_tokens (the limit the request was routed and priced with). Fan-out is refused
// (checkFanOut). It returns the body and the most completion tokens it allows, -1 for no limit.
// Errors are *Error with status 400.
func rewriteBody(r Request, model string) ([]byte, int, error) {
	fields, err := objectFields(r.Body)
	if err != nil {
		return nil, 0, err
	}
	if err := checkFanOut(r.Endpoint, fields); err != nil {
		return nil, 0, err
	}
	name, err := json.Marshal(model)
	if err != nil {
		return nil, 0, errorf(500, "cannot encode model name: %v", err)
	}
	fields = set(fields, "model", name)
	fields, limit, err := capTokens(fields, r.MaxTokens)
	if err != nil {
		return nil, 0, err
	}
	if r.Stream {
		fields = set(fields, "stream", []byte("true"))
		var opts []field
		for _, f := range fields {
			if f.key == "stream_options" && len(f.value) > 0 && f.value[0] == '{' {
				if opts, err = objectFields(f.value); err != nil {
					return nil, 0, errorf(400, "stream_options: %s", err.(*Error).Message)
				}
			}
		}
		opts = set(opts, "include_usage", []byte("true"))
		fields = set(fields, "stream_options", appendObject(nil, opts))
	} else {
		fields = set(fields, "stream", []byte("false"))
		fields = remove(fields, "stream_options")
	}
	return appendObject(make([]byte, 0, len(r.Body)+64), fields), limit, nil
}

// capTokens makes the body's token limits no larger than limit when it is above zero, adding
// max_tokens if the body has neither field, and returns the tightest limit the body then sets,
// -1 for none.
func capTokens(fields []field, limit uint32) ([]field, int, error) {
	tightest := int64(-1)
	for _, key := range [...]string{"max_tokens", "max_completion_tokens"} {
		for _, f := range fields {
			if f.key != key || string(f.value) == "null" {
				continue
			}
			v, err := strconv.ParseInt(string(f.value), 10, 64) // a JSON integer, as json.Unmarshal into int64 takes it
			if err != nil || v < 0 {
				return nil, 0, errorf(400, "%s must be a non-negative whole number", key)
			}
			if limit > 0 && v > int64(limit) {
				fields = set(fields, key, strconv.AppendUint(nil, uint64(limit), 10))
				v = int64(limit)
			}
			if tightest < 0 || v < tightest {
				tightest = v
			}
		}
	}
	if tightest < 0 && limit > 0 {
		fields = set(fields, "max_tokens", strconv.AppendUint(nil, uint64(limit), 10))
		tightest = int64(limit)
	}
	return fields, int(min(tightest, maxCount)), nil
}

// checkFanOut refuses the fields that turn one request into several completions on the GPU:
// n and best_of other than 1, and (for completions) a list of more than one prompt. The worker
// is paid for one answer, and a proxy or client that skipped its own checks must not make it
// run more.
func checkFanOut(ep Endpoint, fields []field) error {
	for _, f := range fields {
		switch f.key {
		case "n", "best_of":
			if string(f.value) == "null" {
				continue
			}
			if v, err := strconv.ParseFloat(string(f.value), 64); err != nil || v != 1 {
				return errorf(400, "%s must be 1 or absent, not %.40s: one request runs one completion; send one request per completion wanted", f.key, f.value)
			}
		case "prompt":
			if n := promptCount(f.value); ep == Completion && n > 1 {
				return errorf(400, "prompt must be one prompt, not a list of %d: send one request per prompt", n)
			}
		}
	}
	return nil
}

// promptCount is how many prompts a completions "prompt" holds: a string or a list of token
// ids is one, a list of strings or of token lists one per element.
func promptCount(v []byte) int {
	if v[0] != '[' {
		return 1
	}
	n := 0
	for i := skipWS(v, 1); i < len(v) && v[i] != ']'; n++ {
		if v[i] != '"' && v[i] != '[' {
			return 1 // token ids
		}
		i = skipWS(v, skipValue(v, i, 2)) // v is valid: the body was scanned
		if i < len(v) && v[i] == ',' {
			i = skipWS(v, i+1)
		}
	}
	return n
}
