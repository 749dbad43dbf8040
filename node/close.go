package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/xssnick/tonutils-go/address"

	"github.com/cocoon-mesh/cocoon/node/wire"
	"github.com/cocoon-mesh/cocoon/ton"
	"github.com/cocoon-mesh/cocoon/ton/chanstore"
	"github.com/cocoon-mesh/cocoon/ton/ledger"
)

// A channel's life after opening. The contract takes a deposit only at init, so a payer whose
// deposit runs low (under a quarter left) moves to a freshly funded channel and closes the old
// one once the answers paid on it have ended. A cooperative close is proposed and submitted by
// the payer, co-signed by the payee, and pays out at once. A side whose counterparty does not
// co-sign closes alone: it starts an uncooperative close with the newest state it holds, and
// the watcher (watchChannels) challenges an older state the payer submitted and finishes the
// close once the quarantine is over.

// closeMode says whether a close may go ahead without the counterparty.
type closeMode int

const (
	closeTogether closeMode = iota // cooperative only: fail if the counterparty does not co-sign
	closeEither                    // cooperative, else alone
	closeAlone                     // uncooperative at once
)

// lowDeposit is the fraction of its deposit under which a payer moves to a new channel.
const lowDeposit = 4

// replacedDrain bounds how long a replaced channel waits for its answers to end before closing.
const replacedDrain = 15 * time.Minute

// OpenChannel opens the channel this node pays peer p on, or resumes the open one, and
// returns it. Channels open by themselves when first needed, locking what the payee's
// earnings earn it; one an operator opens locks the whole payments.deposit.
func (n *Node) OpenChannel(ctx context.Context, p peer.ID) (ChannelStatus, error) {
	if n.payments == nil {
		return ChannelStatus{}, errPaymentsOff
	}
	c, err := n.channelTo(ctx, p, true)
	if err != nil {
		return ChannelStatus{}, err
	}
	return c.status(), nil
}

// TopUpChannel moves the payments to p onto a freshly funded channel, with the whole
// payments.deposit, and closes the old one cooperatively once its answers are paid (the
// contract takes no deposit after init).
func (n *Node) TopUpChannel(ctx context.Context, p peer.ID) (ChannelStatus, error) {
	if n.payments == nil {
		return ChannelStatus{}, errPaymentsOff
	}
	n.payments.mu.Lock()
	old := n.payments.out[p]
	n.payments.mu.Unlock()
	var c *outChan
	var err error
	if old == nil {
		c, err = n.channelTo(ctx, p, true)
	} else {
		c, err = n.rotate(ctx, p, old, true)
	}
	if err != nil {
		return ChannelStatus{}, err
	}
	return c.status(), nil
}

// CloseChannel closes every channel between this node and p that is not closed yet, whichever
// side pays, and returns them as they end. Cooperative by default: both sides sign the final
// balances and the contract pays out at once. With force, or when p does not co-sign, it
// closes alone: it starts an uncooperative close with the newest state it holds, which the
// node finishes after the quarantine (such a channel is returned as closing).
func (n *Node) CloseChannel(ctx context.Context, p peer.ID, force bool) ([]ChannelStatus, error) {
	if n.payments == nil {
		return nil, errPaymentsOff
	}
	mode := closeEither
	if force {
		mode = closeAlone
	}
	outs, ins, err := n.channelsWith(ctx, p)
	if err != nil {
		return nil, err
	}
	if len(outs)+len(ins) == 0 {
		return nil, wire.Errorf(wire.CodeBadRequest, "no open payment channel with %s", p.String())
	}
	var st []ChannelStatus
	var errs []error
	for _, c := range outs {
		s, err := n.closeOut(ctx, c, mode)
		st, errs = append(st, s), append(errs, err)
	}
	for _, c := range ins {
		s, err := n.closeIn(ctx, c, mode)
		st, errs = append(st, s), append(errs, err)
	}
	return st, errors.Join(errs...)
}

