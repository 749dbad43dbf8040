package node

import (
	"context"
	"errors"
	"slices"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cocoon-mesh/cocoon/node/wire"
	"github.com/cocoon-mesh/cocoon/ton/channel"
	"github.com/cocoon-mesh/cocoon/ton/chanstore"
)

// What an operator asks of the channels (the admin endpoints): opening, topping up and
// closing. A channel's life after opening is its core's: a payer whose deposit runs low (under
// a quarter left) moves to a freshly funded channel and closes the old one once the answers
// paid on it ended; a cooperative close is proposed and submitted by the payer, co-signed by
// the payee, and pays out at once; a side whose counterparty does not co-sign closes alone,
// and the watch challenges an older state and finishes the close after the quarantine.

var errPaymentsOff = wire.Errorf(wire.CodeBadRequest, "payments are off on this node")

// OpenChannel opens the channel this node pays peer p on, or resumes the open one, and
// returns it. Channels open by themselves when first needed, locking what the payee's
// earnings earn it; one an operator opens locks the whole payments.deposit.
func (n *Node) OpenChannel(ctx context.Context, p peer.ID) (ChannelStatus, error) {
	if n.payments == nil {
		return ChannelStatus{}, errPaymentsOff
	}
	if err := n.checkPayee(p); err != nil {
		return ChannelStatus{}, err
	}
	c, err := n.payments.channelTo(ctx, p, true)
	if err != nil {
		return ChannelStatus{}, err
	}
	return c.status(), nil
}

// checkPayee refuses a channel an operator asks for to a peer this node would never pay: a
// client pays its proxies, a proxy its workers, and a worker no one. Such a channel would lock
// a deposit nothing uses.
func (n *Node) checkPayee(p peer.ID) error {
	switch n.cfg.Role {
	case RoleWorker:
		return wire.Errorf(wire.CodeBadRequest, "a worker pays no one (proxies pay it): it opens no channels")
	case RoleClient:
		if !slices.Contains(n.keeper.Proxies(), p) {
			return wire.Errorf(wire.CodeBadRequest, "%s is not one of this client's proxies, and a client pays only its proxies: the status endpoint lists them", p)
		}
	case RoleProxy:
		if !n.workers.has(p) {
			return wire.Errorf(wire.CodeBadRequest, "%s is not a worker this proxy routes to, and a proxy pays only its workers: the status endpoint lists them", p)
		}
	}
	return nil
}

// TopUpChannel moves the payments to p onto a freshly funded channel, with the whole
// payments.deposit, and closes the old one cooperatively once its answers are paid (the
// contract takes no deposit after init).
func (n *Node) TopUpChannel(ctx context.Context, p peer.ID) (ChannelStatus, error) {
	cs := n.payments
	if cs == nil {
		return ChannelStatus{}, errPaymentsOff
	}
	if err := n.checkPayee(p); err != nil {
		return ChannelStatus{}, err
	}
	cs.mu.Lock()
	old := cs.out[p]
	cs.mu.Unlock()
	if old != nil {
		if err := old.ask(func() {
			old.full = true
			_, _ = old.step(channel.Rotate{}) // a channel stopped already is being replaced
			old.full = false
		}); err != nil && !errors.Is(err, errChannelGone) {
			return ChannelStatus{}, err
		}
	}
	c, err := cs.channelTo(ctx, p, true)
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
	mode := channel.Either
	if force {
		mode = channel.Alone
	}
	owners, err := n.payments.with(ctx, p)
	if err != nil {
		return nil, err
	}
	if len(owners) == 0 {
		return nil, wire.Errorf(wire.CodeBadRequest, "no open payment channel with %s", p.String())
	}
	var st []ChannelStatus
	var errs []error
	for _, o := range owners {
		s, err := o.close(ctx, mode)
		st, errs = append(st, s), append(errs, err)
	}
	return st, errors.Join(errs...)
}

// with finds this node's channels with p that are not closed: in use, replaced, or only in
// the store (after a restart); those we pay on first.
func (cs *channels) with(ctx context.Context, p peer.ID) ([]*chanOwner, error) {
	recs, err := cs.store.List(ctx)
	if err != nil {
		return nil, err
	}
	var outs, ins []*chanOwner
	seen := make(map[chanKey]bool)
	add := func(o *chanOwner) {
		if !seen[o.key] {
			seen[o.key] = true
			if o.key.role == chanstore.Payer {
				outs = append(outs, o)
			} else {
				ins = append(ins, o)
			}
		}
	}
	cs.mu.Lock()
	if c := cs.out[p]; c != nil {
		add(c.chanOwner)
	}
	if c := cs.in[p]; c != nil {
		add(c.chanOwner)
	}
	for _, c := range cs.old[p] {
		add(c.chanOwner)
	}
	cs.mu.Unlock()
	for _, r := range recs {
		if r.State == chanstore.Closed || counterparty(r) != p || seen[chanKey{r.Role, r.ChannelID}] {
			continue
		}
		o, err := cs.resumed(r)
		if err != nil {
			return nil, err
		}
		add(o)
	}
	return append(outs, ins...), nil
}
