package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cocoon-mesh/cocoon/api/httpguard"
	"github.com/cocoon-mesh/cocoon/discovery"
	"github.com/cocoon-mesh/cocoon/node"
	"github.com/cocoon-mesh/cocoon/node/p2phost"
	"github.com/cocoon-mesh/cocoon/node/wire"
	"github.com/cocoon-mesh/cocoon/tee"
)

// fileConfig is the config file's shape (TOML). Only cmd sees it: it becomes a node.Config,
// a p2phost.Config and the backend settings.
type fileConfig struct {
	// prices are --prices given without --model: the built-in model's prices (workerBackend).
	prices     *wire.Prices
	Role       string   `toml:"role"`
	Network    string   `toml:"network"`
	DataDir    string   `toml:"data_dir"`
	Listen     []string `toml:"listen"`
	Bootstrap  []string `toml:"bootstrap"`
	DHTMode    string   `toml:"dht_mode"`
	MinProxies int      `toml:"min_proxies"`
	Local      bool     `toml:"local"`
	LogLevel   string   `toml:"log_level"`
	RequestLog *bool    `toml:"request_log"`

	Client struct {
		APIAddr        string `toml:"api_addr"`
		APIKey         string `toml:"api_key"`
		MaxPrice       uint64 `toml:"max_price"`
		DisableSealing bool   `toml:"disable_sealing"`
	} `toml:"client"`

	Admin struct {
		Addr   string `toml:"addr"`
		APIKey string `toml:"api_key"`
	} `toml:"admin"`

	TEE struct {
		Provider        string   `toml:"provider"`
		AllowSimulated  bool     `toml:"allow_simulated"`
		AllowUnattested bool     `toml:"allow_unattested"`
		AllowedImages   []string `toml:"allowed_images"`
		AllowedMRTD     []string `toml:"allowed_mrtd"`
		MinTCB          string   `toml:"min_tcb"`
		AllowDebug      bool     `toml:"allow_debug"`
		PCCSURL         string   `toml:"pccs_url"`
		NoCollateral    bool     `toml:"no_collateral"`
		AttestTTL       duration `toml:"attest_ttl"`
		MaxAttestations int      `toml:"max_attestations"`
	} `toml:"tee"`

	Payments struct {
		Ledger           string   `toml:"ledger"`
		TONConfig        string   `toml:"ton_config"`
		Testnet          bool     `toml:"testnet"`
		DevFund          uint64   `toml:"dev_fund"`
		Deposit          uint64   `toml:"deposit"`
		FirstDeposit     uint64   `toml:"first_deposit"`
		UnearnedCap      uint64   `toml:"unearned_cap"`
		UnearnedIdle     duration `toml:"unearned_idle"`
		WindowTokens     uint32   `toml:"window_tokens"`
		Commission       uint32   `toml:"commission"`
		Quarantine       duration `toml:"quarantine"`
		ConditionalClose duration `toml:"conditional_close"`
		WatchEvery       duration `toml:"watch_every"`
		SettleIdle       duration `toml:"settle_idle"`
		DisputeFee       uint64   `toml:"dispute_fee"`
	} `toml:"payments"`

	Worker struct {
		MaxActive        int         `toml:"max_active"`
		PriceCoefficient uint32      `toml:"price_coefficient"`
		BackendURL       string      `toml:"backend_url"`
		ModelFile        string      `toml:"model_file"`
		TokenizerFile    string      `toml:"tokenizer_file"`
		BackendAPIKey    string      `toml:"backend_api_key"`
		Models           []fileModel `toml:"models"`
	} `toml:"worker"`

	Limits struct {
		MaxBodyBytes       int      `toml:"max_body_bytes"`
		MaxTokens          uint32   `toml:"max_tokens"`
		RequestTimeout     duration `toml:"request_timeout"`
		FirstTokenTimeout  duration `toml:"first_token_timeout"`
		StallTimeout       duration `toml:"stall_timeout"`
		WholeAnswerTimeout duration `toml:"whole_answer_timeout"`
	} `toml:"limits"`

	HTTP struct {
		AllowedHosts   []string `toml:"allowed_hosts"`
		AllowedOrigins []string `toml:"allowed_origins"`
		MaxConns       int      `toml:"max_conns"`
		BodyTimeout    duration `toml:"body_timeout"`
		WriteTimeout   duration `toml:"write_timeout"`
		IdleTimeout    duration `toml:"idle_timeout"`
	} `toml:"http"`

	Host struct {
		ConnsLow   int `toml:"conns_low"`
		ConnsHigh  int `toml:"conns_high"`
		MaxConns   int `toml:"max_conns"`
		MaxStreams int `toml:"max_streams"`
	} `toml:"host"`

	Reputation struct {
		Off       bool     `toml:"off"`
		MinTrust  float64  `toml:"min_trust"`
		PerPlat   int      `toml:"per_platform"`
		Probation int      `toml:"probation_answers"`
		Pin       []string `toml:"pin"`
		Ban       []string `toml:"ban"`
	} `toml:"reputation"`

	Audit fileAudit `toml:"audit"`

	Gossip struct {
		MaxWorkers int     `toml:"max_workers"`
		AdmitRate  float64 `toml:"admit_rate"`
		AdmitBurst int     `toml:"admit_burst"`
	} `toml:"gossip"`
}

