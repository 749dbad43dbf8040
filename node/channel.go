package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/multiformats/go-multistream"
	"github.com/xssnick/tonutils-go/address"

	"github.com/cocoon-mesh/cocoon/node/wire"
	"github.com/cocoon-mesh/cocoon/ton"
	"github.com/cocoon-mesh/cocoon/ton/chanstore"
	"github.com/cocoon-mesh/cocoon/ton/ledger"
)

// ChannelProtocol carries a payment channel's life between requests: one request and one
// answer per stream. The payer asks for the payee's terms, tells it about a channel it opened
// on chain (or resumes one after a restart, presenting its newest voucher), or pays what an
// ended answer left unpaid; the payee answers with its view of the channel.
const ChannelProtocol protocol.ID = "/cocoon/channel/1.0.0"

// channelTimeout bounds one exchange on the channel stream, ledger reads included.
const channelTimeout = 30 * time.Second

// handleChannel serves the payee's side of the channel protocol.
func (n *Node) handleChannel(s network.Stream) {
	defer s.Close()
	_ = s.SetDeadline(n.now().Add(channelTimeout))
	ctx, cancel := context.WithTimeout(n.ctx, channelTimeout)
	defer cancel()
	r := wire.NewReader(s, 4<<10)
	defer r.Release()
	w := wire.NewWriter(s)
	defer w.Release()
	reply := func(t wire.FrameType, p []byte) {
		if w.WriteFrame(t, p) == nil {
			_ = w.Flush()
		}
	}
	payer := s.Conn().RemotePeer()
	t, p, err := r.ReadFrame()
	if err != nil {
		s.Reset()
		return
	}
	var state *wire.ChannelState
	switch t {
	case wire.FrameTerms:
		reply(wire.FrameTerms, wire.AppendTerms(nil, &n.payments.terms))
		return
	case wire.FrameChannelNew:
		var id ton.ChannelID
		if id, err = wire.DecodeChannelNew(p); err == nil {
			state = &wire.ChannelState{PayeeSemi: n.payments.emptySemi(id)}
		} else {
			err = wire.Errorf(wire.CodeBadRequest, "%v", err)
		}
	case wire.FrameChannelOpen:
		state, err = n.openIn(ctx, s, p)
	case wire.FramePay, wire.FrameSettled:
		// Settled: a payer that refused value says what pays all it received (an empty
		// payload: nothing yet), and we write off what we counted beyond it.
		var c *inChan
		if c, err = n.payerIn(payer); err == nil {
			var v ton.Voucher
			if t == wire.FramePay || len(p) > 0 {
				if c, err = n.acceptAny(ctx, c, p); err != nil {
					n.log.Warn("voucher refused", "payer", payer.String(), "err", err)
					err = wire.Errorf(wire.CodePayment, "voucher refused: %v", err)
				}
				v, _ = ton.DecodeVoucher(p)
			}
			if err == nil && t == wire.FrameSettled {
				n.writeOff(c, v, "the payer settled after refusing an answer")
			}
			st := n.channelState(c)
			state = &st
		}
	case wire.FrameChannelClose:
		var cl *wire.ChannelClose
		if cl, state, err = n.handleClose(ctx, s, p); cl != nil {
			reply(wire.FrameChannelClose, wire.AppendChannelClose(nil, cl))
			return
		}
	default:
		err = wire.Errorf(wire.CodeBadRequest, "unexpected %s frame on the channel stream", t)
	}
	if err != nil {
		reply(wire.FrameError, wire.AppendError(nil, asWireError(err)))
		return
	}
	reply(wire.FrameChannelState, wire.AppendChannelState(nil, state))
}

// channelState is the payee's answer on the channel stream: its view of c, and its signature
// over its empty semichannel, which lets the payer close alone should this node vanish.
func (n *Node) channelState(c *inChan) wire.ChannelState {
	c.mu.Lock()
	st := wire.ChannelState{Limit: c.rec.Limit}
	if c.rec.HasVoucher {
		st.Voucher, _ = c.rec.Voucher.MarshalBinary()
	}
	c.mu.Unlock()
	st.PayeeSemi = n.payments.emptySemi(c.id)
	return st
}

