package ton

import (
	"errors"
	"math"
	"testing"
)

func TestCost(t *testing.T) {
	p := Prices{Prompt: 10, Cached: 2, Completion: 30, Reasoning: 40}
	cases := []struct {
		u    Usage
		coef uint32
		want uint64
	}{
		{Usage{Prompt: 100, Completion: 10}, CoefficientOne, 1000 + 300},
		{Usage{Prompt: 100, Cached: 60, Completion: 10, Reasoning: 5}, CoefficientOne, 400 + 120 + 300 + 200},
		{Usage{Completion: 1}, 1500, 45},
		{Usage{Completion: 1}, 1001, 31}, // 30.03 rounded up
		{Usage{}, 1234, 0},
	}
	for _, c := range cases {
		got, err := p.Cost(c.u, c.coef)
		if err != nil || got != c.want {
			t.Errorf("%+v x%d: %d %v, want %d", c.u, c.coef, got, err, c.want)
		}
	}
	if _, err := p.Cost(Usage{Prompt: 1, Cached: 2}, CoefficientOne); err == nil {
		t.Error("more cached than prompt tokens accepted")
	}
	if _, err := (Prices{Completion: math.MaxUint64}).Cost(Usage{Completion: 2}, CoefficientOne); !errors.Is(err, ErrOverflow) {
		t.Errorf("overflow: %v", err)
	}
	big, err := (Prices{Completion: math.MaxUint64 / 2}).Cost(Usage{Completion: 2}, 999)
	if err != nil || big == 0 {
		t.Errorf("large cost under a sub-unit coefficient: %d %v", big, err)
	}
	w, err := p.WithCommission(50)
	if err != nil || w.Completion != 32 || w.Prompt != 11 || w.Cached != 3 || w.Reasoning != 42 {
		t.Errorf("5%% commission: %+v %v", w, err)
	}
}

