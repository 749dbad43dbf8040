package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"

	"github.com/cocoon-mesh/cocoon/node"
	"github.com/cocoon-mesh/cocoon/node/backend"
	"github.com/cocoon-mesh/cocoon/node/backend/echo"
	"github.com/cocoon-mesh/cocoon/node/localnet"
	"github.com/cocoon-mesh/cocoon/node/p2phost"
	"github.com/cocoon-mesh/cocoon/tee"
)

// IdleProxyConfig configures MeasureIdleProxy.
type IdleProxyConfig struct {
	// Binary is the cocoon-node executable to run the proxy with (`run --role proxy`).
	Binary string
	// Workers is how many workers to connect to the proxy.
	Workers int
	// Settle is how long the proxy idles with its workers before its memory is read
	// (default 5s); the baseline is read after min(Settle, 1s) with no workers.
	Settle time.Duration
	// Network is the mesh name (default "bench-idle").
	Network string
	// Env is added to the proxy process's environment.
	Env []string
	// Logger gets the workers' logs (nil: discard); the proxy logs warnings to its stderr,
	// which is kept and quoted if it fails.
	Logger   *slog.Logger
	Progress func(msg string) // nil: quiet
}

// IdleProxyResult is an idle proxy's resident memory. Sizes are bytes.
type IdleProxyResult struct {
	Workers     int           `json:"workers"`
	Proxy       string        `json:"proxy_peer"`
	RSSBaseline int64         `json:"rss_baseline_bytes"` // after start, no workers
	RSS         int64         `json:"rss_bytes"`          // with Workers connected, after idling
	PeakRSS     int64         `json:"peak_rss_bytes"`     // the process's high-water mark (VmHWM)
	ConnectTime time.Duration `json:"connect_ns"`         // until every worker held the proxy
}

// PerWorker is the memory each connected worker added, in bytes.
func (r IdleProxyResult) PerWorker() float64 {
	if r.Workers == 0 {
		return 0
	}
	return float64(r.RSS-r.RSSBaseline) / float64(r.Workers)
}

// String is the one-line report the bench prints.
func (r IdleProxyResult) String() string {
	const mib = 1 << 20
	return fmt.Sprintf("idle proxy: RSS %.1f MiB with 0 workers, %.1f MiB with %d workers (%.0f KiB per worker; peak %.1f MiB)",
		float64(r.RSSBaseline)/mib, float64(r.RSS)/mib, r.Workers, r.PerWorker()/1024, float64(r.PeakRSS)/mib)
}

// proxyReady is what `cocoon-node run --ready-file` writes.
type proxyReady struct {
	Peer  string   `json:"peer"`
	Addrs []string `json:"addrs"`
}