// emptySemi is our signature, as payee, over our empty semichannel of channel id: a payee
// never pays, so its semichannel stays empty and signing it for any channel commits to
// nothing, while it lets the payer close the channel alone.
func (ps *payState) emptySemi(id ton.ChannelID) []byte {
	semi := ton.SignSemiChannel(ps.key, ton.SemiChannel{ChannelID: id})
	return semi.Signature[:]
}

// acceptAny accepts voucher b on c or, if it is not c's, on a channel the same payer replaced
// with c and still pays what it owes there; it returns the channel that took b.
func (n *Node) acceptAny(ctx context.Context, c *inChan, b []byte) (*inChan, error) {
	err := n.acceptNew(ctx, c, b)
	if !errors.Is(err, ton.ErrBadSignature) {
		return c, err
	}
	n.payments.mu.Lock()
	old := slices.Clone(n.payments.old[c.peer])
	n.payments.mu.Unlock()
	for _, o := range old {
		if n.acceptNew(ctx, o, b) == nil {
			return o, nil
		}
	}
	return c, err
}

// openIn takes a payer's channel: it must be under our terms, with the payer's identity key
// and ours, and exist on chain as the contract with those parameters, inited with a deposit.
// A channel we already hold is resumed, the higher of our voucher and the payer's winning.
func (n *Node) openIn(ctx context.Context, s network.Stream, p []byte) (*wire.ChannelState, error) {
	o, err := wire.DecodeChannelOpen(p)
	if err != nil {
		return nil, wire.Errorf(wire.CodeBadRequest, "%v", err)
	}
	payer := s.Conn().RemotePeer()
	keyA, err := ed25519Key(s.Conn().RemotePublicKey())
	if err != nil {
		return nil, wire.Errorf(wire.CodePayment, "%v", err)
	}
	if o.Terms != n.payments.terms {
		return nil, wire.Errorf(wire.CodePayment, "the channel's terms are not this node's: ask for them again")
	}
	destA, err := address.ParseAddr(o.Wallet)
	if err != nil {
		return nil, wire.Errorf(wire.CodeBadRequest, "payer wallet: %v", err)
	}
	params := n.payments.params(o.ChannelID, keyA, n.payments.pub(), destA, n.payments.wallet)
	addr, err := params.Address()
	if err != nil {
		return nil, wire.Errorf(wire.CodeBadRequest, "channel parameters: %v", err)
	}
	rec, err := n.payments.store.Get(ctx, o.ChannelID, chanstore.Payee)
	switch {
	case errors.Is(err, chanstore.ErrNotFound):
		// A new channel: it must be on chain as the contract, with these parameters, inited.
		cs, err := n.payments.ledger.Channel(ctx, addr)
		if err != nil {
			return nil, wire.Errorf(wire.CodePayment, "channel %s on the ledger: %v", addr, err)
		}
		if !cs.Storage.Inited || !cs.Storage.Matches(params) || cs.Storage.BalanceA == 0 {
			return nil, wire.Errorf(wire.CodePayment, "channel %s on the ledger is not an inited channel with these parameters and a deposit", addr)
		}
		if rec, err = chanstore.NewRecord(chanstore.Payee, params, cs.Storage.BalanceA-min(cs.Storage.BalanceA, params.Closing.MisbehaviorFine), uint64(cs.Storage.CommittedSeqnoA)); err != nil {
			return nil, err
		}
		if err := n.payments.store.Put(ctx, rec); err != nil {
			return nil, fmt.Errorf("persisting channel: %w", err)
		}
		n.log.Info("payment channel opened by payer", "payer", payer.String(), "channel", addr.String(), "deposit", rec.Limit)
	case err != nil:
		return nil, err
	case !bytes.Equal(rec.KeyA, keyA):
		return nil, wire.Errorf(wire.CodePayment, "channel %x belongs to another payer", o.ChannelID[:])
	}
	c, err := n.adoptIn(payer, rec)
	if err != nil {
		return nil, err
	}
	var newest ton.Voucher
	if len(o.Voucher) > 0 { // the payer's newest: higher than ours if we lost one (we never do)
		if err := n.acceptNew(ctx, c, o.Voucher); err != nil {
			n.log.Warn("payer presented a voucher that does not check", "payer", payer.String(), "err", err)
		} else {
			newest, _ = ton.DecodeVoucher(o.Voucher)
		}
	}
	// A payer resumes a channel it holds no state of in memory: it restarted, and received
	// nothing since its newest voucher. Whatever we count beyond that never reached it.
	n.writeOff(c, newest, "the payer resumed the channel after a restart")
	st := n.channelState(c)
	return &st, nil
}

