package node

import (
	"context"
	"encoding/hex"
	"errors"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cocoon-mesh/cocoon/tee"
	"github.com/cocoon-mesh/cocoon/ton/chanstore"
)

// ForgetSealSessions makes a worker drop every client's sealing session, as a restart of its
// session table would.
func ForgetSealSessions(n *Node) { n.attest.opener = tee.NewOpener(n.attest.opener.Key()) }

// AbandonClose marks the channel n pays p on closing and takes it out of use, and starts no
// close: what a payer that died in the middle of a close leaves behind.
func AbandonClose(ctx context.Context, n *Node, p peer.ID) error {
	c := forgetOut(n, p)
	if c == nil {
		return errors.New("no channel to abandon")
	}
	c.stop()
	return n.markOut(ctx, c, chanstore.Closing)
}

// OrphanChannel stores a new channel to p as a payer does just before deploying it, and
// forgets the channel in use: what a payer that died while opening a channel leaves behind.
// It returns the new channel's id, in hex.
func OrphanChannel(ctx context.Context, n *Node, p peer.ID) (string, error) {
	ps := n.payments
	cur := forgetOut(n, p)
	if cur == nil {
		return "", errors.New("no channel to p")
	}
	cur.mu.Lock()
	params, err := cur.rec.Params()
	cur.mu.Unlock()
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

// forgetOut takes the channel n pays p on out of n's memory, as a restart would.
func forgetOut(n *Node, p peer.ID) *outChan {
	n.payments.mu.Lock()
	defer n.payments.mu.Unlock()
	c := n.payments.out[p]
	delete(n.payments.out, p)
	return c
}

// Drift counts value v as delivered to payer p on n's channel without sending it anywhere:
// what an answer leaves behind when the stream carrying it breaks.
func Drift(n *Node, p peer.ID, v uint64) error {
	c, err := n.payerIn(p)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.credit.Reserve(v, ^uint64(0))
}

// ForgetPayer makes n lose its in-memory state of the channel it pays p on, as a restart would.
func ForgetPayer(n *Node, p peer.ID) { forgetOut(n, p) }
