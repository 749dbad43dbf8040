package localnet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"crypto/ed25519"

	"github.com/ipfs/go-datastore"
	leveldb "github.com/ipfs/go-ds-leveldb"
	"github.com/libp2p/go-libp2p/core/host"

	"github.com/cocoon-mesh/cocoon/api"
	"github.com/cocoon-mesh/cocoon/node"
	"github.com/cocoon-mesh/cocoon/node/backend"
	"github.com/cocoon-mesh/cocoon/node/backend/echo"
	"github.com/cocoon-mesh/cocoon/node/p2phost"
	"github.com/cocoon-mesh/cocoon/node/wire"
	"github.com/cocoon-mesh/cocoon/tee"
	"github.com/cocoon-mesh/cocoon/ton"
	"github.com/cocoon-mesh/cocoon/ton/chanstore"
	"github.com/cocoon-mesh/cocoon/ton/ledger"
)

// EchoModelID is the identity workers advertise for the echo test backend.
const EchoModelID = "echo-test@v1:none"

// Options describe the network to start. Zero fields take defaults.
type Options struct {
	Proxies, Workers int    // default 2 and 2
	APIAddr          string // client API address; default 127.0.0.1:0 (any free port)
	Dir              string // where nodes keep their datastores; default a temporary directory
	// BackendURL is an OpenAI-compatible server for the workers (".../v1"); BackendModel the
	// model name it serves, ModelID the identity workers advertise for it. Empty BackendURL
	// starts an echo test backend per worker.
	BackendURL, BackendModel, ModelID string
	EchoTokenDelay                    time.Duration // echo backend: pause between streamed tokens
	// NewBackend, if set, makes each worker's backend (ModelID names its model); it takes
	// precedence over BackendURL and the echo backend.
	NewBackend func() (backend.Backend, error)
	Prices     wire.Prices
	Logger     *slog.Logger
	Progress   func(msg string)   // called as parts come up
	Tune       func(*node.Config) // adjusts every node's config
	// NoTEE runs every node outside a TEE, accepting unattested peers: prompts travel in the
	// clear. By default every node has a SIMULATED TEE and accepts simulated evidence (which is
	// insecure, and fine for a network whose nodes all run in one process).
	NoTEE bool
	// NoPayments runs the network without payment channels: nobody pays. By default every node
	// pays over channels on one embedded DEVELOPMENT ledger (the real contract code run in a
	// TVM, its accounts in Dir), each wallet funded by its faucet.
	NoPayments bool
	// LedgerNow is the development ledger's clock (default time.Now): a test moves it past a
	// channel's quarantine instead of waiting for it.
	LedgerNow func() time.Time
	// NodeLedger, if set, is the ledger each node uses, given the node's name ("client",
	// "proxy1", "worker2", ...) and the development ledger: a simulation wraps it to inject a
	// chain's faults, such as a confirmation that never arrives.
	NodeLedger func(name string, dev ledger.Ledger) ledger.Ledger
	// NodeStore, if set, wraps each node's datastore, given the node's name: a test slows or
	// holds a node's disk.
	NodeStore func(name string, d datastore.Batching) datastore.Batching
	// Faults makes the nodes it names ("proxy1", "worker2", ...) misbehave as it says; the
	// others are honest.
	Faults map[string]*node.Faults
}

// DevPrices are the workers' prices when Options.Prices is zero and payments are on: nanoTON
// per token by category (a million completion tokens cost 0.4 TON).
var DevPrices = wire.Prices{Prompt: 100, Cached: 50, Completion: 400, Reasoning: 400}

// DevFunds is what the faucet gives each node's wallet on the development ledger.
const DevFunds = 100 * node.Nano

// Net is a running local network.
type Net struct {
	Proxies, Workers []*node.Node
	Client           *node.Node
	Echo             []*echo.Server // the test backends, when no BackendURL was given
	BackendURLs      []string       // each worker's backend base URL

	dir                   string
	tempDir               bool
	noTEE                 bool
	wrap                  func(string, ledger.Ledger) ledger.Ledger           // Options.NodeLedger
	wrapDS                func(string, datastore.Batching) datastore.Batching // Options.NodeStore
	cfg                   node.Config                                         // every node's config before its role is set
	modelID, backendModel string                                              // what workers advertise, and their backends' name for it
	boot                  []string
	log                   *slog.Logger
	extra                 []*node.Node // clients added by AddClient
	hosts                 []host.Host
	ledger                *ledger.Embedded // nil without payments
	stores                []datastore.Batching
	servers               []*http.Server              // the echo backends
	faces                 map[*node.Node]*api.Servers // each node's HTTP servers
	closed                sync.Once
}