var errPaymentsOff = wire.Errorf(wire.CodeBadRequest, "payments are off on this node")

// channelsWith finds this node's channels with p that are not closed: in use, replaced, or
// only in the store (after a restart).
func (n *Node) channelsWith(ctx context.Context, p peer.ID) ([]*outChan, []*inChan, error) {
	ps := n.payments
	ps.mu.Lock()
	var outs []*outChan
	var ins []*inChan
	if c := ps.out[p]; c != nil {
		outs = append(outs, c)
		delete(ps.out, p)
	}
	if c := ps.in[p]; c != nil {
		ins = append(ins, c)
	}
	ins = append(ins, ps.old[p]...)
	ps.mu.Unlock()
	recs, err := ps.store.List(ctx)
	if err != nil {
		return nil, nil, err
	}
	held := func(id ton.ChannelID, role chanstore.Role) bool {
		for _, c := range outs {
			if role == chanstore.Payer && c.id == id {
				return true
			}
		}
		for _, c := range ins {
			if role == chanstore.Payee && c.id == id {
				return true
			}
		}
		return false
	}
	for _, r := range recs {
		if r.State == chanstore.Closed || counterparty(r) != p || held(r.ChannelID, r.Role) {
			continue
		}
		if r.Role == chanstore.Payer {
			c, err := newOutChan(p, wire.Terms{}, ps.key, r)
			if err != nil {
				return nil, nil, err
			}
			outs = append(outs, c)
		} else {
			c, err := newInChan(p, r)
			if err != nil {
				return nil, nil, err
			}
			ins = append(ins, c)
		}
	}
	return outs, ins, nil
}

// payOn returns the channel to pay payee p on for one answer; the caller calls release on it
// when the answer ends. A channel whose deposit runs low is replaced in the background.
func (n *Node) payOn(ctx context.Context, p peer.ID) (*outChan, error) {
	for range 3 { // a channel being replaced refuses new answers: take the next one
		c, err := n.channelTo(ctx, p, false)
		if err != nil {
			return nil, err
		}
		if !c.acquire() {
			continue
		}
		left := c.left()
		if left < c.limit()/lowDeposit {
			n.life.Go(func() {
				if _, err := n.rotate(n.ctx, p, c, false); err != nil && n.ctx.Err() == nil {
					n.log.Warn("cannot move to a new payment channel", "payee", p.String(), "err", err)
				}
			})
		}
		if left == 0 {
			c.release()
			return nil, fmt.Errorf("the deposit on the channel to %s is spent", p.String())
		}
		return c, nil
	}
	return nil, fmt.Errorf("the channel to %s is being replaced", p.String())
}

// rotate replaces old, the channel paying p, with a freshly funded one, and closes old in the
// background once its answers have ended. Callers wanting a channel to p meanwhile wait for
// the new one: old is marked closing durably before anything looks for a channel to resume.
func (n *Node) rotate(ctx context.Context, p peer.ID, old *outChan, full bool) (*outChan, error) {
	ps := n.payments
	if _, first := old.stop(); !first {
		return n.channelTo(ctx, p, full)
	}
	done := ps.closing(old.id) // from before old is marked closing until its close ends
	closing := func(ctx context.Context) error { return n.markOut(ctx, old, chanstore.Closing) }
	ps.mu.Lock()
	var op *opening
	if ps.out[p] == old {
		delete(ps.out, p)
		op = n.startOpening(p, closing, full)
	}
	ps.mu.Unlock()
	if op == nil { // old was already out of use: whatever pays p now is the new channel
		if err := closing(ctx); err != nil {
			return nil, err
		}
	}
	n.log.Info("moving payments to a new channel", "payee", p.String(), "deposit_left", old.left())
	var c *outChan
	var err error
	if op != nil {
		c, err = n.awaitOpening(ctx, p, op)
	} else {
		c, err = n.channelTo(ctx, p, full)
	}
	n.life.Go(func() {
		defer done()
		ctx, cancel := context.WithTimeout(n.ctx, replacedDrain)
		defer cancel()
		if _, err := n.closeOut(ctx, old, closeEither); err != nil && n.ctx.Err() == nil {
			n.log.Warn("cannot close the replaced channel; the watcher retries", "payee", p.String(), "err", err)
		}
	})
	return c, err
}

