package node

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/cocoon-mesh/cocoon/api/httpguard"
	"github.com/cocoon-mesh/cocoon/discovery"
	"github.com/cocoon-mesh/cocoon/node/wire"
)

// Role is what a node does in the mesh.
type Role string

// Roles.
const (
	RoleClient Role = "client" // serves the OpenAI API locally and sends requests to proxies
	RoleProxy  Role = "proxy"  // routes requests from clients to workers
	RoleWorker Role = "worker" // runs requests on a model backend
)

// ModelConfig is one model a worker serves.
type ModelConfig struct {
	ID     string      // full identity "name@revision:hash"
	Prices wire.Prices // list prices, nanoTON per token by category
}

// Config configures one node. Zero fields take the values of DefaultConfig.
type Config struct {
	Role    Role
	Network string         // mesh name; nodes of different networks never meet
	DHTMode discovery.Mode // server (default) answers DHT queries; client only asks

	// Bootstrap lists multiaddrs with /p2p/<id> of peers to join through. Empty for the first node.
	Bootstrap []string

	// MinProxies is how many proxies clients and workers stay connected to.
	MinProxies int
	// DiscoveryInterval is how often a client or worker with too few proxies looks for more.
	DiscoveryInterval time.Duration
	// ProvideInterval is how often a proxy renews its DHT provider records; ProvideRetry is the
	// wait between attempts while its first announcement has not landed yet.
	ProvideInterval, ProvideRetry time.Duration

	// AdvertInterval is how often a worker publishes its capacity advert.
	AdvertInterval time.Duration
	// AdvertMaxAge is how old an advert may be when it arrives; AdvertMaxSkew how far in the
	// future its timestamp may be (clock skew between peers).
	AdvertMaxAge, AdvertMaxSkew time.Duration
	// WorkerTTL is how long a proxy keeps a worker whose adverts stopped arriving.
	WorkerTTL time.Duration

	// Models are the models a worker serves, MaxActive how many requests it runs at once,
	// Coefficient its price multiplier in per mille (1000 = list price).
	Models      []ModelConfig
	MaxActive   int
	Coefficient uint32
	// HealthInterval is how often a worker checks its backend.
	HealthInterval time.Duration

	// APIAddr is where a client serves the OpenAI API; APIKey, if set, is the bearer token
	// callers must present there and at AdminAddr. The node itself serves no HTTP: package
	// api does, reading APIAddr, APIKey, AdminAddr and HTTP from here, and node.New checks
	// them with the rest so that one error names the field.
	APIAddr, APIKey string
	// AdminAddr is where a proxy or worker serves its status and channel commands (a client
	// serves them on its API, and here too if set). Keep it on loopback: APIKey is all that
	// guards commands that move money. Empty: off, the default, so nodes built side by side
	// in one process never race for a fixed port.
	AdminAddr string
	// MaxPrice is the client's default cap on the effective price in nanoTON per completion
	// token (0: none). A request may lower it with the X-Cocoon-Max-Price header.
	MaxPrice uint64

	// MaxBodyBytes bounds a request body at every hop.
	MaxBodyBytes int
	// MaxChunkBytes bounds one answer chunk (a whole non-streamed answer is one chunk).
	MaxChunkBytes int
	// MaxTokens bounds a request's max_tokens at every hop.
	MaxTokens uint32
	// RequestTimeout is the time a request gets when the caller sets none.
	RequestTimeout time.Duration
	// HopMargin is taken off the time left at each hop, so an inner hop times out first and its
	// error reaches the caller before the caller gives up.
	HopMargin time.Duration
	// MaxAttempts bounds how many workers (at a proxy) or proxies (at a client) one request tries.
	MaxAttempts int
	// FirstTokenTimeout bounds the wait for a streamed answer's first chunk from a worker: past
	// it the proxy fails over to the next worker (a client gives its proxy MaxAttempts times
	// as long, plus StallTimeout). StallTimeout bounds any silence of a callee, before the
	// first token or after it: a working callee sends a progress frame after StallTimeout/3
	// without output, so one that sends nothing for StallTimeout has stopped, and the request
	// fails over (nothing reached the caller yet) or ends with an error.
	FirstTokenTimeout, StallTimeout time.Duration
	// WholeAnswerTimeout bounds the wait for a non-streamed answer from a worker, whose first
	// chunk is the whole answer; past it the proxy fails over (a client gives its proxy
	// MaxAttempts times as long, plus StallTimeout). Longer answers should be streamed.
	WholeAnswerTimeout time.Duration

	// NoRequestLog stops the info line a client or proxy writes per finished request (id,
	// model, peer, tokens, cost, duration, time to first token, outcome).
	NoRequestLog bool
	// AllowUnattested lets a proxy route to workers that offer no attestation, and a client
	// send them prompts, in the clear. Off by default: only attested workers get work.
	AllowUnattested bool
	// DisableSealing makes a client send prompts in the clear even to attested workers, so
	// the proxy can read them. For measuring what sealing costs; off by default.
	DisableSealing bool
	// AttestTTL is how long a peer's verified attestation is used before it is checked again
	// (it is refreshed in the background before then).
	AttestTTL time.Duration
	// ReceiptCheckEvery is how often, on average, a proxy verifies the worker's signature on a
	// receipt and a client both signatures (1: every receipt). An ed25519 check costs about
	// 50 µs, more than the rest of a mesh hop; every receipt's contents are always checked,
	// and a sealed answer proves the worker vouched for its receipt without a signature check.
	// A worker caught with a bad signature is dropped; so is a proxy.
	ReceiptCheckEvery int

	// Payments configures payment channels; they are on when the node is given a ledger
	// (Deps.Ledger).
	Payments PaymentConfig

	// Reputation is what a proxy counts of each worker and routes by.
	Reputation ReputationConfig
	// Audit is how a proxy with a reference of the model (Deps.Reference) checks its workers.
	Audit AuditConfig

	// MaxWorkers bounds the worker table (a proxy's routing table, a client's model list):
	// adverts of further workers are refused, and logged, until some expire.
	MaxWorkers int
	// AdmitRate and AdmitBurst bound how fast workers not yet known are taken in from gossip
	// (per second, and at once): a proxy dials each to attest it, a client lists it. Adverts
	// of unknown workers beyond that are ignored, not forwarded; known workers always pass,
	// and a worker connected to a proxy is admitted over its connection without a token.
	AdmitRate  float64
	AdmitBurst int
	// MaxAttestations bounds the cache of peers' handshakes. Entries expire (failed and
	// unreachable ones within minutes); past the cap, expired and failed ones are evicted
	// first, a trusted one never (a handshake past the cap then goes uncached). Keep it above
	// the host's connection limit.
	MaxAttestations int

	// HTTP guards the client API and the admin endpoints: allowed Host names and browser
	// origins, the local token, timeouts and a cap on connections.
	HTTP httpguard.Config
}

