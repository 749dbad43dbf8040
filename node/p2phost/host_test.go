package p2phost

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	ma "github.com/multiformats/go-multiaddr"
)

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
	if got := l.Refusals(); got["connection inbound"] != 3 || len(got) != 1 {
		t.Fatalf("counted %v, want 3 inbound connections (every refusal, not only those logged)", got)
	}
}

// A second host on a port another holds is refused, naming the port and the setting to
// change: libp2p's listeners share ports (SO_REUSEPORT), so it would otherwise start and never
// be reached.
func TestTakenPortIsRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cfg := DefaultConfig()
	cfg.Listen = []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port), fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1", port)}
	key := func() crypto.PrivKey { k, _, _ := crypto.GenerateEd25519Key(nil); return k }
	first, err := New(cfg, key(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	second, err := New(cfg, key(), nil)
	if err == nil {
		second.Close()
		t.Fatal("a second host started on the first's port")
	}
	if want := fmt.Sprintf("TCP port %d is taken", port); !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "--listen") {
		t.Fatalf("%v: want it to say %q and name --listen", err, want)
	}
}
