package node

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

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
	// callers must present there and at AdminAddr.
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

	// HTTP guards the client API and the admin endpoints: allowed Host names and browser
	// origins, the local token, timeouts and a cap on connections.
	HTTP HTTPConfig
}

// PaymentConfig configures a node's TON payment channels: clients pay proxies, proxies pay
// workers, each over a channel of its own, voucher by voucher as tokens arrive.
type PaymentConfig struct {
	// Deposit is what a payer locks in each new channel, nanoTON: the most it can spend there
	// before the channel must be reopened.
	Deposit uint64
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
		Role:              RoleClient,
		Network:           "cocoon-mainnet",
		DHTMode:           discovery.ModeServer,
		MinProxies:        2,
		DiscoveryInterval: 30 * time.Second,
		ProvideInterval:   10 * time.Minute,
		ProvideRetry:      5 * time.Second,
		AdvertInterval:    10 * time.Second,
		AdvertMaxAge:      60 * time.Second,
		AdvertMaxSkew:     10 * time.Second,
		WorkerTTL:         35 * time.Second, // three missed adverts
		MaxActive:         16,
		Coefficient:       wire.CoefficientOne,
		HealthInterval:    5 * time.Second,
		APIAddr:           "127.0.0.1:10000",
		MaxBodyBytes:      4 << 20,
		MaxChunkBytes:     8 << 20,
		MaxTokens:         32768,
		RequestTimeout:    10 * time.Minute,
		HopMargin:         50 * time.Millisecond,
		MaxAttempts:       3,
		AttestTTL:         time.Hour,
		ReceiptCheckEvery: 16,
		Payments: PaymentConfig{
			Deposit: Nano, OpenFee: Nano / 20, WindowTokens: 256, Commission: 50,
			Quarantine: 12 * time.Hour, ConditionalClose: time.Minute, ExcessFee: Nano / 100,
			FlushAfter: 100 * time.Millisecond, DisputeFee: Nano / 50, WatchEvery: 10 * time.Minute,
			SettleIdle: 7 * 24 * time.Hour,
		},
		// 512 connections stay well below the descriptors a process gets (Go raises the soft
		// limit to the hard one at start, ulimit -Hn: 20000 where this was measured; on macOS
		// to kern.maxfilesperproc), leaving the rest to libp2p.
		HTTP: HTTPConfig{MaxConns: 512, BodyTimeout: 30 * time.Second, WriteTimeout: time.Minute, IdleTimeout: time.Minute},
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
	d := DefaultConfig()
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
	fill(&c.ReceiptCheckEvery, d.ReceiptCheckEvery)
	fill(&c.MaxTokens, d.MaxTokens)
	fill(&c.Coefficient, d.Coefficient)
	fill(&c.APIAddr, d.APIAddr)
	c.Payments.fill(d.Payments)
	c.HTTP.fill(d.HTTP)

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
	if c.Role == RoleWorker {
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
	if c.HopMargin*4 > c.RequestTimeout {
		return &ConfigError{"hop_margin", c.HopMargin, "must be well below request_timeout"}
	}
	if c.AdvertMaxAge < c.AdvertInterval {
		return &ConfigError{"advert_max_age", c.AdvertMaxAge, "must be at least advert_interval"}
	}
	if err := c.HTTP.validate(); err != nil {
		return err
	}
	return c.Payments.validate()
}

// fill takes zero fields from d.
func (p *PaymentConfig) fill(d PaymentConfig) {
	fill(&p.Deposit, d.Deposit)
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