// PaymentConfig configures a node's TON payment channels: clients pay proxies, proxies pay
// workers, each over a channel of its own, voucher by voucher as tokens arrive.
type PaymentConfig struct {
	// Deposit is the most a payer locks in one channel, nanoTON: the most it can spend there
	// before it moves to a new one. FirstDeposit is what its first channel to a payee locks;
	// each later one locks twice what the payee was paid before, up to Deposit (default
	// Deposit/100: at 400 nanoTON a token, 25,000 tokens). UnearnedCap bounds what channels
	// not closed yet to payees that were never paid lock together (default 16 x
	// FirstDeposit); UnearnedIdle is how long such a channel may go without a voucher before
	// the payer closes it (default an hour), freeing the cap.
	Deposit, FirstDeposit, UnearnedCap uint64
	UnearnedIdle                       time.Duration
	// OpenFee is the value sent with a channel's deployment beyond deposit and ExcessFee, for
	// the gas of the init message.
	OpenFee uint64
	// WindowTokens is a payee's credit window, in completion tokens at each answer's price: it
	// stops serving a payer that owes more than that (COCOON lets a client owe its whole stake).
	WindowTokens uint32
	// Commission is what a proxy adds to workers' prices, per mille.
	Commission uint32
	// Quarantine and ConditionalClose are the closing config of channels paying this node: how
	// long a unilateral close waits for a challenge, and then for conditionals.
	Quarantine, ConditionalClose time.Duration
	// ExcessFee is reserved in each channel paying this node for the gas of closing it.
	ExcessFee uint64
	// FlushAfter is how long a payer lets value stay unpaid once an answer has ended.
	FlushAfter time.Duration
	// DisputeFee is the value sent for gas with a unilateral close or a challenge; what the gas
	// does not use stays in the channel and is paid out to the payer with the rest.
	DisputeFee uint64
	// SettleIdle is how long a channel paying this node may go without a new voucher before
	// the node closes it to collect what it was paid (with the payer if it answers, else alone):
	// earnings never stay locked behind a payer that went away. A channel this node pays on is
	// closed after twice as long, so a deposit never stays locked behind a payee that went away.
	// The payer opens a new channel when it next needs one.
	SettleIdle time.Duration
	// WatchEvery is how often the node reads the contracts of its channels that are not closed,
	// to notice closes, challenge an older state and finish a close after its quarantine.
	WatchEvery time.Duration
	// Testnet selects the testnet form of the node's wallet address.
	Testnet bool
}

