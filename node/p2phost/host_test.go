package p2phost

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

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
}
