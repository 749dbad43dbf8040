package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	leveldb "github.com/ipfs/go-ds-leveldb"

	"github.com/cocoon-mesh/cocoon/api"
	"github.com/cocoon-mesh/cocoon/model"
	"github.com/cocoon-mesh/cocoon/node"
	"github.com/cocoon-mesh/cocoon/node/backend"
	"github.com/cocoon-mesh/cocoon/node/p2phost"
	"github.com/cocoon-mesh/cocoon/node/wire"
)

// listFlag collects a comma-separated or repeated flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// runFlags are the flags of `cocoon-node run`; each overrides the config file when given.
type runFlags struct {
	config, role, network, dataDir, api, apiKey, backend, backendKey, dhtMode, readyFile, logLevel string
	modelFile, tokenizerFile, admin                                                                string
	prices, tee, pccsURL, ledger, tonConfig                                                        string
	devFund                                                                                        uint64
	listen, bootstrap, models                                                                      listFlag
	maxActive, minProxies                                                                          int
	local, allowSimulated, allowUnattested, disableSealing                                         bool
}

func (f *runFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.config, "config", "", "config file (TOML); 'cocoon-node init' writes one")
	fs.StringVar(&f.role, "role", "", "client, proxy or worker")
	fs.StringVar(&f.network, "network", "", "mesh name; nodes of different networks never meet")
	fs.StringVar(&f.dataDir, "data-dir", "", "directory for the node's datastore (identity key); default ~/.cocoon")
	fs.Var(&f.listen, "listen", "libp2p listen multiaddrs, comma-separated")
	fs.Var(&f.bootstrap, "bootstrap", "bootstrap peers: multiaddrs ending in /p2p/<id>, comma-separated")
	fs.StringVar(&f.dhtMode, "dht-mode", "", "server (answers DHT queries) or client")
	fs.IntVar(&f.minProxies, "min-proxies", 0, "proxies a client or worker stays connected to")
	fs.StringVar(&f.api, "api", "", "client: address of the OpenAI API (default 127.0.0.1:10000)")
	fs.StringVar(&f.admin, "admin", "", "address (host:port) of the status and channel endpoints, for a proxy or worker (a client has them on its API); keep it on loopback")
	fs.StringVar(&f.apiKey, "api-key", "", "bearer key the client API and the admin endpoints require")
	fs.StringVar(&f.backend, "backend", "", "worker: base URL of an OpenAI-compatible server (e.g. http://127.0.0.1:8000/v1), or \"embedded\" for the built-in engine (with no --model-file: the built-in model)")
	fs.StringVar(&f.modelFile, "model-file", "", "worker with --backend embedded: a llama2.c-format checkpoint; its SHA-256 must match the --model hash")
	fs.StringVar(&f.tokenizerFile, "tokenizer-file", "", "worker with --backend embedded: the checkpoint's tokenizer.bin")
	fs.StringVar(&f.backendKey, "backend-key", "", "worker: bearer key for the backend")
	fs.Var(&f.models, "model", "worker: model to serve as ID[=BACKEND_NAME], ID being name@revision:hash; repeatable")
	fs.StringVar(&f.prices, "prices", "", "worker: nanoTON per token for the --model models: prompt,cached,completion,reasoning")
	fs.IntVar(&f.maxActive, "max-active", 0, "worker: concurrent requests")
	fs.BoolVar(&f.local, "local", false, "use timings for a network on one machine (fast discovery and adverts)")
	fs.StringVar(&f.readyFile, "ready-file", "", "write the node's peer ID, addresses, API and admin addresses and local token file as JSON here once it serves")
	fs.StringVar(&f.logLevel, "log-level", "", "debug, info, warn or error (default info)")
	fs.StringVar(&f.tee, "tee", "", "what this node runs in: none, tdx (Intel TDX), or simulated (INSECURE, for development)")
	fs.BoolVar(&f.allowSimulated, "insecure-allow-simulated-tee", false, "INSECURE: accept peers whose attestation is simulated (development networks only)")
	fs.BoolVar(&f.allowUnattested, "allow-unattested", false, "accept workers that offer no attestation: proxies route to them, clients send them prompts in the clear")
	fs.BoolVar(&f.disableSealing, "disable-sealing", false, "client: send prompts in the clear even to attested workers (to measure what sealing costs)")
	fs.StringVar(&f.ledger, "ledger", "", "pay and be paid over channels on this development ledger (URL of 'cocoon-node ledger'; NOT real TON)")
	fs.StringVar(&f.tonConfig, "ton-config", "", "pay and be paid over channels on real TON: a liteserver global config URL or file")
	fs.Uint64Var(&f.devFund, "dev-fund", 0, "with --ledger: nanoTON to ask the development ledger's faucet for at start")
	fs.StringVar(&f.pccsURL, "pccs-url", "", "where TDX collateral (TCB info, QE identity, CRLs) comes from: a PCCS base URL; default Intel's PCS")
}

