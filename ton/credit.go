package ton

import (
	"errors"
	"fmt"
)

// ErrCreditExhausted is returned when delivering more would leave the payer owing more than
// the credit window: the payee stops serving until a voucher arrives.
var ErrCreditExhausted = errors.New("ton: the payer is behind by more than the credit window")

// Credit is a payee's exposure on one channel, across every request on it: the value it has
// delivered, and what the payer's highest durable voucher pays. It never lets the difference
// exceed Window, so a payer that vanishes costs the payee at most Window. A pure state machine.
type Credit struct {
	window    uint64
	delivered uint64
	paid      uint64
}

// NewCredit starts a channel's credit with window (nanoTON) and the sent of the latest durable
// voucher (0 for a new channel). After a restart, what was delivered but not paid is not known
// any more; the payee resumes as if paid up to that voucher, having lost at most one window.
func NewCredit(window, paid uint64) *Credit {
	return &Credit{window: window, delivered: paid, paid: paid}
}

// Reserve records cost as delivered if that keeps the payer within the window, and refuses
// otherwise (state unchanged): call it before sending the tokens cost pays for.
func (c *Credit) Reserve(cost uint64) error {
	limit := c.paid + c.window
	if limit < c.paid {
		limit = ^uint64(0) // a window so large it cannot be reached
	}
	if c.delivered > limit || cost > limit-c.delivered {
		return fmt.Errorf("%w: owed %d, this chunk %d, window %d", ErrCreditExhausted, c.Owed(), cost, c.window)
	}
	c.delivered += cost
	return nil
}

// Release takes back cost reserved for tokens that were never delivered (the stream broke
// before they went out), so the payer is not asked to pay for them.
func (c *Credit) Release(cost uint64) { c.delivered -= min(cost, c.delivered) }

// Paid records that a voucher paying sent in total is durable; older or lower ones change
// nothing. A payer may pay ahead: that extends what may be delivered.
func (c *Credit) Paid(sent uint64) { c.paid = max(c.paid, sent) }

// Owed is what the payer owes now: delivered minus paid (0 when it paid ahead).
func (c *Credit) Owed() uint64 { return c.delivered - min(c.delivered, c.paid) }

// Delivered is the value delivered on the channel, cumulative.
func (c *Credit) Delivered() uint64 { return c.delivered }

// Meter tells a payer when to sign: it adds up the value received on a channel and says a
// voucher is due once the unpaid part reaches every (a quarter of the payee's window is a good
// choice: the payee never waits for a voucher unless the payer has stopped paying), and at the
// end of each response. A pure state machine.
type Meter struct {
	every    uint64
	received uint64
	signed   uint64
}

// NewMeter starts metering after signed (the cumulative sent of the last voucher).
func NewMeter(every, signed uint64) *Meter {
	return &Meter{every: max(every, 1), received: signed, signed: signed}
}

// Receive records value received and reports whether a voucher is due.
func (m *Meter) Receive(value uint64) bool {
	m.received += value
	return m.received-m.signed >= m.every
}

// Unpaid is the value received and not yet covered by a voucher.
func (m *Meter) Unpaid() uint64 { return m.received - m.signed }

// Received is the cumulative value received: the sent of the next voucher.
func (m *Meter) Received() uint64 { return m.received }

// Signed records that a voucher paying sent in total was signed.
func (m *Meter) Signed(sent uint64) { m.signed = max(m.signed, sent) }
