package backend

import "bytes"

// Checks of what a worker sends, for the node that opens it: the client validates each answer
// before it serves it, so garbage from a faulty worker is the worker's failure, never a 200.

// CheckAnswer checks a whole (non-streamed) answer as a worker sends it: one valid JSON object
// (strings valid UTF-8, nesting within encoding/json's limit), optionally surrounded by
// whitespace. The error is an *Error with status 502.
func CheckAnswer(data []byte) error {
	i := skipWS(data, 0)
	if i >= len(data) || data[i] != '{' {
		return errorf(502, "worker sent an answer that is not a JSON object")
	}
	if eachMemberOf(data, func(_, _ []byte) {}) != nil {
		return errorf(502, "worker sent an answer that is not valid JSON")
	}
	return nil
}

// CheckEvents checks a streamed chunk as a worker sends it: one or more server-sent events, each
// exactly "data: ", one valid JSON object on one line, and "\n\n". Anything else is refused:
// "[DONE]" (the client writes its own), comments, other fields, CR line ends, a value split
// over lines, trailing bytes. The error is an *Error with status 502.
func CheckEvents(data []byte) error {
	if len(data) == 0 {
		return errorf(502, "worker sent an empty stream chunk")
	}
	for n := 1; len(data) > 0; n++ {
		rest, ok := bytes.CutPrefix(data, []byte("data: "))
		if !ok {
			return errorf(502, "worker sent a stream chunk whose event %d does not start with \"data: \"", n)
		}
		if len(rest) == 0 || rest[0] != '{' {
			return errorf(502, "worker sent a stream event (%d) that is not a JSON object", n)
		}
		end, err := eachMember(rest, 0, func(_, _ []byte) {})
		if err != nil {
			return errorf(502, "worker sent a stream event (%d) that is not valid JSON", n)
		}
		if bytes.IndexByte(rest[:end], '\n') >= 0 || bytes.IndexByte(rest[:end], '\r') >= 0 {
			return errorf(502, "worker sent a stream event (%d) that spans lines", n)
		}
		if data, ok = bytes.CutPrefix(rest[end:], []byte("\n\n")); !ok {
			return errorf(502, "worker sent a stream event (%d) not ended by a blank line", n)
		}
	}
	return nil
}
