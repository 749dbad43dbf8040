package channel

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/xssnick/tonutils-go/address"

	"github.com/cocoon-mesh/cocoon/ton"
	"github.com/cocoon-mesh/cocoon/ton/chanstore"
)

// Thresholds node uses, kept as it has them.
const (
	// LowDeposit: a payer moves to a new channel once less than 1/LowDeposit of the deposit
	// is left.
	LowDeposit = 4
	// ReplacedDrain bounds how long a replaced channel waits for its answers to end.
	ReplacedDrain = 15 * time.Minute
)

// Errors Step returns; each leaves the channel unchanged.
var (
	ErrWrongRole  = errors.New("channel: the event is for the other role")
	ErrWrongState = errors.New("channel: the event does not apply in this state")
	ErrUnexpected = errors.New("channel: no request awaits this answer")
	// ErrStopped refuses an answer on a channel being replaced or closed: take the next one.
	ErrStopped = errors.New("channel: the channel takes no new answers: it is being replaced or closed")
	// ErrClosing refuses vouchers and credit on a channel being closed.
	ErrClosing = errors.New("channel: the payment channel is closing: open a new one")
	// ErrSuperseded drops a voucher that pays no more than one already accepted, at a seqno no
	// higher: vouchers travel on many answers' streams and may arrive out of order.
	ErrSuperseded = errors.New("channel: voucher superseded by one already accepted")
	// ErrBadClose is wrapped by the refusals of a close proposal or countersignature.
	ErrBadClose = errors.New("channel: the close does not check")
	// ErrBadChannel refuses an announcement of a contract that is not this channel.
	ErrBadChannel = errors.New("channel: not an inited channel with these parameters and a deposit")
)

// Config is what every channel of a node shares.
type Config struct {
	// Key is this node's channel key, its ed25519 identity key: key A of the channels it
	// pays on, key B of those paying it.
	Key ed25519.PrivateKey
	// FlushAfter is how long a payer lets value stay unpaid once an answer has ended. A payee
	// still counting value owed ten times as long after its last delivery (at least a
	// second) asks the payer to settle.
	FlushAfter time.Duration
	// SettleIdle: a payee closes a channel that paid it and got no voucher for this long; a
	// payer closes after twice as long, or after UnearnedIdle (at most) if it never paid.
	SettleIdle, UnearnedIdle time.Duration
	// WatchEvery is the watch's period: a close stalled for two periods (a payer's) or four
	// (a payee's) is resumed.
	WatchEvery time.Duration
	// OpenFee is sent with a deployment beyond the deposit and the excess fee, for its gas;
	// DisputeFee with an uncooperative close or a challenge.
	OpenFee, DisputeFee uint64
}

func (c Config) validate() error {
	if len(c.Key) != ed25519.PrivateKeySize {
		return errors.New("channel: Config.Key must be a 64-byte ed25519 private key")
	}
	if c.FlushAfter < 0 || c.SettleIdle < 0 || c.UnearnedIdle < 0 || c.WatchEvery < 0 {
		return errors.New("channel: Config durations must not be negative")
	}
	return nil
}

// Channel is one payment channel, for either role: its durable record and what this process
// holds of it beside (the payer's meter, the payee's credit, a close under way). It is not
// safe for concurrent use: one owner steps it.
type Channel struct {
	cfg    Config
	role   chanstore.Role
	params ton.Params
	addr   *address.Address
	rec    chanstore.Record // the newest record written (zero before the first)
	state  State
	att    *attempt // the close under way here (nil: none)

	// A payer's.
	payer    ton.Payer
	meter    ton.Meter
	inUse    bool   // greeted the payee: answers may be paid on it
	stopped  bool   // takes no new answers (sticky, as node's outChan.closing)
	active   int    // answers under way
	acked    uint64 // the highest seqno the payee confirmed holding
	disputed bool   // refused value the payee may still count: the next settle says so
	flushAt  time.Time
	opening  opening // what an opening or a resumption waits for
	pending  kinds   // the requests on the channel stream awaiting their answer
	acting   string  // the watch's chain action under way (challenge, finish; "": none)

	// A payee's.
	payee    ton.Payee
	credit   ton.Credit
	window   uint64    // the latest answer's credit window: what bounds a write-off
	largest  uint64    // the costliest item delivered: it bounds a write-off too, if above window
	disputes int       // write-offs refused
	shut     bool      // a close was signed or started: no vouchers, no credit (sticky)
	askAt    time.Time // when to ask the payer to settle what is still owed (zero: not armed)

	undo *Channel // the channel before the last Step that wrote, for PersistFailed
}

