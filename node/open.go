package node

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/multiformats/go-multistream"
	"github.com/xssnick/tonutils-go/address"

	"github.com/cocoon-mesh/cocoon/node/wire"
	"github.com/cocoon-mesh/cocoon/ton"
	"github.com/cocoon-mesh/cocoon/ton/channel"
	"github.com/cocoon-mesh/cocoon/ton/chanstore"
	"github.com/cocoon-mesh/cocoon/ton/ledger"
)

// Opening the channel a node pays a payee on: the newest stored one with the payee's terms
// is resumed if the chain still shows it open (ResumeRequested), else a new one is stored
// and deployed (OpenRequested); either way the payee is greeted before anything is paid on
// it. What is chosen here, across channels: which stored channel, a new channel's id and its
// deposit (depositFor).

// channelTo returns the channel this node pays payee p on, resuming it from the store or
// opening a new one on the ledger when there is none, which locks the whole Deposit if full
// (an operator asked for it), else what p's earnings earn it (see depositFor). Concurrent
// callers share one attempt.
func (cs *channels) channelTo(ctx context.Context, p peer.ID, full bool) (*outChan, error) {
	cs.mu.Lock()
	if c := cs.out[p]; c != nil {
		cs.mu.Unlock()
		return c, nil
	}
	op := cs.startOpening(p, full)
	cs.mu.Unlock()
	return cs.awaitOpening(ctx, p, op)
}

// startOpening returns the attempt under way to open or resume the channel to p, or starts
// one; cs.mu is held. The channel it opens is put in use by its owner.
func (cs *channels) startOpening(p peer.ID, full bool) *opening {
	if op := cs.opening[p]; op != nil {
		return op
	}
	op := &opening{done: make(chan struct{})}
	cs.opening[p] = op
	if !cs.life.Go(func() {
		ctx, cancel := context.WithTimeout(cs.ctx, 2*channelTimeout)
		defer cancel()
		op.ch, op.err = cs.openOut(ctx, p, full)
		cs.mu.Lock()
		delete(cs.opening, p)
		cs.mu.Unlock()
		close(op.done)
		switch {
		case cs.ctx.Err() != nil:
		case errors.Is(op.err, errTakesNoPayments):
			cs.leaveAlone(p, errTakesNoPayments)
		case op.err != nil:
			cs.log.Warn("cannot open a payment channel", "payee", p.String(), "err", op.err)
		}
	}) { // the node is closing (we hold cs.mu)
		op.err = errNodeClosed
		delete(cs.opening, p)
		close(op.done)
	}
	return op
}

