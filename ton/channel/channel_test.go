package channel

import (
	"errors"
	"testing"
	"time"

	"github.com/cocoon-mesh/cocoon/ton"
	"github.com/cocoon-mesh/cocoon/ton/chanstore"
)

func TestNewRefusesAKeyThatIsNotThisSide(t *testing.T) {
	p := testParams(testKey(1), testKey(2), 3600, 60)
	if _, err := New(Config{Key: testKey(2)}, chanstore.Payer, p); err == nil {
		t.Fatal("a payer channel took the payee's key")
	}
	if _, err := New(Config{Key: testKey(1)}, chanstore.Payee, p); err == nil {
		t.Fatal("a payee channel took the payer's key")
	}
	if _, err := New(Config{}, chanstore.Payer, p); err == nil {
		t.Fatal("a channel took no key")
	}
	if _, err := New(Config{Key: testKey(1), FlushAfter: -time.Second}, chanstore.Payer, p); err == nil {
		t.Fatal("a channel took a negative duration")
	}
}

func TestResumeRefusesAStoredVoucherThatDoesNotCheck(t *testing.T) {
	p := testParams(testKey(1), testKey(2), 3600, 60)
	rec, err := chanstore.NewRecord(chanstore.Payee, p, 1000, 0)
	if err != nil {
		t.Fatal(err)
	}
	rec.Voucher, rec.HasVoucher = ton.SignVoucher(testKey(9), p.ChannelID, 1, 10), true
	if _, err := Resume(Config{Key: testKey(2)}, rec); !errors.Is(err, ton.ErrBadSignature) {
		t.Fatalf("resumed a forged stored voucher: %v", err)
	}
}

// The events of the other role, and those that do not apply, are refused without effects.
func TestEventsOfTheOtherRoleAreRefused(t *testing.T) {
	p := testParams(testKey(1), testKey(2), 3600, 60)
	c, err := New(Config{Key: testKey(2)}, chanstore.Payee, p)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range []Event{OpenRequested{}, ResumeRequested{}, Received{}, Billed{}, Rotate{}, AnswerEnded{}, CloseSigned{}} {
		if eff, err := c.Step(t0, ev); !errors.Is(err, ErrWrongRole) || !eff.Empty() {
			t.Errorf("%T on a payee: %v, %+v", ev, err, eff)
		}
	}
	for _, ev := range []Event{VoucherReceived{}, Settled{}, Delivered{}, CloseRequested{}, Replied{To: KindPay}, ChainDone{Action: Finish{}}, PersistFailed{}} {
		if eff, err := c.Step(t0, ev); err == nil || !eff.Empty() {
			t.Errorf("%T before the channel exists: %v, %+v", ev, err, eff)
		}
	}
}

// Deadline says when a Tick has something to do: the pending settle, or the end of a
// bounded drain, whichever comes first.
func TestDeadline(t *testing.T) {
	p := testParams(testKey(1), testKey(2), 3600, 60)
	c, err := New(Config{Key: testKey(1), FlushAfter: time.Second}, chanstore.Payer, p)
	if err != nil {
		t.Fatal(err)
	}
	steps := []Event{OpenRequested{Deposit: 1000, PayeeSemi: EmptySemi(Config{Key: testKey(2)}, p.ChannelID)},
		ChainDone{Action: Deploy{}}, Replied{To: KindAnnounce}, AnswerBegan{}, AnswerBegan{}}
	for _, ev := range steps {
		if _, err := c.Step(t0, ev); err != nil {
			t.Fatalf("%T: %v", ev, err)
		}
	}
	if d := c.Deadline(); !d.IsZero() {
		t.Fatalf("deadline %v with nothing pending", d)
	}
	if _, err := c.Step(t0, Rotate{}); err != nil {
		t.Fatal(err)
	}
	if d := c.Deadline(); !d.Equal(t0.Add(ReplacedDrain)) {
		t.Fatalf("deadline %v, want the drain's bound", d.Sub(t0))
	}
	if _, err := c.Step(t0, Received{Value: 5, Final: true}); err != nil {
		t.Fatal(err)
	}
	if d := c.Deadline(); !d.Equal(t0.Add(time.Second)) {
		t.Fatalf("deadline %v, want the settle's", d.Sub(t0))
	}
}

// VoucherDue says exactly when a Received signs a voucher.
func TestVoucherDueIsWhenReceivedPays(t *testing.T) {
	keyA, keyB := testKey(1), testKey(2)
	p := testParams(keyA, keyB, 3600, 60)
	cfg := Config{Key: keyA, FlushAfter: time.Second}
	c, err := New(cfg, chanstore.Payer, p)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1e9, 0)
	for _, ev := range []Event{OpenRequested{Deposit: 10000, PayeeSemi: EmptySemi(Config{Key: keyB}, p.ChannelID)},
		ChainDone{Action: Deploy{}}, Replied{To: KindAnnounce}, AnswerBegan{}} {
		if _, err := c.Step(now, ev); err != nil {
			t.Fatalf("%T: %v", ev, err)
		}
	}
	paid := 0
	for _, v := range []uint64{10, 20, 30, 1, 60, 0, 100} {
		due := c.VoucherDue(v, 50)
		eff, err := c.Step(now, Received{Value: v, Every: 50, Stream: "s"})
		if err != nil {
			t.Fatal(err)
		}
		if wrote := len(eff.Persist) > 0; wrote != due {
			t.Fatalf("value %d: VoucherDue %t, but the Step wrote %t", v, due, wrote)
		}
		if due {
			paid++
		}
	}
	if paid != 3 {
		t.Fatalf("%d vouchers for 221 at every 50, want 3", paid)
	}
}
