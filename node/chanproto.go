package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/xssnick/tonutils-go/address"

	"github.com/cocoon-mesh/cocoon/node/wire"
	"github.com/cocoon-mesh/cocoon/ton"
	"github.com/cocoon-mesh/cocoon/ton/channel"
	"github.com/cocoon-mesh/cocoon/ton/chanstore"
)

// ChannelProtocol carries a payment channel's life between requests: one request and one
// answer per stream. The payer asks for the payee's terms, tells it about a channel it opened
// on chain (or resumes one after a restart, presenting its newest voucher), or pays what an
// ended answer left unpaid; the payee answers with its view of the channel. A payee still
// owed a while after its last delivery asks its payer to settle (FrameBill with the channel
// id), and the payer's settle follows as a request of its own.
const ChannelProtocol protocol.ID = "/cocoon/channel/1.0.0"

// channelTimeout bounds one exchange on the channel stream, ledger reads included.
const channelTimeout = 30 * time.Second

// settleTimeout bounds a settle on the channel stream.
const settleTimeout = 10 * time.Second

// handle serves the channel protocol: one request, one answer (an error frame if it failed).
func (cs *channels) handle(s network.Stream) {
	defer s.Close()
	_ = s.SetDeadline(cs.clock.Now().Add(channelTimeout))
	ctx, cancel := context.WithTimeout(cs.ctx, channelTimeout)
	defer cancel()
	r := wire.NewReader(s, 4<<10)
	defer r.Release()
	w := wire.NewWriter(s)
	defer w.Release()
	t, p, err := r.ReadFrame()
	if err != nil {
		s.Reset()
		return
	}
	rt, rp, err := cs.serve(ctx, s, t, p)
	if err != nil {
		rt, rp = wire.FrameError, wire.AppendError(nil, asWireError(err))
	}
	if w.WriteFrame(rt, rp) == nil {
		_ = w.Flush()
	}
}

// serve answers one request on the channel stream.
func (cs *channels) serve(ctx context.Context, s network.Stream, t wire.FrameType, p []byte) (wire.FrameType, []byte, error) {
	switch t {
	case wire.FrameTerms:
		return wire.FrameTerms, wire.AppendTerms(nil, &cs.terms), nil
	case wire.FrameChannelNew:
		id, err := wire.DecodeChannelNew(p)
		if err != nil {
			return 0, nil, wire.Errorf(wire.CodeBadRequest, "%v", err)
		}
		return stateFrame(&wire.ChannelState{PayeeSemi: channel.EmptySemi(cs.core, id)})
	case wire.FrameChannelOpen:
		return cs.openIn(ctx, s, p)
	case wire.FramePay, wire.FrameSettled:
		return cs.payIn(s.Conn().RemotePeer(), t, p)
	case wire.FrameBill:
		return cs.settleAsked(s.Conn().RemotePeer(), p)
	case wire.FrameChannelClose:
		return cs.handleClose(ctx, s, p)
	}
	return 0, nil, wire.Errorf(wire.CodeBadRequest, "unexpected %s frame on the channel stream", t)
}

func stateFrame(st *wire.ChannelState) (wire.FrameType, []byte, error) {
	return wire.FrameChannelState, wire.AppendChannelState(nil, st), nil
}

// viewFrame is a View as the channel stream carries it.
func viewFrame(m channel.Message) (wire.FrameType, []byte, error) {
	v, ok := m.(channel.View)
	if !ok {
		return 0, nil, errors.New("the channel has no answer to this")
	}
	st := wire.ChannelState{Limit: v.Limit, PayeeSemi: v.PayeeSemi}
	if v.Voucher != nil {
		st.Voucher, _ = v.Voucher.MarshalBinary()
	}
	return stateFrame(&st)
}