// acceptNew accepts voucher b unless the channel holds it or a newer one already: on the
// channel stream a payer presents again what may have come on an inference stream, and the
// payee's answer confirms it. An older voucher counts as held only if it is this channel's:
// the payer's other channels have their own seqnos.
func (n *Node) acceptNew(ctx context.Context, c *inChan, b []byte) error {
	err := n.accept(ctx, c, b)
	if !errors.Is(err, errSuperseded) {
		return err
	}
	v, _ := ton.DecodeVoucher(b) // accept decoded it
	c.mu.Lock()
	rec := c.rec
	c.mu.Unlock()
	if v == rec.Voucher || rec.VerifyVoucher(v) {
		return nil
	}
	return fmt.Errorf("%w: seqno %d", ton.ErrBadSignature, v.Seqno)
}

// adoptIn makes rec the channel payer pays this node on, keeping one already held for it.
func (n *Node) adoptIn(payer peer.ID, rec chanstore.Record) (*inChan, error) {
	n.payments.mu.Lock()
	defer n.payments.mu.Unlock()
	cur := n.payments.in[payer]
	if cur != nil && cur.id == rec.ChannelID {
		return cur, nil
	}
	for _, o := range n.payments.old[payer] {
		if o.id == rec.ChannelID {
			return o, nil
		}
	}
	c, err := newInChan(payer, rec)
	if err != nil {
		return nil, err
	}
	if cur != nil { // the payer moved to a new channel; the old one is paid off, then closed
		n.payments.old[payer] = append(n.payments.old[payer], cur)
	}
	n.payments.in[payer] = c
	return c, nil
}

// params are the contract parameters of a channel between payer key A and payee key B.
func (ps *payState) params(id ton.ChannelID, keyA, keyB []byte, destA, destB *address.Address) ton.Params {
	return ton.Params{
		KeyA: keyA, KeyB: keyB, ChannelID: id,
		Closing:  ton.ClosingConfig{QuarantineDuration: ps.terms.Quarantine, ConditionalCloseDuration: ps.terms.CondClose},
		Payments: ton.PaymentConfig{ExcessFee: ps.terms.ExcessFee, DestA: destA, DestB: destB},
	}
}

// channelTo returns the channel this node pays payee p on, resuming it from the store or
// opening a new one on the ledger when there is none, which locks the whole Deposit if full
// (an operator asked for it), else what p's earnings earn it (see depositFor). Concurrent
// callers share one attempt.
func (n *Node) channelTo(ctx context.Context, p peer.ID, full bool) (*outChan, error) {
	ps := n.payments
	ps.mu.Lock()
	if c := ps.out[p]; c != nil {
		ps.mu.Unlock()
		return c, nil
	}
	op := n.startOpening(p, nil, full)
	ps.mu.Unlock()
	return n.awaitOpening(ctx, p, op)
}

// startOpening returns the attempt under way to open or resume the channel to p, or starts
// one that runs prep first. The caller holds ps.mu.
func (n *Node) startOpening(p peer.ID, prep func(context.Context) error, full bool) *opening {
	ps := n.payments
	if op := ps.opening[p]; op != nil {
		return op
	}
	op := &opening{done: make(chan struct{})}
	ps.opening[p] = op
	if !n.life.Go(func() {
		ctx, cancel := context.WithTimeout(n.ctx, 2*channelTimeout)
		defer cancel()
		if prep != nil {
			op.err = prep(ctx)
		}
		if op.err == nil {
			op.ch, op.err = n.openOut(ctx, p, full)
		}
		ps.mu.Lock()
		if op.err == nil {
			ps.out[p] = op.ch
		}
		delete(ps.opening, p)
		ps.mu.Unlock()
		close(op.done)
		switch {
		case n.ctx.Err() != nil:
		case errors.Is(op.err, errTakesNoPayments):
			n.leaveAlone(p, errTakesNoPayments)
		case op.err != nil:
			n.log.Warn("cannot open a payment channel", "payee", p.String(), "err", op.err)
		}
	}) { // the node is closing (we hold ps.mu)
		op.err = errNodeClosed
		delete(ps.opening, p)
		close(op.done)
	}
	return op
}

