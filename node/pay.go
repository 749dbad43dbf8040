package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cocoon-mesh/cocoon/node/stream"
	"github.com/cocoon-mesh/cocoon/node/wire"
	"github.com/cocoon-mesh/cocoon/ton"
	"github.com/cocoon-mesh/cocoon/ton/channel"
	"github.com/cocoon-mesh/cocoon/ton/chanstore"
)

// The data path's side of the payment channels: what an answer posts into its channel's
// owner. A payer's answer counts itself (begin, end), meters what it receives (receive,
// final, refuse) and pays when billed (bill); a payee's serves within the payer's credit
// (reserve, release) and takes the vouchers its caller sends (frames). Nothing here waits on
// the disk but a bill and a reservation: a voucher due is signed, made durable and sent on
// the answer's stream by the owner, while the answer goes on.
//
// Reconciling what a payee counts as owed with what its payer received: the two drift apart
// when an item never arrives (a stream breaks, the payer restarts knowing only its newest
// voucher, or refuses an answer). So a payer that refuses an answer says how many of its
// tokens it accepts, and both sides take back the rest (stream.Call.Reject, billing.refused,
// metering.refuse); a payer billed for more than it received answers with its newest voucher
// as settled, and a payer resuming a channel presents it: either way the payee writes off
// what it counted beyond, within the bounds ton/channel keeps (WriteOffWindows,
// WriteOffShare).

// outChan is a channel this node pays on, as an answer holds it.
type outChan struct{ *chanOwner }

// inChan is a channel paying this node, as an answer holds it.
type inChan struct{ *chanOwner }

// errSpent refuses an answer on a channel whose deposit is spent; the next one takes it.
var errSpent = errors.New("the deposit on the channel is spent")

// payOn returns the channel to pay payee p on for one answer, counted: the caller calls end
// when the answer ends. A channel whose deposit runs low is replaced meanwhile.
func (cs *channels) payOn(ctx context.Context, p peer.ID) (*outChan, error) {
	for range 3 { // a channel being replaced refuses new answers: take the next one
		c, err := cs.channelTo(ctx, p, false)
		if err != nil {
			return nil, err
		}
		switch err := c.begin(); {
		case err == nil:
			return c, nil
		case errors.Is(err, errSpent):
			return nil, fmt.Errorf("the deposit on the channel to %s is spent", p.String())
		case !errors.Is(err, channel.ErrStopped) && !errors.Is(err, errChannelGone):
			return nil, err
		}
	}
	return nil, fmt.Errorf("the channel to %s is being replaced", p.String())
}

// begin counts an answer paid on c.
func (c *outChan) begin() error {
	var err error
	if e := c.ask(func() {
		var eff channel.Effects
		if eff, err = c.step(channel.AnswerBegan{}); err == nil && hasNote(eff, channel.NoteSpent) {
			err = errSpent
		}
	}); e != nil {
		return e
	}
	return err
}

// end ends an answer counted by payOn; what it left unpaid is settled once no answer on c is
// under way.
func (c *outChan) end() { c.do(func() { _, _ = c.step(channel.AnswerEnded{}) }) }

// every is how much value this channel's payer lets go unpaid before signing, for an answer
// billed at tab: a quarter of the payee's window, so the payee never waits on a paying payer.
func (c *outChan) every(tab *ton.Tab) uint64 { return tab.Per(uint64(c.terms.WindowTokens) / 4) }

// final meters the rest of an answer's cost, paid once the answer ended.
func (c *outChan) final(value uint64) {
	c.do(func() { _, _ = c.step(channel.Received{Value: value, Final: true}) })
}

// refuse takes back value received that we refused; the next settle tells the payee.
func (c *outChan) refuse(value uint64) {
	c.do(func() { _, _ = c.step(channel.Refused{Value: value}) })
}

// bill pays everything received at once, as settled, on the billed answer's call s.
func (c *outChan) bill(s *stream.Call) error {
	var err error
	if e := c.ask(func() { _, err = c.step(channel.Billed{Stream: s}) }); e != nil {
		return e
	}
	return err
}

// after runs f once what was posted to c before has run: a voucher due is on its stream.
func (c *outChan) after(f func()) {
	if !c.inline(f) && !c.post(f) {
		f()
	}
}

// began records the credit window of an answer billed on c, in nanoTON: what bounds what
// it writes off on its payer's word.
func (c *inChan) began(window uint64) {
	c.do(func() { _, _ = c.step(channel.AnswerBegan{Window: window}) })
}