// Start brings the network up and returns when the client sees every proxy it wants and every
// proxy routes to every worker, or when ctx ends.
func Start(ctx context.Context, o Options) (_ *Net, err error) {
	if err := o.fill(); err != nil {
		return nil, err
	}
	progress := o.Progress
	nw := &Net{dir: o.Dir, noTEE: o.NoTEE, wrap: o.NodeLedger, wrapDS: o.NodeStore, faces: map[*node.Node]*api.Servers{}}
	if nw.dir == "" {
		nw.dir, err = os.MkdirTemp("", "cocoon-localnet-")
		if err != nil {
			return nil, err
		}
		nw.tempDir = true
	}
	defer func() {
		if err != nil {
			nw.Close()
		}
	}()
	if !o.NoPayments {
		if err := nw.startLedger(ctx, &o); err != nil {
			return nil, err
		}
	}
	cfg := node.LocalConfig()
	cfg.Models = []node.ModelConfig{{ID: o.ModelID, Prices: o.Prices}}
	if o.Tune != nil {
		o.Tune(&cfg)
	}
	boot, err := nw.startProxies(ctx, o, cfg)
	if err != nil {
		return nil, err
	}
	for i := range o.Workers {
		if err := nw.startNthWorker(ctx, o, cfg, boot, i); err != nil {
			return nil, err
		}
	}
	nw.cfg, nw.boot, nw.log, nw.modelID, nw.backendModel = cfg, boot, o.Logger, o.ModelID, o.BackendModel
	c := cfg
	c.Role, c.Bootstrap, c.APIAddr = node.RoleClient, boot, o.APIAddr
	nw.Client, err = nw.startNode(ctx, "client", c, nil, nil, o.Logger)
	if err != nil {
		return nil, err
	}
	progress("client up: API at " + nw.ClientURL())
	if err := nw.waitReady(ctx, progress); err != nil {
		return nil, err
	}
	return nw, nil
}

