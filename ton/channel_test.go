package ton

import (
	"errors"
	"testing"
)

func TestPayeeAcceptRejectsWithoutChangingState(t *testing.T) {
	p := newParties(0)
	id := p.params.ChannelID
	payee, err := NewPayee(PayeeConfig{ChannelID: id, PayerKey: p.params.KeyA, Limit: 1000, CommittedSeqno: 3})
	if err != nil {
		t.Fatal(err)
	}
	if _, has := payee.Latest(); has {
		t.Fatal("fresh payee has a voucher")
	}
	sign := func(seqno, sent uint64) Voucher { return SignVoucher(p.keyA, id, seqno, sent) }
	if err := payee.Accept(sign(2, 10)); !errors.Is(err, ErrReplayed) {
		t.Fatalf("seqno below committed: %v, want ErrReplayed", err)
	}
	good := sign(5, 100)
	if err := payee.Accept(good); err != nil {
		t.Fatal(err)
	}
	badSig := sign(6, 200)
	badSig.Signature[0] ^= 1
	var otherID ChannelID
	otherID[15] = 7
	wrongKey := SignVoucher(testKey(9), id, 6, 200)

	for name, tc := range map[string]struct {
		v    Voucher
		want error
	}{
		"replayed":          {good, ErrReplayed},
		"older":             {sign(4, 100), ErrReplayed},
		"decreasing":        {sign(6, 99), ErrDecreasing},
		"over deposit":      {sign(6, 1001), ErrOverDeposit},
		"tampered":          {badSig, ErrBadSignature},
		"wrong key":         {wrongKey, ErrBadSignature},
		"wrong channel":     {SignVoucher(p.keyA, otherID, 6, 200), ErrBadSignature},
		"tampered amount":   {Voucher{Seqno: 6, Sent: 300, Signature: sign(6, 200).Signature}, ErrBadSignature},
		"past seqno limit":  {sign(MaxVoucherSeqno+1, 200), ErrSeqnoLimit},
		"replay as higher":  {Voucher{Seqno: 7, Sent: 100, Signature: good.Signature}, ErrBadSignature},
		"zero signature":    {Voucher{Seqno: 6, Sent: 200}, ErrBadSignature},
		"decreasing to nil": {sign(6, 0), ErrDecreasing},
	} {
		err := payee.Accept(tc.v)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
		if got, _ := payee.Latest(); got != good {
			t.Fatalf("%s changed the state to %+v", name, got)
		}
	}
	// Equal sent with a higher seqno is fine (a voucher at the end of a free response).
	if err := payee.Accept(sign(6, 100)); err != nil {
		t.Fatal(err)
	}
	if err := payee.Accept(sign(9, 1000)); err != nil || payee.Sent() != 1000 {
		t.Fatalf("voucher at the limit: %v", err)
	}
	if _, err := NewPayee(PayeeConfig{PayerKey: p.params.KeyA[:3]}); err == nil {
		t.Fatal("short payer key accepted")
	}
}

func TestPayerPay(t *testing.T) {
	p := newParties(0)
	id := p.params.ChannelID
	payer, err := NewPayer(PayerConfig{ChannelID: id, Key: p.keyA, Limit: 1000, Seqno: 4, Sent: 100})
	if err != nil {
		t.Fatal(err)
	}
	v, err := payer.Pay(50)
	if err != nil || v.Seqno != 5 || v.Sent != 150 || !v.Verify(p.params.KeyA, id) {
		t.Fatalf("Pay: %+v %v", v, err)
	}
	for name, f := range map[string]func() (Voucher, error){
		"over deposit":       func() (Voucher, error) { return payer.Pay(851) },
		"overflowing amount": func() (Voucher, error) { return payer.Pay(^uint64(0)) },
		"PayTo over":         func() (Voucher, error) { return payer.PayTo(1001) },
		"PayTo decreasing":   func() (Voucher, error) { return payer.PayTo(149) },
	} {
		if _, err := f(); err == nil {
			t.Errorf("%s: no error", name)
		}
		if payer.Seqno() != 5 || payer.Sent() != 150 {
			t.Fatalf("%s changed the state", name)
		}
	}
	if _, err := payer.PayTo(149); !errors.Is(err, ErrDecreasing) {
		t.Fatalf("PayTo decreasing: %v", err)
	}
	if _, err := payer.Pay(851); !errors.Is(err, ErrOverDeposit) {
		t.Fatalf("Pay over: %v", err)
	}
	if v, err := payer.PayTo(1000); err != nil || v.Seqno != 6 || v.Sent != 1000 {
		t.Fatalf("PayTo limit: %+v %v", v, err)
	}
	exhausted, _ := NewPayer(PayerConfig{ChannelID: id, Key: p.keyA, Limit: 1, Seqno: MaxVoucherSeqno})
	if _, err := exhausted.Pay(0); !errors.Is(err, ErrSeqnoLimit) {
		t.Fatalf("exhausted seqnos: %v", err)
	}
	if _, err := NewPayer(PayerConfig{Key: p.keyA, Limit: 1, Sent: 2}); !errors.Is(err, ErrOverDeposit) {
		t.Fatalf("resume above limit: %v", err)
	}
	if _, err := NewPayer(PayerConfig{Key: p.keyA[:10]}); err == nil {
		t.Fatal("short key accepted")
	}
}

