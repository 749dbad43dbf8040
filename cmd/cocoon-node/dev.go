package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/cocoon-mesh/cocoon/model"
	"github.com/cocoon-mesh/cocoon/node"
	"github.com/cocoon-mesh/cocoon/node/backend"
	"github.com/cocoon-mesh/cocoon/node/localnet"
	"github.com/cocoon-mesh/cocoon/ton/ledger"
)

// dev starts a whole local network in this process and serves it until Ctrl-C.
func (m *Main) dev(ctx context.Context, args []string) error {
	fs := m.flagSet("dev")
	proxies := fs.Int("proxies", 2, "proxies to start")
	workers := fs.Int("workers", 2, "workers to start")
	api := fs.String("api", "127.0.0.1:10000", "address of the client's OpenAI API")
	backendURL := fs.String("backend", "", "an OpenAI-compatible server for the workers (e.g. http://127.0.0.1:8080/v1), or \"echo\" for the echo test backend; default: the built-in model")
	backendModel := fs.String("backend-model", "", "with --backend: the model name the server knows")
	modelID := fs.String("model-id", "", "with --backend: the identity to advertise, name@revision:hash")
	delay := fs.Duration("token-delay", 30*time.Millisecond, "with --backend echo: pause between streamed tokens")
	dir := fs.String("dir", "", "directory for the nodes' datastores and the client's local token (default: a temporary one)")
	logLevel := fs.String("log-level", "warn", "node log level: debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *proxies < 1 || *workers < 1 {
		return usageError(fmt.Sprintf("dev needs at least one proxy and one worker: --proxies %d --workers %d", *proxies, *workers))
	}
	if *backendURL != "" && *backendURL != "echo" && *backendModel == "" {
		return usageError("--backend needs --backend-model, the model name the server serves")
	}
	log, err := newLogger(*logLevel, os.Stderr)
	if err != nil {
		return err
	}
	token, cleanup, err := devToken(dir)
	if err != nil {
		return err
	}
	defer cleanup()
	out := m.Stdout
	fmt.Fprintf(out, "Starting a local Cocoon mesh: %d proxies, %d workers, 1 client (each its own libp2p peer on loopback)\n", *proxies, *workers)
	start := time.Now()
	sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	o := localnet.Options{
		Proxies: *proxies, Workers: *workers, APIAddr: *api, Dir: *dir,
		BackendURL: *backendURL, BackendModel: *backendModel, ModelID: *modelID, EchoTokenDelay: *delay,
		Tune:   func(c *node.Config) { c.HTTP.LocalToken = token },
		Logger: log, Progress: func(s string) { fmt.Fprintf(out, "  [%5.2fs] %s\n", time.Since(start).Seconds(), s) },
	}
	switch *backendURL {
	case "echo":
		o.BackendURL = ""
	case "":
		m, tk, err := model.Embedded()
		if err != nil {
			return err
		}
		o.ModelID = model.EmbeddedID
		o.NewBackend = func() (backend.Backend, error) { return builtinBackend(m, tk, node.LocalConfig().MaxActive) }
	}
	nw, err := localnet.Start(sctx, o)
	if err != nil {
		return err
	}
	defer nw.Close()
	ledgerURL, stopLedger, err := serveDevLedger(nw)
	if err != nil {
		return err
	}
	defer stopLedger()

	devUp(out, nw.ClientURL(), *backendURL, *backendModel, *modelID, *dir, time.Since(start))
	attachHelp(out, nw, ledgerURL)
	fmt.Fprintln(out, "\nPress Ctrl-C to stop.")
	<-ctx.Done()
	fmt.Fprintln(out, "\nStopping the local mesh...")
	if err := nw.Close(); err != nil {
		return err
	}
	fmt.Fprintln(out, "Stopped.")
	return nil
}

