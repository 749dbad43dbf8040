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
			got, err := rewriteBody([]byte(tc.in), "srv", tc.stream, 0)
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
	for _, c := range []struct{ in, want string }{
		{`{"model":"m","max_tokens":500}`, `"max_tokens":100`},
		{`{"model":"m","max_tokens":7}`, `"max_tokens":7`},
		{`{"model":"m"}`, `"max_tokens":100`},
		{`{"model":"m","max_completion_tokens":900}`, `"max_completion_tokens":100`},
	} {
		got, err := rewriteBody([]byte(c.in), "srv", false, 100)
		if err != nil || !bytes.Contains(got, []byte(c.want)) {
			t.Errorf("%s: got %s %v, want %s", c.in, got, err, c.want)
		}
	}
	if _, err := rewriteBody([]byte(`{"model":"m","max_tokens":"lots"}`), "srv", false, 100); err == nil {
		t.Error("a non-numeric max_tokens passed")
	}
}

func TestRewriteRefusesDuplicatesInLargeObjects(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"model":"m"`)
	for i := range 40 {
		fmt.Fprintf(&b, `,"k%d":%d`, i, i)
	}
	b.WriteString(`,"k3":0}`)
	if _, err := rewriteBody([]byte(b.String()), "srv", false, 0); err == nil || !strings.Contains(err.Error(), `"k3"`) {
		t.Fatalf("duplicate past the map threshold: %v", err)
	}
}