// openIn takes a payer's channel (Announced): it must be under our terms, with the payer's
// identity key and ours, and exist on chain as the contract with those parameters, inited
// with a deposit. A channel we already hold is resumed, the higher of our voucher and the
// payer's winning.
func (cs *channels) openIn(ctx context.Context, s network.Stream, p []byte) (wire.FrameType, []byte, error) {
	o, err := wire.DecodeChannelOpen(p)
	if err != nil {
		return 0, nil, wire.Errorf(wire.CodeBadRequest, "%v", err)
	}
	payer := s.Conn().RemotePeer()
	keyA, err := ed25519Key(s.Conn().RemotePublicKey())
	if err != nil {
		return 0, nil, wire.Errorf(wire.CodePayment, "%v", err)
	}
	if o.Terms != cs.terms {
		return 0, nil, wire.Errorf(wire.CodePayment, "the channel's terms are not this node's: ask for them again")
	}
	destA, err := address.ParseAddr(o.Wallet)
	if err != nil {
		return 0, nil, wire.Errorf(wire.CodeBadRequest, "payer wallet: %v", err)
	}
	params := cs.params(o.ChannelID, keyA, cs.pub(), destA, cs.wallet)
	addr, err := params.Address()
	if err != nil {
		return 0, nil, wire.Errorf(wire.CodeBadRequest, "channel parameters: %v", err)
	}
	own, chain, err := cs.payeeOwner(ctx, o.ChannelID, payer, keyA, params, addr)
	if err != nil {
		return 0, nil, err
	}
	ans, err := own.answer(channel.Announced{KeyA: keyA, Chain: chain, Voucher: o.Voucher})
	switch {
	case errors.Is(err, channel.ErrBadChannel):
		return 0, nil, wire.Errorf(wire.CodePayment, "channel %s on the ledger is not an inited channel with these parameters and a deposit", addr)
	case err != nil:
		return 0, nil, wire.Errorf(wire.CodePayment, "%v", err)
	}
	cs.adoptIn(own.in)
	return viewFrame(ans)
}

// payeeOwner finds the owner of channel id that payer announces: the one held, or one
// resumed from its record, or, for a channel we have no record of, a new one, with the
// contract as read on chain.
func (cs *channels) payeeOwner(ctx context.Context, id ton.ChannelID, payer peer.ID, keyA []byte, params ton.Params, addr *address.Address) (*chanOwner, ton.Storage, error) {
	another := wire.Errorf(wire.CodePayment, "channel %x belongs to another payer", id[:])
	rec, err := cs.store.Get(ctx, id, chanstore.Payee)
	switch {
	case err == nil && !bytes.Equal(rec.KeyA, keyA):
		return nil, ton.Storage{}, another
	case err == nil:
		o, err := cs.resumed(rec)
		return o, ton.Storage{}, err
	case !errors.Is(err, chanstore.ErrNotFound):
		return nil, ton.Storage{}, err
	}
	st, err := cs.ledger.Channel(ctx, addr)
	if err != nil {
		return nil, ton.Storage{}, wire.Errorf(wire.CodePayment, "channel %s on the ledger: %v", addr, err)
	}
	o, err := cs.fresh(chanstore.Payee, payer, params, wire.Terms{})
	if err != nil {
		return nil, ton.Storage{}, another
	}
	return o, st.Storage, nil
}

// payIn takes a voucher on the channel stream (FramePay), or a payer's word that one pays
// all it received (FrameSettled, an empty payload: nothing yet), after it refused value: we
// write off what we counted beyond it.
func (cs *channels) payIn(payer peer.ID, t wire.FrameType, p []byte) (wire.FrameType, []byte, error) {
	c, err := cs.payerIn(payer)
	if err != nil {
		return 0, nil, err
	}
	var ev channel.Event = channel.VoucherReceived{Voucher: p, OnChannel: true}
	if t == wire.FrameSettled {
		ev = channel.Settled{Voucher: p, OnChannel: true}
	}
	ans, err := cs.acceptAny(c, ev)
	if err != nil {
		cs.log.Warn("voucher refused", "payer", payer.String(), "err", err)
		return 0, nil, wire.Errorf(wire.CodePayment, "voucher refused: %v", err)
	}
	return viewFrame(ans)
}

// settleAsked takes a payee's FrameBill on the channel stream, naming a channel we pay it
// on: it still counts value owed there, which an answer's broken stream may have kept from
// us. Our next settle on it goes as settled (channel.SettleAsked).
func (cs *channels) settleAsked(payee peer.ID, p []byte) (wire.FrameType, []byte, error) {
	id, err := wire.DecodeChannelNew(p)
	if err != nil {
		return 0, nil, wire.Errorf(wire.CodeBadRequest, "a bill on the channel stream names a channel: %v", err)
	}
	o := cs.byID(chanstore.Payer, payee, id)
	if o == nil {
		return 0, nil, wire.Errorf(wire.CodeBadRequest, "no channel %x pays you from this node", id[:8])
	}
	if e := o.ask(func() { _, err = o.step(channel.SettleAsked{}) }); e != nil {
		err = e
	}
	if err != nil {
		return 0, nil, wire.Errorf(wire.CodePayment, "settling channel %x: %v", id[:8], err)
	}
	return stateFrame(&wire.ChannelState{})
}