// apply overlays the flags on a file config.
func (f *runFlags) apply(fc *fileConfig) error {
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&fc.Role, f.role)
	set(&fc.Network, f.network)
	set(&fc.DataDir, f.dataDir)
	set(&fc.DHTMode, f.dhtMode)
	set(&fc.Client.APIAddr, f.api)
	set(&fc.Admin.Addr, f.admin)
	if f.apiKey != "" { // the flag overrides whichever section the file set the key in
		fc.Client.APIKey, fc.Admin.APIKey = f.apiKey, f.apiKey
	}
	set(&fc.Worker.BackendURL, f.backend)
	set(&fc.Worker.BackendAPIKey, f.backendKey)
	set(&fc.Worker.ModelFile, f.modelFile)
	set(&fc.Worker.TokenizerFile, f.tokenizerFile)
	set(&fc.LogLevel, f.logLevel)
	set(&fc.TEE.Provider, f.tee)
	set(&fc.TEE.PCCSURL, f.pccsURL)
	set(&fc.Payments.Ledger, f.ledger)
	set(&fc.Payments.TONConfig, f.tonConfig)
	if f.devFund != 0 {
		fc.Payments.DevFund = f.devFund
	}
	fc.TEE.AllowSimulated = fc.TEE.AllowSimulated || f.allowSimulated
	fc.TEE.AllowUnattested = fc.TEE.AllowUnattested || f.allowUnattested
	fc.Client.DisableSealing = fc.Client.DisableSealing || f.disableSealing
	if f.listen != nil {
		fc.Listen = f.listen
	}
	if f.bootstrap != nil {
		fc.Bootstrap = f.bootstrap
	}
	if f.minProxies != 0 {
		fc.MinProxies = f.minProxies
	}
	if f.maxActive != 0 {
		fc.Worker.MaxActive = f.maxActive
	}
	if f.local {
		fc.Local = true
	}
	var prices [4]uint64
	if f.prices != "" {
		parts := strings.Split(f.prices, ",")
		if len(parts) != 4 {
			return usageError("--prices wants four numbers: prompt,cached,completion,reasoning")
		}
		for i, p := range parts {
			v, err := strconv.ParseUint(strings.TrimSpace(p), 10, 64)
			if err != nil {
				return usageError(fmt.Sprintf("--prices: %q is not a whole number of nanoTON", p))
			}
			prices[i] = v
		}
	}
	if f.prices != "" && len(f.models) == 0 {
		fc.prices = &wire.Prices{Prompt: prices[0], Cached: prices[1], Completion: prices[2], Reasoning: prices[3]}
	}
	for _, m := range f.models {
		id, name, _ := strings.Cut(m, "=")
		fm := fileModel{ID: id, BackendName: name}
		fm.Prices.Prompt, fm.Prices.Cached, fm.Prices.Completion, fm.Prices.Reasoning = prices[0], prices[1], prices[2], prices[3]
		fc.Worker.Models = append(fc.Worker.Models, fm)
	}
	return nil
}

