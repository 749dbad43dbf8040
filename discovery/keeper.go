package discovery

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// protectTag marks proxy connections so the connection manager never trims them.
const protectTag = "cocoon-proxy"

// Keeper keeps a node connected to at least Want proxies: it looks proxies up in the DHT,
// connects to them, and looks again as soon as one goes away.
type Keeper struct {
	s         *Service
	want      int
	interval  time.Duration
	onConnect func(context.Context, peer.ID)

	kick chan struct{}

	mu      sync.Mutex
	proxies map[peer.ID]struct{}
	sorted  atomic.Pointer[[]peer.ID] // proxies as a sorted slice, rebuilt on every change
}

// NewKeeper returns a Keeper that wants `want` proxies and checks every interval.
// onConnect (may be nil) runs in its own goroutine for each newly connected proxy.
func (s *Service) NewKeeper(want int, interval time.Duration, onConnect func(context.Context, peer.ID)) *Keeper {
	if want < 1 {
		want = 1
	}
	return &Keeper{
		s: s, want: want, interval: interval, onConnect: onConnect,
		kick:    make(chan struct{}, 1),
		proxies: make(map[peer.ID]struct{}),
	}
}

// Proxies returns the proxies this node is connected to, sorted. The slice is shared: callers
// must not modify it. (The client reads it on every request; it changes rarely.)
func (k *Keeper) Proxies() []peer.ID {
	if p := k.sorted.Load(); p != nil {
		return *p
	}
	return nil
}

// changed rebuilds the sorted snapshot; the caller holds k.mu.
func (k *Keeper) changed() {
	out := make([]peer.ID, 0, len(k.proxies))
	for p := range k.proxies {
		out = append(out, p)
	}
	slices.Sort(out)
	k.sorted.Store(&out)
}

// Lost tells the Keeper a proxy failed (for example a stream could not be opened), so it is
// dropped at once and a replacement looked up, without waiting for the connection to time out.
func (k *Keeper) Lost(p peer.ID) {
	k.mu.Lock()
	_, had := k.proxies[p]
	delete(k.proxies, p)
	if had {
		k.changed()
	}
	k.mu.Unlock()
	if had {
		k.s.h.ConnManager().Unprotect(p, protectTag)
		k.s.log.Warn("proxy lost, looking for another", "proxy", p.String())
		k.poke()
	}
}

func (k *Keeper) poke() {
	select {
	case k.kick <- struct{}{}:
	default:
	}
}

// Run keeps the proxy set filled until ctx ends.
func (k *Keeper) Run(ctx context.Context) {
	nb := &network.NotifyBundle{DisconnectedF: func(n network.Network, c network.Conn) {
		p := c.RemotePeer()
		if n.Connectedness(p) == network.Connected {
			return // another connection to the same peer is still up
		}
		k.Lost(p)
	}}
	k.s.h.Network().Notify(nb)
	defer k.s.h.Network().StopNotify(nb)

	// While short of proxies, look again soon (backing off up to interval): a network that is
	// still coming up should be usable within a fraction of a second of its first proxy.
	wait := 100 * time.Millisecond
	for {
		if k.fill(ctx) {
			wait = k.interval
		} else {
			wait = min(2*wait, k.interval)
		}
		select {
		case <-ctx.Done():
			return
		case <-k.kick:
			wait = 100 * time.Millisecond
		case <-time.After(wait):
		}
	}
}

// fill connects to new proxies while fewer than want are connected, and reports whether
// enough are.
func (k *Keeper) fill(ctx context.Context) bool {
	k.mu.Lock()
	have := len(k.proxies)
	k.mu.Unlock()
	if have >= k.want {
		return true
	}
	// A lookup can stall on peers that died (a QUIC dial to a dead port waits for its handshake
	// timeout); bound it by the check interval so a proxy that joined meanwhile is found soon.
	fctx, cancel := context.WithTimeout(ctx, min(max(k.interval, 2*time.Second), 15*time.Second))
	defer cancel()
	k.s.rejoin(fctx)
	enough := false
	k.s.FindProxies(fctx, 4*k.want, func(ai peer.AddrInfo) bool {
		k.mu.Lock()
		_, known := k.proxies[ai.ID]
		k.mu.Unlock()
		if known {
			return true
		}
		if err := k.s.h.Connect(fctx, ai); err != nil {
			k.s.log.Debug("proxy unreachable", "proxy", ai.ID.String(), "err", err)
			return true
		}
		k.s.h.ConnManager().Protect(ai.ID, protectTag)
		k.mu.Lock()
		k.proxies[ai.ID] = struct{}{}
		k.changed()
		n := len(k.proxies)
		k.mu.Unlock()
		k.s.log.Info("connected to proxy", "proxy", ai.ID.String(), "addrs", addrStrings(ai.Addrs), "proxies", n)
		if k.onConnect != nil {
			go k.onConnect(ctx, ai.ID)
		}
		enough = n >= k.want
		return !enough
	})
	return enough
}

func addrStrings(as []ma.Multiaddr) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.String()
	}
	return out
}
