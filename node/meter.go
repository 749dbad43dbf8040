package node

import (
	"context"
	"sync"

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
	n      *Node
	ch     *inChan
	window uint64
	bill   func(owed uint64) error // asks the payer for a voucher

	mu       sync.Mutex
	tab      *ton.Tab
	reserved uint64 // value counted as delivered on the channel for this answer
	last     uint64 // the latest charge's value, until the next one
	dead     bool   // refused: nothing more is billed
}

// errRefused ends billing for an answer its payer refused.
var errRefused = wire.Errorf(wire.CodeCancelled, "the caller refused the answer")

// newBilling starts an answer billed at q on channel c (nil when payments are off).
func (n *Node) newBilling(c *inChan, q wire.Quote, bill func(owed uint64) error) *billing {
	if c == nil {
		return nil
	}
	tab := ton.NewTab(q.Prices, q.Coefficient)
	window := tab.Per(uint64(n.cfg.Payments.WindowTokens))
	c.mu.Lock()
	c.window = window
	c.mu.Unlock()
	return &billing{n: n, ch: c, tab: tab, window: window, bill: bill}
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
	if err := b.n.reserve(ctx, b.ch, v, b.window, b.bill); err != nil {
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
	n     *Node
	ch    *outChan
	tab   *ton.Tab
	every uint64
	due   *dueVoucher // the last voucher this answer had paid ahead (nil: none)
	// refused: we refused the answer's value beyond what we accepted, and take no more.
	refused bool
}

// newMetering starts metering an answer quoted at q on c (nil when payments are off).
func (n *Node) newMetering(c *outChan, q wire.Quote) *metering {
	if c == nil {
		return nil
	}
	tab := ton.NewTab(q.Prices, q.Coefficient)
	return &metering{n: n, ch: c, tab: tab, every: c.every(tab)}
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
func (m *metering) refuseOn(c *call, tokens uint64, why *wire.Error) {
	c.reject(tokens, why)
	c.leave()
	m.refuse(tokens)
}

// chunk records tokens received and, when a voucher is due, has one paid ahead of the answer.
func (m *metering) chunk(ctx context.Context, c *call, tokens uint32) error {
	v, err := m.tab.Chunk(uint64(tokens))
	if err != nil {
		return m.send(ctx, c, nil, err)
	}
	if m.ch.receive(v, m.every) {
		m.due = &dueVoucher{c: c, every: m.every, done: make(chan struct{})}
		m.n.payAhead(m.ch, m.due)
	}
	return nil
}

// dueVoucher is an answer that found a voucher due: the stream it goes out on, and the
// answer's voucher spacing.
type dueVoucher struct {
	c     *call
	every uint64
	done  chan struct{} // closed once the voucher was sent on c, or left to another stream
}

// finish closes the answer's stream c once a voucher paid ahead on it went out: the payee
// reads its caller's frames until then, so the voucher arrives on the stream that earned it.
func (m *metering) finish(c *call) {
	if m == nil || m.due == nil {
		c.finish()
		return
	}
	select {
	case <-m.due.done: // sent already
		c.finish()
		return
	default:
	}
	c.stop() // the answer is whole: the request ending no longer closes the call
	d := m.due
	if !m.n.life.Go(func() {
		<-d.done
		c.finish()
	}) {
		c.finish() // the node is closing: no voucher goes out now
	}
}

// payAhead signs, persists and sends a due voucher in the background, so an answer never
// waits on the disk for a payment its payee does not need yet (it is paid a quarter window
// early). One runs per channel at a time; value received meanwhile is paid when it ends, on
// the newest due answer's stream. A voucher that finds its stream gone, or a failure, is left
// to settleLater; a payee that runs short meanwhile bills, and billNow pays in line.
func (n *Node) payAhead(ch *outChan, d *dueVoucher) {
	ch.mu.Lock()
	if ch.due != nil {
		close(ch.due.done) // the newer answer's voucher covers it
	}
	ch.due = d
	if ch.ahead {
		ch.mu.Unlock()
		return
	}
	ch.ahead = true
	ch.mu.Unlock()
	if !n.life.Go(func() {
		for {
			ch.mu.Lock()
			d := ch.due
			ch.due = nil
			if d == nil {
				ch.ahead = false
				ch.mu.Unlock()
				return
			}
			ch.mu.Unlock()
			// Persisted on the node's context: a voucher signed as the request is cancelled is kept.
			vb, err := n.pay(n.ctx, ch, false, d.every)
			if err != nil && n.ctx.Err() == nil {
				n.log.Warn("cannot pay ahead on channel", "payee", ch.peer.String(), "err", err)
			}
			// A cancelled answer's call is closed for writing: the send fails.
			if err != nil || (vb != nil && d.c.send(wire.FramePay, vb) != nil) {
				n.settleLater(ch)
			}
			close(d.done)
		}
	}) { // the node is closing: nothing is paid ahead now
		ch.mu.Lock()
		ch.ahead, ch.due = false, nil
		ch.mu.Unlock()
		close(d.done)
	}
}

// final records the rest of the answer's cost; what is unpaid is settled shortly after.
func (m *metering) final(u wire.Usage) error {
	v, err := m.tab.Final(tonUsage(u))
	if err != nil {
		return err
	}
	m.ch.receive(v, ^uint64(0)) // paid once the answer ends (donePaying), or ahead with the next
	return nil
}

// billNow pays everything received on the answer's stream c, because the payee is waiting.
// The voucher goes as settled: it pays all we received, so whatever else the payee counts as
// owed never reached us (a stream broke, or we restarted), and it may write that off.
func (m *metering) billNow(ctx context.Context, c *call) error {
	vb, err := m.n.pay(ctx, m.ch, true, 0)
	if err == nil && vb == nil {
		vb, err = m.ch.latest() // all paid, perhaps on a stream the payee has not read yet
	}
	if err != nil || vb == nil {
		return m.send(ctx, c, vb, err)
	}
	_ = c.send(wire.FrameSettled, vb) // a cancelled request takes nothing more: settle pays later
	return nil
}

// send passes a durable voucher on the answer's stream c. A cancelled request's stream takes
// no more frames (or is gone): settle sends the voucher later.
func (m *metering) send(ctx context.Context, c *call, vb []byte, err error) error {
	if err != nil {
		payee := "worker"
		if m.n.cfg.Role == RoleClient {
			payee = "proxy"
		}
		return wire.Errorf(wire.CodeInternal, "paying %s %s: %v", payee, m.ch.peer.String(), err)
	}
	if vb != nil && ctx.Err() == nil {
		_ = c.send(wire.FramePay, vb)
	}
	return nil
}
