package p2phost

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	libp2pquic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
)

// identityKey is where a node keeps its libp2p private key in its datastore.
var identityKey = datastore.NewKey("/cocoon/identity")

// LoadOrCreateIdentity returns the node's identity key, creating and storing an Ed25519 key on
// first start so the peer ID survives restarts.
func LoadOrCreateIdentity(ctx context.Context, ds datastore.Datastore) (crypto.PrivKey, error) {
	raw, err := ds.Get(ctx, identityKey)
	switch {
	case err == nil:
		k, err := crypto.UnmarshalPrivateKey(raw)
		if err != nil {
			return nil, fmt.Errorf("node: identity key in the datastore is corrupt: %w", err)
		}
		return k, nil
	case !errors.Is(err, datastore.ErrNotFound):
		return nil, fmt.Errorf("node: read identity key: %w", err)
	}
	k, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		return nil, err
	}
	raw, err = crypto.MarshalPrivateKey(k)
	if err != nil {
		return nil, err
	}
	if err := ds.Put(ctx, identityKey, raw); err != nil {
		return nil, fmt.Errorf("node: store identity key: %w", err)
	}
	return k, nil
}

// Config configures the libp2p host of a real node.
type Config struct {
	Listen []string // multiaddrs, TCP and QUIC
	// ConnsLow and ConnsHigh are the connection manager's water marks: above High it trims
	// unprotected connections down to Low. Proxies and workers a node depends on are protected.
	ConnsLow, ConnsHigh int
	// MaxConns and MaxStreams cap the resource manager's system scope.
	MaxConns, MaxStreams int
	// MaxMemory caps the memory the resource manager lets streams and connections reserve.
	MaxMemory int64
	// PlainWrites turns off batching writes under Noise (batchwrite.go), for comparisons.
	PlainWrites bool
	// Transports, when set, replace TCP and QUIC over this machine's sockets (and the check
	// that Listen's ports are free): a simulation passes QUIC over its in-memory network.
	Transports []libp2p.Option
}

// DefaultConfig is sized for a proxy with hundreds of workers and clients.
func DefaultConfig() Config {
	return Config{
		Listen:     []string{"/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1"},
		ConnsLow:   600,
		ConnsHigh:  1000,
		MaxConns:   4096,
		MaxStreams: 65536,
		MaxMemory:  4 << 30,
	}
}

// NewHost builds a libp2p host: TCP and QUIC, Noise and TLS, yamux, a resource manager whose
// refusals are logged, and a connection manager.
func New(cfg Config, key crypto.PrivKey, log *slog.Logger) (host.Host, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	transports := cfg.Transports
	if transports == nil {
		if err := checkFree(cfg.Listen); err != nil {
			return nil, fmt.Errorf("node: %w", err)
		}
		transports = []libp2p.Option{libp2p.Transport(tcp.NewTCPTransport), libp2p.Transport(libp2pquic.NewTransport)}
	}
	rm, err := newResourceManager(cfg, log)
	if err != nil {
		return nil, err
	}
	cm, err := connmgr.NewConnManager(cfg.ConnsLow, cfg.ConnsHigh, connmgr.WithGracePeriod(time.Minute))
	if err != nil {
		return nil, fmt.Errorf("node: connection manager: %w", err)
	}
	security := libp2p.Security(noise.ID, newBatchingNoise)
	if cfg.PlainWrites {
		security = libp2p.Security(noise.ID, noise.New)
	}
	h, err := libp2p.New(append(transports,
		libp2p.Identity(key),
		libp2p.ListenAddrStrings(cfg.Listen...),
		security,
		libp2p.Security(libp2ptls.ID, libp2ptls.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(cm),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(), // nothing exports them, and they cost CPU per stream
		libp2p.SwarmOpts(swarm.WithDialRanker(tcpFirst)),
	)...)
	if err != nil {
		return nil, fmt.Errorf("node: start libp2p host: %w", err)
	}
	return h, nil
}

// quicDelay is how long a dial waits for TCP before it tries QUIC as well.
const quicDelay = 300 * time.Millisecond

// tcpFirst ranks TCP addresses first and QUIC after quicDelay. libp2p's default prefers QUIC;
// we prefer TCP because, with writes batched under Noise (batchwrite.go), an inference request
// costs markedly less CPU over TCP + yamux than over QUIC (measured with cocoon-node bench).
// Peers reachable only over QUIC are dialled at once.
func tcpFirst(addrs []ma.Multiaddr) []network.AddrDelay {
	hasTCP := false
	for _, a := range addrs {
		if isTCP(a) {
			hasTCP = true
			break
		}
	}
	out := make([]network.AddrDelay, 0, len(addrs))
	for _, a := range addrs {
		d := time.Duration(0)
		if hasTCP && !isTCP(a) {
			d = quicDelay
		}
		out = append(out, network.AddrDelay{Addr: a, Delay: d})
	}
	return out
}

func isTCP(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_TCP)
	return err == nil
}