type fileModel struct {
	ID          string `toml:"id"`
	BackendName string `toml:"backend_name"`
	Prices      struct {
		Prompt     uint64 `toml:"prompt"`
		Cached     uint64 `toml:"cached"`
		Completion uint64 `toml:"completion"`
		Reasoning  uint64 `toml:"reasoning"`
	} `toml:"prices"`
}

// duration reads "30s"-style strings.
type duration struct{ time.Duration }

func (d *duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("want a duration like 30s or 10m: %w", err)
	}
	d.Duration = v
	return nil
}

// parseConfig reads a config file; unknown keys are an error, so a typo is never ignored.
func parseConfig(r io.Reader) (fileConfig, error) {
	var fc fileConfig
	md, err := toml.NewDecoder(r).Decode(&fc)
	if err != nil {
		return fc, fmt.Errorf("config: %w", err)
	}
	if un := md.Undecoded(); len(un) > 0 {
		keys := make([]string, len(un))
		for i, k := range un {
			keys[i] = k.String()
		}
		sort.Strings(keys)
		return fc, fmt.Errorf("config: unknown keys: %s", strings.Join(keys, ", "))
	}
	return fc, nil
}

func loadConfigFile(path string) (fileConfig, error) {
	f, err := os.Open(path)
	if err != nil {
		return fileConfig{}, fmt.Errorf("config: %w (run 'cocoon-node init' to write one)", err)
	}
	defer f.Close()
	fc, err := parseConfig(f)
	if err != nil {
		return fc, fmt.Errorf("%s: %w", path, err)
	}
	return fc, nil
}

// settings is everything a run needs, resolved from defaults, the file and flags.
type settings struct {
	node       node.Config
	host       p2phost.Config
	dataDir    string
	backendURL string
	backendKey string
	// modelFile and tokenizerFile are the embedded engine's checkpoint (llama2.c format) and
	// tokenizer, used when backendURL is "embedded".
	modelFile, tokenizerFile string
	// backendNames maps an advertised model id to the name the backend knows.
	backendNames map[string]string
	// defaultPrices are what the built-in model costs when a worker names no models
	// (--prices without --model).
	defaultPrices *wire.Prices
	logLevel      string
	tee           teeSettings
	pay           paySettings
	reference     referenceSettings
}

// paySettings say which ledger holds the node's channels (none: payments off).
type paySettings struct {
	ledgerURL string // a development ledger (cocoon-node ledger)
	tonConfig string // real TON: a liteserver global config URL or file
	devFund   uint64 // nanoTON to ask a development ledger's faucet for at start
}

// teeSettings say what the node runs in and which peers' attestation it trusts.
type teeSettings struct {
	provider     string // none, tdx or simulated
	policy       tee.Policy
	pccsURL      string // where TDX collateral comes from ("": Intel's PCS)
	noCollateral bool   // verify quotes' signatures only: the TCB status stays unknown
}

// override replaces *dst with v, a value from the file, unless v is zero: not set there.
func override[T comparable](dst *T, v T) {
	var zero T
	if v != zero {
		*dst = v
	}
}

