package backend

import (
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

// events runs ParseSSE over r and returns the event data it delivered.
func events(r io.Reader, max int) ([]string, error) {
	var got []string
	err := ParseSSE(r, max, func(data []byte) error {
		got = append(got, string(data))
		return nil
	})
	return got, err
}

func TestParseSSE(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		max  int
		want []string
		err  error
	}{
		{name: "basic", in: "data: a\n\ndata: b\n\n", want: []string{"a", "b"}},
		{name: "no space", in: "data:a\n\ndata:  b\n\n", want: []string{"a", " b"}},
		{name: "multi-line", in: "data: a\ndata: b\ndata\n\n", want: []string{"a\nb\n"}},
		{name: "crlf", in: "data: a\r\n\r\ndata: b\r\n\r\n", want: []string{"a", "b"}},
		{name: "cr", in: "data: a\r\rdata: b\r\r", want: []string{"a", "b"}},
		{name: "comments and fields", in: ": hi\nevent: x\nid: 7\nretry: 5\nfoo\ndata: a\n\n", want: []string{"a"}},
		{name: "no data skipped", in: "event: ping\n\n: c\n\ndata:\n\n", want: nil},
		{name: "blank lines", in: "\n\n\ndata: a\n\n\n\n", want: []string{"a"}},
		{name: "bom", in: "\xef\xbb\xbfdata: a\n\n", want: []string{"a"}},
		{name: "pending at EOF", in: "data: a\n\ndata: b", want: []string{"a", "b"}},
		{name: "pending line at EOF", in: "data: a\n", want: []string{"a"}},
		{name: "colon in value", in: "data: {\"a\":1}\n\n", want: []string{`{"a":1}`}},
		{name: "exact max", in: "data: 12345\n\n", max: 5, want: []string{"12345"}},
		{name: "event over max", in: "data: 123456\n\n", max: 5, err: ErrTooLarge},
		{name: "lines over max", in: "data: 123\ndata: 45\n\n", max: 5, err: ErrTooLarge},
		{name: "comment over max", in: ": " + strings.Repeat("x", 100) + "\n", max: 5, err: ErrTooLarge},
		{name: "endless line", in: strings.Repeat("x", 1<<16), max: 1024, err: ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			readers := map[string]io.Reader{
				"whole":    strings.NewReader(tc.in),
				"one byte": iotest.OneByteReader(strings.NewReader(tc.in)),
				"half":     iotest.HalfReader(strings.NewReader(tc.in)),
				"data+EOF": iotest.DataErrReader(strings.NewReader(tc.in)),
			}
			for name, r := range readers {
				got, err := events(r, tc.max)
				if !errors.Is(err, tc.err) {
					t.Fatalf("%s: err = %v, want %v", name, err, tc.err)
				}
				if tc.err == nil && !slices.Equal(got, tc.want) {
					t.Errorf("%s: got %q, want %q", name, got, tc.want)
				}
			}
		})
	}
}

func TestParseSSEErrors(t *testing.T) {
	stop := errors.New("stop")
	n := 0
	err := ParseSSE(strings.NewReader("data: a\n\ndata: b\n\n"), 0, func([]byte) error {
		n++
		return stop
	})
	if err != stop || n != 1 {
		t.Errorf("err %v after %d events, want fn's error after 1", err, n)
	}
	broken := errors.New("broken")
	_, err = events(io.MultiReader(strings.NewReader("data: a\n\n"), iotest.ErrReader(broken)), 0)
	if err != broken {
		t.Errorf("err = %v, want the reader's error", err)
	}
	_, err = events(iotest.ErrReader(nil), 0) // (0, nil) forever
	if !errors.Is(err, io.ErrNoProgress) {
		t.Errorf("err = %v, want io.ErrNoProgress", err)
	}
}
