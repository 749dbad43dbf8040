package node_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipfs/go-datastore"

	"github.com/cocoon-mesh/cocoon/internal/syncbuf"
	"github.com/cocoon-mesh/cocoon/node"
	"github.com/cocoon-mesh/cocoon/node/localnet"
)

// A payer's disk that stalls does not stall its answers: a voucher due mid-answer is signed
// and made durable beside the answer, which goes on within the payee's window, and is sent
// once it is on disk. Nothing goes out unpaid for good: once the disk is back, the payee
// holds a voucher for the whole answer.
func TestAnswersDoNotWaitForTheirVoucher(t *testing.T) {
	disk := &heldDisk{}
	nw := startNet(t, localnet.Options{Proxies: 1, Workers: 1,
		NodeStore: func(name string, d datastore.Batching) datastore.Batching {
			if name != "client" {
				return d
			}
			disk.Batching = d
			return disk
		}})
	client, proxy := nw.Client, nw.Proxies[0]
	served(t, nw, "open the channel")
	settled := func() (node.ChannelStatus, node.ChannelStatus, bool) {
		c, ok1 := channelWhere(client, func(c node.ChannelStatus) bool { return c.Role == "payer" && c.State == "open" })
		p, ok2 := channelWhere(proxy, func(c node.ChannelStatus) bool { return c.Role == "payee" && c.State == "open" })
		return c, p, ok1 && ok2 && c.Owed == 0 && p.Owed == 0 && c.Paid == p.Paid
	}
	var before node.ChannelStatus
	eventually(t, 10*time.Second, func() bool {
		var ok bool
		before, _, ok = settled()
		return ok
	}, func() string { return fmt.Sprintf("the first answer was not settled: %+v", client.Channels()) })

	// 120 completion tokens: past a quarter of the default 256-token window, so a voucher falls
	// due mid-answer, and within the window, so the proxy never has to wait for it.
	disk.hold()
	prompt := strings.TrimSpace(strings.Repeat("word ", 120))
	done := make(chan result, 1)
	go func() {
		done <- post(t, nw.ClientURL()+"/chat/completions", "",
			`{"model":"echo-test","stream":true,"max_tokens":120,"messages":[{"role":"user","content":"`+prompt+`"}]}`)
	}()
	var r result
	select {
	case r = <-done:
	case <-time.After(20 * time.Second):
		disk.release()
		t.Fatal("the answer waited for the held disk: it finished only once the disk was released")
	}
	if r.status != 200 || !strings.Contains(r.body, "[DONE]") {
		disk.release()
		t.Fatalf("answer: %+v", r)
	}
	eventually(t, 10*time.Second, func() bool { return disk.waits.Load() > 0 }, func() string {
		disk.release()
		return "no voucher write was held: the answer never fell due for a voucher"
	})
	if _, p, _ := settled(); p.Paid != before.Paid || p.Waits != 0 {
		disk.release()
		t.Fatalf("the proxy was paid %d before the client's voucher was durable (before: %d), or held back %d chunks", p.Paid, before.Paid, p.Waits)
	}

	disk.release()
	eventually(t, 10*time.Second, func() bool {
		c, _, ok := settled()
		return ok && c.Paid > before.Paid
	}, func() string {
		return fmt.Sprintf("the answer was not paid once the disk was back: %+v", client.Channels())
	})
}

// heldDisk is a datastore whose commits of payer channel records wait while it is held.
type heldDisk struct {
	datastore.Batching
	mu    sync.Mutex
	held  chan struct{} // closed on release; nil while not held
	waits atomic.Int32  // commits that waited
}

func (d *heldDisk) hold() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.held = make(chan struct{})
}

func (d *heldDisk) release() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.held != nil {
		close(d.held)
		d.held = nil
	}
}

func (d *heldDisk) Batch(ctx context.Context) (datastore.Batch, error) {
	b, err := d.Batching.Batch(ctx)
	if err != nil {
		return nil, err
	}
	return &heldBatch{Batch: b, d: d}, nil
}

type heldBatch struct {
	datastore.Batch
	d     *heldDisk
	payer bool
}