func TestPayeeCooperativeCloseSeqnos(t *testing.T) {
	p := newParties(0)
	payee, _ := NewPayee(PayeeConfig{ChannelID: p.params.ChannelID, PayerKey: p.params.KeyA, Limit: 10, CommittedSeqno: 7})
	if c, err := payee.CooperativeClose(10, 0, 1); err != nil || c.SeqnoA != 8 || c.BalanceA != 10 || c.BalanceB != 0 {
		t.Fatalf("close without vouchers: %+v %v", c, err)
	}
	if err := payee.Accept(SignVoucher(p.keyA, p.params.ChannelID, 9, 4)); err != nil {
		t.Fatal(err)
	}
	c, err := payee.CooperativeClose(10, 2, 1)
	if err != nil || c.SeqnoA != 10 || c.BalanceA != 6 || c.BalanceB != 6 {
		t.Fatalf("close after voucher: %+v %v", c, err)
	}
	if _, err := payee.CooperativeClose(3, 0, 1); !errors.Is(err, ErrOverDeposit) {
		t.Fatalf("close with balance_A below sent: %v", err)
	}

	payer, _ := NewPayer(PayerConfig{ChannelID: p.params.ChannelID, Key: p.keyA, Limit: 10, Seqno: 9, Sent: 4})
	if err := payer.CheckClose(c, 10, 2); err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string]CooperativeClose{
		"seqno replayable": {ChannelID: c.ChannelID, BalanceA: 6, BalanceB: 6, SeqnoA: 9, SeqnoB: 1},
		"pays B too much":  {ChannelID: c.ChannelID, BalanceA: 5, BalanceB: 7, SeqnoA: 10, SeqnoB: 1},
		"other channel":    {BalanceA: 6, BalanceB: 6, SeqnoA: 10, SeqnoB: 1},
	} {
		if err := payer.CheckClose(bad, 10, 2); !errors.Is(err, ErrBadClose) {
			t.Errorf("%s: %v, want ErrBadClose", name, err)
		}
	}
}

// TestPayerCooperativeClose: the payer proposes the same close the payee would, and signs
// nothing after it.
func TestPayerCooperativeClose(t *testing.T) {
	p := newParties(0)
	payee, _ := NewPayee(PayeeConfig{ChannelID: p.params.ChannelID, PayerKey: p.params.KeyA, Limit: 10})
	payer, _ := NewPayer(PayerConfig{ChannelID: p.params.ChannelID, Key: p.keyA, Limit: 10})
	for range 3 {
		v, err := payer.Pay(2)
		if err != nil {
			t.Fatal(err)
		}
		if err := payee.Accept(v); err != nil {
			t.Fatal(err)
		}
	}
	want, err := payee.CooperativeClose(10, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	got, err := payer.CooperativeClose(10, 0, 1)
	if err != nil || got != want || got.BalanceA != 4 || got.BalanceB != 6 || got.SeqnoA != 4 {
		t.Fatalf("payer's close %+v, payee's %+v (%v)", got, want, err)
	}
	if err := payer.CheckClose(got, 10, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := payer.Pay(1); !errors.Is(err, ErrClosed) {
		t.Fatalf("voucher after a close: %v, want ErrClosed", err)
	}
	over, _ := NewPayer(PayerConfig{ChannelID: p.params.ChannelID, Key: p.keyA, Limit: 10, Seqno: 1, Sent: 8})
	if _, err := over.CooperativeClose(5, 0, 1); !errors.Is(err, ErrOverDeposit) {
		t.Fatalf("close with balance_A below sent: %v", err)
	}
	if _, err := over.Pay(1); err != nil {
		t.Fatalf("a refused close must not stop the payer: %v", err)
	}
}
