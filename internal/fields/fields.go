// Package fields is the one binary field encoding behind our wire messages and attestation
// records: uvarints, length-prefixed bytes and strings, booleans, and a decoder whose first error
// sticks, so a parser reads every field and checks once at the end.
package fields

import (
	"encoding/binary"
	"fmt"
)

// Enc appends fields to B.
type Enc struct{ B []byte }

// Uvarint appends v as an unsigned varint.
func (e *Enc) Uvarint(v uint64) { e.B = binary.AppendUvarint(e.B, v) }

// Bytes appends p with its length in front.
func (e *Enc) Bytes(p []byte) { e.Uvarint(uint64(len(p))); e.B = append(e.B, p...) }

// Str appends s with its length in front.
func (e *Enc) Str(s string) { e.Uvarint(uint64(len(s))); e.B = append(e.B, s...) }

// Fixed appends p as it is: for fields whose length both sides know.
func (e *Enc) Fixed(p []byte) { e.B = append(e.B, p...) }

// Bool appends v as one byte, 0 or 1.
func (e *Enc) Bool(v bool) {
	if v {
		e.B = append(e.B, 1)
	} else {
		e.B = append(e.B, 0)
	}
}

// Dec reads fields from B. The first error sticks, wrapping Bad; later reads return zero values.
type Dec struct {
	B   []byte
	Err error
	Bad error // the sentinel every decoding error wraps, such as wire.ErrMalformed
}

// Fail records that the field named what is malformed, unless an error is already recorded.
func (d *Dec) Fail(what string) {
	if d.Err == nil {
		d.Err = fmt.Errorf("%w: bad %s", d.Bad, what)
	}
}

// Uvarint reads an unsigned varint.
func (d *Dec) Uvarint(what string) uint64 {
	if d.Err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.B)
	// Refuse overlong encodings (a trailing zero byte): one value, one encoding.
	if n <= 0 || (n > 1 && d.B[n-1] == 0) {
		d.Fail(what)
		return 0
	}
	d.B = d.B[n:]
	return v
}

// Bounded reads a uvarint that must not exceed max.
func (d *Dec) Bounded(what string, max uint64) uint64 {
	v := d.Uvarint(what)
	if v > max {
		d.Fail(what)
		return 0
	}
	return v
}

// Bytes reads a length-prefixed field of at most max bytes. The result aliases B.
func (d *Dec) Bytes(what string, max int) []byte {
	n := d.Uvarint(what)
	if d.Err != nil {
		return nil
	}
	if n > uint64(max) || n > uint64(len(d.B)) {
		d.Fail(what)
		return nil
	}
	p := d.B[:n:n]
	d.B = d.B[n:]
	return p
}

// Fixed reads exactly n bytes. The result aliases B.
func (d *Dec) Fixed(what string, n int) []byte {
	if d.Err != nil {
		return nil
	}
	if len(d.B) < n {
		d.Fail(what)
		return nil
	}
	p := d.B[:n:n]
	d.B = d.B[n:]
	return p
}

// Str reads a length-prefixed string of at most max bytes.
func (d *Dec) Str(what string, max int) string { return string(d.Bytes(what, max)) }

// Bool reads one byte that must be 0 or 1.
func (d *Dec) Bool(what string) bool {
	if d.Err != nil {
		return false
	}
	if len(d.B) == 0 || d.B[0] > 1 {
		d.Fail(what)
		return false
	}
	v := d.B[0] == 1
	d.B = d.B[1:]
	return v
}

// Done reports the sticky error, or an error if bytes are left over.
func (d *Dec) Done() error {
	if d.Err == nil && len(d.B) != 0 {
		d.Err = fmt.Errorf("%w: %d trailing bytes", d.Bad, len(d.B))
	}
	return d.Err
}