// closeOut closes a channel this node pays on, once the answers under way on it have ended.
func (n *Node) closeOut(ctx context.Context, c *outChan, mode closeMode) (ChannelStatus, error) {
	ps := n.payments
	defer ps.closing(c.id)()
	idle, _ := c.stop()
	if err := n.markOut(ctx, c, chanstore.Closing); err != nil {
		return c.status(), err
	}
	select {
	case <-idle:
	case <-ctx.Done():
		return c.status(), fmt.Errorf("answers still under way on the channel: %w", context.Cause(ctx))
	}
	c.mu.Lock()
	rec := c.rec
	c.mu.Unlock()
	addr, cs, err := n.onChain(ctx, rec)
	switch {
	case err != nil:
		return c.status(), err
	case closedOnChain(cs, rec):
		return c.status(), n.markOut(ctx, c, chanstore.Closed)
	case cs.Quarantine != nil:
		return c.status(), nil // closing alone, by either side: the watcher finishes it
	}
	if mode != closeAlone {
		err := n.closeTogether(ctx, c, addr, cs)
		if err == nil {
			return c.status(), n.markOut(ctx, c, chanstore.Closed)
		}
		if mode == closeTogether {
			return c.status(), err
		}
		n.log.Warn("the payee did not close the channel with us; closing alone", "payee", c.peer.String(), "err", err)
	}
	if rec.PayeeSemi == ([64]byte{}) {
		return c.status(), errors.New("cannot close alone: the payee never signed its semichannel (a channel opened by an older version); ask it to close")
	}
	a := rec.Voucher
	if !rec.HasVoucher {
		a = ton.SignVoucher(ps.key, rec.ChannelID, rec.CommittedSeqno, 0)
	}
	b := ton.SignedSemiChannel{Signature: rec.PayeeSemi, State: ton.SemiChannel{ChannelID: rec.ChannelID}}
	body := ton.StartUncooperativeCloseBody(true, ps.key, rec.ChannelID, a.Signed(rec.ChannelID), b)
	if _, err := ps.ledger.StartUncooperativeClose(ctx, ps.wallet, addr, body, ps.cfg.DisputeFee); err != nil {
		return c.status(), fmt.Errorf("starting the close of %s alone: %w", addr, err)
	}
	n.log.Warn("started closing a payment channel alone; it pays out after the quarantine",
		"payee", c.peer.String(), "channel", addr.String(), "paid", a.Sent, "quarantine", time.Duration(rec.Closing.QuarantineDuration)*time.Second)
	return c.status(), nil
}

// closeTogether pays what is left on c, has the payee co-sign the final balances and submits
// them: the contract pays both sides out at once.
func (n *Node) closeTogether(ctx context.Context, c *outChan, addr *address.Address, st ton.Storage) error {
	ps := n.payments
	if err := n.settle(ctx, c); err != nil {
		return fmt.Errorf("paying what is left: %w", err)
	}
	c.payMu.Lock()
	c.mu.Lock()
	cl, err := c.payer.CooperativeClose(st.BalanceA, st.BalanceB, uint64(st.CommittedSeqnoB)+1)
	keyB := c.rec.KeyB
	c.mu.Unlock()
	c.payMu.Unlock()
	if err != nil {
		return err
	}
	sigA := cl.Sign(ps.key)
	rp, err := n.channelCall(ctx, c.peer, wire.FrameChannelClose, wire.AppendChannelClose(nil, &wire.ChannelClose{Close: cl, Signature: sigA}), wire.FrameChannelClose)
	if err != nil {
		return err
	}
	reply, err := wire.DecodeChannelClose(rp)
	if err != nil {
		return err
	}
	if reply.Close != cl || !cl.Verify(keyB, reply.Signature) {
		return errors.New("the payee's signature is not over our close")
	}
	body, err := cl.Body(sigA, reply.Signature)
	if err != nil {
		return err
	}
	r, err := ps.ledger.CooperativeClose(ctx, addr, body)
	if err != nil {
		return err
	}
	n.log.Info("payment channel closed", "payee", c.peer.String(), "channel", addr.String(),
		"paid", cl.BalanceB-st.BalanceB, "refunded", cl.BalanceA, "fee", r.Fee)
	return nil
}

