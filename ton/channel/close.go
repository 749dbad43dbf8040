package channel

import (
	"errors"
	"fmt"
	"time"

	"github.com/cocoon-mesh/cocoon/ton"
	"github.com/cocoon-mesh/cocoon/ton/chanstore"
)

// Closing, as node's closeOut, closeTogether and closeIn do it. A payer stops taking
// answers, marks the record closing, waits for the answers under way, reads the contract,
// pays what is left, proposes the final balances, and submits them once the payee
// co-signed; failing that (Either) it closes alone with its newest voucher and the payee's
// empty semichannel. A payee asks its payer to close together and, failing that, marks the
// record closing and closes alone with the newest voucher it holds.

// closeRequested starts a close. One already under way takes the request over: an asking
// peer is answered when it ends.
func (c *Channel) closeRequested(s *step, e CloseRequested) error {
	switch {
	case c.att != nil:
		c.att.asked = c.att.asked || e.Asked
		return nil
	case c.state == Closed && e.Asked:
		s.send(View{Limit: c.rec.Limit})
		return nil
	case !c.stored() || c.state == Closed || c.opening != opNone:
		return ErrWrongState
	}
	if c.role == chanstore.Payer {
		c.startPayerClose(s, e.Mode, e.Asked, time.Time{})
		return nil
	}
	c.att = &attempt{mode: e.Mode, asked: e.Asked}
	if e.Mode == Alone {
		c.payeeAlone(s)
		return nil
	}
	c.att.phase, c.state = phAsk, ClosingCoop
	c.request(s, AskClose{ChannelID: c.rec.ChannelID})
	return nil
}

// rotate stops the channel and closes it once its answers ended, while the caller opens the
// next one (node's rotate); a channel already stopped is being replaced or closed.
func (c *Channel) rotate(s *step) {
	if c.stopped || c.att != nil || c.state != Open {
		return
	}
	c.startPayerClose(s, Either, false, s.now.Add(ReplacedDrain))
	s.eff.Replace = true
}

// startPayerClose stops the channel and marks it closing durably before anything else.
func (c *Channel) startPayerClose(s *step, mode CloseMode, asked bool, drainBy time.Time) {
	c.stopped = true
	c.att = &attempt{mode: mode, phase: phDrain, asked: asked, drainBy: drainBy}
	c.state = Draining
	c.mark(s, chanstore.Closing)
	if c.active == 0 {
		c.observeFor(s)
	}
}

// observeFor reads the contract for the close under way.
func (c *Channel) observeFor(s *step) {
	c.att.phase = phObserve
	c.state = ClosingCoop
	if c.att.mode == Alone {
		c.state = ClosingSolo
	}
	s.chain(Observe{Address: c.addr})
}

// attemptObserved goes on with the close once the contract is read: one closed is marked
// so, one closing alone (by either side) is left to the watch, one open is closed.
func (c *Channel) attemptObserved(s *step, e ChainObserved) {
	st := e.Storage
	switch {
	case !e.Found:
		c.fail(s, fmt.Errorf("channel %s is not on the ledger", c.addr))
	case c.closedOnChain(st):
		c.closed(s, c.rec.Voucher.Sent)
	case st.Quarantine != nil:
		c.state = Quarantine
		c.end(s, nil)
	case c.att.phase == phRefresh:
		c.state = Open
		if c.rec.State == chanstore.Closing {
			c.state = ClosingCoop
		}
		c.end(s, nil)
	case c.role == chanstore.Payee:
		c.payeeStart(s)
	case c.att.mode != Alone:
		c.att.chain, c.att.phase = st, phSettle
		c.proceedSettle(s)
	default:
		c.payerAlone(s)
	}
}

// proceedSettle pays what is left, then proposes the close.
func (c *Channel) proceedSettle(s *step) {
	waiting, err := c.settle(s)
	switch {
	case err != nil:
		c.coopFailed(s, fmt.Errorf("paying what is left: %w", err))
	case !waiting:
		c.propose(s)
	}
}

// propose signs the final balances: the payee gets what we signed for, we the rest of the
// deposit. From then on the payer signs no vouchers.
func (c *Channel) propose(s *step) {
	st := c.att.chain
	cl, err := c.payer.CooperativeClose(st.BalanceA, st.BalanceB, uint64(st.CommittedSeqnoB)+1)
	if err != nil {
		c.coopFailed(s, err)
		return
	}
	c.att.proposal, c.att.sigA, c.att.phase = cl, cl.Sign(c.cfg.Key), phSigned
	c.request(s, Propose{Close: cl, Signature: c.att.sigA})
}

