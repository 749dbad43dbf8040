package ton

import (
	"bytes"
	"errors"
	"testing"
)

func TestVoucherEncoding(t *testing.T) {
	p := newParties(0)
	v := SignVoucher(p.keyA, p.params.ChannelID, 123456, 9_876_543_210)
	b, err := v.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > MaxVoucherSize || len(b) > 90 {
		t.Fatalf("voucher is %d bytes", len(b))
	}
	got, err := DecodeVoucher(b)
	if err != nil || got != v || !got.Verify(p.params.KeyA, p.params.ChannelID) {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	max, _ := Voucher{Seqno: MaxVoucherSeqno, Sent: ^uint64(0)}.MarshalBinary()
	if len(max) > MaxVoucherSize {
		t.Fatalf("largest voucher is %d bytes, MaxVoucherSize %d", len(max), MaxVoucherSize)
	}
	for name, bad := range map[string][]byte{
		"empty":          nil,
		"version":        append([]byte{2}, b[1:]...),
		"truncated":      b[:len(b)-1],
		"trailing":       append(append([]byte(nil), b...), 0),
		"overlong":       append([]byte{1, 0x80, 0}, b[1:]...),
		"seqno too high": mustEncode(Voucher{Seqno: MaxVoucherSeqno + 1}),
	} {
		if _, err := DecodeVoucher(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

func mustEncode(v Voucher) []byte {
	b, _ := v.MarshalBinary()
	return b
}

func FuzzDecodeVoucher(f *testing.F) {
	p := newParties(0)
	f.Add(mustEncode(SignVoucher(p.keyA, p.params.ChannelID, 1, 1000)))
	f.Add(mustEncode(Voucher{Seqno: MaxVoucherSeqno, Sent: ^uint64(0)}))
	f.Add([]byte{1, 0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := DecodeVoucher(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		// One value, one encoding: what decodes re-encodes to the same bytes.
		again, err := v.MarshalBinary()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("re-encoding %x gives %x", b, again)
		}
		if v.Seqno > MaxVoucherSeqno {
			t.Fatalf("decoded seqno %d above the limit", v.Seqno)
		}
	})
}

func BenchmarkVoucherSign(b *testing.B) {
	p := newParties(0)
	for i := 0; b.Loop(); i++ {
		SignVoucher(p.keyA, p.params.ChannelID, uint64(i+1), uint64(i)*1000)
	}
}

func BenchmarkVoucherVerify(b *testing.B) {
	p := newParties(0)
	v := SignVoucher(p.keyA, p.params.ChannelID, 42, 42_000)
	for b.Loop() {
		if !v.Verify(p.params.KeyA, p.params.ChannelID) {
			b.Fatal("does not verify")
		}
	}
}

// BenchmarkPayeeAccept is the payee's whole per-voucher cost: decode, checks, verify.
func BenchmarkPayeeAccept(b *testing.B) {
	p := newParties(0)
	payee, _ := NewPayee(PayeeConfig{ChannelID: p.params.ChannelID, PayerKey: p.params.KeyA, Limit: ^uint64(0)})
	wires := make([][]byte, 1024)
	for i := range wires {
		wires[i] = mustEncode(SignVoucher(p.keyA, p.params.ChannelID, uint64(i+1), uint64(i)*1000))
	}
	i := 0
	for b.Loop() {
		if i == len(wires) { // vouchers used up: start again on a fresh payee
			payee, _ = NewPayee(PayeeConfig{ChannelID: p.params.ChannelID, PayerKey: p.params.KeyA, Limit: ^uint64(0)})
			i = 0
		}
		v, err := DecodeVoucher(wires[i])
		if err != nil {
			b.Fatal(err)
		}
		if err := payee.Accept(v); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
