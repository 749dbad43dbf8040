package ton

import (
	"errors"
	"fmt"
)

// ErrCreditExhausted is returned when delivering more would leave the payer owing more than
// the credit window: the payee stops serving until a voucher arrives.
var ErrCreditExhausted = errors.New("ton: the payer is behind by more than the credit window")

// Credit is a payee's exposure on one channel, across every request on it: the value it has
// delivered, and what the payer's highest durable voucher pays. It keeps the difference within
// the credit window, so a payer that vanishes costs the payee at most one window (or one item,
// where a single item costs more; see Reserve). A pure state machine.
type Credit struct {
	delivered  uint64
	paid       uint64
	writtenOff uint64 // value taken off delivered by Settle and not paid since
}

// NewCredit starts a channel's credit at the sent of the latest durable voucher (0 for a new
// channel). After a restart, what was delivered but not paid is not known any more; the payee
// resumes as if paid up to that voucher, having lost at most one window.
func NewCredit(paid uint64) *Credit {
	return &Credit{delivered: paid, paid: paid}
}

// Reserve records cost as delivered if the payer then owes at most window, and refuses
// otherwise (state unchanged): call it before sending what cost pays for. The window is passed
// each time because it is priced per request (so many tokens at that request's price). An item
// costing more than the window on its own (the prompt of a long request, billed with the
// answer's end) is allowed only when nothing is owed, so it is the whole exposure.
func (c *Credit) Reserve(cost, window uint64) error {
	owed := c.Owed()
	if owed > 0 && (owed > window || cost > window-owed) {
		return fmt.Errorf("%w: owed %d, this item %d, window %d", ErrCreditExhausted, owed, cost, window)
	}
	if cost > ^uint64(0)-c.delivered {
		return fmt.Errorf("%w: delivered value overflows", ErrCreditExhausted)
	}
	c.delivered += cost
	return nil
}

// Release takes back cost reserved for value the payer never took (the stream broke before it
// went out, or the payer refused it), so the payer is not asked to pay for it. It never takes
// back value already paid for.
func (c *Credit) Release(cost uint64) {
	c.delivered -= min(cost, c.delivered-min(c.delivered, c.paid))
}

// Paid records that a voucher paying sent in total is durable; older or lower ones change
// nothing. A payer may pay ahead: that extends what may be delivered. Value written off that
// the payer pays after all (it was in flight when the payer settled) counts as delivered
// again, so a write-off raced by a payment costs nothing.
func (c *Credit) Paid(sent uint64) {
	c.paid = max(c.paid, sent)
	if back := min(c.writtenOff, c.paid-min(c.paid, c.delivered)); back > 0 {
		c.delivered += back
		c.writtenOff -= back
	}
}

// Settle takes the payer's word that sent pays everything it received: what was delivered
// beyond that and beyond what is paid never reached it (a stream broke, or either side
// restarted), so it is written off, and returned. The payee bounds what it takes on trust: the
// owed value it writes off is at most one window (Reserve's bound).
func (c *Credit) Settle(sent uint64) (writtenOff uint64) {
	c.Paid(sent)
	w := c.Owed()
	c.delivered -= w
	c.writtenOff += w
	return w
}

// WrittenOff is the value Settle wrote off and the payer has not paid since.
func (c *Credit) WrittenOff() uint64 { return c.writtenOff }

// Owed is what the payer owes now: delivered minus paid (0 when it paid ahead).
func (c *Credit) Owed() uint64 { return c.delivered - min(c.delivered, c.paid) }

// Delivered is the value delivered on the channel, cumulative.
func (c *Credit) Delivered() uint64 { return c.delivered }

// PaidTotal is the sent of the highest durable voucher.
func (c *Credit) PaidTotal() uint64 { return c.paid }

// Meter tells a payer when to sign: it adds up the value received on a channel and says a
// voucher is due once the unpaid part reaches every (a quarter of the payee's window is a good
// choice: the payee never waits for a voucher unless the payer has stopped paying). A pure
// state machine.
type Meter struct {
	received uint64
	signed   uint64
}

// NewMeter starts metering after signed (the cumulative sent of the last voucher).
func NewMeter(signed uint64) *Meter {
	return &Meter{received: signed, signed: signed}
}

// Receive records value received and reports whether a voucher is due: whether what is
// unpaid has reached every (which, like the window, is priced per request).
func (m *Meter) Receive(value, every uint64) bool {
	m.received += value
	return m.received-m.signed >= max(every, 1)
}

// Unpaid is the value received and not yet covered by a voucher.
func (m *Meter) Unpaid() uint64 { return m.received - min(m.received, m.signed) }

// Received is the cumulative value received: the sent of the next voucher.
func (m *Meter) Received() uint64 { return m.received }

// Refuse takes back value received that the payer refused (it told the payee so): it is not
// paid for. Value already signed for stays paid.
func (m *Meter) Refuse(value uint64) { m.received -= min(value, m.Unpaid()) }

// Signed records that a voucher paying sent in total was signed.
func (m *Meter) Signed(sent uint64) { m.signed = max(m.signed, sent) }

// Tab meters one response at the prices quoted for it. Each chunk is worth the cost of the
// completion tokens so far minus what the tab already charged; the end adds whatever the
// whole usage costs beyond that. Payer and payee keep the same tab from the same token
// counts, so they agree to the nanoTON, and the total is exactly Prices.Cost of the usage
// (or what the chunks charged, if a backend's usage counts fewer completion tokens).
type Tab struct {
	prices      Prices
	coefficient uint32
	completion  uint64 // completion tokens charged so far
	charged     uint64 // value charged so far
}

// NewTab starts a response's tab at prices and coefficient (per mille).
func NewTab(prices Prices, coefficient uint32) *Tab {
	return &Tab{prices: prices, coefficient: coefficient}
}

// Chunk charges tokens more completion tokens and returns their value.
func (t *Tab) Chunk(tokens uint64) (uint64, error) {
	total, err := t.prices.Cost(Usage{Completion: t.completion + tokens}, t.coefficient)
	if err != nil {
		return 0, err
	}
	t.completion += tokens
	return t.charge(total), nil
}

// Final charges the rest of the response's cost for its whole usage and returns that value.
func (t *Tab) Final(u Usage) (uint64, error) {
	total, err := t.prices.Cost(u, t.coefficient)
	if err != nil {
		return 0, err
	}
	return t.charge(total), nil
}

// charge brings what the tab charged up to total (never down) and returns the difference.
func (t *Tab) charge(total uint64) uint64 {
	v := total - min(total, t.charged)
	t.charged += v
	return v
}

// Charged is the value charged so far.
func (t *Tab) Charged() uint64 { return t.charged }

// Per is the value of n completion tokens at the tab's prices: how windows are sized.
func (t *Tab) Per(n uint64) uint64 {
	v, err := t.prices.Cost(Usage{Completion: n}, t.coefficient)
	if err != nil {
		return ^uint64(0)
	}
	return v
}
