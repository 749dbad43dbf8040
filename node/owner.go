package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/xssnick/tonutils-go/address"

	"github.com/cocoon-mesh/cocoon/node/stream"
	"github.com/cocoon-mesh/cocoon/node/wire"
	"github.com/cocoon-mesh/cocoon/ton/channel"
	"github.com/cocoon-mesh/cocoon/ton/chanstore"
)

// chanOwner owns one payment channel: in its turn (mailbox.go), alone, it steps its
// channel.Channel and carries out each Step's Effects in their order before the next: every
// record durable (chanstore), then the messages (an answer's stream, or a request on the
// channel stream, whose outcome comes back as an event), then the chain actions (whose
// outcomes come back too). So persist before send holds by construction. Everything else
// (handlers, the data path, the watch's ticker, its own timer) hands it work: post and
// receive without waiting, do without waiting unless it runs at once, ask for an answer.
type chanOwner struct {
	cs    *channels
	key   chanKey
	peer  peer.ID
	addr  *address.Address
	out   *outChan // a payer's view for the data path (nil for a payee)
	in    *inChan  // a payee's
	terms wire.Terms

	box  mailbox
	done chan struct{} // closed when the owner's goroutine has ended

	// The loop's alone.
	ch       *channel.Channel
	fresh    bool          // nothing was stepped yet: a new channel's first event is on its way
	starting bool          // an opening or resumption asked for here is under way
	opened   []chan error  // what waits for it to end
	openErr  error         // why it failed, once a note said so
	closes   []chan closed // what waits for the close under way to end
	closeErr error
	askers   []chan channel.Message // peers waiting for the close they asked for (payer)
	paid     chan struct{}          // payee: closed whenever credit may have room
	paidOut  bool                   // paid was handed to an answer waiting for credit
	bad      int                    // payee: vouchers refused
	waits    int                    // payee: answers that waited for a voucher
	waitLog  quietCount
	full     bool // payer: a rotation asked now opens the next channel with the whole deposit
	watching bool // a watch's read of the contract is under way
	timer    *Timer
	timerAt  time.Time

	snapMu sync.Mutex
	snap   ChannelStatus // the status as of the latest work (publish)
}

// closed is how a close ended: the channel then, and the close's error.
type closed struct {
	status ChannelStatus
	err    error
}

// errChannelGone answers work posted to an owner whose loop ended: the channel closed, or the
// node is closing.
var errChannelGone = errors.New("the payment channel is no longer held here")

func newOwner(cs *channels, ch *channel.Channel, key chanKey, p peer.ID, terms wire.Terms) *chanOwner {
	o := &chanOwner{cs: cs, key: key, peer: p, addr: ch.Address(), terms: terms, ch: ch, fresh: ch.Record().Role == 0,
		box: mailbox{wake: make(chan struct{}, 1)}, done: make(chan struct{}), paid: make(chan struct{})}
	o.snap = ChannelStatus{Peer: p.String(), Role: key.role.String(), State: chanstore.Open.String(),
		ChannelID: fmt.Sprintf("%x", key.id[:]), Address: o.addr.String()}
	o.publish()
	if key.role == chanstore.Payer {
		o.out = &outChan{o}
	} else {
		o.in = &inChan{o}
	}
	return o
}

// arm sets the timer for the channel's next deadline; when it fires it only posts a Tick.
func (o *chanOwner) arm() {
	at := o.ch.Deadline()
	if at.Equal(o.timerAt) {
		return
	}
	if o.timer != nil {
		o.timer.Stop()
		o.timer = nil
	}
	o.timerAt = at
	if at.IsZero() {
		return
	}
	o.timer = o.cs.life.AfterFunc(max(at.Sub(o.cs.clock.Now()), 0), func() {
		o.do(func() {
			o.timerAt = time.Time{}
			o.step(channel.Tick{})
		})
	})
}

// step steps ev into the channel and carries out what it asks, in order: every record
// durable, then the messages, then the chain actions. It returns the Effects carried out:
// those of PersistFailed when a write failed, with the write's error.
func (o *chanOwner) step(ev channel.Event) (channel.Effects, error) {
	o.fresh = false
	now := o.cs.clock.Now()
	eff, err := o.ch.Step(now, ev)
	if err != nil {
		return channel.Effects{}, err
	}
	if perr := o.persist(eff.Persist); perr != nil {
		if eff, err = o.ch.Step(now, channel.PersistFailed{Err: perr}); err != nil {
			panic("node: a failed write cannot be undone: " + err.Error())
		}
		err = fmt.Errorf("persisting the channel: %w", perr)
	}
	failed := o.send(eff.Send)
	for _, a := range eff.Chain {
		o.act(a)
	}
	if eff.Replace {
		c := o.ch.Counts()
		o.cs.replace(o.out, o.full, o.ch.Record().Limit-min(o.ch.Record().Limit, c.Delivered))
	}
	o.notes(ev, eff.Notes)
	o.resolve(ev, eff.Notes)
	for _, f := range failed {
		_, _ = o.step(f)
	}
	return eff, err
}

