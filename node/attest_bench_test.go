package node

import (
	"context"
	"log/slog"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cocoon-mesh/cocoon/node/p2phost"
	"github.com/cocoon-mesh/cocoon/tee"
)

// attestPeer is a host with just enough of a node to run the attested handshake.
func attestPeer(b testing.TB, allowSimulated bool) *Node {
	b.Helper()
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		b.Fatal(err)
	}
	hc := p2phost.DefaultConfig()
	hc.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	h, err := p2phost.New(hc, key, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { h.Close() })
	n := &Node{h: h, clock: wallClock(), life: newLife(wallClock(), "test"), rand: newLockedRand(nil), log: slog.New(slog.DiscardHandler), cfg: DefaultConfig()}
	n.ctx, n.cancel = n.life.ctx, n.life.cancel
	env := attestEnv{h: n.h, life: n.life, log: n.log, rand: n.rand, cfg: &n.cfg, refused: &n.refused}
	if n.attest, err = newAttester(env, key, tee.NewSimulated(nil), tee.NewVerifier(tee.Policy{AllowSimulated: allowSimulated}, nil)); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { n.cancel(); n.life.close() })
	h.SetStreamHandler(AttestProtocol, n.attest.handle)
	return n
}

func connect(b testing.TB, from, to host.Host) {
	b.Helper()
	if err := from.Connect(context.Background(), peer.AddrInfo{ID: to.ID(), Addrs: to.Addrs()}); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkAttestHandshake is what the attested handshake adds to a connection (simulated
// evidence): one stream, the hello, and its verification, on a warm connection. Nodes do it
// once per connection, not per request.
func BenchmarkAttestHandshake(b *testing.B) {
	a, z := attestPeer(b, true), attestPeer(b, true)
	connect(b, a.h, z.h)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, _, err := a.attest.handshake(ctx, z.h.ID()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkConnectAndAttest is a new connection (TCP, Noise, yamux, identify) and the
// handshake on it, for comparison with the handshake alone.
func BenchmarkConnectAndAttest(b *testing.B) {
	a, z := attestPeer(b, true), attestPeer(b, true)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		connect(b, a.h, z.h)
		if _, _, _, err := a.attest.handshake(ctx, z.h.ID()); err != nil {
			b.Fatal(err)
		}
		a.h.Network().ClosePeer(z.h.ID())
		a.h.Peerstore().RemovePeer(z.h.ID())
	}
}