func (b *heldBatch) Put(ctx context.Context, k datastore.Key, v []byte) error {
	b.payer = b.payer || strings.HasPrefix(k.String(), "/chan/payer/")
	return b.Batch.Put(ctx, k, v)
}

func (b *heldBatch) Commit(ctx context.Context) error {
	b.d.mu.Lock()
	held := b.d.held
	b.d.mu.Unlock()
	if b.payer && held != nil {
		b.d.waits.Add(1)
		<-held
	}
	return b.Batch.Commit(ctx)
}

// A voucher for a non-streamed answer falls due as its one chunk arrives and goes out after
// the answer's final frame: the payee keeps reading until the payer closes the stream, so
// the voucher arrives there, with no bill and no settling over the channel protocol (here
// held off for an hour).
func TestVouchersFollowTheWholeAnswer(t *testing.T) {
	nw := startNet(t, localnet.Options{Proxies: 1, Workers: 1, Tune: func(c *node.Config) {
		c.Payments.FlushAfter = time.Hour
	}})
	prompt := strings.TrimSpace(strings.Repeat("word ", 120))
	if r := post(t, nw.ClientURL()+"/chat/completions", "",
		`{"model":"echo-test","max_tokens":120,"messages":[{"role":"user","content":"`+prompt+`"}]}`); r.status != 200 {
		t.Fatalf("answer: %+v", r)
	}
	eachHop(t, nw, func(paid, held node.ChannelStatus) bool { return paid.Paid > 0 && held.Paid == paid.Paid })
}

// eachHop waits until both hops of nw (client to its one proxy, proxy to its one worker) have
// the payer's and the payee's channel in a state ok accepts, and returns the payees' channels.
func eachHop(t *testing.T, nw *localnet.Net, ok func(paid, held node.ChannelStatus) bool) map[string]node.ChannelStatus {
	t.Helper()
	held := map[string]node.ChannelStatus{}
	for _, hop := range []struct {
		name         string
		payer, payee *node.Node
	}{{"client to proxy", nw.Client, nw.Proxies[0]}, {"proxy to worker", nw.Proxies[0], nw.Workers[0]}} {
		var paid, in node.ChannelStatus
		eventually(t, 10*time.Second, func() bool {
			paid, _ = channelWhere(hop.payer, func(c node.ChannelStatus) bool { return c.Role == "payer" })
			in, _ = channelWhere(hop.payee, func(c node.ChannelStatus) bool { return c.Role == "payee" })
			return ok(paid, in)
		}, func() string { return fmt.Sprintf("%s: payer %+v, payee %+v", hop.name, paid, in) })
		held[hop.name] = in
	}
	return held
}

// A payee whose payer falls a whole credit window behind holds its answer back until a
// voucher comes, and counts each such wait: with a 16-token window, a 120-token answer waits
// at both hops, is served whole, and is paid in full.
func TestPayeesWaitWhenTheWindowBinds(t *testing.T) {
	var logs syncbuf.Buffer
	nw := startNet(t, localnet.Options{Proxies: 1, Workers: 1, Tune: func(c *node.Config) {
		c.Payments.WindowTokens = 16
	}, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	prompt := strings.TrimSpace(strings.Repeat("word ", 120))
	r := post(t, nw.ClientURL()+"/chat/completions", "",
		`{"model":"echo-test","stream":true,"max_tokens":120,"messages":[{"role":"user","content":"`+prompt+`"}]}`)
	if r.status != 200 || strings.Count(r.body, "word") != 120 {
		t.Fatalf("answer: %+v", r)
	}
	paidInFull := func(paid, held node.ChannelStatus) bool {
		return held.Paid > 0 && held.Paid == paid.Paid && held.Delivered == held.Paid
	}
	for hop, held := range eachHop(t, nw, paidInFull) {
		if held.Waits == 0 {
			t.Errorf("%s: a 120-token answer never waited for payment in a 16-token window", hop)
		}
	}
	// Each payee tells its operator, once a minute at most, with the knob to turn.
	if n := strings.Count(logs.String(), "answers wait for payment"); n != 2 || !strings.Contains(logs.String(), "payments.window_tokens") {
		t.Errorf("%d log lines about waiting for payment, want one per payee:\n%s", n, logs.String())
	}
}
