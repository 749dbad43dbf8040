package node

import (
	"context"
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
	ps := n.payments
	ps.mu.Lock()
	c := ps.out[p]
	delete(ps.out, p)
	ps.mu.Unlock()
	if c == nil {
		return errors.New("no channel to abandon")
	}
	c.stop()
	return n.markOut(ctx, c, chanstore.Closing)
}
