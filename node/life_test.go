package node_test

import (
	"context"
	"io"
	"net/http"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-datastore"

	"github.com/cocoon-mesh/cocoon/node"
	"github.com/cocoon-mesh/cocoon/node/localnet"
)

// Close returns only once everything a node started has ended: with streamed answers in
// flight on every hop, vouchers being paid and channels open, no goroutine runs the node's
// code once Close returned.
func TestNoGoroutineOutlivesClose(t *testing.T) {
	// Every disk write takes 50 ms, so vouchers are being made durable when the nodes close.
	slow := func(_ string, d datastore.Batching) datastore.Batching { return slowDisk{d} }
	nw := startNet(t, localnet.Options{Proxies: 1, Workers: 1, EchoTokenDelay: 5 * time.Millisecond, NodeStore: slow})
	served(t, nw, "open the channels")
	words := strings.TrimSpace(strings.Repeat("word ", 200))
	for range 4 { // each streams 200 tokens over about a second: in flight when the nodes close
		go func() {
			body := `{"model":"echo-test","stream":true,"max_tokens":200,"messages":[{"role":"user","content":"` + words + `"}]}`
			if r, err := http.Post(nw.ClientURL()+"/chat/completions", "application/json", strings.NewReader(body)); err == nil {
				_, _ = io.Copy(io.Discard, r.Body) // until the client closes
				r.Body.Close()
			}
		}()
	}
	worker, proxy := nw.Workers[0], nw.Proxies[0]
	eventually(t, 10*time.Second, func() bool { return worker.Status().Active > 0 }, func() string { return "no answer got under way" })
	// The proxy first, while its client and worker still run: it relays answers, is paid and
	// pays ahead, and settles.
	if err := proxy.Close(); err != nil {
		t.Logf("close the proxy: %v", err)
	}
	if left := nodeGoroutines(proxy.ID().String()); len(left) > 0 {
		t.Fatalf("%d goroutines run the proxy's code after its Close:\n\n%s", len(left), strings.Join(left, "\n\n"))
	}
	for _, n := range []*node.Node{nw.Client, worker} {
		if err := n.Close(); err != nil {
			t.Logf("close %s: %v", n.ID(), err)
		}
	}
	if left := nodeGoroutines(""); len(left) > 0 {
		t.Fatalf("%d goroutines run node code after every node closed:\n\n%s", len(left), strings.Join(left, "\n\n"))
	}
}

// slowDisk is a datastore whose batches take 50 ms to commit.
type slowDisk struct{ datastore.Batching }

func (d slowDisk) Batch(ctx context.Context) (datastore.Batch, error) {
	b, err := d.Batching.Batch(ctx)
	return slowBatch{b}, err
}

type slowBatch struct{ datastore.Batch }

func (b slowBatch) Commit(ctx context.Context) error {
	time.Sleep(50 * time.Millisecond)
	return b.Batch.Commit(ctx)
}

// nodeGoroutines are the goroutines, as the goroutine profile groups them, that run code of
// package node itself (not of its subpackages, nor the tests'), for the node with peer ID id
// (any node, when id is empty): a node labels its goroutines with its ID.
func nodeGoroutines(id string) []string {
	var b strings.Builder
	_ = pprof.Lookup("goroutine").WriteTo(&b, 1)
	var left []string
	for _, g := range strings.Split(b.String(), "\n\n") {
		if id != "" && !strings.Contains(g, `"cocoon_node":"`+id+`"`) {
			continue
		}
		if strings.Contains(g, "\tgithub.com/cocoon-mesh/cocoon/node.") {
			left = append(left, g)
		}
	}
	return left
}