// closeIn closes a channel paying this node: the payer is asked to close it together and,
// failing that (with closeEither) or at once (closeAlone), this node closes alone with the
// newest voucher it holds.
func (n *Node) closeIn(ctx context.Context, c *inChan, mode closeMode) (ChannelStatus, error) {
	ps := n.payments
	defer ps.closing(c.id)()
	c.mu.Lock()
	rec := c.rec
	c.mu.Unlock()
	if mode != closeAlone {
		ask := wire.ChannelClose{Close: ton.CooperativeClose{ChannelID: rec.ChannelID}}
		_, err := n.channelCall(ctx, c.peer, wire.FrameChannelClose, wire.AppendChannelClose(nil, &ask), wire.FrameChannelState)
		if err == nil {
			return c.status(), n.refresh(ctx, c)
		}
		if mode == closeTogether {
			return c.status(), err
		}
		n.log.Warn("the payer did not close the channel with us; closing alone", "payer", c.peer.String(), "err", err)
	}
	if err := n.markIn(ctx, c, chanstore.Closing); err != nil {
		return c.status(), err
	}
	c.mu.Lock()
	rec = c.rec
	c.mu.Unlock()
	addr, cs, err := n.onChain(ctx, rec)
	switch {
	case err != nil:
		return c.status(), err
	case closedOnChain(cs, rec):
		return c.status(), n.markIn(ctx, c, chanstore.Closed)
	case cs.Quarantine != nil:
		return c.status(), nil
	case !rec.HasVoucher:
		return c.status(), errors.New("nothing to collect: the payer has paid nothing on this channel")
	}
	body := ton.StartUncooperativeCloseBody(false, ps.key, rec.ChannelID, rec.Voucher.Signed(rec.ChannelID),
		ton.SignSemiChannel(ps.key, ton.SemiChannel{ChannelID: rec.ChannelID}))
	if _, err := ps.ledger.StartUncooperativeClose(ctx, ps.wallet, addr, body, ps.cfg.DisputeFee); err != nil {
		return c.status(), fmt.Errorf("starting the close of %s alone: %w", addr, err)
	}
	n.log.Warn("started closing a payment channel alone; it pays out after the quarantine",
		"payer", c.peer.String(), "channel", addr.String(), "paid", rec.Voucher.Sent, "quarantine", time.Duration(rec.Closing.QuarantineDuration)*time.Second)
	return c.status(), nil
}

// refresh marks c closed if the chain shows it closed.
func (n *Node) refresh(ctx context.Context, c *inChan) error {
	c.mu.Lock()
	rec := c.rec
	c.mu.Unlock()
	_, cs, err := n.onChain(ctx, rec)
	if err == nil && closedOnChain(cs, rec) {
		err = n.markIn(ctx, c, chanstore.Closed)
	}
	return err
}

