package node

import (
	"cmp"
	"errors"
	"slices"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cocoon-mesh/cocoon/tee"
)

// maxStatusAttestations bounds the handshakes Status lists one by one.
const maxStatusAttestations = 64

// summary lists the unexpired handshakes, trusted ones first, at most
// maxStatusAttestations, and counts every entry of the cache by outcome.
func (a *attester) summary() (map[string]string, map[string]int) {
	type entry struct {
		p    peer.ID
		pa   *peerAttest // finished: its fields no longer change
		rank int
		kind string
	}
	now := a.now()
	counts := map[string]int{}
	var list []entry
	a.mu.Lock()
	for p, pa := range a.peers {
		e := entry{p: p, pa: pa, rank: 2}
		switch {
		case !pa.finished():
			e.kind = "pending"
		case now.Sub(pa.at) >= a.ttl(pa):
			e.kind = "expired"
		case pa.unreached:
			e.kind = "unreached"
		default:
			e.kind = describeAttest(pa)
		}
		counts[e.kind]++
		if e.kind == "pending" || e.kind == "expired" {
			continue
		}
		switch {
		case pa.err == nil:
			e.rank = 0
		case !pa.refused():
			e.rank = 1
		}
		list = append(list, e)
	}
	a.mu.Unlock()
	if len(counts) == 0 {
		return nil, nil
	}
	slices.SortFunc(list, func(a, b entry) int { return cmp.Or(cmp.Compare(a.rank, b.rank), cmp.Compare(a.p, b.p)) })
	out := make(map[string]string, min(len(list), maxStatusAttestations))
	for _, e := range list[:min(len(list), maxStatusAttestations)] {
		text := e.kind
		if e.pa.err != nil && !errors.Is(e.pa.err, tee.ErrNotAttested) {
			text += ": " + e.pa.err.Error()
		}
		out[e.p.String()] = text
	}
	return out, counts
}