// awaitOpening waits for op, the attempt to open the channel to p. A wallet too poor to fund
// the channel is a payment error (no other peer would do better); any other failure leaves p
// unavailable for now.
func (n *Node) awaitOpening(ctx context.Context, p peer.ID, op *opening) (*outChan, error) {
	select {
	case <-op.done:
		switch {
		case errors.Is(op.err, ledger.ErrInsufficientFunds):
			ps := n.payments
			return nil, wire.Errorf(wire.CodePayment, "this node's wallet %s cannot fund a payment channel to %s: %v. "+
				"Each channel locks payments.deposit (%d nanoTON) plus fees: fund the wallet, or lower the deposit",
				ps.wallet.String(), p.String(), op.err, ps.cfg.Deposit)
		case errors.Is(op.err, errUnearnedCap):
			return nil, op.err
		case op.err != nil:
			return nil, wire.Errorf(wire.CodeUnavailable, "payment channel to %s: %v", p.String(), op.err)
		}
		return op.ch, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// ensureChannel opens or resumes the channel to p in the background, as soon as we connect,
// so the first request does not wait for the ledger.
func (n *Node) ensureChannel(ctx context.Context, p peer.ID) {
	if n.payments != nil {
		_, _ = n.channelTo(ctx, p, false)
	}
}

// openOut resumes our newest channel to p under its current terms, or opens a new one: the
// record is durable before the deposit leaves the wallet, so a crash cannot lose track of it.
func (n *Node) openOut(ctx context.Context, p peer.ID, full bool) (*outChan, error) {
	ps := n.payments
	keyB, err := ed25519Key(n.h.Peerstore().PubKey(p))
	if err != nil {
		return nil, err
	}
	tp, err := n.channelCall(ctx, p, wire.FrameTerms, nil, wire.FrameTerms)
	if errors.Is(err, multistream.ErrNotSupported[protocol.ID]{}) {
		return nil, fmt.Errorf("%s: %w", p.String(), errTakesNoPayments)
	}
	if err != nil {
		return nil, fmt.Errorf("terms: %w", err)
	}
	terms, err := wire.DecodeTerms(tp)
	if err != nil {
		return nil, err
	}
	destB, err := address.ParseAddr(terms.Wallet)
	if err != nil {
		return nil, fmt.Errorf("payee wallet: %w", err)
	}
	want := ton.Params{KeyA: ps.pub(), KeyB: keyB,
		Closing:  ton.ClosingConfig{QuarantineDuration: terms.Quarantine, ConditionalCloseDuration: terms.CondClose},
		Payments: ton.PaymentConfig{ExcessFee: terms.ExcessFee, DestA: ps.wallet, DestB: destB}}
	rec, found, err := n.payableRecord(ctx, want)
	if err != nil {
		return nil, err
	}
	if !found {
		if rec, err = n.openOnLedger(ctx, p, want, full); err != nil {
			return nil, err
		}
	}
	o := wire.ChannelOpen{ChannelID: rec.ChannelID, Wallet: ps.wallet.String(), Terms: terms}
	if rec.HasVoucher {
		o.Voucher, _ = rec.Voucher.MarshalBinary()
	}
	sp, err := n.channelCall(ctx, p, wire.FrameChannelOpen, wire.AppendChannelOpen(nil, &o), wire.FrameChannelState)
	if err != nil {
		return nil, err
	}
	st, err := wire.DecodeChannelState(sp)
	if err != nil {
		return nil, err
	}
	next := rec
	if len(st.Voucher) > 0 { // the payee holds a voucher of ours we lost: resume above it
		v, _ := ton.DecodeVoucher(st.Voucher)
		if r, adopted := chanstore.Reconcile(rec, v, rec.VerifyVoucher); adopted {
			n.log.Warn("resumed payment channel above the payee's newer voucher", "payee", p.String(), "seqno", v.Seqno, "sent", v.Sent)
			next = r
		}
	}
	// The payee's signature over its empty semichannel lets us close alone should it vanish.
	if len(st.PayeeSemi) == 64 && next.PayeeSemi == ([64]byte{}) &&
		(ton.SemiChannel{ChannelID: rec.ChannelID}).Cell().Verify(keyB, st.PayeeSemi) {
		copy(next.PayeeSemi[:], st.PayeeSemi)
	}
	if next.HasVoucher != rec.HasVoucher || next.Voucher != rec.Voucher || next.PayeeSemi != rec.PayeeSemi {
		if err := ps.store.Put(ctx, next); err != nil {
			return nil, err
		}
		rec = next
	}
	c, err := newOutChan(p, terms, ps.key, rec)
	if err != nil {
		return nil, err
	}
	if v, err := ton.DecodeVoucher(st.Voucher); err == nil {
		c.acked = v.Seqno
	}
	n.log.Info("paying on channel", "payee", p.String(), "channel_id", fmt.Sprintf("%x", rec.ChannelID[:]), "deposit", rec.Limit, "paid", rec.Voucher.Sent)
	return c, nil
}

// payableRecord is our newest channel with parameters want, whatever its id, that can still be
// paid on; false if there is none.
func (n *Node) payableRecord(ctx context.Context, want ton.Params) (chanstore.Record, bool, error) {
	for {
		rec, found, err := n.newestRecord(ctx, func(r chanstore.Record) bool {
			p, err := r.Params()
			w := want
			w.ChannelID = r.ChannelID
			return r.Role == chanstore.Payer && r.State == chanstore.Open && err == nil && p.Equal(w)
		})
		if err != nil || !found {
			return rec, false, err
		}
		if ok, err := n.resumable(ctx, rec); err != nil || ok {
			return rec, ok, err
		}
	}
}

// resumable checks on chain that rec, a channel we pay on and hold as open, can still be paid
// on; if not, it moves rec forward and reports false. A contract that is not on chain, or not
// inited, is an open cut short by a crash before the deployment landed: it is marked closing,
// so that the watcher closes it should the deployment land after all. A contract closed, or
// closing alone, is marked so.
func (n *Node) resumable(ctx context.Context, rec chanstore.Record) (bool, error) {
	_, cs, err := n.onChain(ctx, rec)
	switch {
	case err != nil && !errors.Is(err, ledger.ErrNotFound):
		return false, err
	case err == nil && closedOnChain(cs, rec):
		return false, n.setState(ctx, rec, chanstore.Closed)
	case err == nil && cs.Quarantine != nil:
		return false, n.setState(ctx, rec, chanstore.Closing)
	case err == nil && cs.Inited:
		return true, nil
	}
	n.log.Warn("a channel we opened is not on chain: its opening was cut short; using another",
		"payee", counterparty(rec).String(), "channel_id", fmt.Sprintf("%x", rec.ChannelID[:]))
	return false, n.setState(ctx, rec, chanstore.Closing)
}

// openOnLedger deploys and funds a new channel to payee p with parameters want and a fresh
// channel id. The payee signs its empty semichannel first, and the record keeps it: should
// the deployment land when nobody expects it any more (a crash, a lost confirmation), or the
// payee vanish, we can still close the channel alone and get the deposit back.
func (n *Node) openOnLedger(ctx context.Context, p peer.ID, want ton.Params, full bool) (chanstore.Record, error) {
	ps := n.payments
	if _, err := rand.Read(want.ChannelID[:]); err != nil {
		return chanstore.Record{}, err
	}
	semi, err := n.channelCall(ctx, p, wire.FrameChannelNew, wire.AppendChannelNew(nil, want.ChannelID), wire.FrameChannelState)
	if err != nil {
		return chanstore.Record{}, fmt.Errorf("the payee's semichannel signature: %w", err)
	}
	st, err := wire.DecodeChannelState(semi)
	if err != nil {
		return chanstore.Record{}, err
	}
	if len(st.PayeeSemi) != 64 || !(ton.SemiChannel{ChannelID: want.ChannelID}).Cell().Verify(want.KeyB, st.PayeeSemi) {
		return chanstore.Record{}, errors.New("the payee's semichannel signature does not check: not locking a deposit")
	}
	addr, err := want.Address()
	if err != nil {
		return chanstore.Record{}, err
	}
	init, err := want.StateInit()
	if err != nil {
		return chanstore.Record{}, err
	}
	// The deposit is chosen and the record stored in one step, so channels opened at once
	// cannot together pass the cap on what is locked for payees that earned nothing.
	ps.depositMu.Lock()
	deposit, err := ps.cfg.Deposit, error(nil)
	if !full {
		deposit, err = n.depositFor(p)
	}
	var rec chanstore.Record
	if err == nil {
		rec, err = chanstore.NewRecord(chanstore.Payer, want, deposit, 0)
	}
	if err == nil {
		copy(rec.PayeeSemi[:], st.PayeeSemi)
		err = ps.store.Put(ctx, rec)
	}
	ps.depositMu.Unlock()
	if err != nil {
		return chanstore.Record{}, err
	}
	body := ton.InitChannelBody(true, ps.key, want.ChannelID, deposit, 0)
	value := deposit + want.Payments.ExcessFee + ps.cfg.OpenFee
	if _, err := ps.ledger.OpenChannel(ctx, ps.wallet, addr, init, body, value); err != nil {
		if errors.Is(err, ledger.ErrUnconfirmed) {
			// The deposit may be on its way: keep the record, so the next attempt resumes the
			// channel if it landed (and marks it closing if not; see resumable).
			n.log.Warn("a channel's deployment was not confirmed; keeping its record", "channel", addr.String(), "err", err)
		} else {
			_ = ps.store.Delete(ctx, want.ChannelID, chanstore.Payer)
		}
		return chanstore.Record{}, fmt.Errorf("opening channel %s on the ledger: %w", addr, err)
	}
	n.log.Info("payment channel opened on the ledger", "channel", addr.String(), "deposit", deposit)
	return rec, nil
}

// settle pays everything received on c over the channel stream, and sends our newest voucher
// if the payee has not confirmed it yet.
func (n *Node) settle(ctx context.Context, c *outChan) error {
	if _, err := n.pay(ctx, c, true, 0); err != nil {
		return err
	}
	c.mu.Lock()
	latest, has, acked, disputed := c.rec.Voucher, c.rec.HasVoucher, c.acked, c.disputed
	c.mu.Unlock()
	if !disputed && (!has || latest.Seqno <= acked) {
		return nil
	}
	// After a refusal the voucher goes as settled: it pays all we received, and the payee
	// writes off what it counted for the part we refused (should our refusal not have reached
	// it on the answer's stream).
	t, vb := wire.FramePay, []byte(nil)
	if has {
		vb, _ = latest.MarshalBinary()
	}
	if disputed {
		t = wire.FrameSettled
	}
	sp, err := n.channelCall(ctx, c.peer, t, vb, wire.FrameChannelState)
	if err != nil {
		return err
	}
	if disputed {
		c.mu.Lock()
		c.disputed = false
		c.mu.Unlock()
	}
	st, err := wire.DecodeChannelState(sp)
	if err != nil {
		return err
	}
	if v, err := ton.DecodeVoucher(st.Voucher); err == nil && len(st.Voucher) > 0 {
		c.mu.Lock()
		c.acked = max(c.acked, v.Seqno)
		c.mu.Unlock()
	}
	return nil
}

// channelCall sends one request frame on a new channel stream and reads the answer.
func (n *Node) channelCall(ctx context.Context, p peer.ID, t wire.FrameType, payload []byte, want wire.FrameType) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, channelTimeout)
	defer cancel()
	s, err := n.h.NewStream(ctx, p, ChannelProtocol)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()
	w := wire.NewWriter(s)
	defer w.Release()
	if err := w.WriteFrame(t, payload); err != nil {
		return nil, err
	}
	if err := w.Flush(); err != nil {
		return nil, err
	}
	r := wire.NewReader(s, 4<<10)
	defer r.Release()
	rt, rp, err := r.ReadFrame()
	if err != nil {
		return nil, err
	}
	switch rt {
	case want:
		return rp, nil
	case wire.FrameError:
		we, err := wire.DecodeError(rp)
		if err != nil {
			return nil, err
		}
		return nil, we
	}
	return nil, fmt.Errorf("unexpected %s frame on the channel stream", rt)
}
