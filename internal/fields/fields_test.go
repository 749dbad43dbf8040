package fields

import (
	"errors"
	"testing"
)

var errBad = errors.New("bad")

func TestRoundTripAndStickyErrors(t *testing.T) {
	e := Enc{}
	e.Uvarint(300)
	e.Bytes([]byte("ab"))
	e.Str("cd")
	e.Fixed([]byte{1, 2, 3})
	e.Bool(true)
	d := Dec{B: e.B, Bad: errBad}
	if d.Uvarint("u") != 300 || string(d.Bytes("b", 2)) != "ab" || d.Str("s", 2) != "cd" ||
		string(d.Fixed("f", 3)) != "\x01\x02\x03" || !d.Bool("t") || d.Done() != nil {
		t.Fatalf("round trip failed: %v", d.Err)
	}
	for name, dec := range map[string]func(d *Dec){
		"over max":     func(d *Dec) { d.Bytes("b", 1) },
		"short fixed":  func(d *Dec) { d.Fixed("f", 9) },
		"bad bool":     func(d *Dec) { d.Uvarint("u"); d.Bytes("b", 2); d.Bool("x") },
		"bounded":      func(d *Dec) { d.Bounded("u", 299) },
		"trailing":     func(d *Dec) { d.Uvarint("u") },
		"overlong int": func(d *Dec) { d.B = []byte{0x80, 0x00}; d.Uvarint("u") },
	} {
		d := Dec{B: e.B, Bad: errBad}
		dec(&d)
		if err := d.Done(); !errors.Is(err, errBad) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
