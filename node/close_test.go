package node_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tlb"
	"github.com/xssnick/tonutils-go/tvm/cell"

	"github.com/cocoon-mesh/cocoon/node"
	"github.com/cocoon-mesh/cocoon/node/localnet"
	"github.com/cocoon-mesh/cocoon/ton/ledger"
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
	served(t, nw, "pay for this")
	find := func(n *node.Node, role, state string) (node.ChannelStatus, bool) {
		return channelWhere(n, func(c node.ChannelStatus) bool { return c.Role == role && c.State == state })
	}
	var paid node.ChannelStatus
	eventually(t, 10*time.Second, func() bool {
		c, ok1 := find(client, "payer", "open")
		p, ok2 := find(proxy, "payee", "open")
		paid = c
		return ok1 && ok2 && c.Paid > 0 && c.Paid == p.Paid
	}, func() string {
		return fmt.Sprintf("payments did not settle: client %+v, proxy %+v", client.Channels(), proxy.Channels())
	})
	wallet := address.MustParseAddr(proxy.Status().Wallet)
	before, err := nw.Ledger().Balance(ctx, wallet)
	if err != nil {
		t.Fatal(err)
	}

	if err := node.AbandonClose(ctx, client, proxy.ID()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() bool {
		c, ok1 := find(client, "payer", "closed")
		p, ok2 := find(proxy, "payee", "closed")
		return ok1 && ok2 && c.ChannelID == paid.ChannelID && p.ChannelID == paid.ChannelID
	}, func() string {
		return fmt.Sprintf("the stalled close was not resumed: client %+v, proxy %+v", client.Channels(), proxy.Channels())
	})
	after, err := nw.Ledger().Balance(ctx, wallet)
	if err != nil {
		t.Fatal(err)
	}
	if after-before != paid.Paid {
		t.Fatalf("the close paid the proxy %d, the client had paid %d", after-before, paid.Paid)
	}
}

