package channel

import (
	"reflect"
	"testing"
	"time"

	"github.com/cocoon-mesh/cocoon/ton"
)

// payeeWith is a payee channel that accepted vouchers 1/100 and 2/300 and served 350.
func payeeWith(t testing.TB) *Channel {
	keyA, keyB := testKey(1), testKey(2)
	p := testParams(keyA, keyB, 3600, 60)
	c, err := New(Config{Key: keyB, WatchEvery: time.Minute}, roleOf("payee"), p)
	if err != nil {
		t.Fatal(err)
	}
	st := ton.Storage{Inited: true, BalanceA: 10000, KeyA: p.KeyA, KeyB: p.KeyB, ChannelID: p.ChannelID, Closing: p.Closing, Payments: p.Payments}
	steps := []Event{Announced{KeyA: p.KeyA, Chain: st}, AnswerBegan{Window: 100}, Delivered{Cost: 100, Window: 1000}}
	for _, v := range []ton.Voucher{ton.SignVoucher(keyA, p.ChannelID, 1, 100), ton.SignVoucher(keyA, p.ChannelID, 2, 300)} {
		b, _ := v.MarshalBinary()
		steps = append(steps, VoucherReceived{Voucher: b})
	}
	steps = append(steps, Delivered{Cost: 250, Window: 1000})
	for _, ev := range steps {
		if _, err := c.Step(t0, ev); err != nil {
			t.Fatalf("%T: %v", ev, err)
		}
	}
	return c
}

// FuzzPayeeVoucher feeds untrusted bytes to a payee as a voucher and as a settle, on an
// answer's stream and on the channel stream. Whatever the bytes: no panic; an error leaves
// the channel exactly as it was; a success holds a voucher that is the payer's, pays no
// less than before and no more than the deposit, and is the one persisted.
func FuzzPayeeVoucher(f *testing.F) {
	p := testParams(testKey(1), testKey(2), 3600, 60)
	for _, v := range []ton.Voucher{ton.SignVoucher(testKey(1), p.ChannelID, 3, 500), ton.SignVoucher(testKey(1), p.ChannelID, 2, 300),
		ton.SignVoucher(testKey(9), p.ChannelID, 3, 500), ton.SignVoucher(testKey(1), p.ChannelID, 9, 20000)} {
		b, _ := v.MarshalBinary()
		f.Add(b, uint8(0))
		f.Add(b, uint8(3))
	}
	f.Add([]byte{}, uint8(2))
	f.Add([]byte{1, 0xff}, uint8(1))
	f.Fuzz(func(t *testing.T, b []byte, how uint8) {
		c := payeeWith(t)
		before := c.clone()
		var ev Event
		switch how % 4 {
		case 0:
			ev = VoucherReceived{Voucher: b}
		case 1:
			ev = VoucherReceived{Voucher: b, OnChannel: true}
		case 2:
			ev = Settled{Voucher: b}
		default:
			ev = Settled{Voucher: b, OnChannel: true}
		}
		eff, err := c.Step(t0.Add(time.Second), ev)
		if err != nil {
			if !reflect.DeepEqual(before, *c) {
				t.Fatalf("%T refused (%v) and changed the channel", ev, err)
			}
			if !eff.Empty() {
				t.Fatalf("%T refused (%v) with effects %+v", ev, err, eff)
			}
			return
		}
		rec := c.Record()
		switch {
		case !rec.HasVoucher || !rec.VerifyVoucher(rec.Voucher):
			t.Fatalf("holds a voucher that is not the payer's: %+v", rec.Voucher)
		case rec.Voucher.Sent < before.rec.Voucher.Sent || rec.Voucher.Seqno < before.rec.Voucher.Seqno:
			t.Fatalf("went back from %+v to %+v", before.rec.Voucher, rec.Voucher)
		case rec.Voucher.Sent > rec.Limit:
			t.Fatalf("holds %d over the deposit %d", rec.Voucher.Sent, rec.Limit)
		}
		if rec.Voucher != before.rec.Voucher && (len(eff.Persist) != 1 || eff.Persist[0].Record.Voucher != rec.Voucher) {
			t.Fatalf("a new voucher %+v was not persisted: %+v", rec.Voucher, eff.Persist)
		}
	})
}

// FuzzPayerGreeting feeds a payee's untrusted answer to a resuming payer: its voucher and
// its semichannel signature. The payer never adopts a voucher that is not its own, nor a
// signature that is not the payee's.
func FuzzPayerGreeting(f *testing.F) {
	p := testParams(testKey(1), testKey(2), 3600, 60)
	good, _ := ton.SignVoucher(testKey(1), p.ChannelID, 4, 700).MarshalBinary()
	f.Add(good, EmptySemi(Config{Key: testKey(2)}, p.ChannelID))
	f.Add([]byte{1, 2}, []byte{3})
	f.Fuzz(func(t *testing.T, vb, semi []byte) {
		c, err := New(Config{Key: testKey(1)}, roleOf("payer"), p)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range []Event{OpenRequested{Deposit: 1000, PayeeSemi: EmptySemi(Config{Key: testKey(2)}, p.ChannelID)},
			ChainDone{Action: Deploy{}}, Replied{To: KindAnnounce, Voucher: vb, PayeeSemi: semi}} {
			if _, err := c.Step(t0, ev); err != nil {
				t.Fatalf("%T: %v", ev, err)
			}
		}
		rec := c.Record()
		if rec.HasVoucher && (!rec.VerifyVoucher(rec.Voucher) || rec.Voucher.Sent > rec.Limit) {
			t.Fatalf("adopted a voucher that is not ours to resume from: %+v", rec.Voucher)
		}
		if !(ton.SemiChannel{ChannelID: p.ChannelID}).Cell().Verify(p.KeyB, rec.PayeeSemi[:]) {
			t.Fatal("holds a payee semichannel signature that does not check")
		}
	})
}