// devUp tells the user the mesh is up: where its API is, what serves it, and how to try it.
func devUp(out io.Writer, url, backendURL, backendModel, modelID, dir string, took time.Duration) {
	served := model.EmbeddedName
	switch backendURL {
	case "":
	case "echo":
		served = "echo-test"
	default:
		served = backendModel
		if modelID != "" {
			served = modelID
		}
	}
	fmt.Fprintf(out, "\nCocoon mesh is up in %.1fs.\n  OpenAI base URL: %s\n  Status page:     %s/cocoon/ (metrics: %s/cocoon/metrics)\n",
		took.Seconds(), url, strings.TrimSuffix(url, "/v1"), strings.TrimSuffix(url, "/v1"))
	fmt.Fprintln(out, "  Every node runs a SIMULATED TEE (no TDX here): prompts are sealed to the workers, so the\n"+
		"  proxies never see them, but the attestation is fake and nothing protects a worker's memory.")
	switch backendURL {
	case "":
		fmt.Fprintf(out, "  Workers serve the built-in model %s: 260K parameters trained on the Go standard\n"+
			"  library's doc comments. It writes Go-documentation-like prose, not answers. Pass\n"+
			"  --backend URL --backend-model NAME to put a real model server behind the workers.\n", model.EmbeddedID)
	case "echo":
		fmt.Fprintf(out, "  Workers use the echo test backend: it repeats your prompt word by word and is not a\n"+
			"  language model.\n")
	}
	tryIt(out, url, served, dir)
}

// serveDevLedger serves the dev network's embedded ledger over HTTP on loopback, as
// `cocoon-node ledger` would, so that nodes started by hand can pay on it too.
func serveDevLedger(nw *localnet.Net) (url string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: ledger.NewServer(nw.Ledger()), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute}
	go srv.Serve(ln)
	return "http://" + ln.Addr().String(), func() { srv.Close() }, nil
}

// attachHelp prints what a node started by hand needs to join the dev network: the
// proxies' multiaddrs, the ledger, and a command line that does it.
func attachHelp(out io.Writer, nw *localnet.Net, ledgerURL string) {
	var boots []string
	for _, p := range nw.Proxies {
		if st := p.Status(); len(st.Addrs) > 0 {
			boots = append(boots, st.Addrs[0])
		}
	}
	fmt.Fprintf(out, "\nAttach a node by hand (network %s):\n  proxies: %s\n  ledger:  %s (development: NOT real TON)\n"+
		"  cocoon-node run --role worker --local --tee simulated --insecure-allow-simulated-tee \\\n"+
		"      --bootstrap %s --ledger %s --dev-fund 1000000000 \\\n"+
		"      --backend embedded --data-dir ./worker3 --listen /ip4/127.0.0.1/tcp/0\n",
		nw.Client.Config().Network, strings.Join(boots, "\n           "), ledgerURL, strings.Join(boots, ","), ledgerURL)
}

// devToken makes *dir, a temporary directory if it is empty, and the local token there that
// the client's channel and wallet commands want. cleanup removes a temporary directory.
func devToken(dir *string) (token string, cleanup func(), err error) {
	cleanup = func() {}
	if *dir == "" {
		if *dir, err = os.MkdirTemp("", "cocoon-dev-"); err != nil {
			return "", cleanup, err
		}
		d := *dir
		cleanup = func() { os.RemoveAll(d) }
	} else if err := privateDir(*dir); err != nil {
		return "", cleanup, err
	}
	token, err = loadOrCreateToken(*dir)
	if err != nil {
		cleanup()
	}
	return token, cleanup, err
}

// tryIt prints how to call the dev network at url: a completion of the model served, and a
// channel command with the client's local token from dir.
func tryIt(out io.Writer, url, served, dir string) {
	fmt.Fprintf(out, "\nTry it:\n  curl -N %s/completions -H 'Content-Type: application/json' \\\n"+
		"    -d '{\"model\":\"%s\",\"stream\":true,\"max_tokens\":60,\"prompt\":\"Package mesh implements\"}'\n"+
		"\nChannel and wallet commands want the client's local token, in %s:\n"+
		"  cocoon-node channels list --node %s --data-dir %s\n"+
		"  (or send it as Authorization: Bearer <token>, or pass it with --api-key)\n", url, served, tokenPath(dir), strings.TrimSuffix(url, "/v1"), dir)
}
