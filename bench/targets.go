package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"

	"github.com/cocoon-mesh/cocoon/node"
	"github.com/cocoon-mesh/cocoon/node/backend/echo"
	"github.com/cocoon-mesh/cocoon/node/localnet"
)

// TargetsConfig says what to start.
type TargetsConfig struct {
	Proxies, Workers int // the mesh; default 2 and 2
	// WorkerMaxActive, if positive, is each worker's concurrent request limit (0: the node
	// default). The bench command raises it to its highest concurrency, so the mesh's admission
	// control never refuses a request the baselines, which have none, would serve: the bench
	// measures overhead, not capacity.
	WorkerMaxActive int
	// WindowTokens, if positive, is every payee's credit window in tokens (0: the default).
	WindowTokens uint32
	// Modes limits the targets started (default all).
	Modes    []Mode
	Logger   *slog.Logger     // node logs; nil: discard
	Progress func(msg string) // nil: quiet
}

// Targets are the running benchmark targets. Close stops them.
type Targets struct {
	// Net is the local mesh, if started.
	Net *localnet.Net
	// Unpaid is the second mesh, without payments, when MeshUnpaid runs.
	Unpaid *localnet.Net
	// URLs maps each started target to its OpenAI base URL (".../v1").
	URLs map[Mode]string

	clear *node.Node // MeshClear's client, on Net

	servers []*http.Server
	muteLog func()
}

// StartTargets starts the mesh and the baselines on loopback sockets: the direct echo backend
// and, in front of it, two ReverseProxy hops. The mesh's workers use echo backends configured
// like the direct one (no token delay).
func StartTargets(ctx context.Context, cfg TargetsConfig) (_ *Targets, err error) {
	progress := cfg.Progress
	if progress == nil {
		progress = func(string) {}
	}
	modes := cfg.Modes
	if len(modes) == 0 {
		modes = Modes()
	}
	want := map[Mode]bool{}
	for _, m := range modes {
		switch m {
		case Mesh, MeshClear, MeshUnpaid, Direct, HTTP2Hop:
			want[m] = true
		default:
			return nil, fmt.Errorf("bench: unknown target %q", m)
		}
	}
	t := &Targets{URLs: map[Mode]string{}}
	cfg.Logger, t.muteLog = mutable(cfg.Logger)
	defer func() {
		if err != nil {
			t.Close()
		}
	}()
	if want[Direct] || want[HTTP2Hop] {
		directAddr, err := t.serve(newDirect())
		if err != nil {
			return nil, err
		}
		if want[Direct] {
			t.URLs[Direct] = "http://" + directAddr + "/v1"
			progress("direct: echo test backend at " + t.URLs[Direct])
		}
		if want[HTTP2Hop] {
			hop2, err := t.serve(newHop(directAddr))
			if err != nil {
				return nil, err
			}
			hop1, err := t.serve(newHop(hop2))
			if err != nil {
				return nil, err
			}
			t.URLs[HTTP2Hop] = "http://" + hop1 + "/v1"
			progress(fmt.Sprintf("http2hop: ReverseProxy %s -> ReverseProxy %s -> echo %s", hop1, hop2, directAddr))
		}
	}
	if want[Mesh] || want[MeshClear] {
		start := time.Now()
		o := localnet.Options{
			Proxies: cfg.Proxies, Workers: cfg.Workers, Logger: cfg.Logger,
			Progress: func(msg string) { progress("mesh: " + msg) },
		}
		o.Tune = cfg.tune
		t.Net, err = localnet.Start(ctx, o)
		if err != nil {
			return nil, err
		}
		if err := t.Net.OpenAllChannels(ctx); err != nil {
			return nil, err
		}
		if want[Mesh] {
			t.URLs[Mesh] = t.Net.ClientURL()
		}
		progress(fmt.Sprintf("mesh: ready in %.1fs, client API at %s", time.Since(start).Seconds(), t.Net.ClientURL()))
		if want[MeshClear] {
			if t.clear, err = t.Net.AddClient(ctx, func(c *node.Config) { c.DisableSealing = true }); err != nil {
				return nil, err
			}
			t.URLs[MeshClear] = "http://" + t.Net.APIAddr(t.clear) + "/v1"
			progress("mesh-clear: a second client that does not seal, at " + t.URLs[MeshClear])
		}
	}
	if want[MeshUnpaid] {
		o := localnet.Options{
			Proxies: cfg.Proxies, Workers: cfg.Workers, Logger: cfg.Logger, NoPayments: true,
			Prices:   localnet.DevPrices, // the same prices, never charged
			Progress: func(msg string) { progress("mesh-unpaid: " + msg) },
		}
		o.Tune = cfg.tune
		if t.Unpaid, err = localnet.Start(ctx, o); err != nil {
			return nil, err
		}
		t.URLs[MeshUnpaid] = t.Unpaid.ClientURL()
		progress("mesh-unpaid: a second mesh without payment channels, client API at " + t.URLs[MeshUnpaid])
	}
	return t, nil
}