// handleClose serves a FrameChannelClose: with a signature, the payer proposes a close that we,
// the payee, co-sign if it pays exactly what we hold; without one, the payee asks us, the
// payer, to close, and we answer once we have.
func (n *Node) handleClose(ctx context.Context, s network.Stream, p []byte) (*wire.ChannelClose, *wire.ChannelState, error) {
	req, err := wire.DecodeChannelClose(p)
	if err != nil {
		return nil, nil, wire.Errorf(wire.CodeBadRequest, "%v", err)
	}
	remote := s.Conn().RemotePeer()
	key, err := ed25519Key(s.Conn().RemotePublicKey())
	if err != nil {
		return nil, nil, wire.Errorf(wire.CodePayment, "%v", err)
	}
	id := req.Close.ChannelID
	if len(req.Signature) == 0 { // we pay on it
		rec, err := n.payments.store.Get(ctx, id, chanstore.Payer)
		if err != nil || !bytes.Equal(rec.KeyB, key) {
			return nil, nil, wire.Errorf(wire.CodeBadRequest, "no channel %x paying you", id[:])
		}
		c, err := n.outOf(remote, rec)
		if err != nil {
			return nil, nil, err
		}
		if _, err := n.closeOut(ctx, c, closeTogether); err != nil {
			return nil, nil, wire.Errorf(wire.CodePayment, "closing: %v", err)
		}
		c.mu.Lock()
		st := &wire.ChannelState{Limit: c.rec.Limit}
		c.mu.Unlock()
		return nil, st, nil
	}
	c := n.inByID(remote, id)
	if c == nil {
		rec, err := n.payments.store.Get(ctx, id, chanstore.Payee)
		if err != nil || !bytes.Equal(rec.KeyA, key) || rec.State == chanstore.Closed {
			return nil, nil, wire.Errorf(wire.CodeBadRequest, "no open channel %x from you", id[:])
		}
		if c, err = newInChan(remote, rec); err != nil {
			return nil, nil, err
		}
	}
	cl, err := n.cosign(ctx, c, key, req)
	if err != nil {
		n.log.Warn("refused to co-sign a close", "payer", remote.String(), "err", err)
		return nil, nil, wire.Errorf(wire.CodePayment, "%v", err)
	}
	return cl, nil, nil
}

// cosign signs, as payee, the payer's proposed close of c if it pays exactly the newest
// voucher we hold; from then on c takes no vouchers and serves nothing.
func (n *Node) cosign(ctx context.Context, c *inChan, keyA []byte, req wire.ChannelClose) (*wire.ChannelClose, error) {
	c.mu.Lock()
	rec := c.rec
	c.mu.Unlock()
	_, cs, err := n.onChain(ctx, rec)
	switch {
	case err != nil:
		return nil, err
	case !cs.Inited || cs.Quarantine != nil:
		return nil, errors.New("the channel is not open on chain")
	case req.Close.SeqnoB <= uint64(cs.CommittedSeqnoB):
		return nil, fmt.Errorf("seqno_B %d is not above the committed %d", req.Close.SeqnoB, cs.CommittedSeqnoB)
	case !req.Close.Verify(keyA, req.Signature):
		return nil, errors.New("the close is not signed by the payer")
	}
	c.mu.Lock()
	want, err := c.payee.CooperativeClose(cs.BalanceA, cs.BalanceB, req.Close.SeqnoB)
	latest, _ := c.payee.Latest()
	if err == nil && want != req.Close {
		err = fmt.Errorf("the close pays %d but we hold seqno %d, sent %d", req.Close.BalanceB-min(req.Close.BalanceB, cs.BalanceB), latest.Seqno, latest.Sent)
	}
	if err == nil {
		c.closed = true
	}
	c.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if err := n.markIn(ctx, c, chanstore.Closing); err != nil {
		return nil, err
	}
	n.log.Info("co-signed the close of a payment channel", "payer", c.peer.String(), "channel_id", fmt.Sprintf("%x", rec.ChannelID[:]), "paid", latest.Sent)
	return &wire.ChannelClose{Close: req.Close, Signature: req.Close.Sign(n.payments.key)}, nil
}