// acceptAny steps ev, a voucher on the channel stream, on c or, if it is not c's, on a
// channel the same payer replaced with c and still pays what it owes there.
func (cs *channels) acceptAny(c *inChan, ev channel.Event) (channel.Message, error) {
	ans, err := c.voucherIn(ev)
	if !errors.Is(err, ton.ErrBadSignature) {
		return ans, err
	}
	cs.mu.Lock()
	old := append([]*inChan(nil), cs.old[c.peer]...)
	cs.mu.Unlock()
	for _, o := range old {
		if a, err := o.voucherIn(ev); err == nil {
			return a, nil
		}
	}
	return ans, err
}

// voucherIn steps ev, a voucher on the channel stream, counting it if refused, and returns
// the View answering it.
func (c *inChan) voucherIn(ev channel.Event) (channel.Message, error) {
	var m channel.Message
	var err error
	if e := c.ask(func() {
		var eff channel.Effects
		if eff, err = c.step(ev); err != nil {
			c.bad++
			return
		}
		for _, s := range eff.Send {
			if v, ok := s.(channel.View); ok {
				m = v
			}
		}
	}); e != nil {
		return nil, e
	}
	return m, err
}

// handleClose serves a FrameChannelClose: with a signature, the payer proposes a close that
// we, the payee, co-sign if it pays exactly what we hold; without one, the payee asks us, the
// payer, to close, and we answer once we have.
func (cs *channels) handleClose(ctx context.Context, s network.Stream, p []byte) (wire.FrameType, []byte, error) {
	req, err := wire.DecodeChannelClose(p)
	if err != nil {
		return 0, nil, wire.Errorf(wire.CodeBadRequest, "%v", err)
	}
	remote := s.Conn().RemotePeer()
	key, err := ed25519Key(s.Conn().RemotePublicKey())
	if err != nil {
		return 0, nil, wire.Errorf(wire.CodePayment, "%v", err)
	}
	id := req.Close.ChannelID
	if len(req.Signature) == 0 { // we pay on it
		rec, err := cs.store.Get(ctx, id, chanstore.Payer)
		if err != nil || !bytes.Equal(rec.KeyB, key) {
			return 0, nil, wire.Errorf(wire.CodeBadRequest, "no channel %x paying you", id[:])
		}
		o, err := cs.resumed(rec)
		if err != nil {
			return 0, nil, err
		}
		m, err := o.askedClose(ctx)
		if err != nil {
			return 0, nil, wire.Errorf(wire.CodePayment, "closing: %v", err)
		}
		if r, ok := m.(channel.Refusal); ok {
			return 0, nil, wire.Errorf(wire.CodePayment, "%v", r.Err)
		}
		return viewFrame(m)
	}
	o := cs.byID(chanstore.Payee, remote, id)
	if o == nil {
		rec, err := cs.store.Get(ctx, id, chanstore.Payee)
		if err != nil || !bytes.Equal(rec.KeyA, key) || rec.State == chanstore.Closed {
			return 0, nil, wire.Errorf(wire.CodeBadRequest, "no open channel %x from you", id[:])
		}
		if o, err = cs.resumed(rec); err != nil {
			return 0, nil, err
		}
	}
	st, err := cs.ledger.Channel(ctx, o.addr)
	if err == nil {
		var m channel.Message
		if m, err = o.answer(channel.CloseProposed{Close: req.Close, Signature: req.Signature, Chain: st.Storage}); err == nil {
			cl := m.(channel.Countersign)
			return wire.FrameChannelClose, wire.AppendChannelClose(nil, &wire.ChannelClose{Close: cl.Close, Signature: cl.Signature}), nil
		}
	}
	cs.log.Warn("refused to co-sign a close", "payer", remote.String(), "err", err)
	return 0, nil, wire.Errorf(wire.CodePayment, "%v", err)
}

// askedClose closes the channel, a payer's, together, as its payee asked, and returns the
// answer for it when the close ended: a View, or a Refusal.
func (o *chanOwner) askedClose(ctx context.Context) (channel.Message, error) {
	w := make(chan channel.Message, 1)
	var err error
	if e := o.ask(func() {
		o.askers = append(o.askers, w)
		if _, err = o.step(channel.CloseRequested{Mode: channel.Together, Asked: true}); err != nil && len(w) == 0 {
			o.askers = o.askers[:len(o.askers)-1]
		}
	}); e != nil {
		return nil, e
	}
	if err != nil && len(w) == 0 {
		return nil, err
	}
	select {
	case m := <-w:
		return m, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("answers still under way on the channel: %w", context.Cause(ctx))
	case <-o.done:
		return nil, errChannelGone
	}
}

