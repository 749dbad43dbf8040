package channel

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/cocoon-mesh/cocoon/ton"
	"github.com/cocoon-mesh/cocoon/ton/chanstore"
)

// A payee's side: taking a payer's channel (node's openIn), its vouchers (accept,
// acceptNew), the credit it serves within (reserve), what it writes off on the payer's word
// (writeOff) and the close it co-signs (cosign).

// Bounds on what a payee writes off on a payer's word, net of what was paid after all: at
// most WriteOffWindows exposures (the latest answer's window, or the costliest item
// delivered on the channel if more: a long prompt's end, let through when nothing is owed),
// or a 1/WriteOffShare part of what the payer paid, whichever is more.
const (
	WriteOffWindows = 4
	WriteOffShare   = 16
)

// announced takes the payer's channel: a new one must be on chain as the contract with
// these parameters, inited with a deposit, and its record is stored first; one held is
// resumed. A voucher presented is accepted if newer, and what we count beyond it is written
// off: a payer announcing a channel restarted, and received nothing since its newest voucher.
func (c *Channel) announced(s *step, e Announced) error {
	if !c.stored() {
		st := e.Chain
		if !bytes.Equal(e.KeyA, c.params.KeyA) || !st.Inited || !st.Matches(c.params) || st.BalanceA == 0 {
			return fmt.Errorf("%w: channel %s", ErrBadChannel, c.addr)
		}
		limit := st.BalanceA - min(st.BalanceA, c.params.Closing.MisbehaviorFine)
		rec, err := chanstore.NewRecord(chanstore.Payee, c.params, limit, uint64(st.CommittedSeqnoA))
		if err != nil {
			return err
		}
		if err := c.load(rec); err != nil {
			return err
		}
		c.persist(s, rec)
		c.state = Open
		s.note(NoteOpened, limit, nil)
	} else if !bytes.Equal(e.KeyA, c.rec.KeyA) {
		return fmt.Errorf("%w: channel %x belongs to another payer", ErrBadChannel, c.rec.ChannelID[:])
	}
	var newest ton.Voucher
	if len(e.Voucher) > 0 {
		if err := c.acceptNew(s, e.Voucher); err != nil {
			s.note(NoteVoucherRefused, 0, err)
		} else {
			newest, _ = ton.DecodeVoucher(e.Voucher)
		}
	}
	c.writeOff(s, newest)
	s.send(c.payeeView())
	return nil
}

// view is the payee's answer on the channel stream: the channel as held, and its signature
// over its empty semichannel, which lets the payer close alone should this node vanish.
func (c *Channel) payeeView() View {
	return View{Limit: c.rec.Limit, Voucher: c.latest(), PayeeSemi: EmptySemi(c.cfg, c.rec.ChannelID)}
}

// EmptySemi is a payee's signature over its empty semichannel of channel id: a payee never
// pays, so signing it commits to nothing, while it lets the payer close alone.
func EmptySemi(cfg Config, id ton.ChannelID) []byte {
	semi := ton.SignSemiChannel(cfg.Key, ton.SemiChannel{ChannelID: id})
	return semi.Signature[:]
}

// accept checks a voucher and writes it; it counts as paid at once, the caller persisting
// it before anything else. A refused voucher changes nothing; a superseded one is not even
// checked (ErrSuperseded).
func (c *Channel) accept(s *step, b []byte) error {
	v, err := ton.DecodeVoucher(b)
	if err != nil {
		return err
	}
	if latest, ok := c.payee.Latest(); ok && v.Seqno <= latest.Seqno && v.Sent <= latest.Sent {
		return ErrSuperseded
	}
	if c.shut {
		return ErrClosing
	}
	if err := c.payee.Accept(v); err != nil {
		return err
	}
	rec := c.rec
	rec.Voucher, rec.HasVoucher = v, true
	c.persist(s, rec)
	c.credit.Paid(v.Sent)
	return nil
}

// acceptNew accepts b unless the channel holds it or a newer one already: on the channel
// stream a payer presents again what may have come on an answer's stream. An older voucher
// counts as held only if it is this channel's.
func (c *Channel) acceptNew(s *step, b []byte) error {
	err := c.accept(s, b)
	if !errors.Is(err, ErrSuperseded) {
		return err
	}
	v, _ := ton.DecodeVoucher(b) // accept decoded it
	if v == c.rec.Voucher || c.rec.VerifyVoucher(v) {
		return nil
	}
	return fmt.Errorf("%w: seqno %d", ton.ErrBadSignature, v.Seqno)
}

// voucherReceived takes a voucher: on an answer's stream, or on the channel stream, which
// is answered with the channel as held.
func (c *Channel) voucherReceived(s *step, e VoucherReceived) error {
	if !c.stored() {
		return ErrWrongState
	}
	if !e.OnChannel {
		return c.accept(s, e.Voucher)
	}
	if err := c.acceptNew(s, e.Voucher); err != nil {
		return err
	}
	s.send(c.payeeView())
	return nil
}