// awaitOpening waits for op, the attempt to open the channel to p. A wallet too poor to fund
// the channel is a payment error (no other peer would do better); any other failure leaves p
// unavailable for now.
func (cs *channels) awaitOpening(ctx context.Context, p peer.ID, op *opening) (*outChan, error) {
	select {
	case <-op.done:
		switch {
		case errors.Is(op.err, ledger.ErrInsufficientFunds):
			return nil, wire.Errorf(wire.CodePayment, "this node's wallet %s cannot fund a payment channel to %s: %v. "+
				"Each channel locks payments.deposit (%d nanoTON) plus fees: fund the wallet (on a development ledger, "+
				"start the node with --dev-fund NANOTON, or payments.dev_fund, to ask its faucet), or lower payments.deposit",
				cs.wallet.String(), p.String(), op.err, cs.cfg.Deposit)
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

// ensure opens or resumes the channel to p in the background, as soon as we connect, so the
// first request does not wait for the ledger.
func (cs *channels) ensure(ctx context.Context, p peer.ID) { _, _ = cs.channelTo(ctx, p, false) }

// openOut resumes our newest channel to p under its current terms, or opens a new one.
func (cs *channels) openOut(ctx context.Context, p peer.ID, full bool) (*outChan, error) {
	keyB, err := ed25519Key(cs.h.Peerstore().PubKey(p))
	if err != nil {
		return nil, err
	}
	tp, err := channelCall(ctx, cs.h, p, wire.FrameTerms, nil, wire.FrameTerms)
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
	want := ton.Params{KeyA: cs.pub(), KeyB: keyB,
		Closing:  ton.ClosingConfig{QuarantineDuration: terms.Quarantine, ConditionalCloseDuration: terms.CondClose},
		Payments: ton.PaymentConfig{ExcessFee: terms.ExcessFee, DestA: cs.wallet, DestB: destB}}
	tried := make(map[ton.ChannelID]bool)
	for {
		rec, found, err := cs.newestRecord(ctx, func(r chanstore.Record) bool {
			p, err := r.Params()
			w := want
			w.ChannelID = r.ChannelID
			return r.Role == chanstore.Payer && r.State == chanstore.Open && !tried[r.ChannelID] && err == nil && p.Equal(w)
		})
		if err != nil {
			return nil, err
		}
		if !found {
			return cs.openNew(ctx, p, want, terms, full)
		}
		tried[rec.ChannelID] = true
		o, err := cs.resumed(rec)
		if err != nil {
			return nil, err
		}
		if err := o.out.resume(ctx, terms); !errors.Is(err, errNotResumable) {
			return o.out, err
		}
	}
}

// resume checks c, a stored channel, on chain and greets its payee (ResumeRequested): nil
// once it is in use, errNotResumable if it cannot be paid on again.
func (c *outChan) resume(ctx context.Context, terms wire.Terms) error {
	return c.opening(ctx, func() error {
		if c.ch.InUse() {
			return errNotResumable // the data path reads its terms: they stay
		}
		c.terms = terms
		_, err := c.step(channel.ResumeRequested{})
		if errors.Is(err, channel.ErrWrongState) {
			return errNotResumable // in use, being closed or being opened: not this one
		}
		return err
	})
}

// opening runs start (a step beginning an opening or a resumption) in c's loop and waits for
// what it began to end.
func (c *outChan) opening(ctx context.Context, start func() error) error {
	w := make(chan error, 1)
	var err error
	if e := c.ask(func() {
		c.openErr = nil
		if err = start(); err == nil && c.ch.Opening() {
			c.starting, c.opened = true, append(c.opened, w)
		} else if err == nil {
			err = errNotResumable
		}
	}); e != nil {
		return e
	}
	if err != nil {
		return err
	}
	select {
	case err := <-w:
		return err
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-c.done:
		return errChannelGone
	}
}

// openNew deploys and funds a new channel to payee p with parameters want and a fresh
// channel id. The payee signs its empty semichannel first, and the record keeps it: should
// the deployment land when nobody expects it any more (a crash, a lost confirmation), or the
// payee vanish, we can still close the channel alone and get the deposit back.
func (cs *channels) openNew(ctx context.Context, p peer.ID, want ton.Params, terms wire.Terms, full bool) (*outChan, error) {
	if _, err := rand.Read(want.ChannelID[:]); err != nil {
		return nil, err
	}
	sp, err := channelCall(ctx, cs.h, p, wire.FrameChannelNew, wire.AppendChannelNew(nil, want.ChannelID), wire.FrameChannelState)
	if err != nil {
		return nil, fmt.Errorf("the payee's semichannel signature: %w", err)
	}
	st, err := wire.DecodeChannelState(sp)
	if err != nil {
		return nil, err
	}
	o, err := cs.fresh(chanstore.Payer, p, want, terms)
	if err != nil {
		return nil, err
	}
	c := o.out
	// The deposit is chosen and the record stored in one step, so channels opened at once
	// cannot together pass the cap on what is locked for payees that earned nothing.
	cs.depositMu.Lock()
	unlock := sync.OnceFunc(cs.depositMu.Unlock)
	defer unlock()
	deposit := cs.cfg.Deposit
	if !full {
		if deposit, err = cs.depositFor(ctx, p); err != nil {
			c.post(func() { c.fresh = false }) // nothing was stored: the owner ends
			return nil, err
		}
	}
	err = c.opening(ctx, func() error {
		_, err := c.step(channel.OpenRequested{Deposit: deposit, PayeeSemi: st.PayeeSemi})
		unlock() // stored, or not: the next deposit may be chosen
		return err
	})
	return c, err
}
