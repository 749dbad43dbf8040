package chanstore

import (
	"bytes"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/cocoon-mesh/cocoon/ton"
)

func TestRecordRoundTrip(t *testing.T) {
	full := testRecord(t, 7, Payee, 42, 123_456)
	full.Updates, full.Updated = 9, time.UnixMilli(1_700_000_000_123).UTC()
	closing := testRecord(t, 8, Payer, 5, 50)
	closing.State, closing.PayeeSemi = Closing, [64]byte{1, 2, 3, 63: 9}
	for name, r := range map[string]Record{
		"payer, no voucher": testRecord(t, 1, Payer, 0, 0),
		"payee, voucher":    full,
		"payer, closing":    closing,
	} {
		b, err := r.MarshalBinary()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got, err := DecodeRecord(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		b2, _ := got.MarshalBinary()
		if !bytes.Equal(b, b2) || got.Updates != r.Updates || !got.Updated.Equal(r.Updated) ||
			got.Voucher != r.Voucher || !got.KeyA.Equal(r.KeyA) || got.DestB != r.DestB ||
			got.State != r.State || got.PayeeSemi != r.PayeeSemi {
			t.Fatalf("%s: round trip changed the record:\n%+v\n%+v", name, r, got)
		}
		want, err := r.Address()
		if err != nil {
			t.Fatal(err)
		}
		if addr, err := got.Address(); err != nil || !addr.Equals(want) {
			t.Fatalf("%s: params rebuild another address: %v", name, err)
		}
		if r.HasVoucher && !got.VerifyVoucher(got.Voucher) {
			t.Fatalf("%s: voucher signature does not verify after the round trip", name)
		}
	}
}

func TestRecordEncodeRefusesInvalid(t *testing.T) {
	for name, mut := range map[string]func(r *Record){
		"role":            func(r *Record) { r.Role = 3 },
		"short key":       func(r *Record) { r.KeyA = r.KeyA[:31] },
		"dest":            func(r *Record) { r.DestA = "EQ" + r.DestA[2:5] },
		"raw dest":        func(r *Record) { r.DestB = "0:" + string(bytes.Repeat([]byte("ab"), 32)) },
		"committed seqno": func(r *Record) { r.CommittedSeqno = math.MaxUint32 + 1 },
		"voucher seqno":   func(r *Record) { r.Voucher.Seqno = ton.MaxVoucherSeqno + 1 },
		"ghost voucher":   func(r *Record) { r.HasVoucher = false },
		"old time":        func(r *Record) { r.Updated = time.Unix(-5, 0) },
		"state":           func(r *Record) { r.State = Closed + 1 },
	} {
		r := testRecord(t, 1, Payer, 3, 30)
		mut(&r)
		if _, err := r.MarshalBinary(); err == nil {
			t.Errorf("%s: encoded an invalid record", name)
		}
	}
}

// TestDecodeVersion1 reads a record written before State and PayeeSemi existed: an open
// channel without the payee's semichannel.
func TestDecodeVersion1(t *testing.T) {
	r := testRecord(t, 4, Payee, 6, 600)
	b, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	v1 := append([]byte{1}, b[1:len(b)-1-64]...)
	got, err := DecodeRecord(v1)
	if err != nil {
		t.Fatal(err)
	}
	if !sameState(got, r) || got.State != Open || got.PayeeSemi != ([64]byte{}) {
		t.Fatalf("version 1 record decoded as %+v", got)
	}
	if _, err := DecodeRecord(append(v1, byte(Closing))); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("version 1 record with a trailing byte: %v", err)
	}
}

func TestDecodeRecordRejectsCorrupt(t *testing.T) {
	good, err := testRecord(t, 3, Payee, 5, 500).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	check := func(name string, b []byte) {
		t.Helper()
		if _, err := DecodeRecord(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: got %v, want ErrCorrupt", name, err)
		}
	}
	for i := range good {
		check("truncated", good[:i])
	}
	check("trailing byte", append(bytes.Clone(good), 0))
	for name, at := range map[string]int{"version": 0, "role": 1, "state": len(good) - 65} {
		b := bytes.Clone(good)
		b[at] = 9
		check(name, b)
	}
	// Flip every bit: each result must decode to a valid record or fail cleanly, never panic.
	for i := range good {
		for bit := range 8 {
			b := bytes.Clone(good)
			b[i] ^= 1 << bit
			if r, err := DecodeRecord(b); err == nil {
				if b2, err := r.MarshalBinary(); err != nil || !bytes.Equal(b, b2) {
					t.Fatalf("byte %d bit %d: decoded a non-canonical record", i, bit)
				}
			}
		}
	}
}

func FuzzDecodeRecord(f *testing.F) {
	for _, r := range []Record{testRecord(f, 1, Payer, 0, 0), testRecord(f, 2, Payee, 77, 1e9)} {
		r.Updates, r.Updated = 3, time.UnixMilli(1_700_000_000_000)
		b, err := r.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{recordVersion, byte(Payer)})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRecord(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		// Canonical: what decodes re-encodes to the same bytes, except that a version 1
		// record is re-encoded at the current version, with the same content.
		b2, err := r.MarshalBinary()
		if b[0] == 1 && err == nil {
			r2, err2 := DecodeRecord(b2)
			if err2 != nil || !sameState(r, r2) || r2.Updates != r.Updates || !r2.Updated.Equal(r.Updated) {
				t.Fatalf("version 1 record changed when re-encoded: %v\n%x\n%x", err2, b, b2)
			}
			return
		}
		if err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("not canonical: %v\n%x\n%x", err, b, b2)
		}
	})
}