// fill sets o's defaults and checks it.
func (o *Options) fill() error {
	if o.Proxies == 0 {
		o.Proxies = 2
	}
	if o.Workers == 0 {
		o.Workers = 2
	}
	if o.APIAddr == "" {
		o.APIAddr = "127.0.0.1:0"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Progress == nil {
		o.Progress = func(string) {}
	}
	switch {
	case o.NewBackend != nil:
		if o.ModelID == "" {
			return errors.New("localnet: NewBackend needs a ModelID")
		}
	case o.BackendURL == "":
		o.BackendModel, o.ModelID = "echo-test", EchoModelID
	case o.ModelID == "":
		o.ModelID = o.BackendModel + "@local:unpinned"
	}
	if o.Proxies < 1 || o.Workers < 1 {
		return errors.New("localnet: need at least one proxy and one worker")
	}
	return nil
}

// startLedger starts the embedded development ledger every node pays on, and gives the
// workers the development prices unless o names others.
func (nw *Net) startLedger(ctx context.Context, o *Options) error {
	ds, err := privateStore(filepath.Join(nw.dir, "ledger"))
	if err != nil {
		return fmt.Errorf("localnet: ledger datastore: %w", err)
	}
	nw.stores = append(nw.stores, ds)
	if nw.ledger, err = ledger.NewEmbedded(ctx, ds, ledger.Options{Now: o.LedgerNow}); err != nil {
		return err
	}
	if o.Prices == (wire.Prices{}) {
		o.Prices = DevPrices
	}
	o.Progress("embedded development ledger up (NOT real TON): the real channel contract in a TVM")
	return nil
}

// startProxies starts o.Proxies proxies, the later ones bootstrapping from the first, and
// returns the first's address for the others to bootstrap from.
func (nw *Net) startProxies(ctx context.Context, o Options, cfg node.Config) ([]string, error) {
	var boot []string
	for i := range o.Proxies {
		c := cfg
		c.Role, c.Bootstrap = node.RoleProxy, boot
		name := fmt.Sprintf("proxy%d", i+1)
		nd, err := nw.startNode(ctx, name, c, nil, o.Faults[name], o.Logger)
		if err != nil {
			return nil, err
		}
		nw.Proxies = append(nw.Proxies, nd)
		if i == 0 {
			boot = nd.Status().Addrs[:1]
		}
		o.Progress(fmt.Sprintf("proxy %d/%d up: %s", i+1, o.Proxies, nd.ID()))
	}
	return boot, nil
}

// startNthWorker starts worker i+1 on the backend o says: NewBackend's, BackendURL, or an
// echo backend of its own.
func (nw *Net) startNthWorker(ctx context.Context, o Options, cfg node.Config, boot []string, i int) error {
	var be backend.Backend
	var err error
	url := o.BackendURL
	if o.NewBackend != nil {
		if be, err = o.NewBackend(); err != nil {
			return err
		}
	} else if url == "" {
		if url, err = nw.startEcho(o.EchoTokenDelay); err != nil {
			return err
		}
		o.Progress(fmt.Sprintf("echo test backend %d/%d at %s (repeats prompts; not a language model)", i+1, o.Workers, url))
	}
	if be == nil {
		nw.BackendURLs = append(nw.BackendURLs, url)
		if be, err = backend.NewHTTP(backend.HTTPConfig{BaseURL: url, Models: map[string]string{o.ModelID: o.BackendModel}}); err != nil {
			return err
		}
	}
	name := fmt.Sprintf("worker%d", i+1)
	nd, err := nw.startWorker(ctx, name, cfg, boot, be, o.Faults[name], o.Logger)
	if err != nil {
		return err
	}
	o.Progress(fmt.Sprintf("worker %d/%d up: %s serving %s", i+1, o.Workers, nd.ID(), o.ModelID))
	return nil
}

// AddClient starts one more client on its own port, with tune applied to its config, and
// returns once it is connected to proxies and sees the workers' models.
func (nw *Net) AddClient(ctx context.Context, tune func(*node.Config)) (*node.Node, error) {
	c := nw.cfg
	c.Role, c.Bootstrap, c.APIAddr = node.RoleClient, nw.boot, "127.0.0.1:0"
	if tune != nil {
		tune(&c)
	}
	nd, err := nw.startNode(ctx, fmt.Sprintf("client%d", len(nw.extra)+2), c, nil, nil, nw.log)
	if err != nil {
		return nil, err
	}
	nw.extra = append(nw.extra, nd)
	want := min(len(nw.Proxies), nd.Config().MinProxies)
	for len(nd.Status().Proxies) < want || len(nd.Models()) == 0 {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("localnet: added client not ready: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nd, nil
}

// AddWorker starts one more worker with its own echo backend, misbehaving as faults says (nil:
// honest), and returns once every proxy routes to it.
func (nw *Net) AddWorker(ctx context.Context, faults *node.Faults) (*node.Node, error) {
	url, err := nw.startEcho(0)
	if err != nil {
		return nil, err
	}
	nw.BackendURLs = append(nw.BackendURLs, url)
	be, err := backend.NewHTTP(backend.HTTPConfig{BaseURL: url, Models: map[string]string{nw.modelID: nw.backendModel}})
	if err != nil {
		return nil, err
	}
	nd, err := nw.startWorker(ctx, fmt.Sprintf("worker%d", len(nw.Workers)+1), nw.cfg, nw.boot, be, faults, nw.log)
	if err != nil {
		return nil, err
	}
	for _, p := range nw.Proxies {
		for !slices.ContainsFunc(p.Status().Workers, func(w node.WorkerStatus) bool { return w.Peer == nd.ID().String() && w.Healthy }) {
			select {
			case <-ctx.Done():
				return nil, fmt.Errorf("localnet: added worker not routed to: %w", ctx.Err())
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return nd, nil
}

// startWorker starts a worker named name on backend be, with cfg (the network's, before its
// role is set) and bootstrap peers boot, and adds it to nw.Workers.
func (nw *Net) startWorker(ctx context.Context, name string, cfg node.Config, boot []string, be backend.Backend, faults *node.Faults, log *slog.Logger) (*node.Node, error) {
	cfg.Role, cfg.Bootstrap = node.RoleWorker, boot
	nd, err := nw.startNode(ctx, name, cfg, be, faults, log)
	if err != nil {
		return nil, err
	}
	nw.Workers = append(nw.Workers, nd)
	return nd, nil
}

// privateStore opens a datastore in dir, which only this user may read: it holds a node's
// keys (LevelDB would make it world-readable).
func privateStore(dir string) (*leveldb.Datastore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, err
	}
	return leveldb.NewDatastore(dir, nil)
}

// startNode builds one node on its own loopback host with its own datastore.
func (nw *Net) startNode(ctx context.Context, name string, cfg node.Config, be backend.Backend, faults *node.Faults, log *slog.Logger) (*node.Node, error) {
	ds, err := privateStore(filepath.Join(nw.dir, name))
	if err != nil {
		return nil, fmt.Errorf("localnet: %s datastore: %w", name, err)
	}
	nw.stores = append(nw.stores, ds)
	var d datastore.Batching = ds
	if nw.wrapDS != nil {
		d = nw.wrapDS(name, ds)
	}
	key, err := p2phost.LoadOrCreateIdentity(ctx, d)
	if err != nil {
		return nil, err
	}
	hc := p2phost.DefaultConfig()
	hc.Listen = []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}
	h, err := p2phost.New(hc, key, log)
	if err != nil {
		return nil, err
	}
	nw.hosts = append(nw.hosts, h)
	deps := node.Deps{Host: h, Backend: be, Logger: log.With("node", name), Faults: faults}
	if nw.ledger != nil {
		wk, err := ton.LoadOrCreateWalletKey(ctx, d)
		if err != nil {
			return nil, err
		}
		if deps.Wallet, err = ton.WalletAddress(wk.Public().(ed25519.PublicKey), false); err != nil {
			return nil, err
		}
		if err := nw.ledger.Fund(ctx, deps.Wallet, DevFunds); err != nil {
			return nil, err
		}
		deps.Ledger, deps.Channels = nw.ledger, chanstore.New(d)
		if nw.wrap != nil {
			deps.Ledger = nw.wrap(name, nw.ledger)
		}
	}
	if nw.noTEE {
		cfg.AllowUnattested = true
	} else {
		deps.TEE = tee.NewSimulated(nil)
		deps.Verifier = tee.NewVerifier(tee.Policy{AllowSimulated: true}, nil)
	}
	nd, err := node.New(cfg, deps)
	if err != nil {
		return nil, err
	}
	if err := nd.Start(); err != nil {
		nd.Close()
		return nil, err
	}
	srv, err := api.Serve(nd, log.With("node", name))
	if err != nil {
		nd.Close()
		return nil, err
	}
	nw.faces[nd] = srv
	return nd, nil
}

// startEcho serves one echo test backend on a loopback port.
func (nw *Net) startEcho(delay time.Duration) (string, error) {
	ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	e := echo.New(echo.Config{TokenDelay: delay})
	srv := &http.Server{Handler: e.Handler()}
	go srv.Serve(ln)
	nw.Echo = append(nw.Echo, e)
	nw.servers = append(nw.servers, srv)
	return "http://" + ln.Addr().String() + "/v1", nil
}

// waitReady polls until the client holds enough proxies and every proxy knows every worker.
func (nw *Net) waitReady(ctx context.Context, progress func(string)) error {
	wantProxies := min(len(nw.Proxies), nw.Client.Config().MinProxies)
	said := map[string]bool{}
	say := func(msg string) {
		if !said[msg] {
			said[msg] = true
			progress(msg)
		}
	}
	for {
		for i, w := range nw.Workers { // a backend that does not answer will not: say so now
			if ws := w.Status(); ws.BackendError != "" {
				return fmt.Errorf("localnet: worker%d's model backend does not answer its health check: %s (is it running? check --backend)", i+1, ws.BackendError)
			}
		}
		st := nw.Client.Status()
		proxiesOK := len(st.Proxies) >= wantProxies
		if proxiesOK {
			say(fmt.Sprintf("client connected to %d proxies", len(st.Proxies)))
		}
		routed := 0
		for _, p := range nw.Proxies {
			healthy := 0
			for _, w := range p.Status().Workers {
				if w.Healthy {
					healthy++
				}
			}
			if healthy == len(nw.Workers) {
				routed++
			}
		}
		if routed > 0 {
			say(fmt.Sprintf("%d/%d proxies route to all %d workers", routed, len(nw.Proxies), len(nw.Workers)))
		}
		listed := 0
		for _, m := range nw.Client.Models() {
			listed = max(listed, m.Workers)
		}
		if listed == len(nw.Workers) {
			say(fmt.Sprintf("client lists the model offered by %d workers", listed))
		}
		// Proxies open a worker's channel with the first request routed to it.
		paying := nw.ledger == nil || payers(nw.Client) >= wantProxies
		if nw.ledger != nil && paying {
			say("payment channels open: client to proxies (proxies open theirs to workers with the first request)")
		}
		if proxiesOK && routed == len(nw.Proxies) && listed == len(nw.Workers) && paying {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("localnet: network not ready (client has %d/%d proxies, %d/%d proxies see all workers): %w",
				len(st.Proxies), wantProxies, routed, len(nw.Proxies), ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// OpenAllChannels sends requests through the client until every proxy pays every worker on a
// channel (a proxy opens a worker's channel with the first request it routes there), so that
// measurements that follow open none. Without payments it returns at once.
func (nw *Net) OpenAllChannels(ctx context.Context) error {
	if nw.ledger == nil {
		return nil
	}
	body := `{"model":"` + nw.modelID + `","max_tokens":1,"messages":[{"role":"user","content":"open the channels"}]}`
	for {
		open := 0
		for _, p := range nw.Proxies {
			if payers(p) >= len(nw.Workers) {
				open++
			}
		}
		if open == len(nw.Proxies) {
			return nil
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, nw.ClientURL()+"/chat/completions", strings.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return fmt.Errorf("localnet: opening the proxies' channels: %w", err)
		}
		resp.Body.Close()
	}
}

// ClientURL is the base URL of the client's OpenAI API.
func (nw *Net) ClientURL() string {
	if nw.Client == nil {
		return ""
	}
	return "http://" + nw.APIAddr(nw.Client) + "/v1"
}

// APIAddr is the address n's client API listens on ("" for other roles).
func (nw *Net) APIAddr(n *node.Node) string { return nw.faces[n].APIAddr() }

// AdminAddr is the address n's admin endpoints listen on ("" when Config.AdminAddr is unset).
func (nw *Net) AdminAddr(n *node.Node) string { return nw.faces[n].AdminAddr() }

// Close stops every node, host, backend and datastore, and removes a temporary directory.
func (nw *Net) Close() (err error) {
	nw.closed.Do(func() { err = nw.close() })
	return err
}

func (nw *Net) close() error {
	var errs []error
	nodes := append(append([]*node.Node{nw.Client}, nw.extra...), nw.Workers...)
	for _, n := range append(nodes, nw.Proxies...) {
		if n != nil {
			if srv := nw.faces[n]; srv != nil {
				errs = append(errs, srv.Close())
			}
			errs = append(errs, n.Close())
		}
	}
	for _, h := range nw.hosts {
		errs = append(errs, h.Close())
	}
	for _, s := range nw.servers {
		errs = append(errs, s.Close())
	}
	for _, ds := range nw.stores {
		errs = append(errs, ds.Close())
	}
	if nw.tempDir {
		errs = append(errs, os.RemoveAll(nw.dir))
	}
	return errors.Join(errs...)
}

// Ledger is the network's development ledger (nil without payments).
func (nw *Net) Ledger() *ledger.Embedded { return nw.ledger }

// Agreed checks that every open channel in lists (each one node's channels) is held alike by
// its payer and its payee, and settled: the payer owes nothing it received and the payee
// counts nothing owed it has not written off. It returns each payee's side, by channel id, and
// why not when it does not hold ("" when it does).
func Agreed(lists ...[]node.ChannelStatus) (held map[string]node.ChannelStatus, why string) {
	held = map[string]node.ChannelStatus{}
	payers := map[string]node.ChannelStatus{}
	for _, list := range lists {
		for _, c := range list {
			switch {
			case c.State != "open":
			case c.Role == "payee":
				held[c.ChannelID] = c
			default:
				payers[c.ChannelID] = c
			}
		}
	}
	if len(payers) == 0 {
		return held, "no channel open"
	}
	for _, id := range slices.Sorted(maps.Keys(payers)) {
		p := payers[id]
		h, ok := held[id]
		switch {
		case !ok:
			return held, fmt.Sprintf("channel %s: no payee holds it", id)
		case p.Owed != 0 || h.Owed != 0:
			return held, fmt.Sprintf("channel %s: payer owes %d, payee counts %d owed", id, p.Owed, h.Owed)
		case p.Paid != h.Paid || p.Seqno != h.Seqno:
			return held, fmt.Sprintf("channel %s: payer paid %d (seqno %d), payee holds %d (seqno %d)", id, p.Paid, p.Seqno, h.Paid, h.Seqno)
		}
	}
	return held, ""
}

// payers counts the channels n pays on.
func payers(n *node.Node) int {
	k := 0
	for _, c := range n.Channels() {
		if c.Role == "payer" {
			k++
		}
	}
	return k
}
