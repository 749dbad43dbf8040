package node_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cocoon-mesh/cocoon/node"
	"github.com/cocoon-mesh/cocoon/node/localnet"
	"github.com/cocoon-mesh/cocoon/node/wire"
	"github.com/cocoon-mesh/cocoon/tee"
)

// serveHello makes h answer the attested handshake with simulated evidence whose report data
// binds bindTo (h's own key for an honest peer) and a fresh sealing key.
func serveHello(t *testing.T, h host.Host, bindTo crypto.PubKey) {
	t.Helper()
	sk, err := tee.GenerateSealKey()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := crypto.MarshalPublicKey(bindTo)
	ev, _ := tee.NewSimulated(nil).Attest(tee.ReportData(pub, sk.PublicKey()))
	hello := frame(wire.FrameHello, (&tee.Hello{SealKey: sk.PublicKey(), Evidence: &ev}).Marshal())
	h.SetStreamHandler(node.AttestProtocol, func(s network.Stream) {
		s.Write(hello)
		s.Close()
	})
}

// TestGossipRejectsBadAdverts publishes adverts from a peer of its own on the real capacity
// topic: garbage and an advert claiming another worker are rejected and never reach the
// proxy's table, while the same peer's honest advert does (so the path is really exercised).
// A second peer whose evidence binds someone else's key is refused at the handshake.
func TestGossipRejectsBadAdverts(t *testing.T) {
	// Without payments: a paying proxy would drop our fake worker, which takes none.
	nw := startNet(t, localnet.Options{Proxies: 1, Workers: 1, NoPayments: true})
	proxy := nw.Proxies[0]
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	key, _, _ := crypto.GenerateEd25519Key(nil)
	h, err := libp2p.New(libp2p.Identity(key), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	serveHello(t, h, key.GetPublic())
	ps, err := pubsub.NewGossipSub(ctx, h, pubsub.WithFloodPublish(true))
	if err != nil {
		t.Fatal(err)
	}
	topic, err := ps.Join("/cocoon/" + proxy.Config().Network + "/capacity/1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Connect(ctx, peer.AddrInfo{ID: proxy.ID(), Addrs: proxy.Host().Addrs()}); err != nil {
		t.Fatal(err)
	}
	for len(topic.ListPeers()) == 0 {
		if ctx.Err() != nil {
			t.Fatal("the proxy never joined the topic")
		}
		time.Sleep(20 * time.Millisecond)
	}

	advert := func(worker peer.ID) *wire.Advert {
		return &wire.Advert{Worker: worker, Time: time.Now(), MaxActive: 4, Coefficient: 1000, Healthy: true,
			Offers: []wire.Offer{{Model: "rogue@1:abc"}}}
	}
	// An advert for someone else's worker ID, signed with our key.
	victimKey, _, _ := crypto.GenerateEd25519Key(nil)
	victim, _ := peer.IDFromPrivateKey(victimKey)
	forged, err := wire.SignAdvert(advert(victim), victimKey) // validly signed by the victim, but published by us
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]byte{[]byte("not an advert"), forged, make([]byte, wire.MaxAdvertSize+1)} {
		if err := topic.Publish(ctx, bad); err != nil {
			t.Fatal(err)
		}
	}
	honest, err := wire.SignAdvert(advert(h.ID()), key)
	if err != nil {
		t.Fatal(err)
	}
	if err := topic.Publish(ctx, honest); err != nil {
		t.Fatal(err)
	}
	has := func(id peer.ID) bool {
		for _, w := range proxy.Status().Workers {
			if w.Peer == id.String() {
				return true
			}
		}
		return false
	}
	for !has(h.ID()) {
		if ctx.Err() != nil {
			t.Fatal("the honest advert never reached the proxy's table")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if has(victim) {
		t.Fatal("an advert relayed under another worker's ID entered the table")
	}
	if n := len(proxy.Status().Workers); n != 2 { // the localnet worker and our honest peer
		t.Fatalf("proxy table has %d workers, want 2", n)
	}

	// An impostor: its own honest advert, but evidence made for another peer's key.
	impKey, _, _ := crypto.GenerateEd25519Key(nil)
	imp, err := libp2p.New(libp2p.Identity(impKey), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	defer imp.Close()
	serveHello(t, imp, victimKey.GetPublic())
	if err := imp.Connect(ctx, peer.AddrInfo{ID: proxy.ID(), Addrs: proxy.Host().Addrs()}); err != nil {
		t.Fatal(err)
	}
	impAdvert, _ := wire.SignAdvert(advert(imp.ID()), impKey)
	s, err := imp.NewStream(ctx, proxy.ID(), node.AdvertProtocol) // as a worker does on connecting
	if err != nil {
		t.Fatal(err)
	}
	s.Write(frame(wire.FrameAdvert, impAdvert))
	s.Close()
	for !strings.Contains(proxy.Status().Attestations[imp.ID().String()], "report data does not bind") {
		if ctx.Err() != nil {
			t.Fatalf("the impostor's handshake never failed: %q", proxy.Status().Attestations[imp.ID().String()])
		}
		time.Sleep(20 * time.Millisecond)
	}
	if has(imp.ID()) {
		t.Fatal("a worker whose evidence binds another key entered the table")
	}
}
