package node

import (
	"context"
	"errors"

	"github.com/cocoon-mesh/cocoon/ton"
)

// Reconciling what a payee counts as owed with what its payer received.
//
// A payee counts an item as delivered when it sends it; its payer counts it when it takes it.
// The two drift apart when an item never arrives: a stream breaks, the payer crashes and comes
// back knowing only its newest voucher, or the payer refuses an answer. Left alone, the drift
// piles up until the payee finds its payer a whole window behind on every request, and the
// channel jams. So:
//   - a payer that refuses an answer says how many of its tokens it accepts; both sides take
//     back the rest (call.reject, billing.refused, metering.refuse);
//   - a payer billed for more than it received answers with its newest voucher as settled,
//     and a payer resuming a channel after a restart presents it: either way the voucher pays
//     all it received, and the payee writes off what it counted beyond (writeOff).
//
// A write-off takes the payer's word, so it is bounded: at most what is owed, which Reserve
// keeps within one window or one item costlier than the window (a long prompt, billed with
// the answer's end), and in all no more than writeOffWindows such exposures (a window, or the
// costliest item delivered on the channel, whichever is more) or a 1/writeOffShare part of
// what the payer paid, whichever is more. Counting the costliest item matters: a stopped
// worker whose answers' ends for long prompts went into streams its caller had cut would
// otherwise exhaust a budget of windows in two write-offs, and wait for payment that never
// comes. A payment that arrives after
// all (the value was in flight) undoes the write-off (ton.Credit.Paid).

// Bounds on what a payee writes off on a payer's word, net of what was paid after all.
const (
	writeOffWindows = 4
	writeOffShare   = 16
)

// release takes back value counted as delivered on c that its payer refused, and wakes the
// answers waiting for credit.
func (c *inChan) release(v uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.credit.Release(v)
	c.wake()
}

// wake lets answers waiting for credit on c try again; the caller holds c.mu.
func (c *inChan) wake() {
	close(c.paid)
	c.paid = make(chan struct{})
}

// settled takes a voucher a payer sent in answer to a bill: it pays everything the payer
// received, so what else we count as owed never reached it.
func (n *Node) settled(ctx context.Context, c *inChan, b []byte) {
	err := n.accept(ctx, c, b)
	if err != nil && !errors.Is(err, errSuperseded) {
		if n.ctx.Err() == nil {
			n.log.Warn("settling voucher refused", "payer", c.peer.String(), "err", err)
		}
		return
	}
	v, _ := ton.DecodeVoucher(b) // accept decoded it
	n.writeOff(c, v, "the payer settled a bill")
}

// writeOff takes the payer's word that voucher v pays all it received on c: what we count as
// owed beyond it never reached the payer, and is written off, within the bounds above. A claim
// older than the newest voucher we hold is stale and changes nothing.
func (n *Node) writeOff(c *inChan, v ton.Voucher, why string) {
	c.mu.Lock()
	if latest, ok := c.payee.Latest(); ok && v.Seqno < latest.Seqno {
		c.mu.Unlock()
		return
	}
	owed := c.credit.Owed()
	if owed == 0 || v.Sent < c.credit.PaidTotal() {
		c.mu.Unlock()
		return
	}
	budget := max(writeOffWindows*max(c.window, c.largest), c.credit.PaidTotal()/writeOffShare)
	if c.credit.WrittenOff()+owed > budget {
		c.disputes++
		total := c.credit.WrittenOff()
		c.mu.Unlock()
		n.log.Warn("payer disputes more than this node takes on trust: not writing off",
			"payer", c.peer.String(), "owed", owed, "written_off", total, "limit", budget,
			"hint", "it stays owed: the payer must pay it (its answers wait for payment meanwhile)")
		return
	}
	w := c.credit.Settle(v.Sent)
	total := c.credit.WrittenOff()
	c.wake()
	c.mu.Unlock()
	n.log.Info("wrote off value the payer never received", "payer", c.peer.String(), "nanoton", w,
		"written_off", total, "why", why)
}
