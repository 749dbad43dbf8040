package bench

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cocoon-mesh/cocoon/node"
	"github.com/cocoon-mesh/cocoon/node/p2phost"
	"github.com/cocoon-mesh/cocoon/node/wire"
)

func benchHosts(b *testing.B, plain bool) (host.Host, host.Host) {
	mk := func() host.Host {
		key, _, _ := crypto.GenerateEd25519Key(nil)
		hc := p2phost.DefaultConfig()
		hc.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
		hc.PlainWrites = plain
		h, err := p2phost.New(hc, key, slog.New(slog.DiscardHandler))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { h.Close() })
		return h
	}
	a, s := mk(), mk()
	if err := a.Connect(context.Background(), peer.AddrInfo{ID: s.ID(), Addrs: s.Addrs()}); err != nil {
		b.Fatal(err)
	}
	return a, s
}

// exchange serves and runs stream exchanges between a and s.
func serveExchange(s host.Host) {
	s.SetStreamHandler(node.InferProtocol, func(st network.Stream) {
		r := wire.NewReader(st, 1<<20)
		if _, _, err := r.ReadFrame(); err != nil {
			st.Reset()
			return
		}
		w := wire.NewWriter(st)
		w.WriteFrame(wire.FrameFinal, []byte("answer"))
		w.Flush()
		st.Close()
	})
}

// exchanges runs n exchanges from a to s with conc goroutines.
func exchanges(b *testing.B, a, s host.Host, n, conc int) {
	payload := make([]byte, 300)
	work := make(chan struct{}, n)
	for range n {
		work <- struct{}{}
	}
	close(work)
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for range work {
				st, err := a.NewStream(context.Background(), s.ID(), node.InferProtocol)
				if err != nil {
					b.Error(err)
					return
				}
				w := wire.NewWriter(st)
				w.WriteFrame(wire.FrameBody, payload)
				w.Flush()
				if _, _, err := wire.NewReader(st, 1<<20).ReadFrame(); err != nil {
					b.Error(err)
					return
				}
				st.Close()
			}
		})
	}
	wg.Wait()
}

// BenchmarkStreamExchange is one request/response on a new stream over a warm connection, the
// unit the mesh pays twice per request (client -> proxy -> worker), at concurrency 1 and 64,
// with writes batched under Noise and plain. Rounds of the two alternate in one process, so a
// change in machine speed hits both; cpu-ns/op is CPU per exchange, both ends included.
func BenchmarkStreamExchange(b *testing.B) {
	for _, conc := range []int{1, 64} {
		b.Run(fmt.Sprintf("conc=%d", conc), func(b *testing.B) {
			ab, sb := benchHosts(b, false)
			ap, sp := benchHosts(b, true)
			serveExchange(sb)
			serveExchange(sp)
			time.Sleep(200 * time.Millisecond) // identify: streams then negotiate lazily, as in the mesh
			var cpuBatched, cpuPlain time.Duration
			b.ResetTimer()
			for done := 0; done < b.N; {
				n := min(2000, b.N-done)
				t0 := processCPU()
				exchanges(b, ab, sb, n, conc)
				t1 := processCPU()
				exchanges(b, ap, sp, n, conc)
				cpuBatched += t1 - t0
				cpuPlain += processCPU() - t1
				done += n
			}
			b.ReportMetric(float64(cpuBatched)/float64(b.N), "batched-cpu-ns/op")
			b.ReportMetric(float64(cpuPlain)/float64(b.N), "plain-cpu-ns/op")
		})
	}
}