// Nano is one TON in nanoTON.
const Nano = 1_000_000_000

// DefaultConfig is the configuration for a node on a real network.
func DefaultConfig() Config {
	return Config{
		Role:               RoleClient,
		Network:            "cocoon-mainnet",
		DHTMode:            discovery.ModeServer,
		MinProxies:         2,
		DiscoveryInterval:  30 * time.Second,
		ProvideInterval:    10 * time.Minute,
		ProvideRetry:       5 * time.Second,
		AdvertInterval:     10 * time.Second,
		AdvertMaxAge:       60 * time.Second,
		AdvertMaxSkew:      10 * time.Second,
		WorkerTTL:          35 * time.Second, // three missed adverts
		MaxActive:          16,
		Coefficient:        wire.CoefficientOne,
		HealthInterval:     5 * time.Second,
		APIAddr:            "127.0.0.1:10000",
		MaxBodyBytes:       4 << 20,
		MaxChunkBytes:      8 << 20,
		MaxTokens:          32768,
		RequestTimeout:     10 * time.Minute,
		HopMargin:          50 * time.Millisecond,
		MaxAttempts:        3,
		FirstTokenTimeout:  30 * time.Second,
		StallTimeout:       15 * time.Second,
		WholeAnswerTimeout: 5 * time.Minute,
		AttestTTL:          time.Hour,
		ReceiptCheckEvery:  16,
		Payments: PaymentConfig{
			Deposit: Nano, OpenFee: Nano / 20, WindowTokens: 256, Commission: 50,
			Quarantine: 12 * time.Hour, ConditionalClose: time.Minute, ExcessFee: Nano / 100,
			FlushAfter: 100 * time.Millisecond, DisputeFee: Nano / 50, WatchEvery: 10 * time.Minute,
			SettleIdle: 7 * 24 * time.Hour, UnearnedIdle: time.Hour,
		},
		Reputation:      ReputationConfig{MinTrust: 0.1, PerPlatform: 8, ProbationAnswers: 20},
		Audit:           AuditConfig{Rate: 0.02, Threshold: 1},
		MaxWorkers:      4096,
		AdmitRate:       16,
		AdmitBurst:      64,
		MaxAttestations: 8192,
		HTTP:            httpguard.DefaultConfig(),
	}
}

