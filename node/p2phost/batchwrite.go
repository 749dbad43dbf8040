package p2phost

import (
	"context"
	"net"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/core/sec"
	tptu "github.com/libp2p/go-libp2p/p2p/net/upgrader"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
)

// yamux writes every frame of every stream with its own write (libp2p disabled its write
// coalescing), so a request costs a dozen small writes per hop, each sealed by Noise on its own
// and sent with its own syscall. batchingNoise puts a group-commit writer between yamux and
// Noise: frames written while the previous batch is being sealed and sent go out together in
// the next one, as one Noise message and one syscall. An idle connection still sends each frame
// at once.
type batchingNoise struct{ *noise.Transport }

// newBatchingNoise has noise.New's signature, so libp2p.Security can build it.
func newBatchingNoise(id protocol.ID, key crypto.PrivKey, muxers []tptu.StreamMuxer) (sec.SecureTransport, error) {
	t, err := noise.New(id, key, muxers)
	if err != nil {
		return nil, err
	}
	return batchingNoise{t}, nil
}

func (t batchingNoise) SecureInbound(ctx context.Context, c net.Conn, p peer.ID) (sec.SecureConn, error) {
	return batched(t.Transport.SecureInbound(ctx, c, p))
}

func (t batchingNoise) SecureOutbound(ctx context.Context, c net.Conn, p peer.ID) (sec.SecureConn, error) {
	return batched(t.Transport.SecureOutbound(ctx, c, p))
}

func batched(sc sec.SecureConn, err error) (sec.SecureConn, error) {
	if err != nil {
		return nil, err
	}
	return &batchSecureConn{SecureConn: sc, bw: newBatchConn(sc)}, nil
}

// batchSecureConn is a Noise session whose writes go through a batchConn.
type batchSecureConn struct {
	sec.SecureConn
	bw *batchConn
}

func (c *batchSecureConn) Write(p []byte) (int, error) { return c.bw.Write(p) }
func (c *batchSecureConn) Close() error                { return c.bw.Close() }

// maxBatch bounds the bytes waiting to be written; a writer blocks beyond it (backpressure).
const maxBatch = 256 << 10

// batchConn is a net.Conn whose writes are sent by one flusher goroutine, which takes
// everything written since its last write.
type batchConn struct {
	net.Conn
	mu      sync.Mutex
	cond    sync.Cond
	pending []byte // written, not yet sent
	spare   []byte // the flusher's buffer, swapped with pending
	err     error  // the first write error; every later Write returns it
	closed  bool
	done    chan struct{} // closed when the flusher exits
}

func newBatchConn(c net.Conn) *batchConn {
	b := &batchConn{Conn: c, done: make(chan struct{})}
	b.cond.L = &b.mu
	go b.flush()
	return b
}

// Write queues p. It fails only once an earlier write failed or the connection closed.
func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(b.pending) >= maxBatch && b.err == nil && !b.closed {
		b.cond.Wait()
	}
	if b.err != nil {
		return 0, b.err
	}
	if b.closed {
		return 0, net.ErrClosed
	}
	b.pending = append(b.pending, p...)
	b.cond.Broadcast()
	return len(p), nil
}

// flush sends whatever is pending, until the connection closes and nothing is left.
func (b *batchConn) flush() {
	defer close(b.done)
	b.mu.Lock()
	for {
		for len(b.pending) == 0 && !b.closed && b.err == nil {
			b.cond.Wait()
		}
		if b.err != nil || len(b.pending) == 0 {
			b.mu.Unlock()
			return
		}
		b.pending, b.spare = b.spare[:0], b.pending
		b.cond.Broadcast() // room for blocked writers
		b.mu.Unlock()
		_, err := b.Conn.Write(b.spare)
		b.mu.Lock()
		if err != nil && b.err == nil {
			b.err = err
		}
		if len(b.spare) > maxBatch {
			b.spare = nil // do not keep a burst's buffer for the life of the connection
		}
	}
}

// closeGrace bounds how long Close waits for pending bytes to go out; closing the socket then
// also ends a write stuck on a peer that stopped reading.
const closeGrace = time.Second

// Close sends what is pending, waiting at most closeGrace, then closes the connection.
func (b *batchConn) Close() error {
	b.mu.Lock()
	b.closed = true
	b.cond.Broadcast()
	b.mu.Unlock()
	t := time.NewTimer(closeGrace)
	defer t.Stop()
	select {
	case <-b.done:
	case <-t.C:
	}
	return b.Conn.Close()
}
