package channel

import (
	"fmt"

	"github.com/cocoon-mesh/cocoon/ton/chanstore"
)

// Outcomes of what Effects asked for: the answers to requests, failed sends, chain actions
// that landed or failed.

// replied takes the answer to one of our requests on the channel stream.
func (c *Channel) replied(s *step, e Replied) error {
	if !c.pending.has(e.To) {
		return fmt.Errorf("%w: no %s awaits an answer", ErrUnexpected, e.To)
	}
	switch {
	case c.role == chanstore.Payer && e.To == KindAnnounce:
		c.pending.drop(KindAnnounce)
		c.greeted(s, e)
	case c.role == chanstore.Payer && (e.To == KindPay || e.To == KindSettle):
		c.settledReply(s, e)
	case c.role == chanstore.Payee && e.To == KindAskClose && c.att != nil && c.att.phase == phAsk:
		c.askAnswered(s)
	case c.role == chanstore.Payee && e.To == KindAskSettle:
		c.pending.drop(KindAskSettle) // its settle comes as a request of its own
	default:
		return fmt.Errorf("%w: %s is not answered so", ErrUnexpected, e.To)
	}
	return nil
}

// sendFailed takes a message that did not go out, or a request the peer refused.
func (c *Channel) sendFailed(s *step, e SendFailed) error {
	k := e.Msg.Kind()
	onStream := false
	switch m := e.Msg.(type) {
	case Pay:
		onStream = m.Stream != nil
	case Settle:
		onStream = m.Stream != nil
	case View, Countersign, Refusal:
		return nil // an answer to the peer's request: the peer asks again if it still wants to
	}
	if onStream {
		if k == KindPay { // a voucher paid ahead found its stream gone: settle it later
			c.settleLater(s)
		}
		return nil // a settle on a billed answer's stream: the answer's end settles
	}
	if !c.pending.has(k) {
		return fmt.Errorf("%w: no %s awaits an answer", ErrUnexpected, k)
	}
	c.pending.drop(k)
	switch k {
	case KindAnnounce: // node's openOut fails: the channel stays stored, not in use
		c.opening = opNone
		if !c.stopped {
			c.state = Open
		}
		s.note(NoteOpenFailed, 0, e.Err)
	case KindPay, KindSettle:
		if c.att != nil && c.att.phase == phSettle {
			c.coopFailed(s, fmt.Errorf("paying what is left: %w", e.Err))
		} else {
			s.note(NoteSettleFailed, 0, e.Err)
		}
	case KindPropose, KindAskClose:
		c.coopFailed(s, e.Err)
	}
	return nil
}

// chainDone takes an action that landed.
func (c *Channel) chainDone(s *step, e ChainDone) error {
	switch a := e.Action.(type) {
	case Deploy:
		return c.deployed(s, nil, false)
	case CoopClose:
		if c.att == nil || c.att.phase != phCoop {
			return fmt.Errorf("%w: no cooperative close submitted", ErrUnexpected)
		}
		st := c.att.chain
		c.closed(s, a.Close.BalanceB-min(a.Close.BalanceB, st.BalanceB))
	case StartSolo:
		if c.att == nil || c.att.phase != phSolo {
			return fmt.Errorf("%w: no uncooperative close started", ErrUnexpected)
		}
		s.note(NoteSoloStarted, a.Sent, nil)
		c.end(s, nil)
	case Challenge:
		if c.acting != a.Name() {
			return fmt.Errorf("%w: no challenge submitted", ErrUnexpected)
		}
		c.acting = ""
		s.note(NoteChallenged, a.Sent, nil)
	case Finish:
		if c.acting != a.Name() {
			return fmt.Errorf("%w: no finish submitted", ErrUnexpected)
		}
		c.acting = ""
		c.closed(s, a.Paid)
	default:
		return fmt.Errorf("%w: %T", ErrUnexpected, e.Action)
	}
	return nil
}

// chainFailed takes an action that failed.
func (c *Channel) chainFailed(s *step, e ChainFailed) error {
	switch a := e.Action.(type) {
	case Deploy:
		return c.deployed(s, e.Err, e.Unconfirmed)
	case CoopClose:
		if c.att == nil || c.att.phase != phCoop {
			return fmt.Errorf("%w: no cooperative close submitted", ErrUnexpected)
		}
		c.coopFailed(s, e.Err)
	case StartSolo:
		if c.att == nil || c.att.phase != phSolo {
			return fmt.Errorf("%w: no uncooperative close started", ErrUnexpected)
		}
		c.fail(s, fmt.Errorf("starting the close of %s alone: %w", c.addr, e.Err))
	case Observe:
		return c.observeFailed(s, e.Err)
	case Challenge, Finish:
		if c.acting != a.Name() {
			return fmt.Errorf("%w: no %s submitted", ErrUnexpected, a.Name())
		}
		c.acting = ""
		s.note(NoteCloseFailed, 0, fmt.Errorf("%s: %w", a.Name(), e.Err))
	default:
		return fmt.Errorf("%w: %T", ErrUnexpected, e.Action)
	}
	return nil
}

// observeFailed takes a read of the contract that failed: what waited for it fails as node's
// would (a resumption, as resumable's error fails openOut; a close, as onChain's fails
// closeOut and closeIn). A watch's read that failed asks nothing: the next one tries again.
func (c *Channel) observeFailed(s *step, err error) error {
	err = fmt.Errorf("channel %s on the ledger: %w", c.addr, err)
	switch {
	case c.opening == opCheck:
		c.opening, c.state = opNone, Open
		s.note(NoteOpenFailed, 0, err)
	case c.att != nil && (c.att.phase == phObserve || c.att.phase == phRefresh):
		c.fail(s, err)
	default:
		return fmt.Errorf("%w: no read of the contract awaits an answer", ErrUnexpected)
	}
	return nil
}
