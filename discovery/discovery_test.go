package discovery

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

func TestKeysAreStableAndSeparate(t *testing.T) {
	if a1, a2 := NetworkKey("a"), NetworkKey("a"); a1 != a2 || a1 == NetworkKey("b") {
		t.Fatal("network keys must be a pure function of the name")
	}
	if ModelKey("a", "m@1:x") == NetworkKey("a") || ModelKey("a", "m@1:x") == ModelKey("b", "m@1:x") {
		t.Fatal("model keys must differ from network keys and across networks")
	}
	if _, err := New(nil, Config{}); err == nil {
		t.Fatal("empty network name accepted")
	}
}

func newHost(t *testing.T) host.Host {
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// TestKeeperFindsProxiesAndReplacesLostOnes runs a bootstrap peer, two proxies that announce
// themselves, and a keeper that wants one proxy: it connects, and after its proxy dies it finds
// the other one through the DHT.
func TestKeeperFindsProxiesAndReplacesLostOnes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bootHost := newHost(t)
	boot, err := New(bootHost, Config{Network: "t"})
	if err != nil {
		t.Fatal(err)
	}
	defer boot.Close()
	bootInfo := []peer.AddrInfo{{ID: bootHost.ID(), Addrs: bootHost.Addrs()}}

	var proxies []host.Host
	for range 2 {
		h := newHost(t)
		s, err := New(h, Config{Network: "t", Bootstrap: bootInfo})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := s.Bootstrap(ctx); err != nil {
			t.Fatal(err)
		}
		go s.Advertise(ctx, func() []string { return []string{"m@1:x"} }, 50*time.Millisecond, time.Minute)
		proxies = append(proxies, h)
	}

	clientHost := newHost(t)
	client, err := New(clientHost, Config{Network: "t", Bootstrap: bootInfo})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if err := client.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	k := client.NewKeeper(1, 200*time.Millisecond, nil)
	go k.Run(ctx)

	waitFor := func(what string, cond func() bool) {
		for !cond() {
			if ctx.Err() != nil {
				t.Fatalf("timed out waiting until %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("the keeper holds a proxy", func() bool { return len(k.Proxies()) == 1 })
	// The per-model key leads to the proxies too.
	waitFor("the model key is provided", func() bool {
		for ai := range client.DHT().FindProvidersAsync(ctx, ModelKey("t", "m@1:x"), 1) {
			return ai.ID == proxies[0].ID() || ai.ID == proxies[1].ID()
		}
		return false
	})
	first := k.Proxies()[0]
	for _, h := range proxies {
		if h.ID() == first {
			h.Close()
		}
	}
	waitFor("the keeper replaces the lost proxy", func() bool {
		ps := k.Proxies()
		return len(ps) == 1 && ps[0] != first
	})
}
