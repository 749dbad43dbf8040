package discovery

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	mh "github.com/multiformats/go-multihash"
)

// ProtocolPrefix keeps the mesh's DHT apart from IPFS's: its protocol is /cocoon/kad/1.0.0.
const ProtocolPrefix protocol.ID = "/cocoon"

// NetworkKey is the provider-record key every proxy of a network announces.
func NetworkKey(network string) cid.Cid { return key("cocoon/proxies/" + network) }

// ModelKey is the provider-record key of proxies that can route a model on a network.
func ModelKey(network, model string) cid.Cid {
	return key("cocoon/model/" + network + "/" + model)
}

func key(s string) cid.Cid {
	sum := sha256.Sum256([]byte(s))
	m, err := mh.Encode(sum[:], mh.SHA2_256)
	if err != nil {
		panic(err) // sha2-256 with a 32-byte digest always encodes
	}
	return cid.NewCidV1(cid.Raw, m)
}

// Mode says whether a node answers DHT queries for others.
type Mode string

// DHT modes.
const (
	ModeServer Mode = "server" // answers queries; required for bootstrap peers and proxies
	ModeClient Mode = "client" // only asks; for nodes that others cannot dial
)

// Config configures a Service.
type Config struct {
	Network   string          // network name; keys derive from it
	Mode      Mode            // DHT mode; empty means server
	Bootstrap []peer.AddrInfo // peers to join through; may be empty for the first node
	Logger    *slog.Logger
}

// Service is a node's handle on the DHT.
type Service struct {
	h   host.Host
	dht *dht.IpfsDHT
	cfg Config
	log *slog.Logger
}

// New starts the DHT on h. It does not connect anywhere yet: call Bootstrap.
func New(h host.Host, cfg Config) (*Service, error) {
	if cfg.Network == "" {
		return nil, errors.New("discovery: network name is empty")
	}
	mode := dht.ModeServer
	switch cfg.Mode {
	case "", ModeServer:
	case ModeClient:
		mode = dht.ModeClient
	default:
		return nil, fmt.Errorf("discovery: unknown DHT mode %q (want server or client)", cfg.Mode)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d, err := dht.New(h,
		dht.Mode(mode),
		dht.ProtocolPrefix(ProtocolPrefix),
		dht.DisableValues(), // the mesh stores only provider records
		dht.BootstrapPeers(cfg.Bootstrap...),
	)
	if err != nil {
		return nil, fmt.Errorf("discovery: start DHT: %w", err)
	}
	return &Service{h: h, dht: d, cfg: cfg, log: log}, nil
}

// DHT exposes the underlying DHT (for status and simulations).
func (s *Service) DHT() *dht.IpfsDHT { return s.dht }

// Close stops the DHT.
func (s *Service) Close() error { return s.dht.Close() }

// Bootstrap connects to the configured bootstrap peers and fills the routing table.
// It succeeds if at least one bootstrap peer answered, or if none were configured.
func (s *Service) Bootstrap(ctx context.Context) error {
	errs, ok := s.connectBootstrap(ctx)
	if err := s.dht.Bootstrap(ctx); err != nil {
		return fmt.Errorf("discovery: bootstrap: %w", err)
	}
	if len(errs) > 0 && ok == 0 {
		return fmt.Errorf("discovery: no bootstrap peer reachable: %w", errors.Join(errs...))
	}
	return nil
}

// connectBootstrap dials every bootstrap peer but this node, and returns the failures and
// how many answered.
func (s *Service) connectBootstrap(ctx context.Context) (errs []error, ok int) {
	var (
		wg sync.WaitGroup
		mu sync.Mutex
	)
	for _, ai := range s.cfg.Bootstrap {
		if ai.ID == s.h.ID() {
			continue
		}
		wg.Go(func() {
			err := s.h.Connect(ctx, ai)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", ai.ID.String(), err))
				return
			}
			ok++
		})
	}
	wg.Wait()
	return errs, ok
}

// rejoin dials the bootstrap peers again when the routing table is empty: they were not up
// yet when this node started (a user starting a worker before its proxy), or all its peers
// went away. Without it a lookup finds nothing until the DHT's next refresh, minutes later.
func (s *Service) rejoin(ctx context.Context) {
	if s.dht.RoutingTable().Size() > 0 || len(s.cfg.Bootstrap) == 0 {
		return
	}
	// A bootstrap peer that was down (a proxy restarting) is in the swarm's dial backoff,
	// which grows with every failed dial, this one's and the DHT's alike: clear it, or the
	// peer back up is not dialled again for up to minutes.
	if sw, ok := s.h.Network().(interface{ Backoff() *swarm.DialBackoff }); ok {
		for _, ai := range s.cfg.Bootstrap {
			sw.Backoff().Clear(ai.ID)
		}
	}
	if _, ok := s.connectBootstrap(ctx); ok > 0 {
		s.log.Info("reached a bootstrap peer", "peers", ok)
		_ = s.dht.Bootstrap(ctx) // fills the table from them
	}
}

// Provide announces this node under keys once. It fails while the routing table is empty.
func (s *Service) Provide(ctx context.Context, keys ...cid.Cid) error {
	for _, k := range keys {
		if err := s.dht.Provide(ctx, k, true); err != nil {
			return fmt.Errorf("discovery: provide %s: %w", k, err)
		}
	}
	return nil
}

// Advertise announces this node as a proxy for the network and for each model models()
// returns, retrying every retry until an announcement lands, renewing all keys every interval,
// and announcing a model as soon as it appears (checked every retry). It runs until ctx ends.
func (s *Service) Advertise(ctx context.Context, models func() []string, retry, interval time.Duration) {
	provided := map[cid.Cid]time.Time{} // key -> when it last landed
	announced := false
	for {
		keys := []cid.Cid{NetworkKey(s.cfg.Network)}
		if models != nil {
			for _, m := range models() {
				keys = append(keys, ModelKey(s.cfg.Network, m))
			}
		}
		for _, k := range keys {
			if last, ok := provided[k]; ok && time.Since(last) < interval {
				continue
			}
			pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			err := s.Provide(pctx, k)
			cancel()
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				s.log.Debug("DHT announcement failed, will retry", "err", err, "retry", retry)
				break
			}
			provided[k] = time.Now()
			if !announced {
				s.log.Info("announced as proxy in the DHT", "network", s.cfg.Network)
				announced = true
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(retry):
		}
	}
}

// FindProxies looks up proxies of the network, not counting this node, and calls found for
// each as soon as it arrives, until found returns false, max were found, or ctx ends.
func (s *Service) FindProxies(ctx context.Context, max int, found func(peer.AddrInfo) bool) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the lookup when we have enough
	n := 0
	for ai := range s.dht.FindProvidersAsync(ctx, NetworkKey(s.cfg.Network), max+1) {
		if ai.ID == s.h.ID() || ai.ID == "" {
			continue
		}
		n++
		if !found(ai) || n == max {
			return
		}
	}
}
