package wire

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"

	"github.com/cocoon-mesh/cocoon/ton"
)

func testVoucher(t testing.TB) []byte {
	_, key, _ := ed25519.GenerateKey(nil)
	b, err := ton.SignVoucher(key, ton.ChannelID{1}, 3, 700).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPaymentMessagesRoundTrip(t *testing.T) {
	q := Quote{Prices: ton.Prices{Prompt: 1, Cached: 2, Completion: 300, Reasoning: 4}, Coefficient: 1500}
	if got, err := DecodeQuote(AppendQuote(nil, &q)); err != nil || got != q || got.Effective() != 450 {
		t.Fatalf("quote: %+v %v", got, err)
	}
	terms := Terms{Wallet: "EQ-wallet", Quarantine: 3600, CondClose: 60, ExcessFee: 1e7, Commission: 50, WindowTokens: 256}
	if got, err := DecodeTerms(AppendTerms(nil, &terms)); err != nil || got != terms {
		t.Fatalf("terms: %+v %v", got, err)
	}
	o := ChannelOpen{ChannelID: ton.ChannelID{9}, Wallet: "EQ-payer", Terms: terms, Voucher: testVoucher(t)}
	got, err := DecodeChannelOpen(AppendChannelOpen(nil, &o))
	if err != nil || got.ChannelID != o.ChannelID || got.Wallet != o.Wallet || got.Terms != terms || !bytes.Equal(got.Voucher, o.Voucher) {
		t.Fatalf("channel open: %+v %v", got, err)
	}
	st := ChannelState{Limit: 1e9, Voucher: testVoucher(t), PayeeSemi: bytes.Repeat([]byte{7}, 64)}
	if got, err := DecodeChannelState(AppendChannelState(nil, &st)); err != nil || got.Limit != st.Limit ||
		!bytes.Equal(got.Voucher, st.Voucher) || !bytes.Equal(got.PayeeSemi, st.PayeeSemi) {
		t.Fatalf("channel state: %+v %v", got, err)
	}
	cl := ChannelClose{Close: ton.CooperativeClose{ChannelID: ton.ChannelID{4}, BalanceA: 10, BalanceB: 20, SeqnoA: 30, SeqnoB: 1},
		Signature: bytes.Repeat([]byte{5}, 64)}
	if got, err := DecodeChannelClose(AppendChannelClose(nil, &cl)); err != nil || got.Close != cl.Close || !bytes.Equal(got.Signature, cl.Signature) {
		t.Fatalf("channel close: %+v %v", got, err)
	}
	if owed, err := DecodeBill(AppendBill(nil, 12345)); err != nil || owed != 12345 {
		t.Fatalf("bill: %d %v", owed, err)
	}
}

func TestPaymentMessagesRefuseBadInput(t *testing.T) {
	bad := map[string]error{}
	_, bad["quote with trailing byte"] = DecodeQuote(append(AppendQuote(nil, &Quote{}), 0))
	_, bad["coefficient too large"] = DecodeQuote(AppendQuote(nil, &Quote{Coefficient: MaxCoefficient + 1}))
	o := ChannelOpen{Voucher: []byte{9, 9, 9}}
	_, bad["open with a malformed voucher"] = DecodeChannelOpen(AppendChannelOpen(nil, &o))
	_, bad["state with a malformed voucher"] = DecodeChannelState(AppendChannelState(nil, &ChannelState{Voucher: []byte{1}}))
	_, bad["empty bill"] = DecodeBill(nil)
	_, bad["short channel new"] = DecodeChannelNew(make([]byte, 31))
	_, bad["long channel new"] = DecodeChannelNew(make([]byte, 33))
	_, bad["state with a short semichannel signature"] = DecodeChannelState(AppendChannelState(nil, &ChannelState{PayeeSemi: []byte{1}}))
	_, bad["close with a short signature"] = DecodeChannelClose(AppendChannelClose(nil, &ChannelClose{Signature: []byte{1, 2}}))
	_, bad["close with a seqno past uint32"] = DecodeChannelClose(AppendChannelClose(nil, &ChannelClose{Close: ton.CooperativeClose{SeqnoA: 1 << 32}}))
	for name, err := range bad {
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

func FuzzDecodePayments(f *testing.F) {
	f.Add(AppendQuote(nil, &Quote{Prices: ton.Prices{Completion: 5}, Coefficient: 1000}))
	f.Add(AppendTerms(nil, &Terms{Wallet: "w", Quarantine: 1}))
	f.Add(AppendChannelOpen(nil, &ChannelOpen{Wallet: "a", Voucher: testVoucher(f)}))
	f.Add(AppendChannelState(nil, &ChannelState{Limit: 5, Voucher: testVoucher(f)}))
	f.Add(AppendBill(nil, 77))
	f.Add(AppendChannelState(nil, &ChannelState{Limit: 5, PayeeSemi: make([]byte, 64)}))
	f.Add(AppendChannelClose(nil, &ChannelClose{Close: ton.CooperativeClose{BalanceA: 3, SeqnoA: 2}, Signature: make([]byte, 64)}))
	f.Add(AppendChannelNew(nil, ton.ChannelID{1, 2, 3}))
	f.Fuzz(func(t *testing.T, b []byte) {
		if id, err := DecodeChannelNew(b); err == nil && !bytes.Equal(AppendChannelNew(nil, id), b) {
			t.Fatal("channel new does not round-trip")
		}
		if q, err := DecodeQuote(b); err == nil && !bytes.Equal(AppendQuote(nil, &q), b) {
			t.Fatal("quote does not round-trip")
		}
		if tm, err := DecodeTerms(b); err == nil && !bytes.Equal(AppendTerms(nil, &tm), b) {
			t.Fatal("terms do not round-trip")
		}
		if o, err := DecodeChannelOpen(b); err == nil && !bytes.Equal(AppendChannelOpen(nil, &o), b) {
			t.Fatal("channel open does not round-trip")
		}
		if s, err := DecodeChannelState(b); err == nil && !bytes.Equal(AppendChannelState(nil, &s), b) {
			t.Fatal("channel state does not round-trip")
		}
		if c, err := DecodeChannelClose(b); err == nil && !bytes.Equal(AppendChannelClose(nil, &c), b) {
			t.Fatal("channel close does not round-trip")
		}
		if owed, err := DecodeBill(b); err == nil && !bytes.Equal(AppendBill(nil, owed), b) {
			t.Fatal("bill does not round-trip")
		}
	})
}