// LocalConfig is DefaultConfig tightened for a network on one machine (dev, tests): a local
// network name, and faster discovery and adverts so it comes up in seconds.
func LocalConfig() Config {
	c := DefaultConfig()
	c.Network = "cocoon-local"
	c.DiscoveryInterval = 2 * time.Second
	c.ProvideInterval = time.Minute
	c.ProvideRetry = 300 * time.Millisecond
	c.AdvertInterval = 2 * time.Second
	c.WorkerTTL = 7 * time.Second
	c.HealthInterval = time.Second
	c.Payments.WatchEvery = 2 * time.Second
	return c
}

// Config errors.
var (
	ErrConfig = errors.New("node: invalid configuration")
)

// ConfigError names the field that is wrong.
type ConfigError struct {
	Field string
	Value any
	Why   string
}

// Error names the field, its value and the rule it breaks.
func (e *ConfigError) Error() string {
	return fmt.Sprintf("node: config %s = %v: %s", e.Field, e.Value, e.Why)
}

// Unwrap makes every ConfigError match ErrConfig.
func (e *ConfigError) Unwrap() error { return ErrConfig }

// validate fills zero fields from DefaultConfig and checks every rule.
func (c *Config) validate() error {
	c.fill(DefaultConfig())
	return c.check()
}

// fill sets every zero field to d's.
func (c *Config) fill(d Config) {
	fill(&c.Network, d.Network)
	fill(&c.DHTMode, d.DHTMode)
	fill(&c.DiscoveryInterval, d.DiscoveryInterval)
	fill(&c.ProvideInterval, d.ProvideInterval)
	fill(&c.ProvideRetry, d.ProvideRetry)
	fill(&c.AdvertInterval, d.AdvertInterval)
	fill(&c.AdvertMaxAge, d.AdvertMaxAge)
	fill(&c.AdvertMaxSkew, d.AdvertMaxSkew)
	fill(&c.WorkerTTL, d.WorkerTTL)
	fill(&c.HealthInterval, d.HealthInterval)
	fill(&c.RequestTimeout, d.RequestTimeout)
	fill(&c.HopMargin, d.HopMargin)
	fill(&c.AttestTTL, d.AttestTTL)
	fill(&c.MinProxies, d.MinProxies)
	fill(&c.MaxActive, d.MaxActive)
	fill(&c.MaxBodyBytes, d.MaxBodyBytes)
	fill(&c.MaxChunkBytes, d.MaxChunkBytes)
	fill(&c.MaxAttempts, d.MaxAttempts)
	fill(&c.FirstTokenTimeout, d.FirstTokenTimeout)
	fill(&c.StallTimeout, d.StallTimeout)
	fill(&c.WholeAnswerTimeout, d.WholeAnswerTimeout)
	fill(&c.ReceiptCheckEvery, d.ReceiptCheckEvery)
	fill(&c.MaxTokens, d.MaxTokens)
	fill(&c.Coefficient, d.Coefficient)
	fill(&c.APIAddr, d.APIAddr)
	fill(&c.MaxWorkers, d.MaxWorkers)
	fill(&c.AdmitRate, d.AdmitRate)
	fill(&c.AdmitBurst, d.AdmitBurst)
	fill(&c.MaxAttestations, d.MaxAttestations)
	c.Payments.fill(d.Payments)
	c.Reputation.fill(d.Reputation)
	c.Audit.fill(d.Audit)
	c.HTTP.Fill(d.HTTP)
}

