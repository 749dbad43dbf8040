package backend

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// validObject is the reference for the scanner: one JSON object, as json.Valid and utf8.Valid
// see it.
func validObject(data []byte) bool {
	i := skipWS(data, 0)
	return i < len(data) && data[i] == '{' && json.Valid(data) && utf8.Valid(data)
}

// tooDeep reports input that could reach encoding/json's nesting limit, where the two count
// differently only in what error they give.
func tooDeep(data []byte) bool {
	return bytes.Count(data, []byte("["))+bytes.Count(data, []byte("{")) >= maxDepth-10
}

func TestCheckAnswer(t *testing.T) {
	for _, ok := range []string{
		`{}`, " {\"a\":[1,-2.5e+3,true,false,null,\"\\u00e9\\n\",{}]}\n", string(sampleChunk),
		`{"a":"` + "\u00e9\u4e16\U0001F600" + `"}`, `{"a":0.0,"b":-0,"c":1E5,"d":[[],[{}]]}`,
	} {
		if err := CheckAnswer([]byte(ok)); err != nil {
			t.Errorf("%s refused: %v", ok, err)
		}
	}
	for name, g := range garbage() {
		if err := CheckAnswer(g); err == nil {
			t.Errorf("%s accepted", name)
		} else if be := wantStatus(t, err, 502); be.Message == "" {
			t.Errorf("%s: no message", name)
		}
	}
	for _, bad := range []string{``, ` `, `[]`, `"x"`, `{"a":1,}`, `{"a":}`, `{"a" 1}`, `{,}`, `{"a":[1,]}`, `{"a":-}`,
		`{"a":1.}`, `{"a":1e}`, `{"a":.5}`, `{"a":+1}`, `{"a":"\u12"}`, "{\"a\":\"\xed\xa0\x80\"}", `{"a":nul}`, `{"a":1}}`} {
		if CheckAnswer([]byte(bad)) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	// Nesting: as deep as encoding/json goes, and not one level more.
	for _, depth := range []int{maxDepth, maxDepth + 1} {
		doc := []byte(`{"a":` + strings.Repeat("[", depth-1) + strings.Repeat("]", depth-1) + `}`)
		if got, want := CheckAnswer(doc) == nil, json.Valid(doc); got != want || want != (depth == maxDepth) {
			t.Errorf("depth %d: accepted %t, encoding/json %t", depth, got, want)
		}
	}
}

func TestCheckEvents(t *testing.T) {
	for _, ok := range []string{
		"data: {}\n\n",
		"data: " + string(sampleChunk) + "\n\ndata: {\"choices\":[]}\n\n",
	} {
		if err := CheckEvents([]byte(ok)); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	bad := []string{
		"", "data: [DONE]\n\n", "data: {}\n\ndata: [DONE]\n\n", "data: {}\n", "data: {}", "data:{}\n\n",
		"data: {}\r\n\r\n", "data: {\n}\n\n", ": keep-alive\n\ndata: {}\n\n", "data: {} \n\n", "data:  {}\n\n",
		"event: x\ndata: {}\n\n", "data: {}\n\n\n", "data: {}\n\nx", "data: \"x\"\n\n",
	}
	for _, g := range garbage() {
		bad = append(bad, "data: "+string(g)+"\n\n", "data: {}\n\ndata: "+string(g)+"\n\n")
	}
	for _, b := range bad {
		err := CheckEvents([]byte(b))
		if err == nil {
			t.Errorf("%q accepted", b)
			continue
		}
		wantStatus(t, err, 502)
	}
}

func FuzzCheckAnswer(f *testing.F) {
	for _, s := range []string{string(sampleChunk), `{}`, `{"a":[1,{"b":null}]}`, `{"a":"\ud800"}`, "{\"a\":\"\xff\"}", `{"a":01}`, `{"a":1e+}`, ` {} `, `{}{}`} {
		f.Add([]byte(s))
	}
	for _, g := range garbage() {
		f.Add(g)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if tooDeep(data) {
			return
		}
		err := CheckAnswer(data)
		if want := validObject(data); (err == nil) != want {
			t.Fatalf("%q: CheckAnswer says %v, encoding/json and utf8 say valid=%t", data, err, want)
		}
		var a answer
		if derr := a.decode(bytes.TrimSpace(data)); derr != nil && err == nil && !isShape(derr) {
			t.Fatalf("%q: CheckAnswer accepts, the skimmer refuses: %v", data, derr)
		}
	})
}

// isShape reports the skimmer's type-mismatch error: valid JSON whose fields have odd types.
func isShape(err error) bool { return err == errShape }

// eventsReference is CheckEvents written the obvious way, the reference for FuzzCheckEvents.
func eventsReference(data []byte) bool {
	if len(data) == 0 {
		return false
	}
	for len(data) > 0 {
		rest, ok := bytes.CutPrefix(data, []byte("data: "))
		if !ok {
			return false
		}
		end := bytes.Index(rest, []byte("\n\n"))
		if end < 0 {
			return false
		}
		ev := rest[:end]
		if len(ev) == 0 || ev[0] != '{' || bytes.ContainsAny(ev, "\r\n") || bytes.ContainsAny(ev[len(ev)-1:], " \t") ||
			!json.Valid(ev) || !utf8.Valid(ev) {
			return false
		}
		data = rest[end+2:]
	}
	return true
}

func FuzzCheckEvents(f *testing.F) {
	for _, s := range []string{
		"data: {}\n\n", "data: " + string(sampleChunk) + "\n\ndata: {\"a\":1}\n\n", "data: [DONE]\n\n", "data: {}\r\n\r\n",
		"data: {} \n\n", "data: {\"a\":\"\n\"}\n\n", "data: {}\n\ndata", ": x\n\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if tooDeep(data) {
			return
		}
		err := CheckEvents(data)
		if want := eventsReference(data); (err == nil) != want {
			t.Fatalf("%q: CheckEvents says %v, the reference says valid=%t", data, err, want)
		}
	})
}