// attempt is a close under way in this process.
type attempt struct {
	mode     CloseMode
	phase    phase
	asked    bool        // the counterparty asked: answer it when the attempt ends
	drainBy  time.Time   // zero: the drain is not bounded
	chain    ton.Storage // the contract as read before proposing
	proposal ton.CooperativeClose
	sigA     []byte
}

// New returns the channel with parameters p for role, before anything is stored: a payer's
// waits for OpenRequested, a payee's for Announced.
func New(cfg Config, role chanstore.Role, p ton.Params) (*Channel, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	own := p.KeyA
	if role == chanstore.Payee {
		own = p.KeyB
	} else if role != chanstore.Payer {
		return nil, fmt.Errorf("channel: unknown role %d", role)
	}
	if !bytes.Equal(own, cfg.Key.Public().(ed25519.PublicKey)) {
		return nil, fmt.Errorf("channel: Config.Key is not the %s's key of the channel", role)
	}
	addr, err := p.Address()
	if err != nil {
		return nil, err
	}
	return &Channel{cfg: cfg, role: role, params: p, addr: addr, state: Opening}, nil
}

// Resume rebuilds a channel from its durable record, as after a restart: what was metered
// and not paid is lost (a payee writes off at most a window), the rest continues. A payer's
// open channel must be resumed (ResumeRequested) before answers are paid on it.
func Resume(cfg Config, rec chanstore.Record) (*Channel, error) {
	p, err := rec.Params()
	if err != nil {
		return nil, err
	}
	c, err := New(cfg, rec.Role, p)
	if err != nil {
		return nil, err
	}
	c.rec = rec
	if err := c.load(rec); err != nil {
		return nil, err
	}
	switch rec.State {
	case chanstore.Open:
		c.state = Open
	case chanstore.Closing:
		c.state = Closing
	default:
		c.state = Closed
	}
	c.stopped, c.shut = rec.State != chanstore.Open, rec.State != chanstore.Open
	return c, nil
}

// load builds the role's sequencer and meter from rec, as node's newOutChan and newInChan.
func (c *Channel) load(rec chanstore.Record) error {
	if c.role == chanstore.Payer {
		p, err := ton.NewPayer(ton.PayerConfig{ChannelID: rec.ChannelID, Key: c.cfg.Key, Limit: rec.Limit,
			Seqno: max(rec.Voucher.Seqno, rec.CommittedSeqno), Sent: rec.Voucher.Sent})
		if err != nil {
			return err
		}
		c.payer, c.meter = *p, *ton.NewMeter(rec.Voucher.Sent)
		return nil
	}
	p, err := ton.NewPayee(ton.PayeeConfig{ChannelID: rec.ChannelID, PayerKey: rec.KeyA, Limit: rec.Limit,
		CommittedSeqno: rec.CommittedSeqno})
	if err != nil {
		return err
	}
	if rec.HasVoucher {
		if err := p.Accept(rec.Voucher); err != nil {
			return fmt.Errorf("channel: stored voucher: %w", err)
		}
	}
	c.payee, c.credit = *p, *ton.NewCredit(p.Sent())
	return nil
}

// step is one Step's work in progress.
type step struct {
	now time.Time
	eff Effects
}

func (s *step) send(m Message) { s.eff.Send = append(s.eff.Send, m) }
func (s *step) chain(a Action) { s.eff.Chain = append(s.eff.Chain, a) }
func (s *step) note(k NoteKind, amount uint64, err error) {
	s.eff.Notes = append(s.eff.Notes, Note{What: k, Amount: amount, Err: err})
}