// closeSigned submits the close once the payee's signature checks; one that does not is
// refused (the caller then reports the exchange failed, with SendFailed).
func (c *Channel) closeSigned(s *step, e CloseSigned) error {
	a := c.att
	if a == nil || a.phase != phSigned || !c.pending.has(KindPropose) {
		return fmt.Errorf("%w: no close proposed", ErrUnexpected)
	}
	if e.Close != a.proposal || !a.proposal.Verify(c.rec.KeyB, e.Signature) {
		return fmt.Errorf("%w: the payee's signature is not over our close", ErrBadClose)
	}
	body, err := a.proposal.Body(a.sigA, e.Signature)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadClose, err)
	}
	c.pending.drop(KindPropose)
	a.phase = phCoop
	s.chain(CoopClose{Address: c.addr, Close: a.proposal, Body: body})
	return nil
}

// coopFailed closes alone when the mode allows it, and fails the close otherwise.
func (c *Channel) coopFailed(s *step, err error) {
	if c.att.mode == Together {
		c.fail(s, err)
		return
	}
	s.note(NoteClosing, 0, fmt.Errorf("the counterparty did not close with us; closing alone: %w", err))
	if c.role == chanstore.Payer {
		c.payerAlone(s)
		return
	}
	c.payeeAlone(s)
}

// payerAlone starts the uncooperative close with our newest voucher (or an empty one at the
// committed seqno) and the payee's signature over its empty semichannel.
func (c *Channel) payerAlone(s *step) {
	rec := c.rec
	if rec.PayeeSemi == ([64]byte{}) {
		c.fail(s, errors.New("cannot close alone: the payee never signed its semichannel (a channel opened by an older version); ask it to close"))
		return
	}
	a := rec.Voucher
	if !rec.HasVoucher {
		a = ton.SignVoucher(c.cfg.Key, rec.ChannelID, rec.CommittedSeqno, 0)
	}
	b := ton.SignedSemiChannel{Signature: rec.PayeeSemi, State: ton.SemiChannel{ChannelID: rec.ChannelID}}
	c.att.phase, c.state = phSolo, ClosingSolo
	s.chain(StartSolo{Address: c.addr, ByA: true, Sent: a.Sent, Value: c.cfg.DisputeFee,
		Body: ton.StartUncooperativeCloseBody(true, c.cfg.Key, rec.ChannelID, a.Signed(rec.ChannelID), b)})
}

// payeeAlone stops taking vouchers, marks the record closing, and reads the contract.
func (c *Channel) payeeAlone(s *step) {
	c.shut = true
	c.mark(s, chanstore.Closing)
	c.att.mode = Alone
	c.observeFor(s)
}

// payeeStart starts the uncooperative close with the newest voucher held.
func (c *Channel) payeeStart(s *step) {
	rec := c.rec
	if !rec.HasVoucher {
		c.fail(s, errors.New("nothing to collect: the payer has paid nothing on this channel"))
		return
	}
	c.att.phase, c.state = phSolo, ClosingSolo
	b := ton.SignSemiChannel(c.cfg.Key, ton.SemiChannel{ChannelID: rec.ChannelID})
	s.chain(StartSolo{Address: c.addr, ByA: false, Sent: rec.Voucher.Sent, Value: c.cfg.DisputeFee,
		Body: ton.StartUncooperativeCloseBody(false, c.cfg.Key, rec.ChannelID, rec.Voucher.Signed(rec.ChannelID), b)})
}

// askAnswered goes on once the payer answered our request to close: the contract is read again.
func (c *Channel) askAnswered(s *step) {
	c.pending.drop(KindAskClose)
	c.att.phase = phRefresh
	s.chain(Observe{Address: c.addr})
}

// closed marks the channel closed: the contract paid out.
func (c *Channel) closed(s *step, paid uint64) {
	c.stopped, c.shut, c.state = true, true, Closed
	c.mark(s, chanstore.Closed)
	s.note(NoteClosed, paid, nil)
	if c.att != nil {
		c.end(s, nil)
	}
}

// fail ends the close under way with err; the record stays as it is, for the watch.
func (c *Channel) fail(s *step, err error) {
	c.state = Open
	if c.rec.State == chanstore.Closing {
		c.state = Closing
	}
	s.note(NoteCloseFailed, 0, err)
	c.end(s, err)
}

// end ends the close under way, answering the counterparty that asked for it.
func (c *Channel) end(s *step, err error) {
	if c.att.asked {
		if err != nil {
			s.send(Refusal{Err: fmt.Errorf("closing: %w", err)})
		} else {
			s.send(View{Limit: c.rec.Limit})
		}
	}
	c.att = nil
	c.pending.drop(KindPropose) // a late answer to the close's requests is not awaited any more
	c.pending.drop(KindAskClose)
}