// persist makes ws durable, in order; the first that fails stops them.
func (o *chanOwner) persist(ws []channel.Write) error {
	for _, w := range ws {
		var err error
		if w.Delete {
			err = o.cs.store.Delete(o.cs.ctx, w.Record.ChannelID, w.Record.Role)
		} else {
			err = o.cs.store.Put(o.cs.ctx, w.Record)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// send passes on ms: a voucher on the answer's stream it was earned on, at once (failures are
// returned, to be stepped); a request on the channel stream, in the background; an answer
// to a peer's request, to whoever waits for it (a payee's request returns it in Effects).
func (o *chanOwner) send(ms []channel.Message) (failed []channel.Event) {
	for _, m := range ms {
		switch m := m.(type) {
		case channel.View, channel.Countersign, channel.Refusal:
			if o.out != nil {
				for _, w := range o.askers {
					w <- m
				}
				o.askers = nil
			}
		case channel.Pay, channel.Settle:
			if o.cs.withhold {
				continue // a payer that does not pay (Faults.WithholdPayment): stored, never sent
			}
			failed = append(failed, o.sendVoucher(m)...)
		default:
			o.request(m)
		}
	}
	return failed
}

// sendVoucher sends a payment: on the answer's stream it was earned on, or the channel stream.
func (o *chanOwner) sendVoucher(m channel.Message) (failed []channel.Event) {
	switch m := m.(type) {
	case channel.Pay:
		if c, ok := m.Stream.(*stream.Call); ok {
			vb, _ := m.Voucher.MarshalBinary()
			if err := c.Pay(vb); err != nil {
				failed = append(failed, channel.SendFailed{Msg: m, Err: err})
			}
			return failed
		}
	case channel.Settle:
		if c, ok := m.Stream.(*stream.Call); ok {
			if m.Voucher != nil {
				vb, _ := m.Voucher.MarshalBinary()
				_ = c.Settled(vb) // a cancelled request takes nothing more: the settle pays later
			}
			return nil
		}
	}
	o.request(m)
	return nil
}

// resolve answers what waited on the outcome of ev's step: an opening or resumption that
// ended, a close that ended, answers waiting for credit (woken by anything but another
// answer's credit); and takes a payer's channel that stopped out of use.
func (o *chanOwner) resolve(ev channel.Event, notes []channel.Note) {
	for _, n := range notes {
		switch n.What {
		case channel.NoteOpenFailed:
			o.openErr = n.Err
		case channel.NoteCloseFailed:
			o.closeErr = n.Err
		}
	}
	if !o.ch.Opening() {
		if o.starting {
			err := o.openErr
			if err == nil && !o.ch.InUse() {
				err = errNotResumable
			}
			if err == nil { // in use, whether or not its opener still waits
				o.cs.use(o.out)
			}
			for _, w := range o.opened {
				w <- err
			}
			o.starting, o.opened = false, nil
		}
		o.openErr = nil
	}
	if !o.ch.Closing() {
		if len(o.closes) > 0 {
			o.publish()
			r := closed{status: o.status(), err: o.closeErr}
			for _, w := range o.closes {
				w <- r
			}
			o.closes = nil
		}
		o.closeErr = nil
	}
	if o.out != nil && !o.ch.InUse() {
		o.cs.unuse(o.out)
	}
	switch ev.(type) {
	case channel.Delivered, channel.AnswerBegan:
		return
	}
	if o.in != nil && o.paidOut {
		close(o.paid)
		o.paid, o.paidOut = make(chan struct{}), false
	}
}

// errNotResumable is a stored channel that cannot be paid on again: it closed, or started
// closing, or its opening was cut short.
var errNotResumable = errors.New("the channel cannot be paid on again")

// publish makes the channel's status as it is now what status returns.
func (o *chanOwner) publish() {
	c, rec := o.ch.Counts(), o.ch.Record()
	o.snapMu.Lock()
	defer o.snapMu.Unlock()
	s := &o.snap
	if rec.Role != 0 {
		s.State = rec.State.String()
	}
	s.Deposit, s.Paid, s.Seqno = rec.Limit, rec.Voucher.Sent, rec.Voucher.Seqno
	s.Owed, s.Delivered, s.Refused, s.Waits, s.WrittenOff, s.Disputes = c.Owed, c.Delivered, o.bad, o.waits, c.WrittenOff, c.Disputes
}

// status is the channel as the node's status shows it, as of the owner's latest work. It
// does not wait for the owner: a write to a stalled disk holds its loop, not the status.
func (o *chanOwner) status() ChannelStatus {
	o.snapMu.Lock()
	defer o.snapMu.Unlock()
	return o.snap
}

// close closes the channel in mode and waits for the close to end (or ctx): with the
// channel as it is then, and the close's error.
func (o *chanOwner) close(ctx context.Context, mode channel.CloseMode) (ChannelStatus, error) {
	w := make(chan closed, 1)
	if err := o.ask(func() {
		_, err := o.step(channel.CloseRequested{Mode: mode})
		if err == nil && o.ch.Closing() {
			o.closes = append(o.closes, w)
			return
		}
		o.publish()
		w <- closed{status: o.status(), err: err}
	}); err != nil {
		return o.status(), err
	}
	select {
	case r := <-w:
		return r.status, r.err
	case <-ctx.Done():
		return o.status(), context.Cause(ctx)
	case <-o.done:
		return o.status(), errChannelGone
	}
}

// answer steps ev, a peer's request on the channel stream, and returns what answers it (a
// View or a Countersign), or the error to answer with: the Step's, or a failed write's.
func (o *chanOwner) answer(ev channel.Event) (channel.Message, error) {
	var m channel.Message
	var err error
	if e := o.ask(func() {
		var eff channel.Effects
		eff, err = o.step(ev)
		for _, s := range eff.Send {
			switch s.(type) {
			case channel.View, channel.Countersign:
				m = s
			}
		}
	}); e != nil {
		return nil, e
	}
	if err == nil && m == nil {
		err = errors.New("the channel has no answer to this")
	}
	return m, err
}
