package node

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cocoon-mesh/cocoon/node/wire"
)

// clientState is what a client tracks beyond the common node.
type clientState struct {
	next atomic.Uint64 // round-robin position over the connected proxies

	idPrefix string        // random per client process
	ids      atomic.Uint64 // requests numbered after idPrefix

	mu    sync.Mutex
	names map[peer.ID]string // proxies as text, for response headers
}

// requestID names a request uniquely without a system call: a random prefix chosen at start
// and a counter.
func (c *clientState) requestID() string {
	b := make([]byte, 0, len(c.idPrefix)+14)
	b = append(b, c.idPrefix...)
	b = append(b, '-')
	return string(strconv.AppendUint(b, c.ids.Add(1), 36))
}

// peerName returns p as text, encoding each proxy's ID once (the cache is emptied when it
// grows past a few hundred, so churn cannot grow it without bound).
func (c *clientState) peerName(p peer.ID) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.names[p]; ok {
		return s
	}
	if c.names == nil || len(c.names) > 256 {
		c.names = make(map[peer.ID]string)
	}
	s := p.String()
	c.names[p] = s
	return s
}

// startClient makes the node a client: it stays connected to a few proxies, follows the
// capacity gossip to know what the mesh offers, and serves the OpenAI API.
func (n *Node) startClient() error {
	n.keeper = n.disc.NewKeeper(n.cfg.MinProxies, n.cfg.DiscoveryInterval, nil)
	n.goLoop(n.keeper.Run)
	n.goLoop(n.readAdverts)
	n.every(n.cfg.WorkerTTL/4, n.expireWorkers)
	ln, err := net.Listen("tcp", n.cfg.APIAddr)
	if err != nil {
		return &ConfigError{"api_addr", n.cfg.APIAddr, "cannot listen: " + err.Error()}
	}
	n.apiLn = ln
	n.api = &http.Server{Handler: n.apiHandler(), ReadHeaderTimeout: 10 * time.Second}
	n.wg.Go(func() {
		if err := n.api.Serve(ln); err != nil && err != http.ErrServerClosed {
			n.log.Error("API server stopped", "err", err)
		}
	})
	n.log.Info("client API listening", "url", "http://"+ln.Addr().String()+"/v1")
	return nil
}

// APIAddr is the address the client API listens on ("" for other roles).
func (n *Node) APIAddr() string {
	if n.apiLn == nil {
		return ""
	}
	return n.apiLn.Addr().String()
}

// chunkFunc receives one chunk of an answer; more reports that the next frame is already
// read, so the receiver can hold its flush. c.Data is valid only during the call.
type chunkFunc func(c *wire.Chunk, more bool) error

// infer sends one request into the mesh through a proxy and calls onChunk for each chunk of
// the answer, in order. While no chunk has arrived, a failing proxy is replaced by the next.
func (n *Node) infer(ctx context.Context, h wire.Header, body []byte, onChunk chunkFunc) (wire.Final, peer.ID, error) {
	proxies := n.keeper.Proxies()
	if len(proxies) == 0 {
		return wire.Final{}, "", wire.Errorf(wire.CodeUnavailable,
			"not connected to any proxy of network %q yet: check the bootstrap peers, or wait for discovery", n.cfg.Network)
	}
	first := int(n.client.next.Add(1))
	var lastErr error
	for i := 0; i < min(n.cfg.MaxAttempts, len(proxies)); i++ {
		p := proxies[(first+i)%len(proxies)]
		started, fin, err := n.inferVia(ctx, p, h, body, onChunk)
		if err == nil {
			return fin, p, nil
		}
		lastErr = err
		if started || ctx.Err() != nil || !asWireError(err).Code.Retryable() {
			break
		}
		n.log.Warn("proxy failed before the first token; trying another", "proxy", p.String(), "request", h.ID, "err", err)
	}
	return wire.Final{}, "", lastErr
}

// inferVia runs one attempt through proxy p.
func (n *Node) inferVia(ctx context.Context, p peer.ID, h wire.Header, body []byte, onChunk chunkFunc) (started bool, fin wire.Final, err error) {
	left, err := n.timeLeft(ctx)
	if err != nil {
		return false, fin, err
	}
	h.Timeout = left
	c, err := n.openCall(ctx, p, &h, body)
	if err != nil {
		if ctx.Err() != nil {
			return false, fin, context.Cause(ctx)
		}
		if n.h.Network().Connectedness(p) != network.Connected {
			n.keeper.Lost(p)
		}
		return false, fin, wire.Errorf(wire.CodeUnavailable, "cannot reach proxy %s: %v", p.String(), err)
	}
	for {
		t, payload, err := c.next()
		if err != nil {
			c.abort()
			if ctx.Err() != nil {
				return started, fin, context.Cause(ctx)
			}
			return started, fin, wire.Errorf(wire.CodeUnavailable, "proxy %s stopped answering: %v", p.String(), err)
		}
		switch t {
		case wire.FrameChunk:
			ch, err := wire.DecodeChunk(payload)
			if err != nil {
				c.abort()
				return started, fin, wire.Errorf(wire.CodeWorkerFailed, "malformed chunk: %v", err)
			}
			if err := onChunk(&ch, c.r.Buffered()); err != nil {
				c.abort()
				var we *wire.Error
				if errors.As(err, &we) {
					return true, fin, we // the chunk itself was bad
				}
				return true, fin, context.Canceled // our caller is gone
			}
			started = true
		case wire.FrameFinal:
			c.finish()
			fin, err := wire.DecodeFinal(payload)
			if err != nil {
				return true, fin, wire.Errorf(wire.CodeWorkerFailed, "malformed final message: %v", err)
			}
			return true, fin, nil
		case wire.FrameError:
			c.finish()
			we, err := wire.DecodeError(payload)
			if err != nil {
				return started, fin, wire.Errorf(wire.CodeWorkerFailed, "malformed error message: %v", err)
			}
			return started, fin, we
		default:
			c.abort()
			return started, fin, wire.Errorf(wire.CodeWorkerFailed, "proxy %s: %v", p.String(), unexpected(t))
		}
	}
}