// check returns the first rule a filled config breaks.
func (c *Config) check() error {
	switch c.Role {
	case RoleClient, RoleProxy, RoleWorker:
	default:
		return &ConfigError{"role", c.Role, "want client, proxy or worker"}
	}
	if c.DHTMode != discovery.ModeServer && c.DHTMode != discovery.ModeClient {
		return &ConfigError{"dht_mode", c.DHTMode, "want server or client"}
	}
	if c.Role == RoleProxy && c.DHTMode != discovery.ModeServer {
		return &ConfigError{"dht_mode", c.DHTMode, "a proxy must run the DHT in server mode so clients can find it"}
	}
	if _, err := c.bootstrapPeers(); err != nil {
		return err
	}
	if err := c.validateModels(); err != nil {
		return err
	}
	if c.AdminAddr != "" {
		if _, _, err := net.SplitHostPort(c.AdminAddr); err != nil {
			return &ConfigError{"admin_addr", c.AdminAddr, "want host:port, e.g. 127.0.0.1:10001: " + err.Error()}
		}
	}
	if c.MaxActive < 0 || c.MaxActive > 1<<16 {
		return &ConfigError{"max_active", c.MaxActive, "want 1..65536"}
	}
	if c.MaxBodyBytes < 1024 {
		return &ConfigError{"max_body_bytes", c.MaxBodyBytes, "want at least 1024"}
	}
	if c.ReceiptCheckEvery < 1 {
		return &ConfigError{"receipt_check_every", c.ReceiptCheckEvery, "want at least 1 (1: check every receipt)"}
	}
	if c.MaxAttempts < 1 {
		return &ConfigError{"max_attempts", c.MaxAttempts, "want at least 1"}
	}
	if err := c.validateWaits(); err != nil {
		return err
	}
	if c.AdvertMaxAge < c.AdvertInterval {
		return &ConfigError{"advert_max_age", c.AdvertMaxAge, "must be at least advert_interval"}
	}
	if err := c.Audit.validate(); err != nil {
		return err
	}
	if err := c.Reputation.validate(); err != nil {
		return err
	}
	if err := c.validateGossip(); err != nil {
		return err
	}
	if err := c.validateHTTP(); err != nil {
		return err
	}
	return c.Payments.validate()
}

// validateHTTP checks the [http] settings, naming the field as every ConfigError does.
func (c *Config) validateHTTP() error {
	err := c.HTTP.Validate()
	if fe := (*httpguard.FieldError)(nil); errors.As(err, &fe) {
		return &ConfigError{fe.Field, fe.Value, fe.Why}
	}
	return err
}

// validateGossip checks the bounds on what gossip may make a node hold.
func (c *Config) validateGossip() error {
	switch {
	case c.MaxWorkers < 1:
		return &ConfigError{"gossip.max_workers", c.MaxWorkers, "want at least 1"}
	case !(c.AdmitRate > 0) || c.AdmitRate > 1e6: // !(>0) also refuses NaN
		return &ConfigError{"gossip.admit_rate", c.AdmitRate, "want new workers per second, above 0 (default 16)"}
	case c.AdmitBurst < 1:
		return &ConfigError{"gossip.admit_burst", c.AdmitBurst, "want at least 1 (default 64)"}
	case c.MaxAttestations < 16:
		return &ConfigError{"tee.max_attestations", c.MaxAttestations, "want at least 16, above host.max_conns (default 8192)"}
	}
	return nil
}

// validateModels checks a worker's models.
func (c *Config) validateModels() error {
	if c.Role != RoleWorker {
		return nil
	}
	if len(c.Models) == 0 {
		return &ConfigError{"models", "[]", "a worker must serve at least one model"}
	}
	seen := map[string]bool{}
	for _, m := range c.Models {
		if _, err := wire.ParseModelID(m.ID); err != nil {
			return &ConfigError{"models.id", m.ID, err.Error()}
		}
		if seen[m.ID] {
			return &ConfigError{"models.id", m.ID, "listed twice"}
		}
		seen[m.ID] = true
	}
	if len(c.Models) > wire.MaxAdvertModels {
		return &ConfigError{"models", len(c.Models), fmt.Sprintf("at most %d models per worker", wire.MaxAdvertModels)}
	}
	return nil
}