// resolve turns the file config into settings over the defaults.
func (fc *fileConfig) resolve() (settings, error) {
	s := settings{node: node.DefaultConfig(), host: p2phost.DefaultConfig(), backendNames: map[string]string{}}
	if fc.Local {
		s.node = node.LocalConfig()
	}
	n := &s.node
	if fc.Role != "" {
		n.Role = node.Role(fc.Role)
	}
	override(&n.Network, fc.Network)
	if fc.DHTMode != "" {
		n.DHTMode = discovery.Mode(fc.DHTMode)
	}
	if fc.Bootstrap != nil {
		n.Bootstrap = fc.Bootstrap
	}
	override(&n.MinProxies, fc.MinProxies)
	override(&n.APIAddr, fc.Client.APIAddr)
	n.AdminAddr = fc.Admin.Addr
	key, err := fc.apiKey()
	if err != nil {
		return s, err
	}
	override(&n.APIKey, key)
	override(&n.MaxPrice, fc.Client.MaxPrice)
	if err := fc.resolveWorker(&s); err != nil {
		return s, err
	}
	override(&n.MaxBodyBytes, fc.Limits.MaxBodyBytes)
	override(&n.MaxTokens, fc.Limits.MaxTokens)
	override(&n.RequestTimeout, fc.Limits.RequestTimeout.Duration)
	override(&n.FirstTokenTimeout, fc.Limits.FirstTokenTimeout.Duration)
	override(&n.StallTimeout, fc.Limits.StallTimeout.Duration)
	override(&n.WholeAnswerTimeout, fc.Limits.WholeAnswerTimeout.Duration)
	fc.resolveHTTP(&n.HTTP)
	fc.resolveHost(&s.host)
	if s.dataDir, err = dataDirOr(fc.DataDir); err != nil {
		s.dataDir = ".cocoon" // no home directory: beside the working directory
	}
	s.logLevel = fc.LogLevel
	n.NoRequestLog = fc.RequestLog != nil && !*fc.RequestLog
	n.DisableSealing = fc.Client.DisableSealing
	if s.tee, err = fc.resolveTEE(); err != nil {
		return s, err
	}
	if err := fc.resolvePayments(&s); err != nil {
		return s, err
	}
	n.AllowUnattested = fc.TEE.AllowUnattested
	override(&n.AttestTTL, fc.TEE.AttestTTL.Duration)
	override(&n.MaxAttestations, fc.TEE.MaxAttestations)
	override(&n.MaxWorkers, fc.Gossip.MaxWorkers)
	override(&n.AdmitRate, fc.Gossip.AdmitRate)
	override(&n.AdmitBurst, fc.Gossip.AdmitBurst)
	if err := fc.resolveAudit(&s); err != nil {
		return s, err
	}
	return s, fc.resolveReputation(&n.Reputation)
}

// resolveReputation reads the [reputation] section: the operator's pins and bans by peer ID.
func (fc *fileConfig) resolveReputation(r *node.ReputationConfig) error {
	r.Off = fc.Reputation.Off
	override(&r.MinTrust, fc.Reputation.MinTrust)
	override(&r.PerPlatform, fc.Reputation.PerPlat)
	override(&r.ProbationAnswers, fc.Reputation.Probation)
	for _, list := range []struct {
		key string
		ids []string
		to  *[]peer.ID
	}{{"reputation.pin", fc.Reputation.Pin, &r.Pin}, {"reputation.ban", fc.Reputation.Ban, &r.Ban}} {
		for _, s := range list.ids {
			id, err := peer.Decode(s)
			if err != nil {
				return fmt.Errorf("config %s: %q is not a peer ID (want one as 'cocoon-node id' prints it): %w", list.key, s, err)
			}
			*list.to = append(*list.to, id)
		}
	}
	return nil
}

// resolveWorker reads the [worker] section: the models offered, at what prices, on which
// backend.
func (fc *fileConfig) resolveWorker(s *settings) error {
	n := &s.node
	override(&n.MaxActive, fc.Worker.MaxActive)
	override(&n.Coefficient, fc.Worker.PriceCoefficient)
	for _, m := range fc.Worker.Models {
		n.Models = append(n.Models, node.ModelConfig{ID: m.ID, Prices: wire.Prices{
			Prompt: m.Prices.Prompt, Cached: m.Prices.Cached, Completion: m.Prices.Completion, Reasoning: m.Prices.Reasoning}})
		name := m.BackendName
		if name == "" {
			id, err := wire.ParseModelID(m.ID)
			if err != nil {
				return fmt.Errorf("config worker.models: %w", err)
			}
			name = id.Name
		}
		s.backendNames[m.ID] = name
	}
	s.backendURL, s.backendKey = fc.Worker.BackendURL, fc.Worker.BackendAPIKey
	s.defaultPrices = fc.prices
	s.modelFile, s.tokenizerFile = fc.Worker.ModelFile, fc.Worker.TokenizerFile
	return nil
}

// resolveHost reads the listen addresses and the [host] section over the defaults in h.
func (fc *fileConfig) resolveHost(h *p2phost.Config) {
	if fc.Listen != nil {
		h.Listen = fc.Listen
	}
	override(&h.ConnsLow, fc.Host.ConnsLow)
	override(&h.ConnsHigh, fc.Host.ConnsHigh)
	override(&h.MaxConns, fc.Host.MaxConns)
	override(&h.MaxStreams, fc.Host.MaxStreams)
}