func TestCreditWindow(t *testing.T) {
	c := NewCredit(0)
	for range 10 {
		if err := c.Reserve(10, 100); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Reserve(1, 100); !errors.Is(err, ErrCreditExhausted) || c.Owed() != 100 {
		t.Fatalf("past the window: %v, owed %d", err, c.Owed())
	}
	c.Paid(60)
	if c.Owed() != 40 {
		t.Fatalf("owed %d after a voucher for 60", c.Owed())
	}
	c.Paid(50) // an older voucher changes nothing
	if c.Owed() != 40 {
		t.Fatalf("owed %d after an older voucher", c.Owed())
	}
	if err := c.Reserve(61, 100); err == nil || c.Owed() != 40 {
		t.Fatalf("one past the window: %v, owed %d", err, c.Owed())
	}
	if err := c.Reserve(60, 100); err != nil || c.Owed() != 100 {
		t.Fatalf("room again: %v, owed %d", err, c.Owed())
	}
	c.Release(30)
	if c.Owed() != 70 || c.Delivered() != 130 {
		t.Fatalf("after release: owed %d, delivered %d", c.Owed(), c.Delivered())
	}
	c.Release(1000) // never below what is paid
	if c.Owed() != 0 || c.Delivered() != 60 {
		t.Fatalf("over-release: owed %d, delivered %d", c.Owed(), c.Delivered())
	}
	c.Paid(500) // a payer that pays ahead may receive that much more
	if c.Owed() != 0 || c.Reserve(530, 100) != nil || c.Reserve(11, 100) == nil || c.Owed() != 90 {
		t.Fatalf("prepaid: owed %d", c.Owed())
	}
	huge := NewCredit(10) // a window near 2^64 does not wrap around
	if err := huge.Reserve(1<<40, ^uint64(0)); err != nil {
		t.Fatalf("huge window: %v", err)
	}
	if err := huge.Reserve(1, ^uint64(0)); err != nil {
		t.Fatalf("huge window, second item: %v", err)
	}
	// An item over the window goes only when nothing is owed, and then alone.
	big := NewCredit(0)
	if err := big.Reserve(500, 100); err != nil || big.Owed() != 500 {
		t.Fatalf("a lone big item: %v, owed %d", err, big.Owed())
	}
	if err := big.Reserve(1, 100); err == nil {
		t.Fatal("an item after a big one while it is unpaid")
	}
	big.Paid(450)
	if err := big.Reserve(500, 100); err == nil {
		t.Fatal("a big item while something is owed")
	}
	// A resumed payee starts from its durable voucher.
	r := NewCredit(500)
	if r.Owed() != 0 || r.PaidTotal() != 500 || r.Reserve(101, 100) != nil || r.Reserve(1, 100) == nil {
		t.Fatal("resumed credit")
	}
}

// A payer's settle writes off what never reached it; a payment that was in flight undoes the
// write-off; a refused item is released, but never value already paid.
func TestCreditReconciles(t *testing.T) {
	c := NewCredit(0)
	for range 9 {
		if err := c.Reserve(10, 100); err != nil {
			t.Fatal(err)
		}
	}
	c.Paid(50)
	// The payer says 60 pays all it received: 30 never reached it.
	if w := c.Settle(60); w != 30 || c.Owed() != 0 || c.Delivered() != 60 || c.WrittenOff() != 30 {
		t.Fatalf("settle wrote off %d: owed %d delivered %d written off %d", w, c.Owed(), c.Delivered(), c.WrittenOff())
	}
	// 20 of it was in flight after all, and is paid: it counts again, as delivered and paid.
	c.Paid(80)
	if c.Owed() != 0 || c.Delivered() != 80 || c.WrittenOff() != 10 {
		t.Fatalf("late payment: owed %d delivered %d written off %d", c.Owed(), c.Delivered(), c.WrittenOff())
	}
	// Paying beyond that is paying ahead, as before.
	c.Paid(100)
	if c.Delivered() != 90 || c.WrittenOff() != 0 || c.Reserve(110, 100) != nil || c.Owed() != 100 {
		t.Fatalf("pay ahead after a write-off: delivered %d written off %d owed %d", c.Delivered(), c.WrittenOff(), c.Owed())
	}
	// A settle that pays everything writes off nothing.
	if w := c.Settle(200); w != 0 || c.Owed() != 0 {
		t.Fatalf("settle of a paid-up channel wrote off %d", w)
	}
	// Release takes back an unpaid reservation, and never more than is owed.
	if err := c.Reserve(30, 100); err != nil {
		t.Fatal(err)
	}
	c.Release(50)
	if c.Owed() != 0 || c.Delivered() != 200 {
		t.Fatalf("release: owed %d delivered %d", c.Owed(), c.Delivered())
	}
}

func TestMeter(t *testing.T) {
	m := NewMeter(1000)
	due := 0
	for range 100 {
		if m.Receive(5, 64) {
			due++
			m.Signed(m.Received())
		}
	}
	if m.Received() != 1500 || due != 7 || m.Unpaid() != 500-7*65 {
		t.Fatalf("received %d, %d vouchers due, unpaid %d", m.Received(), due, m.Unpaid())
	}
	m.Signed(10) // older: ignored
	if m.Unpaid() != 500-7*65 {
		t.Fatal("an older signature lowered what is signed")
	}
}

// Payer and payee tabs agree, chunk by chunk, and their total is the usage's cost.
func TestTabTotalsTheCost(t *testing.T) {
	p := Prices{Prompt: 3, Cached: 1, Completion: 7, Reasoning: 5}
	for _, coef := range []uint32{1000, 333, 1499} {
		tab := NewTab(p, coef)
		var sum uint64
		for _, n := range []uint64{1, 2, 3, 1, 1, 7} {
			v, err := tab.Chunk(n)
			if err != nil {
				t.Fatal(err)
			}
			sum += v
		}
		u := Usage{Prompt: 40, Cached: 10, Completion: 15, Reasoning: 4}
		v, err := tab.Final(u)
		if err != nil {
			t.Fatal(err)
		}
		sum += v
		want, _ := p.Cost(u, coef)
		if sum != want || tab.Charged() != want {
			t.Fatalf("coefficient %d: tab %d (charged %d), cost %d", coef, sum, tab.Charged(), want)
		}
	}
	// A usage with fewer completion tokens than the chunks carried charges nothing more.
	tab := NewTab(p, 1000)
	tab.Chunk(10)
	if v, _ := tab.Final(Usage{Completion: 5}); v != 0 || tab.Charged() != 70 {
		t.Fatalf("short usage: %d more, %d charged", v, tab.Charged())
	}
	if tab.Per(256) != 256*7 {
		t.Fatalf("per 256: %d", tab.Per(256))
	}
}
