package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	libp2pquic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
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

// HostConfig configures the libp2p host of a real node.
type HostConfig struct {
	Listen []string // multiaddrs, TCP and QUIC
	// ConnsLow and ConnsHigh are the connection manager's water marks: above High it trims
	// unprotected connections down to Low. Proxies and workers a node depends on are protected.
	ConnsLow, ConnsHigh int
	// MaxConns and MaxStreams cap the resource manager's system scope.
	MaxConns, MaxStreams int
	// MaxMemory caps the memory the resource manager lets streams and connections reserve.
	MaxMemory int64
}

// DefaultHostConfig is sized for a proxy with hundreds of workers and clients.
func DefaultHostConfig() HostConfig {
	return HostConfig{
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
func NewHost(cfg HostConfig, key crypto.PrivKey, log *slog.Logger) (host.Host, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rm, err := newResourceManager(cfg, log)
	if err != nil {
		return nil, err
	}
	cm, err := connmgr.NewConnManager(cfg.ConnsLow, cfg.ConnsHigh, connmgr.WithGracePeriod(time.Minute))
	if err != nil {
		return nil, fmt.Errorf("node: connection manager: %w", err)
	}
	h, err := libp2p.New(
		libp2p.Identity(key),
		libp2p.ListenAddrStrings(cfg.Listen...),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(libp2pquic.NewTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Security(libp2ptls.ID, libp2ptls.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(cm),
		libp2p.DisableRelay(),
	)
	if err != nil {
		return nil, fmt.Errorf("node: start libp2p host: %w", err)
	}
	return h, nil
}

func newResourceManager(cfg HostConfig, log *slog.Logger) (network.ResourceManager, error) {
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
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits), rcmgr.WithTraceReporter(&limitLogger{log: log}))
	if err != nil {
		return nil, fmt.Errorf("node: resource manager: %w", err)
	}
	return rm, nil
}

// limitLogger logs each resource-manager refusal, at most once a second per kind and scope,
// so an operator sees why a peer was turned away without a flood of lines under attack.
type limitLogger struct {
	log  *slog.Logger
	mu   sync.Mutex
	last map[string]time.Time
}

func (l *limitLogger) ConsumeEvent(e rcmgr.TraceEvt) {
	switch e.Type {
	case rcmgr.TraceBlockAddConnEvt, rcmgr.TraceBlockAddStreamEvt, rcmgr.TraceBlockReserveMemoryEvt:
	default:
		return
	}
	k := string(e.Type) + "|" + e.Name
	now := time.Now()
	l.mu.Lock()
	if l.last == nil {
		l.last = map[string]time.Time{}
	}
	if now.Sub(l.last[k]) < time.Second {
		l.mu.Unlock()
		return
	}
	l.last[k] = now
	l.mu.Unlock()
	l.log.Warn("resource limit refused a "+blockedWhat(e.Type), "scope", e.Name, "limit", fmt.Sprint(e.Limit),
		"conns_in", e.ConnsIn, "conns_out", e.ConnsOut, "streams_in", e.StreamsIn, "streams_out", e.StreamsOut, "memory", e.Memory)
}

func blockedWhat(t rcmgr.TraceEvtTyp) string {
	switch t {
	case rcmgr.TraceBlockAddConnEvt:
		return "connection"
	case rcmgr.TraceBlockAddStreamEvt:
		return "stream"
	}
	return "memory reservation"
}
