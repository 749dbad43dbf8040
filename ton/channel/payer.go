package channel

import (
	"errors"
	"fmt"
	"time"

	"github.com/cocoon-mesh/cocoon/ton"
	"github.com/cocoon-mesh/cocoon/ton/chanstore"
)

// A payer's side: opening (node's openOnLedger, openOut), resuming a stored channel
// (resumable), paying as value arrives (pay, payAhead, billNow) and settling what an ended
// answer left unpaid over the channel stream (settleLater, settle).

// opening is what a payer's opening or resumption waits for.
type opening uint8

const (
	opNone   opening = iota
	opDeploy         // the deployment to land
	opCheck          // the contract, read before paying on a stored channel again
	opGreet          // the payee's answer to Announce
)

// kinds is a set of message kinds: the requests awaiting an answer.
type kinds uint16

func (k kinds) has(x Kind) bool               { return k&(1<<x) != 0 }
func (k *kinds) add(x Kind)                   { *k |= 1 << x }
func (k *kinds) drop(x Kind)                  { *k &^= 1 << x }
func (c *Channel) request(s *step, m Message) { c.pending.add(m.Kind()); s.send(m) }

// stored reports whether the channel has a record.
func (c *Channel) stored() bool { return c.rec.Role != 0 }

// openRequested stores a new channel's record, the payee's semichannel signature in it, and
// only then deploys it (openOnLedger).
func (c *Channel) openRequested(s *step, e OpenRequested) error {
	if c.state != Opening || c.stored() {
		return ErrWrongState
	}
	id := c.params.ChannelID
	if len(e.PayeeSemi) != 64 || !(ton.SemiChannel{ChannelID: id}).Cell().Verify(c.params.KeyB, e.PayeeSemi) {
		return errors.New("channel: the payee's semichannel signature does not check: not locking a deposit")
	}
	rec, err := chanstore.NewRecord(chanstore.Payer, c.params, e.Deposit, 0)
	if err != nil {
		return err
	}
	copy(rec.PayeeSemi[:], e.PayeeSemi)
	init, err := c.params.StateInit()
	if err != nil {
		return err
	}
	if err := c.load(rec); err != nil {
		return err
	}
	c.persist(s, rec)
	c.opening = opDeploy
	s.chain(Deploy{Address: c.addr, Init: init, Deposit: e.Deposit,
		Body:  ton.InitChannelBody(true, c.cfg.Key, id, e.Deposit, 0),
		Value: e.Deposit + c.params.Payments.ExcessFee + c.cfg.OpenFee})
	return nil
}

// deployed greets the payee once the deployment landed; a deployment that failed forgets
// the channel, unless it may still land (then the record stays, and the next resumption
// finds out on chain).
func (c *Channel) deployed(s *step, err error, unconfirmed bool) error {
	if c.opening != opDeploy {
		return fmt.Errorf("%w: no deployment under way", ErrUnexpected)
	}
	c.opening = opNone
	switch {
	case err == nil:
		c.announce(s)
	case unconfirmed:
		c.state = Open
		s.note(NoteOpenFailed, 0, fmt.Errorf("opening channel %s on the ledger: %w (the record is kept)", c.addr, err))
	default:
		s.eff.Persist = append(s.eff.Persist, Write{Record: c.rec, Delete: true})
		c.state, c.stopped = Closed, true
		s.note(NoteOpenFailed, 0, fmt.Errorf("opening channel %s on the ledger: %w", c.addr, err))
	}
	return nil
}

// resumeRequested checks a stored channel on chain before it is paid on again.
func (c *Channel) resumeRequested(s *step) error {
	if c.state != Open || c.inUse || c.stopped || c.opening != opNone || c.att != nil {
		return ErrWrongState
	}
	c.opening, c.state = opCheck, Opening
	s.chain(Observe{Address: c.addr})
	return nil
}

// resumable is node's resumable: a contract closed or closing alone is marked so; one
// inited is greeted; one absent or not inited is an open cut short by a crash, marked
// closing so that the watch closes it should the deployment land after all.
func (c *Channel) resumable(s *step, e ChainObserved) {
	c.opening = opNone
	st := e.Storage
	switch {
	case e.Found && c.closedOnChain(st):
		c.stopped, c.state = true, Closed
		c.mark(s, chanstore.Closed)
	case e.Found && st.Quarantine != nil:
		c.stopped, c.state = true, Quarantine
		c.mark(s, chanstore.Closing)
	case e.Found && st.Inited:
		c.announce(s)
	default:
		c.stopped, c.state = true, Closing
		c.mark(s, chanstore.Closing)
		s.note(NoteCutShort, 0, nil)
	}
}