// errChannelClosing refuses vouchers and answers on a channel being closed.
var errChannelClosing = wire.Errorf(wire.CodePayment, "the payment channel is closing: open a new one")

// waitLogEvery spaces the log lines saying a channel's answers wait for payment.
const waitLogEvery = time.Minute

// paymentWait bounds how long an answer waits for a payer that fell behind.
const paymentWait = 10 * time.Second

// rebillEvery is how often a payee waiting for payment bills its payer again: a bill the
// payer answered before the value it is behind on reached it (an answer's end still on its
// way, which the payer settles only once its answers ended) would otherwise hold the item
// for the whole of paymentWait.
const rebillEvery = time.Second

// reserve lets an item worth cost go out on c within window, waiting for payment when the
// payer is behind: bill asks for it (with what is owed), again every rebillEvery.
func (c *inChan) reserve(ctx context.Context, cost, window uint64, bill func(owed uint64) error) error {
	owed, paid, err := c.deliver(cost, window, true)
	if done, err := reserved(err); done {
		return err
	}
	if err := bill(owed); err != nil {
		return context.Canceled // the payer is gone
	}
	t := c.cs.clock.Timer(paymentWait)
	defer t.Stop()
	again := c.cs.clock.Ticker(rebillEvery)
	defer again.Stop()
	for {
		select {
		case <-paid:
		case <-again.C:
			if err := bill(owed); err != nil {
				return context.Canceled
			}
			continue
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-t.C:
			c.cs.log.Warn("payer stopped paying; ending its answer", "payer", c.peer.String(), "owed", owed)
			return wire.Errorf(wire.CodePayment, "no payment for %d nanoTON owed within %s", owed, paymentWait)
		}
		owed, paid, err = c.deliver(cost, window, false)
		if done, err := reserved(err); done {
			return err
		}
	}
}

// reserved says whether a reservation's outcome err ends the wait for credit, and with what.
func reserved(err error) (bool, error) {
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, channel.ErrClosing):
		return true, errChannelClosing
	case !errors.Is(err, ton.ErrCreditExhausted):
		return true, err
	}
	return false, nil
}

// deliver reserves cost on c's credit (Delivered). Refused for want of credit, it returns
// what is owed and a channel closed once credit may have room. With first, it counts a wait
// when the payer was a whole window behind as the item came (as the channel's status showed
// it then): a voucher being made durable meanwhile still held the item back.
func (c *inChan) deliver(cost, window uint64, first bool) (uint64, <-chan struct{}, error) {
	behind := first && c.behind(cost, window)
	var owed uint64
	var paid <-chan struct{}
	var err error
	if e := c.ask(func() {
		_, err = c.step(channel.Delivered{Cost: cost, Window: window})
		exhausted := errors.Is(err, ton.ErrCreditExhausted)
		if exhausted {
			owed, paid, c.paidOut = c.ch.Counts().Owed, c.paid, true
		}
		if first && (behind || exhausted) {
			c.waited()
		}
	}); e != nil {
		return 0, nil, e
	}
	return owed, paid, err
}

// behind reports whether an item of cost did not fit c's credit window as of its status.
func (c *inChan) behind(cost, window uint64) bool {
	owed := c.status().Owed
	return owed > 0 && (owed > window || cost > window-owed)
}

// waited counts an answer that waited for payment, and says so now and then.
func (c *inChan) waited() {
	c.waits++
	if report, _ := c.waitLog.note(c.cs.clock.Now(), waitLogEvery); report > 0 {
		c.cs.log.Info("answers wait for payment: the payer is a whole credit window behind",
			"payer", c.peer.String(), "waits", report, "window_tokens", c.cs.cfg.WindowTokens,
			"hint", "many answers at once on one channel outgrow the window; raise payments.window_tokens to serve them without waiting")
	}
}

// release takes back value counted as delivered on c that its payer refused, or that never
// went out, and wakes the answers waiting for credit.
func (c *inChan) release(v uint64) {
	c.do(func() { _, _ = c.step(channel.Refused{Value: v}) })
}

// frames is what a request's caller watcher does with the vouchers its payer sends on the
// stream: accept them on c, and write off what a settling one shows never arrived (nothing
// when payments are off, c nil).
func (c *inChan) frames() stream.Late {
	if c == nil {
		return stream.Late{}
	}
	return stream.Late{
		Pay:     func(p []byte) { c.voucher(channel.VoucherReceived{Voucher: p}) },
		Settled: func(p []byte) { c.voucher(channel.Settled{Voucher: p}) },
	}
}

