package node

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/cocoon-mesh/cocoon/node/wire"
)

func TestCheckAdvert(t *testing.T) {
	now := time.UnixMilli(1_800_000_000_000)
	n := &Node{cfg: DefaultConfig(), now: func() time.Time { return now }}
	key, _, _ := crypto.GenerateEd25519Key(nil)
	id, _ := peer.IDFromPrivateKey(key)
	other, _, _ := crypto.GenerateEd25519Key(nil)
	otherID, _ := peer.IDFromPrivateKey(other)
	mk := func(at time.Time) []byte {
		b, err := wire.SignAdvert(&wire.Advert{Worker: id, Time: at, MaxActive: 1, Coefficient: 1000,
			Offers: []wire.Offer{{Model: "m@1:abc"}}}, key)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if _, err := n.checkAdvert(mk(now), id); err != nil {
		t.Fatalf("good advert refused: %v", err)
	}
	if _, err := n.checkAdvert(mk(now), otherID); err == nil || !strings.Contains(err.Error(), "published by") {
		t.Fatalf("advert relayed as someone else's accepted: %v", err)
	}
	if _, err := n.checkAdvert(mk(now.Add(-2*n.cfg.AdvertMaxAge)), id); !errors.Is(err, wire.ErrStale) {
		t.Fatalf("stale advert: %v", err)
	}
	if _, err := n.checkAdvert(mk(now.Add(time.Hour)), id); !errors.Is(err, wire.ErrFuture) {
		t.Fatalf("future advert: %v", err)
	}
	forged := mk(now)
	forged[len(forged)-1] ^= 1
	if _, err := n.checkAdvert(forged, id); !errors.Is(err, wire.ErrBadSignature) {
		t.Fatalf("forged advert: %v", err)
	}
	if _, err := n.checkAdvert(make([]byte, wire.MaxAdvertSize+1), id); !errors.Is(err, wire.ErrFrameTooLarge) {
		t.Fatalf("oversized advert: %v", err)
	}
}

func TestLimitLoggerNamesTheRefusalOncePerSecond(t *testing.T) {
	var buf bytes.Buffer
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(rcmgr.PartialLimitConfig{
		System: rcmgr.ResourceLimits{Conns: rcmgr.BlockAllLimit, ConnsInbound: rcmgr.BlockAllLimit, ConnsOutbound: rcmgr.BlockAllLimit},
	}.Build(rcmgr.DefaultLimits.AutoScale())))
	if err != nil {
		t.Fatal(err)
	}
	l := &limitLogger{ResourceManager: rm, log: slog.New(slog.NewTextHandler(&buf, nil))}
	for range 3 {
		if _, err := l.OpenConnection(network.DirInbound, true, ma.StringCast("/ip4/127.0.0.1/tcp/1")); err == nil {
			t.Fatal("a blocked connection was admitted")
		}
	}
	out := buf.String()
	if strings.Count(out, "resource limit refused a connection") != 1 || !strings.Contains(out, "remote=/ip4/127.0.0.1/tcp/1") {
		t.Fatalf("log: %s", out)
	}
}