// announce tells the payee about the channel, with our newest voucher.
func (c *Channel) announce(s *step) {
	c.opening, c.state = opGreet, Opening
	c.request(s, Announce{Voucher: c.latest()})
}

// latest is the newest durable voucher (nil: none).
func (c *Channel) latest() *ton.Voucher {
	if !c.rec.HasVoucher {
		return nil
	}
	v := c.rec.Voucher
	return &v
}

// greeted takes the payee's view (openOut): a newer voucher of ours it holds, which we lost,
// is resumed above; its semichannel signature is kept if we had none.
func (c *Channel) greeted(s *step, e Replied) {
	c.opening = opNone
	next := c.rec
	v, verr := ton.DecodeVoucher(e.Voucher)
	if len(e.Voucher) > 0 {
		if r, adopted := chanstore.Reconcile(c.rec, v, c.rec.VerifyVoucher); adopted {
			s.note(NoteResumedAbove, v.Sent, nil)
			next = r
		}
	}
	if len(e.PayeeSemi) == 64 && next.PayeeSemi == ([64]byte{}) &&
		(ton.SemiChannel{ChannelID: c.rec.ChannelID}).Cell().Verify(c.rec.KeyB, e.PayeeSemi) {
		copy(next.PayeeSemi[:], e.PayeeSemi)
	}
	if next.HasVoucher != c.rec.HasVoucher || next.Voucher != c.rec.Voucher || next.PayeeSemi != c.rec.PayeeSemi {
		c.persist(s, next)
	}
	if err := c.load(c.rec); err != nil {
		panic("channel: a record that loaded once does not load again: " + err.Error())
	}
	c.acked = 0
	if verr == nil {
		c.acked = v.Seqno
	}
	if c.stopped { // the watch found it closing meanwhile: it is not paid on
		s.note(NoteOpenFailed, 0, errors.New("the channel started closing while its payee was greeted"))
		return
	}
	c.inUse, c.state = true, Open
	s.note(NoteOpened, c.rec.Limit, nil)
}

// answerBegan counts an answer paid on the channel (payOn): a deposit running low starts
// moving to a new channel, one spent refuses the answer.
func (c *Channel) answerBegan(s *step, e AnswerBegan) error {
	if c.role == chanstore.Payee {
		c.window = e.Window
		return nil
	}
	if !c.InUse() {
		return ErrStopped
	}
	c.active++
	limit := c.rec.Limit
	left := limit - min(limit, c.meter.Received())
	if left < limit/LowDeposit {
		c.rotate(s)
	}
	if left == 0 {
		c.release(s)
		s.note(NoteSpent, 0, fmt.Errorf("the deposit on the channel is spent"))
	}
	return nil
}

// answerEnded ends an answer; what it left unpaid is settled later.
func (c *Channel) answerEnded(s *step) error {
	if c.active == 0 {
		return fmt.Errorf("%w: no answer under way", ErrUnexpected)
	}
	c.release(s)
	c.settleLater(s)
	return nil
}

// release ends an answer; the last one to end lets a close waiting for them go on.
func (c *Channel) release(s *step) {
	if c.active <= 0 {
		panic("channel: an answer ended that never began")
	}
	c.active--
	if c.active == 0 && c.att != nil && c.att.phase == phDrain {
		c.observeFor(s)
	}
}

// received meters value and pays ahead once a voucher is due (metering.chunk, payAhead),
// or, at an answer's end, leaves it to the settle (metering.final).
func (c *Channel) received(s *step, e Received) error {
	if e.Final {
		c.meter.Receive(e.Value, ^uint64(0))
		c.settleLater(s)
		return nil
	}
	if !c.meter.Receive(e.Value, e.Every) {
		return nil
	}
	v, err := c.pay(s, false, e.Every)
	switch {
	case err != nil:
		s.note(NotePayFailed, 0, err)
		c.settleLater(s)
	case v != nil:
		s.send(Pay{Voucher: *v, Stream: e.Stream})
	}
	return nil
}