// Step applies ev at now and returns what the caller must do, in order. On error nothing
// changed and there is nothing to do: bad input from the peer, or an event that does not
// apply. An impossible internal transition panics.
func (c *Channel) Step(now time.Time, ev Event) (Effects, error) {
	if pf, ok := ev.(PersistFailed); ok {
		return c.persistFailed(now, pf)
	}
	before := c.clone()
	c.undo = nil
	s := &step{now: now}
	if err := c.dispatch(s, ev); err != nil {
		*c = before
		return Effects{}, err
	}
	if len(s.eff.Persist) > 0 {
		before.undo = nil
		c.undo = &before
	}
	return s.eff, nil
}

// dispatch hands ev to its handler.
func (c *Channel) dispatch(s *step, ev Event) error {
	switch e := ev.(type) {
	case OpenRequested:
		return c.payerOnly(func() error { return c.openRequested(s, e) })
	case ResumeRequested:
		return c.payerOnly(func() error { return c.resumeRequested(s) })
	case Replied:
		return c.replied(s, e)
	case CloseSigned:
		return c.payerOnly(func() error { return c.closeSigned(s, e) })
	case AnswerBegan:
		return c.answerBegan(s, e)
	case AnswerEnded:
		return c.payerOnly(func() error { return c.answerEnded(s) })
	case Received:
		return c.payerOnly(func() error { return c.received(s, e) })
	case Billed:
		return c.payerOnly(func() error { return c.billed(s, e) })
	case Rotate:
		return c.payerOnly(func() error { c.rotate(s); return nil })
	case Announced:
		return c.payeeOnly(func() error { return c.announced(s, e) })
	case VoucherReceived:
		return c.payeeOnly(func() error { return c.voucherReceived(s, e) })
	case Settled:
		return c.payeeOnly(func() error { return c.settled(s, e) })
	case CloseProposed:
		return c.payeeOnly(func() error { return c.closeProposed(s, e) })
	case Delivered:
		return c.payeeOnly(func() error { return c.delivered(s, e) })
	case SettleAsked:
		return c.payerOnly(func() error { return c.settleAsked(s) })
	case Refused:
		c.refused(e)
		return nil
	case ChainObserved:
		return c.observed(s, e)
	case CloseRequested:
		return c.closeRequested(s, e)
	case Tick:
		if c.role == chanstore.Payee {
			c.askSettle(s)
		}
		c.tick(s)
		return nil
	case SendFailed:
		return c.sendFailed(s, e)
	case ChainDone:
		return c.chainDone(s, e)
	case ChainFailed:
		return c.chainFailed(s, e)
	}
	return fmt.Errorf("channel: unknown event %T", ev)
}

func (c *Channel) payerOnly(f func() error) error {
	if c.role != chanstore.Payer {
		return ErrWrongRole
	}
	return f()
}

func (c *Channel) payeeOnly(f func() error) error {
	if c.role != chanstore.Payee {
		return ErrWrongRole
	}
	return f()
}

// clone copies c deeply enough that stepping c leaves the copy as it was.
func (c *Channel) clone() Channel {
	cp := *c
	if c.att != nil {
		a := *c.att
		cp.att = &a
	}
	return cp
}

// persistFailed returns the channel to what is durable, keeping what node keeps after a
// failed Put: the sequencers (a payer never reuses a seqno it signed; a payee's ton.Payee
// keeps what it accepted) and the sticky stops. What the failed Step was part of fails as
// node's call would: an opening or resumption (openOut), a close (closeOut, closeIn; one
// that was paying what is left goes alone, as closeTogether's failure does).
func (c *Channel) persistFailed(now time.Time, pf PersistFailed) (Effects, error) {
	if c.undo == nil {
		return Effects{}, fmt.Errorf("%w: the last Step wrote nothing", ErrUnexpected)
	}
	failed := c.clone()
	*c = *c.undo
	c.payer, c.payee = failed.payer, failed.payee
	c.stopped, c.shut = failed.stopped, failed.shut
	s := &step{now: now}
	switch {
	case c.opening != opNone:
		c.opening, c.state = opNone, Opening
		if c.stored() {
			c.state = Open
		}
		c.pending.drop(KindAnnounce)
		s.note(NoteOpenFailed, 0, pf.Err)
	case c.att != nil && (failed.att == nil || failed.att.phase != c.att.phase):
		if failed.att != nil && failed.att.phase == phSettle {
			c.coopFailed(s, fmt.Errorf("paying what is left: %w", pf.Err))
		} else {
			c.fail(s, pf.Err)
		}
	case c.att == nil && failed.att != nil:
		s.note(NoteCloseFailed, 0, pf.Err)
		if failed.att.asked {
			s.send(Refusal{Err: fmt.Errorf("closing: %w", pf.Err)})
		}
	}
	return s.eff, nil
}

