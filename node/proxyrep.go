package node

import (
	"fmt"
	"math"
	"slices"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cocoon-mesh/cocoon/reputation"
)

// Clients judge proxies by their own observations, in the same book a proxy keeps of its
// workers (roster.rep): an answer served, checked and paid raises a proxy's score; a proxy
// caught quoting above its worker's prices plus its commission (Overcharge), or passing on
// claims its worker's answer does not bear out (ReceiptMismatch), or that cannot be reached,
// lowers it. A client tries its proxies best tier first (round robin within a tier), and
// those below the routing floor only when no other is left.

// proxyOrder is the order in which a client tries proxies for one request: from first on,
// round robin, then the better tenth of score first; those below reputation.min_trust last.
func (n *Node) proxyOrder(proxies []peer.ID, first int) []peer.ID {
	order := make([]peer.ID, len(proxies))
	for i := range proxies {
		order[i] = proxies[(first+i)%len(proxies)]
	}
	if n.cfg.Reputation.Off {
		return order
	}
	ro, now := n.workers, n.now()
	ro.mu.Lock()
	tier := make(map[peer.ID]float64, len(order))
	for _, p := range order {
		s := ro.rep.Score(now, p)
		tier[p] = math.Floor(s * 10)
		if s < n.cfg.Reputation.MinTrust {
			tier[p] = -1
		}
	}
	ro.mu.Unlock()
	slices.SortStableFunc(order, func(a, b peer.ID) int {
		switch {
		case tier[a] > tier[b]:
			return -1
		case tier[a] < tier[b]:
			return 1
		}
		return 0
	})
	return order
}

// judgeProxy records what an attempt through proxy p says of it.
func (n *Node) judgeProxy(p peer.ID, at *attempt, err error) {
	var ev reputation.Event
	switch {
	case err == nil && at.res != nil:
		ev = reputation.Event{Kind: reputation.Served, Paid: at.res.cost}
	case at.proxyFault:
		ev = reputation.Event{Kind: at.judged}
	case at.unreached:
		ev = reputation.Event{Kind: reputation.FailedEarly}
	default:
		return // the worker's doing, ours, or the caller's: the proxy failed over or said why
	}
	n.workers.note(p, ev, fmt.Errorf("proxy %s: %v", p.String(), err))
}