// outByID is the channel in memory we pay p on with id, taken out of use; nil if none.
func (n *Node) outByID(p peer.ID, id ton.ChannelID) *outChan {
	n.payments.mu.Lock()
	defer n.payments.mu.Unlock()
	if c := n.payments.out[p]; c != nil && c.id == id {
		delete(n.payments.out, p)
		return c
	}
	return nil
}

// inByID is the channel in memory p pays us on with id, in use or replaced; nil if none.
func (n *Node) inByID(p peer.ID, id ton.ChannelID) *inChan {
	n.payments.mu.Lock()
	defer n.payments.mu.Unlock()
	if c := n.payments.in[p]; c != nil && c.id == id {
		return c
	}
	for _, c := range n.payments.old[p] {
		if c.id == id {
			return c
		}
	}
	return nil
}

// markOut moves c's durable record forward to state st (a no-op if it is there already).
func (n *Node) markOut(ctx context.Context, c *outChan, st chanstore.State) error {
	c.payMu.Lock() // sequenced with vouchers, so neither Put undoes the other
	defer c.payMu.Unlock()
	c.mu.Lock()
	rec := c.rec
	c.mu.Unlock()
	if rec.State >= st {
		return nil
	}
	rec.State = st
	if err := n.payments.store.Put(ctx, rec); err != nil {
		return err
	}
	c.mu.Lock()
	c.rec = rec
	c.mu.Unlock()
	return nil
}

// markIn stops c taking vouchers and moves its durable record, with the newest voucher
// accepted, forward to state st. A closed channel leaves the node's maps.
func (n *Node) markIn(ctx context.Context, c *inChan, st chanstore.State) error {
	c.mu.Lock()
	c.closed = true
	rec := c.rec
	if v, ok := c.payee.Latest(); ok {
		rec.Voucher, rec.HasVoucher = v, true
	}
	c.mu.Unlock()
	if rec.State < st {
		rec.State = st
		if err := n.payments.store.Put(ctx, rec); err != nil {
			return err
		}
		c.mu.Lock()
		c.rec = rec
		c.mu.Unlock()
	}
	if st == chanstore.Closed {
		ps := n.payments
		ps.mu.Lock()
		if ps.in[c.peer] == c {
			delete(ps.in, c.peer)
		}
		old := ps.old[c.peer][:0]
		for _, o := range ps.old[c.peer] {
			if o != c {
				old = append(old, o)
			}
		}
		if len(old) == 0 {
			delete(ps.old, c.peer)
		} else {
			ps.old[c.peer] = old
		}
		ps.mu.Unlock()
	}
	return nil
}

// onChain reads the contract of rec's channel.
func (n *Node) onChain(ctx context.Context, rec chanstore.Record) (*address.Address, ton.Storage, error) {
	addr, err := rec.Address()
	if err != nil {
		return nil, ton.Storage{}, err
	}
	cs, err := n.payments.ledger.Channel(ctx, addr)
	if err != nil {
		return addr, ton.Storage{}, fmt.Errorf("channel %s on the ledger: %w", addr, err)
	}
	return addr, cs.Storage, nil
}

// closedOnChain reports whether the contract paid rec's channel out: it is no longer inited
// and its committed seqno moved past the one it was opened at.
func closedOnChain(st ton.Storage, rec chanstore.Record) bool {
	return !st.Inited && st.Quarantine == nil && uint64(st.CommittedSeqnoA) > rec.CommittedSeqno
}

// status is c as the node's status shows it.
func (c *outChan) status() ChannelStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	return channelStatus(c.peer, c.rec, c.meter.Unpaid(), c.meter.Received(), 0)
}

// status is c as the node's status shows it.
func (c *inChan) status() ChannelStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := channelStatus(c.peer, c.rec, c.credit.Owed(), c.credit.Delivered(), c.bad)
	s.Waits, s.WrittenOff, s.Disputes = c.waits, c.credit.WrittenOff(), c.disputes
	return s
}

