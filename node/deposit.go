package node

import (
	"context"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cocoon-mesh/cocoon/node/wire"
	"github.com/cocoon-mesh/cocoon/ton/chanstore"
)

// Deposits follow trust. A payer's first channel to a payee locks PaymentConfig.FirstDeposit;
// each later one locks twice what the payee was paid on the earlier ones, at most Deposit. So a
// worker that has served little gets little locked for it, and a proven one gets room. What is
// locked in open channels to payees that were never paid anything is capped at UnearnedCap:
// a flood of fresh worker identities, each routed a request, cannot lock a proxy's wallet.

// errUnearnedCap refuses a new channel to a payee that earned nothing yet, while the channels
// to such payees hold UnearnedCap already. It is nobody's fault: the request goes elsewhere.
var errUnearnedCap = wire.Errorf(wire.CodeNoCapacity, "payments.unearned_cap reached: no new channel to a payee that has earned nothing yet")

// Locked is what a payer's channels not closed yet lock, and the part of it locked for payees
// that have earned nothing from it yet.
type Locked struct {
	Total    uint64 `json:"total_nanoton"`
	Unearned uint64 `json:"unearned_nanoton"`
}

// lockedBy adds up chans, a node's channels as Channels lists them: what each payee (by peer
// ID) earned from us on them in all, and what those we pay on that are not closed yet lock.
func lockedBy(chans []ChannelStatus) (earned map[string]uint64, locked Locked) {
	earned = make(map[string]uint64)
	for _, c := range chans {
		if c.Role == chanstore.Payer.String() {
			earned[c.Peer] += c.Paid
		}
	}
	for _, c := range chans {
		if c.Role == chanstore.Payer.String() && c.State != chanstore.Closed.String() { // a closing one is still locked
			locked.Total += c.Deposit
			if earned[c.Peer] == 0 {
				locked.Unearned += c.Deposit
			}
		}
	}
	return earned, locked
}

// depositFor is what a new channel to payee p locks: FirstDeposit for a payee that earned
// nothing from us, else twice what it earned, within [FirstDeposit, Deposit]. A payee that
// earned nothing gets one only while what is locked for such payees stays within UnearnedCap.
func (cs *channels) depositFor(ctx context.Context, p peer.ID) (uint64, error) {
	cfg := cs.cfg
	earned, locked := lockedBy(cs.list(ctx))
	e := earned[p.String()]
	if e == 0 && locked.Unearned+cfg.FirstDeposit > cfg.UnearnedCap {
		cs.log.Warn("not opening a payment channel to a payee that has earned nothing yet: the cap is reached",
			"payee", p.String(), "locked_unearned", locked.Unearned, "unearned_cap", cfg.UnearnedCap,
			"hint", "channels to such payees close after payments.unearned_idle; raise payments.unearned_cap to try more new workers at once")
		return 0, fmt.Errorf("%w (%d nanoTON locked for such payees)", errUnearnedCap, locked.Unearned)
	}
	return min(max(2*e, cfg.FirstDeposit), cfg.Deposit), nil
}