// request sends m, a request on the channel stream, in the background, and steps its outcome.
func (o *chanOwner) request(m channel.Message) {
	t, payload, want, timeout := o.frame(m)
	if !o.cs.life.Go(func() {
		ctx, cancel := context.WithTimeout(o.cs.ctx, timeout)
		defer cancel()
		if _, ask := m.(channel.AskSettle); ask {
			// Only over a live connection: a payer that is gone resumes the channel when it
			// returns (which settles it too), and dialling it now would put the peer in the
			// swarm's dial backoff, delaying the reconnection that matters.
			ctx = network.WithNoDial(ctx, "a payee asks its payer to settle only while connected")
		}
		rp, err := channelCall(ctx, o.cs.h, o.peer, t, payload, want)
		var ev channel.Event = channel.SendFailed{Msg: m, Err: err}
		if err == nil {
			ev = outcome(m, want, rp)
		}
		o.do(func() { o.outcome(m, ev) })
	}) {
		return // the node is closing
	}
}

// frame is m as a request on the channel stream: its frame, the answer's, and its bound.
func (o *chanOwner) frame(m channel.Message) (t wire.FrameType, payload []byte, want wire.FrameType, timeout time.Duration) {
	switch m := m.(type) {
	case channel.Pay:
		vb, _ := m.Voucher.MarshalBinary()
		return wire.FramePay, vb, wire.FrameChannelState, settleTimeout
	case channel.Settle:
		var vb []byte
		if m.Voucher != nil {
			vb, _ = m.Voucher.MarshalBinary()
		}
		return wire.FrameSettled, vb, wire.FrameChannelState, settleTimeout
	case channel.Announce:
		a := wire.ChannelOpen{ChannelID: o.key.id, Wallet: o.cs.wallet.String(), Terms: o.terms}
		if m.Voucher != nil {
			a.Voucher, _ = m.Voucher.MarshalBinary()
		}
		return wire.FrameChannelOpen, wire.AppendChannelOpen(nil, &a), wire.FrameChannelState, channelTimeout
	case channel.Propose:
		cl := wire.ChannelClose{Close: m.Close, Signature: m.Signature}
		return wire.FrameChannelClose, wire.AppendChannelClose(nil, &cl), wire.FrameChannelClose, channelTimeout
	case channel.AskClose:
		ask := wire.ChannelClose{Close: ton.CooperativeClose{ChannelID: m.ChannelID}}
		return wire.FrameChannelClose, wire.AppendChannelClose(nil, &ask), wire.FrameChannelState, channelTimeout
	case channel.AskSettle:
		return wire.FrameBill, wire.AppendChannelNew(nil, m.ChannelID), wire.FrameChannelState, settleTimeout
	}
	panic(fmt.Sprintf("node: %s is not a request", m.Kind()))
}

// outcome is the event the answer rp to request m stands for (SendFailed if it does not
// decode).
func outcome(m channel.Message, want wire.FrameType, rp []byte) channel.Event {
	if want == wire.FrameChannelClose {
		cl, err := wire.DecodeChannelClose(rp)
		if err != nil {
			return channel.SendFailed{Msg: m, Err: err}
		}
		return channel.CloseSigned{Close: cl.Close, Signature: cl.Signature}
	}
	st, err := wire.DecodeChannelState(rp)
	if err != nil {
		return channel.SendFailed{Msg: m, Err: err}
	}
	return channel.Replied{To: m.Kind(), Voucher: st.Voucher, PayeeSemi: st.PayeeSemi}
}

// outcome steps ev, what became of request m: a countersignature the channel refuses fails
// the proposal.
func (o *chanOwner) outcome(m channel.Message, ev channel.Event) {
	_, err := o.step(ev)
	if _, ok := ev.(channel.CloseSigned); ok && err != nil {
		_, _ = o.step(channel.SendFailed{Msg: m, Err: err})
	}
}

// channelCall sends one request frame on a new channel stream and reads the answer.
func channelCall(ctx context.Context, h host.Host, p peer.ID, t wire.FrameType, payload []byte, want wire.FrameType) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, channelTimeout)
	defer cancel()
	s, err := h.NewStream(ctx, p, ChannelProtocol)
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