// watchChannels follows, every PaymentConfig.WatchEvery, the contracts of the channels that
// are not closed: it notices closes, challenges a payer that started closing with an older
// state than the newest we hold, and finishes a close once its quarantine is over.
func (n *Node) watchChannels() {
	t := n.clock.Ticker(n.cfg.Payments.WatchEvery)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		recs, err := n.payments.store.List(n.ctx)
		if err != nil {
			n.log.Warn("cannot list payment channels", "err", err)
		}
		for _, r := range recs {
			if r.State != chanstore.Closed {
				if err := n.watch(n.ctx, r); err != nil && n.ctx.Err() == nil {
					n.log.Warn("watching payment channel", "channel_id", fmt.Sprintf("%x", r.ChannelID[:]), "err", err)
				}
			}
		}
	}
}

// watch does what the chain asks of one channel record.
func (n *Node) watch(ctx context.Context, r chanstore.Record) error {
	ps := n.payments
	addr, cs, err := n.onChain(ctx, r)
	if err != nil {
		if errors.Is(err, ledger.ErrNotFound) {
			return nil // not deployed (yet)
		}
		return err
	}
	switch {
	case closedOnChain(cs, r):
		n.log.Info("payment channel closed on chain", "role", r.Role.String(), "peer", counterparty(r).String(), "channel", addr.String(), "paid", r.Voucher.Sent)
		return n.setState(ctx, r, chanstore.Closed)
	case cs.Quarantine == nil && r.State == chanstore.Open:
		return n.settleIdle(ctx, r)
	case cs.Quarantine == nil:
		return n.resumeClose(ctx, r, cs)
	}
	q := cs.Quarantine
	if r.State == chanstore.Open {
		n.log.Warn("the other side started closing a payment channel alone", "role", r.Role.String(), "peer", counterparty(r).String(), "channel", addr.String())
		if err := n.setState(ctx, r, chanstore.Closing); err != nil {
			return err
		}
	}
	if r.Role == chanstore.Payee && q.StateCommitedByA && !q.StateChallenged && r.HasVoucher && r.Voucher.Seqno > q.StateA.Seqno {
		body := ton.ChallengeBody(false, ps.key, r.ChannelID, r.Voucher.Signed(r.ChannelID), ton.SignSemiChannel(ps.key, ton.SemiChannel{ChannelID: r.ChannelID}))
		if _, err := ps.ledger.Challenge(ctx, ps.wallet, addr, body, ps.cfg.DisputeFee); err != nil {
			return fmt.Errorf("challenging an older state: %w", err)
		}
		n.log.Warn("the payer is closing with an older state; challenged with our newest", "payer", counterparty(r).String(),
			"channel", addr.String(), "their_sent", q.StateA.Sent, "our_sent", r.Voucher.Sent)
		return nil
	}
	now, err := ps.ledger.Now(ctx)
	if err != nil {
		return err
	}
	if now.Unix() <= int64(q.QuarantineStarts)+int64(r.Closing.QuarantineDuration)+int64(r.Closing.ConditionalCloseDuration) {
		return nil
	}
	if _, err := ps.ledger.FinishUncooperativeClose(ctx, addr); err != nil {
		return fmt.Errorf("finishing the close: %w", err)
	}
	n.log.Info("payment channel closed after its quarantine", "role", r.Role.String(), "peer", counterparty(r).String(), "channel", addr.String(), "paid", q.StateA.Sent)
	return n.setState(ctx, r, chanstore.Closed)
}