func newResourceManager(cfg Config, log *slog.Logger) (network.ResourceManager, error) {
	peerLimits := rcmgr.ResourceLimits{
		Streams:         rcmgr.LimitVal(cfg.MaxStreams / 4),
		StreamsInbound:  rcmgr.LimitVal(cfg.MaxStreams / 8),
		StreamsOutbound: rcmgr.LimitVal(cfg.MaxStreams / 8),
		Memory:          rcmgr.LimitVal64(cfg.MaxMemory / 8),
	}
	partial := rcmgr.PartialLimitConfig{
		System: rcmgr.ResourceLimits{
			Conns:           rcmgr.LimitVal(cfg.MaxConns),
			ConnsInbound:    rcmgr.LimitVal(cfg.MaxConns),
			ConnsOutbound:   rcmgr.LimitVal(cfg.MaxConns),
			Streams:         rcmgr.LimitVal(cfg.MaxStreams),
			StreamsInbound:  rcmgr.LimitVal(cfg.MaxStreams / 2),
			StreamsOutbound: rcmgr.LimitVal(cfg.MaxStreams / 2),
			FD:              rcmgr.LimitVal(cfg.MaxConns),
			Memory:          rcmgr.LimitVal64(cfg.MaxMemory),
		},
		Transient: rcmgr.ResourceLimits{
			Conns:   rcmgr.LimitVal(cfg.MaxConns / 4),
			Streams: rcmgr.LimitVal(cfg.MaxStreams / 16),
		},
		PeerDefault:         peerLimits,
		ProtocolDefault:     rcmgr.ResourceLimits{Streams: rcmgr.LimitVal(cfg.MaxStreams / 2)},
		ProtocolPeerDefault: peerLimits,
		ServiceDefault:      rcmgr.ResourceLimits{Streams: rcmgr.LimitVal(cfg.MaxStreams / 2)},
		ServicePeerDefault:  peerLimits,
	}
	limits := partial.Build(rcmgr.DefaultLimits.AutoScale())
	// No rcmgr tracing or metrics: both timestamp and account every stream (measured at about
	// 7% of a proxy's CPU). Refusals are logged by limitLogger around the manager instead.
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits), rcmgr.WithMetricsDisabled())
	if err != nil {
		return nil, fmt.Errorf("node: resource manager: %w", err)
	}
	return &limitLogger{ResourceManager: rm, log: log}, nil
}

// limitLogger logs each connection or stream the resource manager refuses, at most once a
// second per kind, so an operator sees why a peer was turned away without a flood under attack.
type limitLogger struct {
	network.ResourceManager
	log    *slog.Logger
	mu     sync.Mutex
	last   map[string]time.Time
	counts map[string]uint64 // refusals by kind and direction, e.g. "stream inbound"
}

// Refusals counts what the resource manager refused since start, by kind and direction
// ("connection inbound", "stream outbound"...): node's metrics export it.
func (l *limitLogger) Refusals() map[string]uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.counts)
}

// OpenConnection admits or refuses a new connection.
func (l *limitLogger) OpenConnection(dir network.Direction, usefd bool, endpoint ma.Multiaddr) (network.ConnManagementScope, error) {
	s, err := l.ResourceManager.OpenConnection(dir, usefd, endpoint)
	if err != nil {
		l.refused("connection", dir, err, "remote", endpoint.String())
	}
	return s, err
}

// OpenStream admits or refuses a new stream.
func (l *limitLogger) OpenStream(p peer.ID, dir network.Direction) (network.StreamManagementScope, error) {
	s, err := l.ResourceManager.OpenStream(p, dir)
	if err != nil {
		l.refused("stream", dir, err, "peer", p.String())
	}
	return s, err
}

func (l *limitLogger) refused(what string, dir network.Direction, err error, kv ...any) {
	k := what + " " + strings.ToLower(dir.String())
	now := time.Now()
	l.mu.Lock()
	if l.last == nil {
		l.last, l.counts = map[string]time.Time{}, map[string]uint64{}
	}
	l.counts[k]++
	if now.Sub(l.last[k]) < time.Second {
		l.mu.Unlock()
		return
	}
	l.last[k] = now
	l.mu.Unlock()
	l.log.Warn("resource limit refused a "+what, append([]any{"direction", dir.String(), "err", err}, kv...)...)
}