// A payer that died while opening a channel holds a record of a channel that never reached
// the chain. Its next payment must not try to resume that channel (the payee would refuse it
// forever): the record is marked closing and payments go on over a channel that exists.
func TestPayerSkipsAnOpenCutShort(t *testing.T) {
	nw := startNet(t, localnet.Options{Proxies: 1, Workers: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client, proxy := nw.Client, nw.Proxies[0]
	served(t, nw, "before the crash")
	orphan, err := node.OrphanChannel(ctx, client, proxy.ID())
	if err != nil {
		t.Fatal(err)
	}
	served(t, nw, "after the crash")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		states := map[string]string{}
		var open node.ChannelStatus
		for _, c := range client.Channels() {
			states[c.ChannelID] = c.State
			if c.Role == "payer" && c.State == "open" {
				open = c
			}
		}
		if states[orphan] != "closing" {
			t.Fatalf("the channel cut short is %q, want closing: %+v", states[orphan], client.Channels())
		}
		if open.ChannelID == orphan {
			t.Fatalf("the client pays on the channel cut short: %+v", open)
		}
		if open.ChannelID != "" && open.Paid > 0 && open.Owed == 0 {
			return // paid in full on a channel that exists
		}
		if time.Now().After(deadline) {
			t.Fatalf("the client did not pay for its request: %+v", client.Channels())
		}
	}
}

// lostConfirmation is a ledger whose first OpenChannel goes through but reports
// ErrUnconfirmed, as a chain does whose confirmation never arrived.
type lostConfirmation struct {
	ledger.Ledger
	lost atomic.Pointer[address.Address] // the channel whose confirmation was lost
}

func (l *lostConfirmation) OpenChannel(ctx context.Context, from, channel *address.Address, init *tlb.StateInit, body *cell.Cell, value uint64) (ledger.Receipt, error) {
	r, err := l.Ledger.OpenChannel(ctx, from, channel, init, body, value)
	if err == nil && l.lost.CompareAndSwap(nil, channel) {
		return ledger.Receipt{}, fmt.Errorf("%w: timed out waiting for the transaction", ledger.ErrUnconfirmed)
	}
	return r, err
}

// A payer whose channel deployment landed but was never confirmed keeps its record, and its
// next attempt pays on that channel: the deposit is neither forgotten nor locked.
func TestPayerKeepsAnUnconfirmedOpen(t *testing.T) {
	var lc *lostConfirmation
	nw := startNet(t, localnet.Options{Proxies: 1, Workers: 1, NodeLedger: func(name string, dev ledger.Ledger) ledger.Ledger {
		if name != "client" {
			return dev
		}
		lc = &lostConfirmation{Ledger: dev}
		return lc
	}})
	client := nw.Client
	servedOnce(t, nw)
	lost := lc.lost.Load()
	if lost == nil {
		t.Fatal("the client's open was never unconfirmed")
	}
	var payer []node.ChannelStatus
	for _, c := range client.Channels() {
		if c.Role == "payer" {
			payer = append(payer, c)
		}
	}
	// One channel: the unconfirmed one, resumed. Another would mean its deposit was forgotten.
	if len(payer) != 1 || payer[0].State != "open" || payer[0].Address != lost.String() {
		t.Fatalf("the client's channels after an unconfirmed open: %+v", payer)
	}
}

// lateDeployment is a ledger whose first OpenChannel is held back and reported unconfirmed,
// until land sends it: a deployment that lands long after its payer gave up on it.
type lateDeployment struct {
	ledger.Ledger
	mu   sync.Mutex
	held func(context.Context) (ledger.Receipt, error) // the deployment held back; nil once sent
	addr *address.Address                              // its channel
}

func (l *lateDeployment) OpenChannel(ctx context.Context, from, channel *address.Address, init *tlb.StateInit, body *cell.Cell, value uint64) (ledger.Receipt, error) {
	l.mu.Lock()
	first := l.addr == nil
	if first {
		l.addr = channel
		l.held = func(ctx context.Context) (ledger.Receipt, error) {
			return l.Ledger.OpenChannel(ctx, from, channel, init, body, value)
		}
	}
	l.mu.Unlock()
	if first {
		return ledger.Receipt{}, fmt.Errorf("%w: timed out waiting for the transaction", ledger.ErrUnconfirmed)
	}
	return l.Ledger.OpenChannel(ctx, from, channel, init, body, value)
}

// land sends the deployment held back and returns its channel.
func (l *lateDeployment) land(ctx context.Context) (*address.Address, error) {
	l.mu.Lock()
	held, addr := l.held, l.addr
	l.held = nil
	l.mu.Unlock()
	if held == nil {
		return nil, errors.New("no deployment held back")
	}
	_, err := held(ctx)
	return addr, err
}

// A deployment that lands after its payer moved to another channel leaves a deposit in a
// channel the payee never heard of. The payer holds the payee's signature over its empty
// semichannel from before the deployment, so its watcher closes the channel alone and the
// deposit comes back after the quarantine.
func TestPayerRecoversADeploymentThatLandedLate(t *testing.T) {
	var late *lateDeployment
	var skew atomic.Int64 // how far the ledger's clock is ahead of ours
	const quarantine = time.Minute
	nw := startNet(t, localnet.Options{Proxies: 1, Workers: 1,
		LedgerNow: func() time.Time { return time.Now().Add(time.Duration(skew.Load())) },
		Tune: func(c *node.Config) {
			c.Payments.Quarantine, c.Payments.ConditionalClose = quarantine, time.Second
			c.Payments.WatchEvery = 100 * time.Millisecond
		},
		NodeLedger: func(name string, dev ledger.Ledger) ledger.Ledger {
			if name != "client" {
				return dev
			}
			late = &lateDeployment{Ledger: dev}
			return late
		}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	client := nw.Client
	servedOnce(t, nw)
	wallet := address.MustParseAddr(client.Status().Wallet)
	landed, err := late.land(ctx)
	if err != nil {
		t.Fatal(err)
	}
	atLanding, err := nw.Ledger().Balance(ctx, wallet)
	if err != nil {
		t.Fatal(err)
	}
	state := func() string {
		for _, c := range client.Channels() {
			if c.Role == "payer" && c.Address == landed.String() {
				return c.State
			}
		}
		return "missing"
	}
	// The watcher finds the channel closing and open on chain, the payee cannot co-sign a
	// close of a channel it never heard of, so the client closes alone.
	var cs ledger.ChannelState
	eventually(t, 20*time.Second, func() bool {
		cs, err = nw.Ledger().Channel(ctx, landed)
		return err == nil && cs.Storage.Quarantine != nil
	}, func() string {
		return fmt.Sprintf("the client did not start closing the channel that landed late (%s): %+v, %v", state(), cs, err)
	})
	skew.Add(int64(quarantine + 3*time.Second))
	eventually(t, 20*time.Second, func() bool { return state() == "closed" }, func() string {
		return fmt.Sprintf("the channel that landed late is %s, want closed", state())
	})
	after, err := nw.Ledger().Balance(ctx, wallet)
	if err != nil {
		t.Fatal(err)
	}
	// Two dispute fees went out with the close's messages; what their gas did not use came
	// back with the deposit.
	var deposit uint64
	for _, c := range client.Channels() {
		if c.Address == landed.String() {
			deposit = c.Deposit
		}
	}
	fees := 2 * client.Config().Payments.DisputeFee
	if after < atLanding+deposit-fees {
		t.Fatalf("the client's wallet went from %d to %d once the late channel closed: want the deposit of %d back, less at most %d of fees",
			atLanding, after, deposit, fees)
	}
}

// A channel that has paid its payee and then gone quiet for payments.settle_idle is closed by
// the payee, so its earnings reach its wallet even if the payer never comes back; the payer
// opens a new channel when it next needs one. A channel that paid nothing is closed by its
// payer after twice as long, and its deposit leaves the contract.
func TestIdleChannelsAreSettled(t *testing.T) {
	nw := startNet(t, localnet.Options{Proxies: 2, Workers: 1, Tune: func(c *node.Config) {
		c.Payments.WatchEvery, c.Payments.SettleIdle = 100*time.Millisecond, time.Second
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	worker := nw.Workers[0]
	wallet := address.MustParseAddr(worker.Status().Wallet)
	before, err := nw.Ledger().Balance(ctx, wallet)
	if err != nil {
		t.Fatal(err)
	}
	// One request: one proxy's channels pay, the other proxy's stay unpaid.
	served(t, nw, "pay for this, then go quiet")
	wait := func(what string, n *node.Node, role string, paid bool) (c node.ChannelStatus) {
		t.Helper()
		eventually(t, 15*time.Second, func() bool {
			var ok bool
			c, ok = channelWhere(n, func(ch node.ChannelStatus) bool {
				return ch.Role == role && ch.State == "closed" && (ch.Paid > 0) == paid
			})
			return ok
		}, func() string { return fmt.Sprintf("%s: %+v", what, n.Channels()) })
		return c
	}
	earned := wait("the worker did not close its idle channel", worker, "payee", true)
	after, err := nw.Ledger().Balance(ctx, wallet)
	if err != nil {
		t.Fatal(err)
	}
	if after-before != earned.Paid {
		t.Fatalf("the worker's wallet went up %d, the channel paid it %d", after-before, earned.Paid)
	}

	// The client's channel to the proxy it did not use: closed by the client, its deposit
	// out of the contract.
	unused := wait("the client did not close its unused channel", nw.Client, "payer", false)
	cs, err := nw.Ledger().Channel(ctx, address.MustParseAddr(unused.Address))
	if err != nil {
		t.Fatal(err)
	}
	if cs.Balance >= unused.Deposit/10 {
		t.Fatalf("the unused channel's contract still holds %d of its deposit %d", cs.Balance, unused.Deposit)
	}
	served(t, nw, "after the settlement") // on a new channel
}

// servedOnce asks nw's client until a request is served (and paid): the first attempts may
// fail while a test's ledger misbehaves.
func servedOnce(t *testing.T, nw *localnet.Net) {
	t.Helper()
	var r result
	eventually(t, 20*time.Second, func() bool {
		r = post(t, nw.ClientURL()+"/chat/completions", "", `{"model":"echo-test","messages":[{"role":"user","content":"pay"}]}`)
		return r.status == 200
	}, func() string { return fmt.Sprintf("no request succeeded: %+v", r) })
}

// served asks nw's client for a chat answer about what, which must be served.
func served(t *testing.T, nw *localnet.Net, what string) {
	t.Helper()
	if r := post(t, nw.ClientURL()+"/chat/completions", "", `{"model":"echo-test","messages":[{"role":"user","content":"`+what+`"}]}`); r.status != 200 {
		t.Fatalf("%s: %+v", what, r)
	}
}

// eventually polls done until it holds, and fails the test with failed's message once d has
// passed without it.
func eventually(t *testing.T, d time.Duration, done func() bool, failed func() string) {
	t.Helper()
	for deadline := time.Now().Add(d); !done(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal(failed())
		}
	}
}

// channelWhere is n's first channel that match accepts.
func channelWhere(n *node.Node, match func(node.ChannelStatus) bool) (node.ChannelStatus, bool) {
	for _, c := range n.Channels() {
		if match(c) {
			return c, true
		}
	}
	return node.ChannelStatus{}, false
}