// pay signs a voucher for everything received if one is due (or, with force, if anything
// is unpaid) and writes it: the caller sends it only once durable (node's pay). Nil when
// none was due.
func (c *Channel) pay(s *step, force bool, every uint64) (*ton.Voucher, error) {
	unpaid := c.meter.Unpaid()
	if unpaid == 0 || (!force && unpaid < max(every, 1)) {
		return nil, nil
	}
	v, err := c.payer.PayTo(c.meter.Received())
	if err != nil {
		return nil, err
	}
	rec := c.rec
	rec.Voucher, rec.HasVoucher = v, true
	c.persist(s, rec)
	c.meter.Signed(v.Sent)
	return &v, nil
}

// billed pays everything received at once, on the billed answer's stream, as settled
// (billNow); with nothing unpaid, the newest voucher goes again.
func (c *Channel) billed(s *step, e Billed) error {
	v, err := c.pay(s, true, 0)
	if err != nil {
		return fmt.Errorf("paying the payee: %w", err)
	}
	if v == nil {
		v = c.latest()
	}
	if v != nil {
		s.send(Settle{Voucher: v, Stream: e.Stream})
	}
	return nil
}

// refused takes back value refused: a payer's (and the next settle says so), or a payee's
// that never reached its payer.
func (c *Channel) refused(e Refused) {
	if c.role == chanstore.Payee {
		c.credit.Release(e.Value)
		return
	}
	c.meter.Refuse(e.Value)
	c.disputed = true
}

// settleAsked takes the payee's AskSettle: the next settle goes as settled, when no answer
// is under way (as after a refusal), so what the payee counts beyond it is written off.
func (c *Channel) settleAsked(s *step) error {
	if !c.stored() || c.state == Closed {
		return ErrWrongState
	}
	c.disputed = true
	c.settleLater(s)
	return nil
}

// settleLater arms the settle, FlushAfter from now, unless one is armed or there is nothing
// to settle: nothing unpaid, the newest voucher confirmed, no refusal to tell.
func (c *Channel) settleLater(s *step) {
	if !c.flushAt.IsZero() || (c.meter.Unpaid() == 0 && c.rec.Voucher.Seqno <= c.acked && !c.disputed) {
		return
	}
	c.flushAt = s.now.Add(c.cfg.FlushAfter)
}

// settle pays everything received and sends the newest voucher over the channel stream if
// the payee has not confirmed it, or as settled after a refusal (node's settle). It reports
// whether an answer is awaited: one sent now, or one sent before.
func (c *Channel) settle(s *step) (bool, error) {
	if c.pending.has(KindPay) || c.pending.has(KindSettle) {
		return true, nil
	}
	if _, err := c.pay(s, true, 0); err != nil {
		return false, err
	}
	has, latest := c.rec.HasVoucher, c.rec.Voucher
	switch {
	case c.disputed:
		c.request(s, Settle{Voucher: c.latest()})
	case has && latest.Seqno > c.acked:
		c.request(s, Pay{Voucher: latest})
	default:
		return false, nil
	}
	return true, nil
}

// settledReply takes the payee's answer to a settle: the refusal reached it, and it holds
// the voucher it returns.
func (c *Channel) settledReply(s *step, e Replied) {
	c.pending.drop(e.To)
	if e.To == KindSettle {
		c.disputed = false
	}
	if v, err := ton.DecodeVoucher(e.Voucher); err == nil && len(e.Voucher) > 0 {
		c.acked = max(c.acked, v.Seqno)
	}
	if c.att != nil && c.att.phase == phSettle {
		c.proceedSettle(s)
	}
}

// tick sends a settle that is due and gives up a drain past its bound. A settle falling
// while answers are under way is skipped: they may yet be refused (a proxy learns its
// client's verdict last), and paying what they received now would pay for value we may
// refuse; the last of them to end arms it again (AnswerEnded).
func (c *Channel) tick(s *step) {
	if !c.flushAt.IsZero() && !s.now.Before(c.flushAt) {
		switch {
		case c.active > 0:
			c.flushAt = time.Time{}
		case c.pending.has(KindPay) || c.pending.has(KindSettle):
			c.flushAt = s.now.Add(c.cfg.FlushAfter) // one settle at a time: again after it
		default:
			c.flushAt = time.Time{}
			if _, err := c.settle(s); err != nil {
				s.note(NoteSettleFailed, 0, err)
			}
		}
	}
	if a := c.att; a != nil && a.phase == phDrain && !a.drainBy.IsZero() && !s.now.Before(a.drainBy) {
		c.fail(s, errors.New("answers still under way on the channel: the drain bound passed"))
	}
}