// settleIdle closes r, an open channel, once it has gone idle: no new voucher for
// PaymentConfig.SettleIdle. A payee closes a channel that paid it anything, so what it earned
// reaches its wallet whether or not the payer ever comes back. A payer waits twice as long,
// leaving the payee to settle first, and closes what is still open then (a payee that went
// away), so its deposit comes back; a channel that never paid anything it closes after
// UnearnedIdle, so payees that earn nothing do not hold the unearned cap. Either asks the
// other side to close together, and closes alone if it does not answer.
func (n *Node) settleIdle(ctx context.Context, r chanstore.Record) error {
	idle, after := n.clock.Since(r.Updated), n.cfg.Payments.SettleIdle
	switch {
	case r.Role == chanstore.Payer && r.Voucher.Sent == 0:
		after = min(2*after, n.cfg.Payments.UnearnedIdle) // its payee never earned on it: free the cap
	case r.Role == chanstore.Payer:
		after *= 2
	}
	if idle < after || n.payments.closingHere(r.ChannelID) || (r.Role == chanstore.Payee && (!r.HasVoucher || r.Voucher.Sent == 0)) {
		return nil
	}
	p := counterparty(r)
	n.log.Info("closing an idle payment channel", "role", r.Role.String(), "peer", p.String(),
		"channel_id", fmt.Sprintf("%x", r.ChannelID[:]), "paid", r.Voucher.Sent, "idle", idle.Round(time.Second))
	return n.closeEither(ctx, p, r)
}

// resumeClose finishes a close that stalled: r is marked closing but its contract is still
// open, and no close of it is under way here. This is a payer that crashed during a close, a
// payee that co-signed a close its payer never submitted, or a close that failed (the other
// side was away). The payer gets a head start, so the two sides do not race; the payee asks
// its payer first, and closes alone only if the payer does not answer.
func (n *Node) resumeClose(ctx context.Context, r chanstore.Record, cs ton.Storage) error {
	stalled := 2 * n.cfg.Payments.WatchEvery // a payer's own close
	if r.Role == chanstore.Payee {
		stalled *= 2
	}
	if r.State != chanstore.Closing || !cs.Inited || n.clock.Since(r.Updated) < stalled || n.payments.closingHere(r.ChannelID) {
		return nil
	}
	if r.Role == chanstore.Payee && !r.HasVoucher {
		return nil // nothing to collect
	}
	p := counterparty(r)
	n.log.Warn("resuming a stalled close of a payment channel", "role", r.Role.String(), "peer", p.String(),
		"channel_id", fmt.Sprintf("%x", r.ChannelID[:]), "closing_since", r.Updated)
	return n.closeEither(ctx, p, r)
}

// closeEither closes channel record r with peer p from our side, payer or payee: together
// if p answers, else alone.
func (n *Node) closeEither(ctx context.Context, p peer.ID, r chanstore.Record) error {
	if r.Role == chanstore.Payer {
		c, err := n.outOf(p, r)
		if err == nil {
			_, err = n.closeOut(ctx, c, closeEither)
		}
		return err
	}
	c, err := n.inOf(p, r)
	if err == nil {
		_, err = n.closeIn(ctx, c, closeEither)
	}
	return err
}

// outOf is the channel in memory we pay p on with rec's id (taken out of use), or else one
// resumed from rec, for closing it.
func (n *Node) outOf(p peer.ID, rec chanstore.Record) (*outChan, error) {
	if c := n.outByID(p, rec.ChannelID); c != nil {
		return c, nil
	}
	return newOutChan(p, wire.Terms{}, n.payments.key, rec)
}

// inOf is the channel in memory p pays us on with rec's id, or else one resumed from rec.
func (n *Node) inOf(p peer.ID, rec chanstore.Record) (*inChan, error) {
	if c := n.inByID(p, rec.ChannelID); c != nil {
		return c, nil
	}
	return newInChan(p, rec)
}

// setState moves channel record r, and the channel in memory if any, forward to state st.
func (n *Node) setState(ctx context.Context, r chanstore.Record, st chanstore.State) error {
	p := counterparty(r)
	if r.Role == chanstore.Payee {
		if c := n.inByID(p, r.ChannelID); c != nil {
			return n.markIn(ctx, c, st)
		}
	} else if c := n.outByID(p, r.ChannelID); c != nil {
		c.stop()
		return n.markOut(ctx, c, st)
	}
	r.State = st
	return n.payments.store.Put(ctx, r)
}
