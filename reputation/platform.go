package reputation

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// ErrPlatformFull is Bind's refusal of one identity too many on a platform.
var ErrPlatformFull = errors.New("reputation: platform holds its cap of identities")

// ErrPlatformBanned is Bind's refusal of an identity on a platform banned by evidence.
var ErrPlatformBanned = errors.New("reputation: platform banned")

// Bind ties p to the physical platform its attestation names (the TDX PPID), before p is
// admitted: at most Config.PerPlatform identities per platform, and none on a banned one, so
// that a fresh identity buys no clean slate. Binding p again to the same platform is a no-op;
// to another, moves it.
func (b *Book) Bind(now time.Time, p peer.ID, platformID string) error {
	if platformID == "" {
		return errors.New("reputation: empty platform ID")
	}
	pl := b.platforms[platformID]
	if pl == nil {
		pl = &platform{peers: map[peer.ID]bool{}}
		b.platforms[platformID] = pl
	}
	switch {
	case pl.banned.After(now):
		return fmt.Errorf("%w until %s: a worker on it answered a canary wrongly", ErrPlatformBanned, pl.banned.UTC().Format(time.RFC3339))
	case pl.peers[p]:
		return nil
	case len(pl.peers) >= b.cfg.PerPlatform:
		return fmt.Errorf("%w (%d): stop an identity on it first, or raise the cap", ErrPlatformFull, b.cfg.PerPlatform)
	}
	r := b.record(now, p)
	if old := b.platforms[r.platform]; old != nil && r.platform != platformID {
		delete(old.peers, p)
	}
	r.platform = platformID
	pl.peers[p] = true
	if r.banned.After(pl.banned) {
		pl.banned = r.banned // a banned identity moving in bans its new platform
	}
	return nil
}

// Unbind frees p's place on its platform (it left); its evidence stays.
func (b *Book) Unbind(p peer.ID) {
	if r := b.peers[p]; r != nil {
		if pl := b.platforms[r.platform]; pl != nil {
			delete(pl.peers, p)
		}
	}
}

// Count is how many events of kind k were recorded of p (not faded): a caller's measure of
// how much it has seen of a peer, such as the paid answers a new identity served.
func (b *Book) Count(p peer.ID, k Kind) uint64 {
	if r := b.peers[p]; r != nil && k >= 0 && k < numKinds {
		return r.counts[k]
	}
	return 0
}

// Standing is what a Book holds of one peer, for operators.
type Standing struct {
	Peer      peer.ID
	Score     float64
	Good, Bad float64 // faded evidence as of the time asked
	Counts    map[Kind]uint64
	Banned    time.Time // banned by evidence until then (zero: never)
	Pinned    bool      // operator's pin
	Blocked   bool      // operator's ban
	Platform  string
}

// Standings lists every peer the book holds evidence of, or the operator named, highest
// score first (then by peer ID).
func (b *Book) Standings(now time.Time) []Standing {
	ids := map[peer.ID]bool{}
	for p := range b.peers {
		ids[p] = true
	}
	for p := range b.pin {
		ids[p] = true
	}
	for p := range b.ban {
		ids[p] = true
	}
	out := make([]Standing, 0, len(ids))
	for p := range ids {
		out = append(out, b.Standing(now, p))
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Score != out[j].Score {
			return out[i].Score > out[j].Score
		}
		return out[i].Peer < out[j].Peer
	})
	return out
}

// Standing is p's standing at now.
func (b *Book) Standing(now time.Time, p peer.ID) Standing {
	s := Standing{Peer: p, Score: b.Score(now, p), Pinned: b.pin[p], Blocked: b.ban[p], Counts: map[Kind]uint64{}}
	if r := b.peers[p]; r != nil {
		s.Good, s.Bad = b.faded(r, now)
		s.Banned, s.Platform = b.bannedUntil(r), r.platform
		for k, n := range r.counts {
			if n > 0 {
				s.Counts[Kind(k)] = n
			}
		}
	}
	return s
}