// voucher takes a voucher the payer sent on an answer's stream: on the caller watcher's
// goroutine when the owner is idle, which then waits for the voucher's write, as it did.
func (c *inChan) voucher(ev channel.Event) {
	c.do(func() {
		_, err := c.step(ev)
		switch {
		case err == nil, c.cs.ctx.Err() != nil:
		case errors.Is(err, channel.ErrSuperseded):
			c.cs.log.Debug("voucher arrived after a newer one", "payer", c.peer.String())
		default:
			c.bad++
			c.cs.log.Warn("voucher refused", "payer", c.peer.String(), "err", err)
		}
	})
}

// hasNote reports whether eff says k.
func hasNote(eff channel.Effects, k channel.NoteKind) bool {
	for _, n := range eff.Notes {
		if n.What == k {
			return true
		}
	}
	return false
}

// ChannelStatus is one payment channel as the node's status shows it.
type ChannelStatus struct {
	Peer      string `json:"peer"`
	Role      string `json:"role"`  // payer: we pay on it; payee: we are paid on it
	State     string `json:"state"` // open, closing or closed
	ChannelID string `json:"channel_id"`
	Address   string `json:"address"`
	Deposit   uint64 `json:"deposit"` // nanoTON the payer locked: the most it can ever pay
	Paid      uint64 `json:"paid"`    // the newest durable voucher's cumulative sent
	Owed      uint64 `json:"owed"`    // payee: delivered but unpaid; payer: received but unpaid
	Seqno     uint64 `json:"seqno"`   // the newest durable voucher's seqno
	Delivered uint64 `json:"delivered,omitempty"`
	Refused   int    `json:"refused_vouchers,omitempty"`
	Waits     int    `json:"payment_waits,omitempty"` // payee: answers that waited for a voucher
	// WrittenOff is what a payee wrote off as never received by its payer (a broken stream, a
	// restart), nanoTON, and not paid since; Disputes counts the write-offs it refused because
	// they went beyond what it takes on trust.
	WrittenOff uint64 `json:"written_off,omitempty"`
	Disputes   int    `json:"refused_write_offs,omitempty"`
}

func channelStatus(p peer.ID, rec chanstore.Record, owed, delivered uint64, bad int) ChannelStatus {
	s := ChannelStatus{Peer: p.String(), Role: rec.Role.String(), State: rec.State.String(), ChannelID: fmt.Sprintf("%x", rec.ChannelID[:]),
		Deposit: rec.Limit, Paid: rec.Voucher.Sent, Owed: owed, Seqno: rec.Voucher.Seqno, Delivered: delivered, Refused: bad}
	if a, err := rec.Address(); err == nil {
		s.Address = a.String()
	}
	return s
}

// list is every channel of the node's, closed ones included, as last made durable and, for
// those in use, with what is owed and delivered now.
func (cs *channels) list(ctx context.Context) []ChannelStatus {
	cs.mu.Lock()
	var live []*chanOwner
	for _, c := range cs.out {
		live = append(live, c.chanOwner)
	}
	for _, c := range cs.in {
		live = append(live, c.chanOwner)
	}
	for _, old := range cs.old {
		for _, c := range old {
			live = append(live, c.chanOwner)
		}
	}
	cs.mu.Unlock()
	now := make(map[chanKey]ChannelStatus, len(live))
	for _, o := range live {
		now[o.key] = o.status()
	}
	recs, err := cs.store.List(ctx)
	if err != nil {
		cs.log.Warn("cannot list every payment channel", "err", err)
	}
	st := make([]ChannelStatus, 0, len(recs))
	for _, r := range recs {
		if l, ok := now[chanKey{r.Role, r.ChannelID}]; ok && r.State == chanstore.Open {
			st = append(st, l)
			continue
		}
		st = append(st, channelStatus(counterparty(r), r, 0, 0, 0))
	}
	return st
}

// Channels lists this node's payment channels, closed ones included, as last made durable and,
// for those in use, with what is owed and delivered now (nil when payments are off).
func (n *Node) Channels() []ChannelStatus {
	if n.payments == nil {
		return nil
	}
	return n.payments.list(n.ctx)
}
