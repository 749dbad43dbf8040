package node

import (
	"context"
	"sync"

	"github.com/cocoon-mesh/cocoon/node/stream"
	"github.com/cocoon-mesh/cocoon/node/wire"
	"github.com/cocoon-mesh/cocoon/ton"
)

// One answer's payments, on each side of a hop: the payee's billing (what it counts as
// delivered, within the payer's credit) and the payer's metering (what it received, and the
// vouchers that pay for it).

// billing is a payee's side of one answer: the tab it keeps at the quoted prices, and the
// channel it is paid on. A nil *billing (payments off) lets everything through. The answer's
// handler bills as it sends; a refusal from the payer (on the caller watcher) takes back what
// was counted beyond what the payer accepted, and bills nothing more.
type billing struct {
	ch     *inChan
	window uint64
	bill   func(owed uint64) error // asks the payer for a voucher

	mu       sync.Mutex
	tab      *ton.Tab
	reserved uint64 // value counted as delivered on the channel for this answer
	last     uint64 // the latest charge's value, until the next one
	dead     bool   // refused: nothing more is billed
}

// total is what b counted as delivered for its answer, nanoTON (0 when payments are off).
func (b *billing) total() uint64 {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.reserved
}

// errRefused ends billing for an answer its payer refused.
var errRefused = wire.Errorf(wire.CodeCancelled, "the caller refused the answer")

// newBilling starts an answer billed at q on channel c (nil when payments are off).
func newBilling(c *inChan, q wire.Quote, bill func(owed uint64) error) *billing {
	if c == nil {
		return nil
	}
	tab := ton.NewTab(q.Prices, q.Coefficient)
	window := tab.Per(uint64(c.cs.cfg.WindowTokens))
	c.began(window)
	return &billing{ch: c, tab: tab, window: window, bill: bill}
}

// chunk charges tokens completion tokens, waiting for payment if the payer is behind.
func (b *billing) chunk(ctx context.Context, tokens uint32) error {
	if b == nil {
		return nil
	}
	return b.charge(ctx, func(t *ton.Tab) (uint64, error) { return t.Chunk(uint64(tokens)) })
}

// final charges the rest of the answer's cost for its usage.
func (b *billing) final(ctx context.Context, u wire.Usage) error {
	if b == nil {
		return nil
	}
	return b.charge(ctx, func(t *ton.Tab) (uint64, error) { return t.Final(tonUsage(u)) })
}

// charge reserves on the channel what f charges on the tab.
func (b *billing) charge(ctx context.Context, f func(*ton.Tab) (uint64, error)) error {
	b.mu.Lock()
	if b.dead {
		b.mu.Unlock()
		return errRefused
	}
	v, err := f(b.tab)
	b.mu.Unlock()
	if err != nil {
		return wire.Errorf(wire.CodeInternal, "billing: %v", err)
	}
	if err := b.ch.reserve(ctx, v, b.window, b.bill); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.reserved, b.last = b.reserved+v, v
	if b.dead { // refused while we waited: what this reserved goes back too
		b.ch.release(v)
	}
	return nil
}

// unsent takes back the latest charge: what it paid for never went out (the stream broke), so
// the payer is not asked for it.
func (b *billing) unsent() {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.dead && b.last > 0 {
		b.reserved -= b.last
		b.ch.release(b.last)
		b.last = 0
	}
}

// refused takes back what the answer counted beyond the value of its first tokens completion
// tokens, the part the payer accepted, and stops billing it.
func (b *billing) refused(tokens uint64) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dead {
		return
	}
	b.dead = true
	if accepted := b.tab.Per(tokens); b.reserved > accepted {
		b.ch.release(b.reserved - accepted)
	}
}

func tonUsage(u wire.Usage) ton.Usage {
	return ton.Usage{Prompt: uint64(u.Prompt), Cached: uint64(min(u.Cached, u.Prompt)), Completion: uint64(u.Completion), Reasoning: uint64(u.Reasoning)}
}

// metering is a payer's side of one answer: the tab it keeps at the quoted prices, on the
// channel it pays on. A nil *metering (payments off) pays nothing.
type metering struct {
	ch    *outChan
	tab   *ton.Tab
	every uint64
	// metered: value went to the channel, which may have paid a voucher ahead on the stream.
	metered bool
	// refused: we refused the answer's value beyond what we accepted, and take no more.
	refused bool
}

// newMetering starts metering an answer quoted at q on c (nil when payments are off).
func newMetering(c *outChan, q wire.Quote) *metering {
	if c == nil {
		return nil
	}
	tab := ton.NewTab(q.Prices, q.Coefficient)
	return &metering{ch: c, tab: tab, every: c.every(tab)}
}

// refuse takes back, from what the channel received, the value of this answer beyond its first
// tokens completion tokens: we refused the rest, and pay only for the part we accepted (what
// was paid already stays paid; the payee, told the same count, agrees).
func (m *metering) refuse(tokens uint64) {
	if m == nil || m.refused {
		return
	}
	m.refused = true
	taken := m.tab.Charged() // what the channel received of this answer
	m.ch.refuse(taken - min(taken, m.tab.Per(tokens)))
}

// refuseOn refuses the answer on call c, accepting its first tokens completion tokens, for why:
// the callee takes back what it counted beyond them, the call is left to end, and what we
// metered beyond them is taken back too (m nil: payments off, only the refusal).
func (m *metering) refuseOn(c *stream.Call, tokens uint64, why *wire.Error) {
	c.Reject(tokens, why)
	c.Leave()
	m.refuse(tokens)
}

// chunk records tokens received on call c: when a voucher is due, the channel pays one ahead
// of the answer, on c, while the answer goes on.
func (m *metering) chunk(ctx context.Context, c *stream.Call, tokens uint32) error {
	if m == nil {
		return nil
	}
	v, err := m.tab.Chunk(uint64(tokens))
	if err != nil {
		return m.failed(err)
	}
	m.ch.receive(v, m.every, c)
	m.metered = true
	return nil
}

// finish closes the answer's stream c once a voucher paid ahead on it went out: the payee
// reads its caller's frames until then, so the voucher arrives on the stream that earned it.
func (m *metering) finish(c *stream.Call) {
	if m == nil || !m.metered {
		c.Finish()
		return
	}
	c.Detach() // the answer is whole: the request ending no longer closes the call
	m.ch.after(c.Finish)
}

// final records the rest of the answer's cost; what is unpaid is settled shortly after.
func (m *metering) final(u wire.Usage) error {
	if m == nil {
		return nil
	}
	v, err := m.tab.Final(tonUsage(u))
	if err != nil {
		return err
	}
	m.ch.final(v) // paid once the answer ends, or ahead with the next
	return nil
}

// billNow pays everything received on the answer's stream c, because the payee is waiting.
// The voucher goes as settled: it pays all we received, so whatever else the payee counts as
// owed never reached us (a stream broke, or we restarted), and it may write that off. A
// payment that fails ends the call.
func (m *metering) billNow(ctx context.Context, c *stream.Call) error {
	if err := m.ch.bill(c); err != nil {
		c.Abort()
		return m.failed(err)
	}
	return nil
}

// failed is a payment that could not be made, as the answer's error.
func (m *metering) failed(err error) error {
	return wire.Errorf(wire.CodeInternal, "paying %s %s: %v", m.ch.cs.payees, m.ch.peer.String(), err)
}