// validateWaits checks the bounds on how long a request and its hops may take.
func (c *Config) validateWaits() error {
	switch {
	case c.StallTimeout < 300*time.Millisecond:
		return &ConfigError{"stall_timeout", c.StallTimeout, "want at least 300ms: heartbeats fill silences a third of it long"}
	case c.FirstTokenTimeout < c.StallTimeout/3:
		return &ConfigError{"first_token_timeout", c.FirstTokenTimeout, "want at least a third of stall_timeout"}
	case c.WholeAnswerTimeout < c.FirstTokenTimeout:
		return &ConfigError{"whole_answer_timeout", c.WholeAnswerTimeout, "want at least first_token_timeout"}
	case c.HopMargin*4 > c.RequestTimeout:
		return &ConfigError{"hop_margin", c.HopMargin, "must be well below request_timeout"}
	}
	return nil
}

// fill takes zero fields from d.
func (p *PaymentConfig) fill(d PaymentConfig) {
	fill(&p.Deposit, d.Deposit)
	fill(&p.FirstDeposit, p.Deposit/100)
	fill(&p.UnearnedCap, 16*p.FirstDeposit)
	fill(&p.UnearnedIdle, d.UnearnedIdle)
	fill(&p.OpenFee, d.OpenFee)
	fill(&p.ExcessFee, d.ExcessFee)
	fill(&p.WindowTokens, d.WindowTokens)
	fill(&p.Quarantine, d.Quarantine)
	fill(&p.ConditionalClose, d.ConditionalClose)
	fill(&p.FlushAfter, d.FlushAfter)
	fill(&p.DisputeFee, d.DisputeFee)
	fill(&p.WatchEvery, d.WatchEvery)
	fill(&p.SettleIdle, d.SettleIdle)
}

// fill sets a field left at its zero value to its default.
func fill[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}

// validate checks the rules the contract and the payment protocol impose.
func (p *PaymentConfig) validate() error {
	switch {
	case p.WindowTokens < 4:
		return &ConfigError{"payments.window_tokens", p.WindowTokens, "want at least 4 (a payer pays every quarter window)"}
	case p.Commission > wire.MaxCoefficient:
		return &ConfigError{"payments.commission", p.Commission, fmt.Sprintf("want at most %d per mille", wire.MaxCoefficient)}
	case p.Quarantine < time.Minute || p.Quarantine > 1<<31*time.Second:
		return &ConfigError{"payments.quarantine", p.Quarantine, "want from a minute to a few days: the payee must come online within it"}
	case p.ConditionalClose < time.Second || p.ConditionalClose > 1<<31*time.Second:
		return &ConfigError{"payments.conditional_close", p.ConditionalClose, "want at least a second"}
	case p.WatchEvery < 0:
		return &ConfigError{"payments.watch_every", p.WatchEvery, "want a positive interval"}
	case p.SettleIdle < 0:
		return &ConfigError{"payments.settle_idle", p.SettleIdle, "want a positive duration"}
	case p.Deposit > 1<<62:
		return &ConfigError{"payments.deposit", p.Deposit, "too large"}
	case p.FirstDeposit > p.Deposit:
		return &ConfigError{"payments.first_deposit", p.FirstDeposit, fmt.Sprintf("want at most payments.deposit (%d)", p.Deposit)}
	case p.UnearnedCap < p.FirstDeposit:
		return &ConfigError{"payments.unearned_cap", p.UnearnedCap, fmt.Sprintf("want at least payments.first_deposit (%d): else no new payee ever gets a channel", p.FirstDeposit)}
	}
	return nil
}

// bootstrapPeers parses Bootstrap.
func (c *Config) bootstrapPeers() ([]peer.AddrInfo, error) {
	var addrs []ma.Multiaddr
	for _, s := range c.Bootstrap {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, &ConfigError{"bootstrap", s, err.Error()}
		}
		addrs = append(addrs, a)
	}
	infos, err := peer.AddrInfosFromP2pAddrs(addrs...)
	if err != nil {
		return nil, &ConfigError{"bootstrap", c.Bootstrap, "each address must end in /p2p/<peer id>: " + err.Error()}
	}
	return infos, nil
}