// MeasureIdleProxy starts a proxy as its own process from cfg.Binary, reads its resident
// memory, connects cfg.Workers workers to it (in this process, all served by one echo test
// backend), lets it idle, and reads its memory again. The proxy is stopped before returning.
func MeasureIdleProxy(ctx context.Context, cfg IdleProxyConfig) (_ IdleProxyResult, err error) {
	if cfg.Binary == "" {
		return IdleProxyResult{}, errors.New("bench: idle proxy: no binary")
	}
	if cfg.Workers < 0 {
		return IdleProxyResult{}, errors.New("bench: idle proxy: negative worker count")
	}
	if cfg.Settle <= 0 {
		cfg.Settle = 5 * time.Second
	}
	if cfg.Network == "" {
		cfg.Network = "bench-idle"
	}
	var muteLog func()
	cfg.Logger, muteLog = mutable(cfg.Logger)
	progress := cfg.Progress
	if progress == nil {
		progress = func(string) {}
	}
	dir, err := os.MkdirTemp("", "cocoon-bench-idle-")
	if err != nil {
		return IdleProxyResult{}, err
	}
	defer os.RemoveAll(dir)

	p, err := startProxy(ctx, cfg, dir)
	if err != nil {
		return IdleProxyResult{}, err
	}
	defer func() {
		if serr := p.stop(); serr != nil && err == nil {
			err = serr
		}
	}()
	res := IdleProxyResult{Workers: cfg.Workers, Proxy: p.ready.Peer}
	progress(fmt.Sprintf("idle proxy: process %d up as %s", p.cmd.Process.Pid, p.ready.Peer))
	if !sleepCtx(ctx, min(cfg.Settle, time.Second)) {
		return res, ctx.Err()
	}
	if res.RSSBaseline, err = procStatusBytes(p.cmd.Process.Pid, "VmRSS"); err != nil {
		return res, err
	}

	ws, err := startIdleWorkers(ctx, cfg, p.addr, progress)
	defer func() {
		muteLog()
		ws.close()
	}()
	if err != nil {
		return res, err
	}
	start := time.Now()
	if err := ws.waitConnected(ctx, p.ready.Peer, p.exited, 60*time.Second+time.Duration(cfg.Workers)*200*time.Millisecond); err != nil {
		return res, fmt.Errorf("%w%s", err, p.stderrTail())
	}
	res.ConnectTime = time.Since(start)
	progress(fmt.Sprintf("idle proxy: %d workers connected in %.1fs; idling %s", cfg.Workers, res.ConnectTime.Seconds(), cfg.Settle))
	select {
	case <-ctx.Done():
		return res, ctx.Err()
	case <-p.exited:
		return res, fmt.Errorf("bench: idle proxy exited early: %v%s", p.waitErr, p.stderrTail())
	case <-time.After(cfg.Settle):
	}
	if res.RSS, err = procStatusBytes(p.cmd.Process.Pid, "VmRSS"); err != nil {
		return res, err
	}
	if res.PeakRSS, err = procStatusBytes(p.cmd.Process.Pid, "VmHWM"); err != nil {
		return res, err
	}
	return res, nil
}

// proxyProc is the proxy process.
type proxyProc struct {
	cmd     *exec.Cmd
	stderr  *tailBuffer
	ready   proxyReady
	addr    string // a TCP multiaddr with /p2p/
	exited  chan struct{}
	waitErr error // set before exited closes
}