// onChainMessages returns a function that counts the messages the paying mesh's ledger took
// since now; nil without a paying mesh.
func (t *Targets) onChainMessages() func() uint64 {
	if t.Net == nil || t.Net.Ledger() == nil {
		return nil
	}
	l := t.Net.Ledger()
	start := l.Messages()
	return func() uint64 { return l.Messages() - start }
}

// payCount is what a paying mesh's channels counted so far: the vouchers its payers (clients
// and proxies) signed, the sum of their channels' seqnos, and the answers its payees (proxies
// and workers) held back until a voucher came, because the payer was a whole window behind.
type payCount struct{ vouchers, waits uint64 }

// payCounters count, for the paying mesh's targets, what payCount says. Scenarios run one at a
// time, so the difference over one is its own, but for a few settled just after the one
// before.
func (t *Targets) payCounters() map[Mode]func() payCount {
	if t.Net == nil || t.Net.Ledger() == nil {
		return nil
	}
	nodes := append(append([]*node.Node{t.Net.Client}, t.Net.Proxies...), t.Net.Workers...)
	if t.clear != nil {
		nodes = append(nodes, t.clear)
	}
	count := func() payCount {
		var n payCount
		for _, p := range nodes {
			for _, c := range p.Channels() {
				if c.Role == "payer" {
					n.vouchers += c.Seqno
				} else {
					n.waits += uint64(c.Waits)
				}
			}
		}
		return n
	}
	return map[Mode]func() payCount{Mesh: count, MeshClear: count}
}

// newDirect is the direct baseline: the echo backend as the mesh's workers run it.
func newDirect() http.Handler {
	return echo.New(echo.Config{TokenDelay: 0}).Handler()
}

// newHop is one plain HTTP reverse-proxy hop to addr: every SSE event is flushed at once, and
// warm requests reuse pooled connections.
func newHop(addr string) http.Handler {
	target := &url.URL{Scheme: "http", Host: addr}
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
		},
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        1024,
			MaxIdleConnsPerHost: 512,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
		FlushInterval: -1,
		ErrorLog:      log.New(io.Discard, "", 0), // failures reach the load generator as 502s
	}
}

// serve serves h on a free loopback port and returns its address.
func (t *Targets) serve(h http.Handler) (string, error) {
	ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	t.servers = append(t.servers, srv)
	go srv.Serve(ln)
	return ln.Addr().String(), nil
}

// Close stops every target.
func (t *Targets) Close() error {
	// Nodes shutting down warn of peers going away: expected here, so not worth a line.
	if t.muteLog != nil {
		t.muteLog()
	}
	var errs []error
	if t.Net != nil {
		errs = append(errs, t.Net.Close())
	}
	if t.Unpaid != nil {
		errs = append(errs, t.Unpaid.Close())
	}
	for _, s := range t.servers {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}

// tune applies the config's node settings to every node of a mesh.
func (cfg TargetsConfig) tune(c *node.Config) {
	if cfg.WorkerMaxActive > 0 {
		c.MaxActive = cfg.WorkerMaxActive
	}
	if cfg.WindowTokens > 0 {
		c.Payments.WindowTokens = cfg.WindowTokens
	}
}