func newLogger(level string, w *os.File) (*slog.Logger, error) {
	var l slog.Level
	if level == "" {
		level = "info"
	}
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, usageError(fmt.Sprintf("log level %q: want debug, info, warn or error", level))
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// runNode runs one node until ctx ends.
func (m *Main) runNode(ctx context.Context, args []string) error {
	f, s, faults, err := m.runSettings(args)
	if err != nil {
		return err
	}
	log, err := newLogger(s.logLevel, os.Stderr)
	if err != nil {
		return err
	}
	be, err := workerBackend(&s)
	if err != nil {
		return err
	}
	if err := privateDir(s.dataDir); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	ds, err := leveldb.NewDatastore(filepath.Join(s.dataDir, "datastore"), nil)
	if err != nil {
		return fmt.Errorf("open datastore in %s: %w (is another node using this data dir?)", s.dataDir, err)
	}
	defer ds.Close()
	if s.node.HTTP.LocalToken, err = loadOrCreateToken(s.dataDir); err != nil {
		return err
	}
	key, err := p2phost.LoadOrCreateIdentity(ctx, ds)
	if err != nil {
		return err
	}
	h, err := p2phost.New(s.host, key, log)
	if err != nil {
		return err
	}
	defer h.Close()
	provider, verifier, err := buildTEE(s.tee, ds, log)
	if err != nil {
		return err
	}
	ref, err := referenceBackend(s)
	if err != nil {
		return err
	}
	deps := node.Deps{Host: h, Backend: be, Reference: ref, Logger: log, TEE: provider, Verifier: verifier, Faults: faults}
	if err := m.attachLedger(ctx, s, ds, &deps, log); err != nil {
		return err
	}
	n, err := node.New(s.node, deps)
	if err != nil {
		return err
	}
	if err := n.Start(); err != nil {
		n.Close()
		return err
	}
	srv, err := api.Serve(n, log)
	if err != nil {
		n.Close()
		return err
	}
	stop := func() error { return errors.Join(srv.Close(), n.Close()) } // the servers over the node first
	st := n.Status()
	log.Info("node running", "role", st.Role, "peer", st.Peer, "addrs", st.Addrs)
	if f.readyFile != "" {
		tf, _ := filepath.Abs(tokenPath(s.dataDir))
		if err := writeReady(f.readyFile, n, srv, tf); err != nil {
			stop()
			return err
		}
		defer os.Remove(f.readyFile) // a script must not find a stopped node ready
	}
	<-ctx.Done()
	log.Info("shutting down")
	return stop()
}

// runSettings parses run's flags and the config file they name into the node's settings,
// the flags over the file over the defaults.
func (m *Main) runSettings(args []string) (runFlags, settings, *node.Faults, error) {
	fs := m.flagSet("run")
	var f runFlags
	f.register(fs)
	faults := registerFaults(fs)
	if err := fs.Parse(args); err != nil {
		return f, settings{}, nil, err
	}
	if fs.NArg() > 0 {
		return f, settings{}, nil, usageError(fmt.Sprintf("unexpected argument %q", fs.Arg(0)))
	}
	var fc fileConfig
	if f.config != "" {
		var err error
		if fc, err = loadConfigFile(f.config); err != nil {
			return f, settings{}, nil, err
		}
	}
	if err := f.apply(&fc); err != nil {
		return f, settings{}, nil, err
	}
	s, err := fc.resolve()
	return f, s, faults(), err
}

// workerBackend is the model backend a worker's settings name (nil for other roles): the
// built-in engine (serving the model built into the binary unless s names others), or an
// OpenAI-compatible server.
func workerBackend(s *settings) (backend.Backend, error) {
	if s.node.Role != node.RoleWorker {
		return nil, nil
	}
	switch s.backendURL {
	case "":
		return nil, fmt.Errorf("a worker needs a model backend: set --backend (or worker.backend_url) to an OpenAI-compatible server")
	case "embedded":
		if s.modelFile == "" && len(s.node.Models) == 0 {
			s.node.Models = []node.ModelConfig{{ID: model.EmbeddedID}} // the model built into the binary
			if s.defaultPrices != nil {
				s.node.Models[0].Prices = *s.defaultPrices
			}
			s.defaultPrices = nil
		}
		if s.defaultPrices != nil {
			return nil, usageError("--prices prices the --model models: give --model with it (or set each model's prices in worker.models)")
		}
		return embeddedBackend(*s)
	}
	if s.defaultPrices != nil {
		return nil, usageError("--prices prices the --model models: give --model with it (or set each model's prices in worker.models)")
	}
	if len(s.backendNames) == 0 {
		return nil, usageError(fmt.Sprintf("the worker names no model for its backend %s: add a [[worker.models]] entry (id, backend_name, prices) "+
			"to the config, or --model ID=NAME, or set backend_url = \"embedded\" (--backend embedded) to serve the built-in model", s.backendURL))
	}
	return backend.NewHTTP(backend.HTTPConfig{BaseURL: s.backendURL, APIKey: s.backendKey, Models: s.backendNames})
}

// privateDir makes dir, or makes an existing one, readable by this user only: it holds the
// node's identity and wallet keys, and its local token.
func privateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return os.Chmod(dir, 0o700)
}

// ready is what --ready-file holds, for scripts and tests that start nodes.
type ready struct {
	Peer  string   `json:"peer"`
	Addrs []string `json:"addrs"`
	API   string   `json:"api,omitempty"`
	Admin string   `json:"admin,omitempty"` // where the admin endpoints listen, as bound
	// TokenFile holds the node's local token, which its channel and wallet endpoints want.
	TokenFile string `json:"token_file"`
}

// writeReady writes the node's ready file.
func writeReady(path string, n *node.Node, srv *api.Servers, tokenFile string) error {
	st := n.Status()
	return writeJSONFile(path, ready{Peer: st.Peer, Addrs: st.Addrs, API: srv.APIAddr(), Admin: srv.AdminAddr(), TokenFile: tokenFile})
}

// writeJSONFile writes v as JSON atomically, so a reader never sees half of it.
func writeJSONFile(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