func startProxy(ctx context.Context, cfg IdleProxyConfig, dir string) (*proxyProc, error) {
	readyFile := filepath.Join(dir, "ready.json")
	cmd := exec.Command(cfg.Binary, "run", "--role", "proxy", "--local", "--network", cfg.Network,
		"--data-dir", filepath.Join(dir, "proxy"), "--listen", "/ip4/127.0.0.1/tcp/0",
		"--ready-file", readyFile, "--log-level", "warn",
		// Attested like a real proxy (with the simulated TEE here), so its memory includes each
		// worker's handshake.
		"--tee", "simulated", "--insecure-allow-simulated-tee")
	cmd.Env = append(os.Environ(), cfg.Env...)
	cmd.SysProcAttr = childProcAttr()
	p := &proxyProc{cmd: cmd, stderr: &tailBuffer{max: 16 << 10}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stderr, p.stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: start idle proxy: %w", err)
	}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	deadline := time.After(30 * time.Second)
	for {
		b, err := os.ReadFile(readyFile)
		if err == nil {
			if err := json.Unmarshal(b, &p.ready); err != nil {
				p.stop()
				return nil, fmt.Errorf("bench: idle proxy ready file: %w", err)
			}
			for _, a := range p.ready.Addrs {
				if strings.Contains(a, "/tcp/") && strings.Contains(a, "/p2p/") {
					p.addr = a
					break
				}
			}
			if p.addr == "" {
				p.stop()
				return nil, fmt.Errorf("bench: idle proxy lists no TCP address: %v", p.ready.Addrs)
			}
			return p, nil
		}
		select {
		case <-ctx.Done():
			p.stop()
			return nil, ctx.Err()
		case <-p.exited:
			return nil, fmt.Errorf("bench: idle proxy exited before it was ready: %v%s", p.waitErr, p.stderrTail())
		case <-deadline:
			p.stop()
			return nil, fmt.Errorf("bench: idle proxy not ready after 30s%s", p.stderrTail())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// stop ends the proxy: SIGTERM, then SIGKILL if it lingers.
func (p *proxyProc) stop() error {
	select {
	case <-p.exited:
		return nil
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return nil
	case <-time.After(10 * time.Second):
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
	return fmt.Errorf("bench: idle proxy ignored SIGTERM and was killed%s", p.stderrTail())
}

func (p *proxyProc) stderrTail() string {
	s := strings.TrimSpace(p.stderr.String())
	if s == "" {
		return ""
	}
	return "\nproxy output:\n" + s
}

// idleWorkers are the workers MeasureIdleProxy connects, with their shared backend.
type idleWorkers struct {
	nodes []*node.Node
	hosts []host.Host
	srv   *http.Server
}

func startIdleWorkers(ctx context.Context, cfg IdleProxyConfig, proxyAddr string, progress func(string)) (*idleWorkers, error) {
	ws := &idleWorkers{}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return ws, err
	}
	ws.srv = &http.Server{Handler: echo.New(echo.Config{}).Handler(), ReadHeaderTimeout: 10 * time.Second}
	go ws.srv.Serve(ln)
	be, err := backend.NewHTTP(backend.HTTPConfig{
		BaseURL: "http://" + ln.Addr().String() + "/v1",
		Models:  map[string]string{localnet.EchoModelID: echo.Model},
	})
	if err != nil {
		return ws, err
	}
	c := node.LocalConfig()
	c.Role, c.Network, c.Bootstrap, c.MinProxies = node.RoleWorker, cfg.Network, []string{proxyAddr}, 1
	c.Models = []node.ModelConfig{{ID: localnet.EchoModelID}}
	hc := p2phost.DefaultConfig()
	hc.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	for i := range cfg.Workers {
		if err := ctx.Err(); err != nil {
			return ws, err
		}
		key, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			return ws, err
		}
		h, err := p2phost.New(hc, key, cfg.Logger)
		if err != nil {
			return ws, err
		}
		ws.hosts = append(ws.hosts, h)
		n, err := node.New(c, node.Deps{Host: h, Backend: be, Logger: cfg.Logger.With("node", fmt.Sprintf("worker%d", i+1)),
			TEE: tee.NewSimulated(nil), Verifier: tee.NewVerifier(tee.Policy{AllowSimulated: true}, nil)})
		if err != nil {
			return ws, err
		}
		if err := n.Start(); err != nil {
			n.Close()
			return ws, err
		}
		ws.nodes = append(ws.nodes, n)
		if (i+1)%25 == 0 || i+1 == cfg.Workers {
			progress(fmt.Sprintf("idle proxy: %d/%d workers started", i+1, cfg.Workers))
		}
	}
	return ws, nil
}

// waitConnected waits until every worker holds the proxy among its proxies.
func (ws *idleWorkers) waitConnected(ctx context.Context, proxy string, exited <-chan struct{}, limit time.Duration) error {
	deadline := time.After(limit)
	for {
		have := 0
		for _, n := range ws.nodes {
			if slices.Contains(n.Status().Proxies, proxy) {
				have++
			}
		}
		if have == len(ws.nodes) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-exited:
			return errors.New("bench: idle proxy exited while workers connected")
		case <-deadline:
			return fmt.Errorf("bench: only %d of %d workers connected to the idle proxy within %s", have, len(ws.nodes), limit)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (ws *idleWorkers) close() {
	var wg sync.WaitGroup
	for _, n := range ws.nodes {
		wg.Go(func() { n.Close() })
	}
	wg.Wait()
	for _, h := range ws.hosts {
		h.Close()
	}
	if ws.srv != nil {
		ws.srv.Close()
	}
}

// procStatusBytes reads a size field ("VmRSS", "VmHWM") of /proc/<pid>/status, in bytes.
func procStatusBytes(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("bench: read process memory: %w", err)
	}
	return parseStatusField(b, field)
}

// parseStatusField finds "field:   123 kB" in the text of /proc/<pid>/status.
func parseStatusField(status []byte, field string) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != field {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("bench: unexpected %s line %q", field, sc.Text())
		}
		v, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("bench: %s: %w", field, err)
		}
		return v << 10, nil
	}
	return 0, fmt.Errorf("bench: no %s in process status", field)
}

// tailBuffer keeps the last max bytes written to it. It is safe for concurrent use.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// sleepCtx waits d, or returns false when ctx ends first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