// resolvePayments reads the [payments] section: which ledger, and the channels' settings.
func (fc *fileConfig) resolvePayments(s *settings) error {
	n := &s.node
	p := &fc.Payments
	if p.Ledger != "" && p.TONConfig != "" {
		return errors.New("config payments: set ledger (development) or ton_config (real TON), not both")
	}
	if p.DevFund != 0 && p.Ledger == "" {
		return errors.New("config payments.dev_fund needs payments.ledger: only a development ledger has a faucet")
	}
	s.pay = paySettings{tonConfig: p.TONConfig, devFund: p.DevFund}
	if p.Ledger != "" {
		var err error
		if s.pay.ledgerURL, err = devLedgerURL(p.Ledger); err != nil {
			return err
		}
	}
	pc := &n.Payments
	pc.Testnet = p.Testnet
	override(&pc.Deposit, p.Deposit)
	override(&pc.FirstDeposit, p.FirstDeposit)
	override(&pc.UnearnedCap, p.UnearnedCap)
	override(&pc.UnearnedIdle, p.UnearnedIdle.Duration)
	override(&pc.WindowTokens, p.WindowTokens)
	override(&pc.Commission, p.Commission)
	override(&pc.Quarantine, p.Quarantine.Duration)
	override(&pc.ConditionalClose, p.ConditionalClose.Duration)
	override(&pc.WatchEvery, p.WatchEvery.Duration)
	override(&pc.SettleIdle, p.SettleIdle.Duration)
	override(&pc.DisputeFee, p.DisputeFee)
	return nil
}

// resolveHTTP reads the [http] section over the defaults in hc.
func (fc *fileConfig) resolveHTTP(hc *httpguard.Config) {
	hc.AllowedHosts, hc.AllowedOrigins = fc.HTTP.AllowedHosts, fc.HTTP.AllowedOrigins
	override(&hc.MaxConns, fc.HTTP.MaxConns)
	override(&hc.BodyTimeout, fc.HTTP.BodyTimeout.Duration)
	override(&hc.WriteTimeout, fc.HTTP.WriteTimeout.Duration)
	override(&hc.IdleTimeout, fc.HTTP.IdleTimeout.Duration)
}

// apiKey is the node's one bearer key, which guards a client's API and any node's admin
// endpoints: client.api_key or admin.api_key, whichever is set.
func (fc *fileConfig) apiKey() (string, error) {
	c, a := fc.Client.APIKey, fc.Admin.APIKey
	if c != "" && a != "" && c != a {
		return "", errors.New("config client.api_key and admin.api_key differ: a node has one key, for its API and its admin endpoints alike; set one")
	}
	if c != "" {
		return c, nil
	}
	return a, nil
}

// resolveTEE reads the [tee] section.
func (fc *fileConfig) resolveTEE() (teeSettings, error) {
	c := &fc.TEE
	ts := teeSettings{provider: c.Provider, pccsURL: c.PCCSURL, noCollateral: c.NoCollateral, policy: tee.DefaultPolicy()}
	switch ts.provider {
	case "":
		ts.provider = "none"
	case "none", "tdx", "simulated":
	default:
		return ts, fmt.Errorf("config tee.provider = %q: want none, tdx or simulated", c.Provider)
	}
	p := &ts.policy
	p.AllowSimulated, p.AllowDebug = c.AllowSimulated, c.AllowDebug
	if c.NoCollateral {
		p.MinTCB = tee.TCBUnknown
	}
	if c.MinTCB != "" {
		if c.NoCollateral {
			return ts, errors.New("config tee.min_tcb needs collateral: it cannot be set with tee.no_collateral")
		}
		st, err := tee.ParseTCBStatus(c.MinTCB)
		if err != nil {
			return ts, fmt.Errorf("config tee.min_tcb: %w", err)
		}
		p.MinTCB = st
	}
	for _, h := range c.AllowedImages {
		b, err := hex.DecodeString(h)
		if err != nil || len(b) != 32 {
			return ts, fmt.Errorf("config tee.allowed_images: %q is not a 64-digit hex SHA-256 image hash", h)
		}
		p.AllowedImages = append(p.AllowedImages, [32]byte(b))
	}
	for _, h := range c.AllowedMRTD {
		b, err := hex.DecodeString(h)
		if err != nil || len(b) != 48 {
			return ts, fmt.Errorf("config tee.allowed_mrtd: %q is not a 96-digit hex MRTD", h)
		}
		p.AllowedMRTD = append(p.AllowedMRTD, tee.Measurement(b))
	}
	return ts, nil
}

// dataDirOr returns dir, or the default data directory ~/.cocoon when dir is empty.
func dataDirOr(dir string) (string, error) {
	if dir != "" {
		return dir, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", usageError("no home directory: give --data-dir")
	}
	return filepath.Join(home, ".cocoon"), nil
}
