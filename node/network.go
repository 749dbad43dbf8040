package node

import (
	"context"
	"io"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// NetworkProtocol answers which network (Config.Network) a node is on. Nodes of different
// networks share nothing (DHT keys, gossip topic), so one bootstrapping from another network's
// peer would connect and then find no proxy, without a word; it asks its bootstrap peers
// instead, and says so.
const NetworkProtocol protocol.ID = "/cocoon/network/1.0.0"

// maxNetworkName bounds the answer read.
const maxNetworkName = 256

// networkCheck asks each bootstrap peer, once connected, which network it is on, and refuses
// (loudly, once) one on another.
type networkCheck struct {
	h       host.Host
	life    *life
	log     *slog.Logger
	network string
	boot    map[peer.ID]bool
	refused *refusedPeers
}

// start answers the question for others and asks it of the bootstrap peers as they connect.
func (nc *networkCheck) start() {
	nc.h.SetStreamHandler(NetworkProtocol, nc.life.handler(func(s network.Stream) {
		_, _ = s.Write([]byte(nc.network))
		s.Close()
	}))
	if len(nc.boot) == 0 {
		return
	}
	nb := &network.NotifyBundle{ConnectedF: func(_ network.Network, c network.Conn) {
		if p := c.RemotePeer(); nc.boot[p] {
			nc.life.Go(func() { nc.ask(p) })
		}
	}}
	nc.h.Network().Notify(nb)
	nc.life.AtClose(func() { nc.h.Network().StopNotify(nb) })
	// A bootstrap peer connected before the notifiee was in place is asked now (one connected
	// in between is asked twice, and refused at most once).
	for p := range nc.boot {
		if nc.h.Network().Connectedness(p) == network.Connected {
			nc.life.Go(func() { nc.ask(p) })
		}
	}
}

// ask reads p's network and refuses p if it is another.
func (nc *networkCheck) ask(p peer.ID) {
	ctx, cancel := context.WithTimeout(nc.life.ctx, 10*time.Second)
	defer cancel()
	s, err := nc.h.NewStream(ctx, p, NetworkProtocol)
	if err != nil {
		return // an older node, or gone: nothing to say
	}
	defer s.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = s.SetReadDeadline(dl)
	}
	b, err := io.ReadAll(io.LimitReader(s, maxNetworkName))
	if err != nil || string(b) == nc.network {
		return
	}
	reason := "bootstrap peer is on network " + string(b) + ", this node on " + nc.network + ": nodes of different networks never meet"
	fix := "give this node --network " + string(b) + " (network in the config file), or bootstrap from a node of " + nc.network
	if nc.refused.note(nc.life.clock.Now(), p, reason, fix) {
		nc.log.Warn("bootstrap peer on another network", "peer", p.String(), "reason", reason, "fix", fix)
	}
}