// persist writes rec, stamped with now (the store restamps it with its own clock).
func (c *Channel) persist(s *step, rec chanstore.Record) {
	rec.Updated = time.UnixMilli(s.now.UnixMilli()).UTC()
	c.rec = rec
	s.eff.Persist = append(s.eff.Persist, Write{Record: rec})
}

// mark moves the record forward to st (a no-op if it is there already); a payee's carries
// the newest voucher accepted, as node's markIn.
func (c *Channel) mark(s *step, st chanstore.State) {
	rec := c.rec
	if c.role == chanstore.Payee {
		if v, ok := c.payee.Latest(); ok {
			rec.Voucher, rec.HasVoucher = v, true
		}
	}
	if rec.State >= st {
		return
	}
	rec.State = st
	c.persist(s, rec)
}

// Role is the side this node holds.
func (c *Channel) Role() chanstore.Role { return c.role }

// State is where the channel is.
func (c *Channel) State() State { return c.state }

// Record is the newest record written.
func (c *Channel) Record() chanstore.Record { return c.rec }

// Address is the channel contract's address.
func (c *Channel) Address() *address.Address { return c.addr }

// InUse reports whether a payer may pay answers on the channel (AnswerBegan), or a payee
// serve against it.
func (c *Channel) InUse() bool {
	if c.role == chanstore.Payer {
		return c.state == Open && c.inUse && !c.stopped
	}
	return c.state == Open && !c.shut
}

// Opening reports whether a payer's opening or resumption is under way: a deployment, a
// check on chain or the payee's greeting. Once it ended, InUse says whether it succeeded.
func (c *Channel) Opening() bool { return c.opening != opNone }

// VoucherDue reports whether Received{Value: value, Every: every} would sign a voucher now
// (and so write the record): the caller may step one that would not without waiting for
// a write.
func (c *Channel) VoucherDue(value, every uint64) bool {
	return c.role == chanstore.Payer && c.meter.Unpaid()+value >= max(every, 1)
}

// Closing reports whether a close is under way in this process (node's closingHere).
func (c *Channel) Closing() bool { return c.att != nil }

// Deadline is when a Tick next has something to do (zero: nothing pending).
func (c *Channel) Deadline() time.Time {
	d := c.flushAt
	if c.role == chanstore.Payee && c.credit.Owed() > 0 {
		d = c.askAt
	}
	if c.att != nil && c.att.phase == phDrain && !c.att.drainBy.IsZero() && (d.IsZero() || c.att.drainBy.Before(d)) {
		d = c.att.drainBy
	}
	return d
}

// Counts is what the node's status shows beside the record.
type Counts struct {
	Owed       uint64 // payee: delivered and unpaid; payer: received and unpaid
	Delivered  uint64 // payee: delivered; payer: received
	WrittenOff uint64 // payee
	Disputes   int    // payee: write-offs refused
	Active     int    // payer: answers under way
}

// Counts returns the channel's counts now.
func (c *Channel) Counts() Counts {
	if c.role == chanstore.Payer {
		return Counts{Owed: c.meter.Unpaid(), Delivered: c.meter.Received(), Active: c.active}
	}
	return Counts{Owed: c.credit.Owed(), Delivered: c.credit.Delivered(), WrittenOff: c.credit.WrittenOff(), Disputes: c.disputes}
}
