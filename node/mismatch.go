package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/multiformats/go-multistream"

	"github.com/cocoon-mesh/cocoon/node/wire"
)

// Payments on one side and not on the other make a pair of nodes useless to each other: a
// paying node's peer that takes no payments (no ledger) cannot be paid, and a peer that
// demands payment from a node without a ledger refuses it. Such a peer is left alone, with a
// log line, for mismatchFor, then tried again: it may have restarted otherwise configured.

// errTakesNoPayments is a peer that serves no channel protocol: its node has no ledger.
var errTakesNoPayments = errors.New("it takes no payments (it runs without --ledger or --ton-config), and this node pays for what it uses")

// errDemandsPayment is a peer that refused us for want of a channel while we have no ledger.
var errDemandsPayment = errors.New("it demands payment (it runs with a ledger), and this node pays nobody (it runs without --ledger or --ton-config)")

// mismatchFor is how long a peer whose payments do not match ours is left alone.
const mismatchFor = 5 * time.Minute

// mismatches remembers when peers were found not to match this node's payments.
type mismatches struct {
	mu sync.Mutex
	at map[peer.ID]time.Time
}

// mark records that p does not match, at now; false if it was marked lately already, so the
// caller logs only the first time.
func (m *mismatches) mark(p peer.ID, now time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.at == nil {
		m.at = make(map[peer.ID]time.Time)
	}
	t, ok := m.at[p]
	m.at[p] = now
	return !ok || now.Sub(t) >= mismatchFor
}

// has reports whether p was found not to match lately, as of now.
func (m *mismatches) has(p peer.ID, now time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.at[p]
	return ok && now.Sub(t) < mismatchFor
}

// demandsPayment reports whether err, a peer's refusal, was for want of a payment channel
// while this node has no ledger to open one (cs, its channels, is nil).
func demandsPayment(cs *channels, err error) bool {
	return cs == nil && asWireError(err).Code == wire.CodePayment
}

// leaveAlone marks p as not matching our payments, for why, and stops using it: a proxy drops
// it from its worker table, a client skips it as a proxy. Each says so once.
func (n *Node) leaveAlone(p peer.ID, why error) {
	first := n.mismatch.mark(p, n.now())
	reason := fmt.Sprintf("%v; tried again in %s", why, mismatchFor)
	n.refused.note(n.now(), p, why.Error(), "give both nodes the same payments setting: a ledger (--ledger or --ton-config) on both, or on neither")
	switch {
	case n.cfg.Role == RoleProxy:
		n.workers.drop(p, reason) // logs if the table had it
	case first:
		n.log.Warn("not using a proxy whose payments do not match ours", "proxy", p.String(), "reason", reason)
	}
}

// checkTakesPayments asks a new worker for its payment terms, which locks nothing, and leaves
// it alone if it takes no payments: found out now, not by the first request routed there.
func (n *Node) checkTakesPayments(ctx context.Context, p peer.ID) {
	ctx, cancel := context.WithTimeout(ctx, channelTimeout)
	defer cancel()
	_, err := channelCall(ctx, n.h, p, wire.FrameTerms, nil, wire.FrameTerms)
	if errors.Is(err, multistream.ErrNotSupported[protocol.ID]{}) {
		n.leaveAlone(p, errTakesNoPayments)
	}
}
