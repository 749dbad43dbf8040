package node

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cocoon-mesh/cocoon/tee"
)

// RefusedPeer is a peer this node refuses to work with, and why, as Status lists it.
type RefusedPeer struct {
	Peer   string    `json:"peer"`
	Reason string    `json:"reason"`
	Fix    string    `json:"fix"` // the setting that changes it, or what the peer must do
	Since  time.Time `json:"since"`
}

// maxRefused bounds the refused peers remembered: past it, the oldest is forgotten.
const maxRefused = 256

// refusedPeers remembers the peers this node refused and why, so that each refusal is logged
// once per peer and reason (at warn, naming what changes it) rather than silently or on every
// advert, and Status lists them.
type refusedPeers struct {
	mu sync.Mutex
	m  map[peer.ID]RefusedPeer
}

// note records p refused at now for reason, and reports whether that is news: a peer not
// refused before, or for another reason.
func (r *refusedPeers) note(now time.Time, p peer.ID, reason, fix string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.m[p]; ok && old.Reason == reason {
		return false
	}
	if r.m == nil {
		r.m = make(map[peer.ID]RefusedPeer)
	}
	for len(r.m) >= maxRefused {
		var oldest peer.ID
		for id, rp := range r.m {
			if oldest == "" || rp.Since.Before(r.m[oldest].Since) {
				oldest = id
			}
		}
		delete(r.m, oldest)
	}
	r.m[p] = RefusedPeer{Peer: p.String(), Reason: reason, Fix: fix, Since: now}
	return true
}

// forget clears p, taken in after all.
func (r *refusedPeers) forget(p peer.ID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.m, p)
}

// list is every refused peer, by peer ID; never nil.
func (r *refusedPeers) list() []RefusedPeer {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]RefusedPeer, 0, len(r.m))
	for _, rp := range r.m {
		out = append(out, rp)
	}
	slices.SortFunc(out, func(a, b RefusedPeer) int { return strings.Compare(a.Peer, b.Peer) })
	return out
}

// attestRefusal says why a worker whose handshake ended in err is refused, and what changes
// that; side names this node's role for the fix ("proxy" routes, "client" sends prompts).
func attestRefusal(err error, side Role) (reason, fix string) {
	switch {
	case errors.Is(err, tee.ErrNotAttested) && side == RoleClient:
		return "the worker offers no attestation (it runs outside a TEE), and this client sends prompts only to attested workers",
			"start the client with --allow-unattested (tee.allow_unattested) to send them to such workers in the clear, or run the worker in a TEE (--tee tdx)"
	case errors.Is(err, tee.ErrNotAttested):
		return "the worker offers no attestation (it runs outside a TEE)",
			"start the proxy with --allow-unattested (tee.allow_unattested) to route to such workers, or run the worker in a TEE (--tee tdx)"
	case errors.Is(err, tee.ErrSimulated):
		return "the worker's attestation is SIMULATED: no hardware protects it",
			"for development only, start this node with --allow-simulated (tee.allow_simulated)"
	}
	return "the worker's attestation is refused: " + err.Error(), "check the worker's TEE against this node's [tee] policy"
}
