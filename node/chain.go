package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cocoon-mesh/cocoon/ton/channel"
	"github.com/cocoon-mesh/cocoon/ton/chanstore"
	"github.com/cocoon-mesh/cocoon/ton/ledger"
)

// The ledger's side of the channels: the chain actions an owner carries out, and the watch
// that reads the contract of every channel not closed yet.

// chainTimeout bounds one chain action other than a deployment (which has the opening's
// bound), beyond the ledger's own wait for its confirmation.
const chainTimeout = 5 * time.Minute

// act carries out a, a chain action, in the background, and steps its outcome.
func (o *chanOwner) act(a channel.Action) {
	o.cs.life.Go(func() {
		ev := o.cs.onChain(a)
		o.do(func() {
			if _, ok := ev.(channel.ChainDone); ok && a.Name() == "deploy" {
				o.cs.log.Info("payment channel opened on the ledger", "channel", o.addr.String(), "deposit", a.(channel.Deploy).Deposit)
			}
			_, _ = o.step(ev)
		})
	})
}

// onChain carries out a and returns the event its outcome is.
func (cs *channels) onChain(a channel.Action) channel.Event {
	timeout := chainTimeout
	if _, ok := a.(channel.Deploy); ok {
		timeout = 2 * channelTimeout
	}
	ctx, cancel := context.WithTimeout(cs.ctx, timeout)
	defer cancel()
	var err error
	switch a := a.(type) {
	case channel.Observe:
		return cs.observe(ctx, a)
	case channel.Deploy:
		_, err = cs.ledger.OpenChannel(ctx, cs.wallet, a.Address, a.Init, a.Body, a.Value)
	case channel.CoopClose:
		var r ledger.Receipt
		if r, err = cs.ledger.CooperativeClose(ctx, a.Address, a.Body); err == nil {
			cs.log.Debug("cooperative close submitted", "channel", a.Address.String(), "fee", r.Fee)
		}
	case channel.StartSolo:
		_, err = cs.ledger.StartUncooperativeClose(ctx, cs.wallet, a.Address, a.Body, a.Value)
	case channel.Challenge:
		_, err = cs.ledger.Challenge(ctx, cs.wallet, a.Address, a.Body, a.Value)
	case channel.Finish:
		_, err = cs.ledger.FinishUncooperativeClose(ctx, a.Address)
	default:
		err = fmt.Errorf("node: no chain action %s", a.Name())
	}
	if err != nil {
		return channel.ChainFailed{Action: a, Err: err, Unconfirmed: errors.Is(err, ledger.ErrUnconfirmed)}
	}
	return channel.ChainDone{Action: a}
}

// observe reads the contract, and the ledger's time when a close is in quarantine.
func (cs *channels) observe(ctx context.Context, a channel.Observe) channel.Event {
	st, err := cs.ledger.Channel(ctx, a.Address)
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		return channel.ChainObserved{}
	case err != nil:
		return channel.ChainFailed{Action: a, Err: err}
	}
	ev := channel.ChainObserved{Found: true, Storage: st.Storage}
	if st.Storage.Quarantine != nil {
		if ev.LedgerNow, err = cs.ledger.Now(ctx); err != nil {
			return channel.ChainFailed{Action: a, Err: err}
		}
	}
	return ev
}

// watch reads the contract for the watch, unless a read of it is under way already, and steps
// what it finds: a close noticed, an idle channel closed, a stalled close resumed, an older
// state challenged, a quarantine finished.
func (o *chanOwner) watch() {
	if o.watching || o.ch.Record().Role == 0 {
		return // a read is under way, or nothing is stored yet
	}
	o.watching = true
	o.cs.life.Go(func() {
		ctx, cancel := context.WithTimeout(o.cs.ctx, channelTimeout)
		defer cancel()
		ev := o.cs.observe(ctx, channel.Observe{Address: o.addr})
		o.do(func() {
			o.watching = false
			if f, ok := ev.(channel.ChainFailed); ok {
				if o.cs.ctx.Err() == nil {
					o.cs.log.Warn("watching payment channel", "channel_id", fmt.Sprintf("%x", o.key.id[:]), "err", f.Err)
				}
				return
			}
			_, _ = o.step(ev)
		})
	})
}

// watchChannels has, every PaymentConfig.WatchEvery, the owner of every channel that is not
// closed read its contract (watch). The channels stored are resumed first (after a restart,
// they have no owner yet); a channel made since has one from the start.
func (cs *channels) watchChannels() {
	t := cs.clock.Ticker(cs.cfg.WatchEvery)
	defer t.Stop()
	resumed := cs.resumeAll()
	for {
		select {
		case <-cs.ctx.Done():
			return
		case <-t.C:
		}
		if !resumed {
			resumed = cs.resumeAll()
		}
		cs.mu.Lock()
		owners := make([]*chanOwner, 0, len(cs.owners))
		for _, o := range cs.owners {
			owners = append(owners, o)
		}
		cs.mu.Unlock()
		for _, o := range owners {
			o.do(o.watch)
		}
	}
}

// resumeAll gives every stored channel that is not closed an owner; false if the store could
// not list them all.
func (cs *channels) resumeAll() bool {
	recs, err := cs.store.List(cs.ctx)
	if err != nil {
		cs.log.Warn("cannot list payment channels", "err", err)
	}
	for _, r := range recs {
		if r.State == chanstore.Closed {
			continue
		}
		if _, err := cs.resumed(r); err != nil && cs.ctx.Err() == nil {
			cs.log.Warn("cannot resume payment channel", "channel_id", fmt.Sprintf("%x", r.ChannelID[:]), "err", err)
		}
	}
	return err == nil
}
