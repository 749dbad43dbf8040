package node_test

import (
	"context"
	"testing"
	"time"

	"github.com/xssnick/tonutils-go/address"

	"github.com/cocoon-mesh/cocoon/node"
	"github.com/cocoon-mesh/cocoon/node/localnet"
)

// A payer that died in the middle of a close leaves its channel marked closing and open on
// chain, its deposit locked. Its watcher resumes the close by itself: the payee co-signs, and
// receives exactly what it was paid.
func TestPayerResumesStalledClose(t *testing.T) {
	nw := startNet(t, localnet.Options{Proxies: 1, Workers: 1, Tune: func(c *node.Config) {
		c.Payments.WatchEvery = 100 * time.Millisecond
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client, proxy := nw.Client, nw.Proxies[0]
	if r := post(t, nw.ClientURL()+"/chat/completions", "", `{"model":"echo-test","messages":[{"role":"user","content":"pay for this"}]}`); r.status != 200 {
		t.Fatalf("request: %+v", r)
	}
	find := func(n *node.Node, role, state string) (node.ChannelStatus, bool) {
		for _, c := range n.Channels() {
			if c.Role == role && c.State == state {
				return c, true
			}
		}
		return node.ChannelStatus{}, false
	}
	var paid node.ChannelStatus
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c, ok1 := find(client, "payer", "open")
		p, ok2 := find(proxy, "payee", "open")
		if ok1 && ok2 && c.Paid > 0 && c.Paid == p.Paid {
			paid = c
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("payments did not settle: client %+v, proxy %+v", client.Channels(), proxy.Channels())
		}
	}
	wallet := address.MustParseAddr(proxy.Status().Wallet)
	before, err := nw.Ledger().Balance(ctx, wallet)
	if err != nil {
		t.Fatal(err)
	}

	if err := node.AbandonClose(ctx, client, proxy.ID()); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c, ok1 := find(client, "payer", "closed")
		p, ok2 := find(proxy, "payee", "closed")
		if ok1 && ok2 && c.ChannelID == paid.ChannelID && p.ChannelID == paid.ChannelID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stalled close was not resumed: client %+v, proxy %+v", client.Channels(), proxy.Channels())
		}
	}
	after, err := nw.Ledger().Balance(ctx, wallet)
	if err != nil {
		t.Fatal(err)
	}
	if after-before != paid.Paid {
		t.Fatalf("the close paid the proxy %d, the client had paid %d", after-before, paid.Paid)
	}
}