// settled takes the payer's word that a voucher pays all it received, and writes off what
// we count beyond it (node's settled, and the channel stream's FrameSettled).
func (c *Channel) settled(s *step, e Settled) error {
	if !c.stored() {
		return ErrWrongState
	}
	var v ton.Voucher
	switch {
	case e.OnChannel && len(e.Voucher) > 0:
		if err := c.acceptNew(s, e.Voucher); err != nil {
			return err
		}
		v, _ = ton.DecodeVoucher(e.Voucher)
	case !e.OnChannel:
		if err := c.accept(s, e.Voucher); err != nil && !errors.Is(err, ErrSuperseded) {
			return err
		}
		v, _ = ton.DecodeVoucher(e.Voucher)
	}
	c.writeOff(s, v)
	if e.OnChannel {
		s.send(c.payeeView())
	}
	return nil
}

// writeOff takes the payer's word that v pays all it received: what we count as owed beyond
// it never reached the payer, and is written off within the bounds above. A claim older than
// the newest voucher held is stale and changes nothing.
func (c *Channel) writeOff(s *step, v ton.Voucher) {
	if latest, ok := c.payee.Latest(); ok && v.Seqno < latest.Seqno {
		return
	}
	owed := c.credit.Owed()
	if owed == 0 || v.Sent < c.credit.PaidTotal() {
		return
	}
	budget := max(WriteOffWindows*max(c.window, c.largest), c.credit.PaidTotal()/WriteOffShare)
	if c.credit.WrittenOff()+owed > budget {
		c.disputes++
		s.note(NoteDisputed, owed, fmt.Errorf("written off %d, limit %d: it stays owed", c.credit.WrittenOff(), budget))
		return
	}
	s.note(NoteWrittenOff, c.credit.Settle(v.Sent), nil)
}

// delivered reserves an item's cost on the payer's credit (node's reserve, less its wait:
// on ton.ErrCreditExhausted the caller bills and waits for a voucher), and arms the ask.
func (c *Channel) delivered(s *step, e Delivered) error {
	switch {
	case !c.stored():
		return ErrWrongState
	case c.shut:
		return ErrClosing
	}
	if err := c.credit.Reserve(e.Cost, e.Window); err != nil {
		return err
	}
	c.largest = max(c.largest, e.Cost)
	c.askAt = s.now.Add(c.cfg.askAfter())
	return nil
}

// askAfter is how long a payee lets value stay owed after its last delivery before it asks
// the payer to settle: well past the payer's own flush, so that a payer that is paying is
// never asked.
func (c Config) askAfter() time.Duration { return max(10*c.FlushAfter, time.Second) }

// askSettle asks the payer to settle, once, when value is still owed askAfter past the last
// delivery: an answer's stream broke while items were on it (the payee cannot know which
// reached the payer), and without a bill the payer has no reason to say what it received.
// Nothing is asked again until another delivery: a payer that disputes is asked once.
func (c *Channel) askSettle(s *step) {
	if c.askAt.IsZero() || s.now.Before(c.askAt) {
		return
	}
	c.askAt = time.Time{}
	if c.credit.Owed() == 0 || c.shut || c.state != Open || c.pending.has(KindAskSettle) {
		return
	}
	c.request(s, AskSettle{ChannelID: c.rec.ChannelID})
}

// closeProposed co-signs the payer's close if it pays exactly the newest voucher held and
// the contract is open (cosign); from then on the channel takes no vouchers.
func (c *Channel) closeProposed(s *step, e CloseProposed) error {
	st, cl := e.Chain, e.Close
	switch {
	case !c.stored() || c.state == Closed:
		return ErrWrongState
	case cl.ChannelID != c.rec.ChannelID:
		return fmt.Errorf("%w: channel id %x", ErrBadClose, cl.ChannelID[:])
	case !st.Inited || st.Quarantine != nil:
		return fmt.Errorf("%w: the channel is not open on chain", ErrBadClose)
	case cl.SeqnoB <= uint64(st.CommittedSeqnoB):
		return fmt.Errorf("%w: seqno_B %d is not above the committed %d", ErrBadClose, cl.SeqnoB, st.CommittedSeqnoB)
	case !cl.Verify(c.rec.KeyA, e.Signature):
		return fmt.Errorf("%w: the close is not signed by the payer", ErrBadClose)
	}
	want, err := c.payee.CooperativeClose(st.BalanceA, st.BalanceB, cl.SeqnoB)
	latest, _ := c.payee.Latest()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadClose, err)
	}
	if want != cl {
		return fmt.Errorf("%w: the close pays %d but we hold seqno %d, sent %d", ErrBadClose,
			cl.BalanceB-min(cl.BalanceB, st.BalanceB), latest.Seqno, latest.Sent)
	}
	c.shut = true
	c.mark(s, chanstore.Closing)
	if c.att == nil {
		c.state = ClosingCoop
	}
	s.note(NoteCosigned, latest.Sent, nil)
	s.send(Countersign{Close: cl, Signature: cl.Sign(c.cfg.Key)})
	return nil
}
