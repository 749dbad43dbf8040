package bench

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/cocoon-mesh/cocoon/node"
	"github.com/cocoon-mesh/cocoon/node/p2phost"
	"github.com/cocoon-mesh/cocoon/tee"
)

// fakeProxyEnv makes the test binary act as `cocoon-node run --role proxy`, so the idle-proxy
// measurement is tested against a real proxy process without building cmd/cocoon-node.
const fakeProxyEnv = "COCOON_BENCH_TEST_PROXY"

func TestMain(m *testing.M) {
	switch os.Getenv(fakeProxyEnv) {
	case "fail":
		fmt.Fprintln(os.Stderr, "fake proxy: failing on purpose")
		os.Exit(3)
	case "1":
		if err := fakeProxy(os.Args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, "fake proxy:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// fakeProxy runs a proxy node from the flags MeasureIdleProxy passes, until SIGTERM.
func fakeProxy(args []string) error {
	if len(args) == 0 || args[0] != "run" {
		return fmt.Errorf("want run, got %q", args)
	}
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	role := fs.String("role", "", "")
	local := fs.Bool("local", false, "")
	network := fs.String("network", "", "")
	fs.String("data-dir", "", "")
	listen := fs.String("listen", "", "")
	readyFile := fs.String("ready-file", "", "")
	fs.String("log-level", "", "")
	teeKind := fs.String("tee", "", "")
	allowSim := fs.Bool("insecure-allow-simulated-tee", false, "")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *role != "proxy" || !*local || *network == "" || *readyFile == "" || *teeKind != "simulated" || !*allowSim {
		return fmt.Errorf("unexpected flags %q", args)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return err
	}
	hc := p2phost.DefaultConfig()
	hc.Listen = []string{*listen}
	h, err := p2phost.New(hc, key, nil)
	if err != nil {
		return err
	}
	defer h.Close()
	c := node.LocalConfig()
	c.Role, c.Network = node.RoleProxy, *network
	n, err := node.New(c, node.Deps{Host: h, TEE: tee.NewSimulated(nil), Verifier: tee.NewVerifier(tee.Policy{AllowSimulated: true}, nil)})
	if err != nil {
		return err
	}
	if err := n.Start(); err != nil {
		return err
	}
	st := n.Status()
	b, _ := json.Marshal(proxyReady{Peer: st.Peer, Addrs: st.Addrs})
	if err := os.WriteFile(*readyFile+".tmp", b, 0o600); err != nil {
		return err
	}
	if err := os.Rename(*readyFile+".tmp", *readyFile); err != nil {
		return err
	}
	<-ctx.Done()
	return n.Close()
}

func TestMeasureIdleProxy(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a proxy process and workers")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	res, err := MeasureIdleProxy(ctx, IdleProxyConfig{
		Binary: exe, Workers: 3, Settle: 500 * time.Millisecond, Env: []string{fakeProxyEnv + "=1"},
		Progress: func(s string) { t.Log(s) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res)
	if res.Workers != 3 || !strings.HasPrefix(res.Proxy, "12D3") {
		t.Errorf("result: %+v", res)
	}
	if res.RSSBaseline <= 0 || res.RSS <= 0 || res.PeakRSS < res.RSS {
		t.Errorf("memory readings: %+v", res)
	}
}

func TestMeasureIdleProxyReportsAFailingBinary(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	_, err = MeasureIdleProxy(ctx, IdleProxyConfig{Binary: exe, Workers: 1, Env: []string{fakeProxyEnv + "=fail"}})
	if err == nil || !strings.Contains(err.Error(), "exited before it was ready") || !strings.Contains(err.Error(), "failing on purpose") {
		t.Errorf("error = %v, want the proxy's early exit with its output", err)
	}
	if _, err := MeasureIdleProxy(ctx, IdleProxyConfig{Workers: 1}); err == nil {
		t.Error("no binary must be an error")
	}
}
