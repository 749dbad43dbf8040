package backend

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestRewriteBody(t *testing.T) {
	for _, tc := range []struct {
		name   string
		in     string
		stream bool
		want   string
		status int
	}{
		{
			name: "order and bytes kept",
			in:   ` { "temperature" : 0.50, "model":"client", "x\u0041": [1, 2 ,3] } `,
			want: `{"temperature":0.50,"model":"srv","x\u0041":[1, 2 ,3],"stream":false}`,
		},
		{
			name: "non-stream drops stream fields",
			in:   `{"model":"c","stream":true,"stream_options":{"include_usage":true},"n":1}`,
			want: `{"model":"srv","stream":false,"n":1}`,
		},
		{
			name: "stream adds usage", stream: true,
			in:   `{"messages":[]}`,
			want: `{"messages":[],"model":"srv","stream":true,"stream_options":{"include_usage":true}}`,
		},
		{
			name: "stream keeps other options", stream: true,
			in:   `{"model":"c","stream":false,"stream_options":{"continuous_usage_stats": true, "include_usage":false}}`,
			want: `{"model":"srv","stream":true,"stream_options":{"continuous_usage_stats":true,"include_usage":true}}`,
		},
		{
			name: "stream replaces a non-object", stream: true,
			in:   `{"stream_options":null}`,
			want: `{"stream_options":{"include_usage":true},"model":"srv","stream":true}`,
		},
		{name: "empty", in: ``, status: 400},
		{name: "invalid", in: `{"a":}`, status: 400},
		{name: "trailing", in: `{} {}`, status: 400},
		{name: "array", in: `[]`, status: 400},
		{name: "string", in: `"{}"`, status: 400},
		{name: "duplicate", in: `{"a":1,"a":2}`, status: 400},
		{name: "escaped duplicate model", in: `{"model":"a","\u006dodel":"b"}`, status: 400},
		{name: "duplicate option", stream: true, in: `{"stream_options":{"include_usage":false,"include_usage":false}}`, status: 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _, err := rewriteBody(Request{Endpoint: Chat, Body: []byte(tc.in), Stream: tc.stream}, "srv")
			if tc.status != 0 {
				var be *Error
				if !errors.As(err, &be) || be.Status != tc.status {
					t.Fatalf("err = %v, want status %d", err, tc.status)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestRewriteCapsMaxTokens(t *testing.T) {
	for _, c := range []struct {
		in    string
		cap   uint32
		want  string
		limit int
	}{
		{`{"model":"m","max_tokens":500}`, 100, `"max_tokens":100`, 100},
		{`{"model":"m","max_tokens":7}`, 100, `"max_tokens":7`, 7},
		{`{"model":"m"}`, 100, `"max_tokens":100`, 100},
		{`{"model":"m","max_completion_tokens":900}`, 100, `"max_completion_tokens":100`, 100},
		{`{"model":"m","max_tokens":50,"max_completion_tokens":20}`, 100, `"max_completion_tokens":20`, 20},
		{`{"model":"m","max_tokens":50}`, 0, `"max_tokens":50`, 50},
		{`{"model":"m","max_tokens":null}`, 0, `"max_tokens":null`, -1},
		{`{"model":"m"}`, 0, `"model":"srv"`, -1},
	} {
		got, limit, err := rewriteBody(Request{Endpoint: Chat, Body: []byte(c.in), MaxTokens: c.cap}, "srv")
		if err != nil || !bytes.Contains(got, []byte(c.want)) || limit != c.limit {
			t.Errorf("%s cap %d: got %s limit %d %v, want %s limit %d", c.in, c.cap, got, limit, err, c.want, c.limit)
		}
	}
	for _, cap := range []uint32{0, 100} {
		if _, _, err := rewriteBody(Request{Endpoint: Chat, Body: []byte(`{"model":"m","max_tokens":"lots"}`), MaxTokens: cap}, "srv"); err == nil {
			t.Errorf("cap %d: a non-numeric max_tokens passed", cap)
		}
	}
}

func TestRewriteRefusesFanOut(t *testing.T) {
	for _, c := range []struct {
		ep    Endpoint
		body  string
		field string // named in the refusal; "" = accepted
	}{
		{Chat, `{"n":1,"best_of":1}`, ""},
		{Chat, `{"n":null,"best_of":1.0}`, ""},
		{Chat, `{"n":2}`, "n"},
		{Chat, `{"n":1000000}`, "n"},
		{Chat, `{"n":-1}`, "n"},
		{Chat, `{"n":0}`, "n"},
		{Chat, `{"n":"1"}`, "n"},
		{Completion, `{"best_of":5,"prompt":"x"}`, "best_of"},
		{Chat, `{"best_of":2}`, "best_of"},
		{Completion, `{"prompt":"x"}`, ""},
		{Completion, `{"prompt":["x"]}`, ""},
		{Completion, `{"prompt":[1,2,3]}`, ""},
		{Completion, `{"prompt":[[1,2,3]]}`, ""},
		{Completion, `{"prompt":["x","y"]}`, "prompt"},
		{Completion, `{"prompt":[[1],[2],[3]]}`, "prompt"},
		{Chat, `{"prompt":["x","y"],"messages":[]}`, ""},
	} {
		_, _, err := rewriteBody(Request{Endpoint: c.ep, Body: []byte(c.body)}, "srv")
		if c.field == "" {
			if err != nil {
				t.Errorf("%s %s refused: %v", c.ep, c.body, err)
			}
			continue
		}
		var be *Error
		if !errors.As(err, &be) || be.Status != 400 || !strings.HasPrefix(be.Message, c.field+" must be") {
			t.Errorf("%s %s: %v, want a 400 naming %s", c.ep, c.body, err, c.field)
		}
	}
}

func TestRewriteRefusesDuplicatesInLargeObjects(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"model":"m"`)
	for i := range 40 {
		fmt.Fprintf(&b, `,"k%d":%d`, i, i)
	}
	b.WriteString(`,"k3":0}`)
	if _, _, err := rewriteBody(Request{Endpoint: Chat, Body: []byte(b.String())}, "srv"); err == nil || !strings.Contains(err.Error(), `"k3"`) {
		t.Fatalf("duplicate past the map threshold: %v", err)
	}
}
