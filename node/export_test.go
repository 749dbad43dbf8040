package node

import (
	"context"
	"encoding/hex"
	"errors"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cocoon-mesh/cocoon/tee"
	"github.com/cocoon-mesh/cocoon/ton/channel"
	"github.com/cocoon-mesh/cocoon/ton/chanstore"
)

// ForgetSealSessions makes a worker drop every client's sealing session, as a restart of its
// session table would.
func ForgetSealSessions(n *Node) { n.attest.opener = tee.NewOpener(n.attest.opener.Key()) }

// AbandonClose marks the channel n pays p on closing and takes it out of use, and starts no
// close: what a payer that died in the middle of a close leaves behind (its channel resumed
// from the store, as after a restart).
func AbandonClose(ctx context.Context, n *Node, p peer.ID) error {
	rec, ok := forgetOut(n, p)
	if !ok {
		return errors.New("no channel to abandon")
	}
	rec.State = chanstore.Closing
	if err := n.payments.store.Put(ctx, rec); err != nil {
		return err
	}
	rec, err := n.payments.store.Get(ctx, rec.ChannelID, rec.Role)
	if err == nil {
		_, err = n.payments.resumed(rec)
	}
	return err
}

// OrphanChannel stores a new channel to p as a payer does just before deploying it, and
// forgets the channel in use: what a payer that died while opening a channel leaves behind.
// It returns the new channel's id, in hex.
func OrphanChannel(ctx context.Context, n *Node, p peer.ID) (string, error) {
	ps := n.payments
	cur, ok := forgetOut(n, p)
	if !ok {
		return "", errors.New("no channel to p")
	}
	params, err := cur.Params()
	if err != nil {
		return "", err
	}
	params.ChannelID[0] ^= 0xff
	rec, err := chanstore.NewRecord(chanstore.Payer, params, ps.cfg.Deposit, 0)
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(params.ChannelID[:]), ps.store.Put(ctx, rec)
}

// forgetOut takes the channel n pays p on out of n's memory, as a restart would, and returns
// its record.
func forgetOut(n *Node, p peer.ID) (chanstore.Record, bool) {
	cs := n.payments
	cs.mu.Lock()
	c := cs.out[p]
	cs.mu.Unlock()
	if c == nil {
		return chanstore.Record{}, false
	}
	var rec chanstore.Record
	_ = c.ask(func() { rec = c.ch.Record() })
	c.forget()
	return rec, true
}

// Drift counts value v as delivered to payer p on n's channel without sending it anywhere:
// what an answer leaves behind when the stream carrying it breaks.
func Drift(n *Node, p peer.ID, v uint64) error {
	c, err := n.payments.payerIn(p)
	if err != nil {
		return err
	}
	// In small items, as answers would deliver it: one item of v would count as the costliest
	// delivered and widen the write-off budget to match.
	const item = 420
	deliver := func() {
		for ; v > 0 && err == nil; v -= min(v, item) {
			_, err = c.step(channel.Delivered{Cost: min(v, item), Window: ^uint64(0)})
		}
	}
	if e := c.ask(deliver); e != nil {
		return e
	}
	return err
}

// ForgetPayer makes n lose its in-memory state of the channel it pays p on, as a restart would.
func ForgetPayer(n *Node, p peer.ID) { forgetOut(n, p) }
