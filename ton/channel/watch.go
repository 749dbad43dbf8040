package channel

import (
	"time"

	"github.com/cocoon-mesh/cocoon/ton"
	"github.com/cocoon-mesh/cocoon/ton/chanstore"
)

// The watch, as node's watch, settleIdle and resumeClose: what the chain asks of a channel
// that is not closed. It notices closes, closes idle channels, resumes stalled closes,
// challenges a payer that closed with an older state, and finishes a close once its
// quarantine is over.

// observed takes the contract as read: for a resumption or a close under way that asked for
// it, or else for the watch.
func (c *Channel) observed(s *step, e ChainObserved) error {
	switch {
	case c.opening == opCheck:
		c.resumable(s, e)
	case c.att != nil && (c.att.phase == phObserve || c.att.phase == phRefresh):
		c.attemptObserved(s, e)
	default:
		c.watch(s, e)
	}
	return nil
}

// closedOnChain reports whether the contract paid the channel out: it is no longer inited
// and its committed seqno moved past the one it was opened at.
func (c *Channel) closedOnChain(st ton.Storage) bool {
	return !st.Inited && st.Quarantine == nil && uint64(st.CommittedSeqnoA) > c.rec.CommittedSeqno
}

// watch does what the chain asks of the channel.
func (c *Channel) watch(s *step, e ChainObserved) {
	if !c.stored() || c.rec.State == chanstore.Closed || !e.Found {
		return // nothing stored yet, history, or not deployed (yet)
	}
	st := e.Storage
	switch {
	case c.closedOnChain(st):
		c.closed(s, c.rec.Voucher.Sent)
	case st.Quarantine == nil && c.rec.State == chanstore.Open:
		c.settleIdle(s)
	case st.Quarantine == nil:
		c.resumeClose(s, st)
	default:
		c.quarantine(s, *st.Quarantine, e.LedgerNow)
	}
}

// settleIdle closes an open channel once it has gone idle: no record written for
// SettleIdle. A payee closes a channel that paid it anything; a payer waits twice as long,
// or at most UnearnedIdle for a channel that never paid (so payees that earn nothing do not
// hold the unearned cap). Either asks the other side first, and closes alone if it does not
// answer.
func (c *Channel) settleIdle(s *step) {
	idle, after := s.now.Sub(c.rec.Updated), c.cfg.SettleIdle
	payer := c.role == chanstore.Payer
	switch {
	case payer && c.rec.Voucher.Sent == 0:
		after = min(2*after, c.cfg.UnearnedIdle)
	case payer:
		after *= 2
	}
	if idle < after || c.att != nil || c.opening != opNone || (!payer && (!c.rec.HasVoucher || c.rec.Voucher.Sent == 0)) {
		return
	}
	s.note(NoteIdle, c.rec.Voucher.Sent, nil)
	c.closeEither(s)
}

// resumeClose finishes a close that stalled: the record is closing, the contract is still
// open, and no close is under way here. The payer gets a head start (two watch periods to
// the payee's four), so the two sides do not race; a payee with nothing to collect waits.
func (c *Channel) resumeClose(s *step, st ton.Storage) {
	stalled := 2 * c.cfg.WatchEvery
	if c.role == chanstore.Payee {
		stalled *= 2
	}
	if !st.Inited || s.now.Sub(c.rec.Updated) < stalled || c.att != nil || c.opening != opNone {
		return
	}
	if c.role == chanstore.Payee && !c.rec.HasVoucher {
		return // nothing to collect
	}
	s.note(NoteStalled, 0, nil)
	c.closeEither(s)
}

// closeEither closes from our side: together if the counterparty answers, else alone.
func (c *Channel) closeEither(s *step) {
	if c.role == chanstore.Payer {
		c.startPayerClose(s, Either, false, time.Time{})
		return
	}
	c.att = &attempt{mode: Either, phase: phAsk}
	c.state = ClosingCoop
	c.request(s, AskClose{ChannelID: c.rec.ChannelID})
}

// quarantine handles a started uncooperative close: a payee challenges its payer's older
// state with its newest voucher; anyone finishes once the quarantine and the conditionals'
// window are over by the ledger's clock.
func (c *Channel) quarantine(s *step, q ton.QuarantinedState, ledgerNow time.Time) {
	if c.rec.State == chanstore.Open {
		s.note(NotePeerClosingAlone, 0, nil)
		c.stopped, c.shut = true, true
		c.mark(s, chanstore.Closing)
	}
	if c.att != nil && c.att.phase != phSolo {
		c.end(s, nil) // closing alone, by either side: what the close under way would find
	}
	if c.acting != "" {
		return // a challenge or a finish is under way
	}
	if c.att == nil && c.state != Challenging {
		c.state = Quarantine
	}
	rec := c.rec
	if c.role == chanstore.Payee && q.StateCommitedByA && !q.StateChallenged && rec.HasVoucher && rec.Voucher.Seqno > q.StateA.Seqno {
		c.acting, c.state = Challenge{}.Name(), Challenging
		b := ton.SignSemiChannel(c.cfg.Key, ton.SemiChannel{ChannelID: rec.ChannelID})
		s.chain(Challenge{Address: c.addr, Sent: rec.Voucher.Sent, Their: q.StateA.Sent, Value: c.cfg.DisputeFee,
			Body: ton.ChallengeBody(false, c.cfg.Key, rec.ChannelID, rec.Voucher.Signed(rec.ChannelID), b)})
		return
	}
	if ledgerNow.Unix() <= int64(q.QuarantineStarts)+int64(rec.Closing.QuarantineDuration)+int64(rec.Closing.ConditionalCloseDuration) {
		return
	}
	c.acting = Finish{}.Name()
	s.chain(Finish{Address: c.addr, Paid: q.StateA.Sent})
}
