package localnet

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/xssnick/tonutils-go/address"

	"github.com/cocoon-mesh/cocoon/node"
	"github.com/cocoon-mesh/cocoon/node/wire"
	"github.com/cocoon-mesh/cocoon/ton"
)

// A channel's whole life on one development ledger running the real contract: top-up (a new
// channel, the old one closed together), a close the payee asks for, a payee closing alone
// after the quarantine, a payer cheating with an old state and beaten by the payee's
// challenge, and a payer closing alone. Every payee ends with exactly what it was paid.
func TestChannelLifecycle(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	var skew atomic.Int64 // how far the ledger's clock is ahead of ours
	nw, err := Start(ctx, Options{Proxies: 1, Workers: 1,
		LedgerNow: func() time.Time { return time.Now().Add(time.Duration(skew.Load())) },
		Tune: func(c *node.Config) {
			c.Payments.Quarantine, c.Payments.ConditionalClose = time.Minute, time.Second
			c.Payments.WatchEvery = 100 * time.Millisecond
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer nw.Close()
	client, proxy, worker := nw.Client, nw.Proxies[0], nw.Workers[0]
	quarantineOver := func() { skew.Add(int64(time.Minute + 3*time.Second)) }
	pay := func(n int) {
		t.Helper()
		for i := range n {
			chat(t, nw, fmt.Sprintf(`{"model":"echo-test","stream":%t,"messages":[{"role":"user","content":"pay %d"}]}`, i%2 == 0, i))
		}
		settled(t, nw)
	}
	balance := func(n *node.Node) uint64 { return walletBalance(ctx, t, nw, n) }
	open := func(n, peer *node.Node, role string) node.ChannelStatus {
		t.Helper()
		for _, c := range n.Channels() {
			if c.Peer == peer.ID().String() && c.Role == role && c.State == "open" {
				return c
			}
		}
		t.Fatalf("%s has no open %s channel with %s: %+v", n.Config().Role, role, peer.Config().Role, n.Channels())
		return node.ChannelStatus{}
	}
	// ended waits until n's channel id is closed and returns it.
	ended := func(n *node.Node, id string) node.ChannelStatus {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			for _, c := range n.Channels() {
				if c.ChannelID == id && c.State == "closed" {
					return c
				}
			}
		}
		t.Fatalf("channel %s did not close at the %s: %+v", id, n.Config().Role, n.Channels())
		return node.ChannelStatus{}
	}
	// paidOut waits until payee and payer both hold channel c as closed, then checks that the
	// payee's wallet rose from before by exactly what c had paid it.
	paidOut := func(what string, payee, payer *node.Node, c node.ChannelStatus, before uint64) {
		t.Helper()
		ended(payee, c.ChannelID)
		ended(payer, c.ChannelID)
		if got := balance(payee) - before; got != c.Paid {
			t.Fatalf("%s paid the %s %d, it held %d", what, payee.Config().Role, got, c.Paid)
		}
	}
	contract := func(c node.ChannelStatus) ton.Storage {
		t.Helper()
		st, err := nw.Ledger().Channel(ctx, address.MustParseAddr(c.Address))
		if err != nil {
			t.Fatal(err)
		}
		return st.Storage
	}

	// 1. Top-up: the client moves to a new channel; the old one is closed together and pays
	// the proxy exactly what the client paid on it.
	pay(4)
	old := open(client, proxy, "payer")
	proxyBefore := balance(proxy)
	fresh, err := client.TopUpChannel(ctx, proxy.ID())
	if err != nil {
		t.Fatal(err)
	}
	if fresh.ChannelID == old.ChannelID || fresh.Deposit != client.Config().Payments.Deposit {
		t.Fatalf("top-up gave %+v, old channel %+v", fresh, old)
	}
	ended(client, old.ChannelID)
	if got := ended(proxy, old.ChannelID); got.Paid != old.Paid {
		t.Fatalf("proxy's record of the closed channel: paid %d, client paid %d", got.Paid, old.Paid)
	}
	if got := balance(proxy) - proxyBefore; got != old.Paid {
		t.Fatalf("the close paid the proxy %d, the client had paid %d", got, old.Paid)
	}
	if st := contract(old); st.Inited {
		t.Fatalf("old channel still inited: %+v", st)
	}
	pay(4)
	if c, p := open(client, proxy, "payer"), open(proxy, client, "payee"); c.ChannelID != fresh.ChannelID || c.Paid == 0 || c.Paid != p.Paid {
		t.Fatalf("after the top-up: client %+v, proxy %+v", c, p)
	}

	// 2. The worker asks the proxy to close; the proxy proposes, the worker co-signs, the
	// contract pays the worker what it holds. The next request opens a new channel.
	w1 := open(worker, proxy, "payee")
	workerBefore := balance(worker)
	if _, err := worker.CloseChannel(ctx, proxy.ID(), false); err != nil {
		t.Fatal(err)
	}
	paidOut("the close", worker, proxy, w1, workerBefore)
	pay(3)

	// 3. The worker closes alone: its newest voucher goes into quarantine, and the watcher
	// finishes the close once the quarantine is over.
	w2 := open(worker, proxy, "payee")
	if w2.ChannelID == w1.ChannelID || w2.Paid == 0 {
		t.Fatalf("after the close the proxy pays on %+v", w2)
	}
	workerBefore = balance(worker)
	st, err := worker.CloseChannel(ctx, proxy.ID(), true)
	if err != nil || len(st) != 1 || st[0].State != "closing" {
		t.Fatalf("closing alone: %+v %v", st, err)
	}
	if q := contract(w2).Quarantine; q == nil || q.StateA.Sent != w2.Paid || q.StateCommitedByA {
		t.Fatalf("quarantined state %+v, want the worker's %d", q, w2.Paid)
	}
	quarantineOver()
	ended(worker, w2.ChannelID)
	ended(proxy, w2.ChannelID)
	fee := worker.Config().Payments.DisputeFee
	if got := balance(worker) - workerBefore; got > w2.Paid-fee || got < w2.Paid-2*fee {
		t.Fatalf("closing alone paid the worker %d net; it held %d and sent %d for gas", got, w2.Paid, fee)
	}

	// 4. The client cheats: it starts closing alone with its first voucher. The proxy's
	// watcher challenges with the newest it holds, and that is what the contract pays.
	c2 := open(proxy, client, "payee")
	idb, _ := hex.DecodeString(c2.ChannelID)
	id := ton.ChannelID(idb)
	raw, _ := client.Host().Peerstore().PrivKey(client.ID()).Raw()
	key := ed25519.PrivateKey(raw)
	proxyRaw, _ := proxy.Host().Peerstore().PrivKey(proxy.ID()).Raw()
	oldest := ton.SignVoucher(key, id, 1, 1)
	body := ton.StartUncooperativeCloseBody(true, key, id, oldest.Signed(id),
		ton.SignSemiChannel(ed25519.PrivateKey(proxyRaw), ton.SemiChannel{ChannelID: id}))
	if _, err := nw.Ledger().StartUncooperativeClose(ctx, address.MustParseAddr(client.Status().Wallet),
		address.MustParseAddr(c2.Address), body, node.Nano/50); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if q := contract(c2).Quarantine; q != nil && q.StateChallenged {
			if q.StateA.Sent != c2.Paid {
				t.Fatalf("challenged with %d, the proxy holds %d", q.StateA.Sent, c2.Paid)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the proxy did not challenge: %+v", contract(c2).Quarantine)
		}
	}
	proxyBefore = balance(proxy)
	quarantineOver()
	paidOut("after the challenge, the close", proxy, client, c2, proxyBefore)

	// 5. A payer closes alone, with the payee's semichannel signature it got at open.
	pay(2)
	w3 := open(worker, proxy, "payee")
	workerBefore = balance(worker)
	if st, err := proxy.CloseChannel(ctx, worker.ID(), true); err != nil || len(st) != 1 || st[0].State != "closing" {
		t.Fatalf("payer closing alone: %+v %v", st, err)
	}
	quarantineOver()
	paidOut("the payer's close", worker, proxy, w3, workerBefore)

	// 6. A close co-signed and never submitted: a payer (the test, with the proxy's identity)
	// proposes a close, the worker co-signs it, and nothing reaches the chain, as if the proxy
	// had died right then. The worker's watcher resumes the stalled close: it asks the proxy,
	// which closes together, and the worker receives exactly what it held.
	pay(2)
	w4 := open(worker, proxy, "payee")
	workerBefore = balance(worker)
	st4 := contract(w4)
	idb, _ = hex.DecodeString(w4.ChannelID)
	id = ton.ChannelID(idb)
	cl := ton.CooperativeClose{ChannelID: id, BalanceA: st4.BalanceA - w4.Paid, BalanceB: st4.BalanceB + w4.Paid,
		SeqnoA: w4.Seqno + 1, SeqnoB: uint64(st4.CommittedSeqnoB) + 1}
	req := wire.AppendChannelClose(nil, &wire.ChannelClose{Close: cl, Signature: cl.Sign(ed25519.PrivateKey(proxyRaw))})
	rp, err := channelCall(ctx, proxy, worker.ID(), wire.FrameChannelClose, req)
	if err != nil {
		t.Fatalf("the worker did not co-sign: %v", err)
	}
	if reply, err := wire.DecodeChannelClose(rp); err != nil || reply.Close != cl {
		t.Fatalf("co-signed close %+v, %v", reply, err)
	}
	if c := channelByID(worker, w4.ChannelID); c.State != "closing" {
		t.Fatalf("after co-signing, the worker's channel is %q", c.State)
	}
	paidOut("the resumed close", worker, proxy, w4, workerBefore)
	pay(1) // the proxy pays on a new channel
}

// channelByID is n's channel with id (zero if none).
func channelByID(n *node.Node, id string) node.ChannelStatus {
	for _, c := range n.Channels() {
		if c.ChannelID == id {
			return c
		}
	}
	return node.ChannelStatus{}
}

// A payer whose deposit runs low moves to a new channel by itself and closes the old one:
// every request succeeds, and each payee received on chain exactly what was paid on each
// closed channel.
func TestDepositRunsLow(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const deposit = 40_000 // nanoTON: about 15 of these requests at DevPrices
	nw, err := Start(ctx, Options{Proxies: 1, Workers: 1, Logger: testLogger(t), Tune: func(c *node.Config) {
		c.Payments.Deposit, c.Payments.FirstDeposit = deposit, deposit
		c.Payments.WatchEvery = 100 * time.Millisecond
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer nw.Close()
	client, proxy, worker := nw.Client, nw.Proxies[0], nw.Workers[0]
	workerBefore := walletBalance(ctx, t, nw, worker)
	for i := range 60 {
		chat(t, nw, fmt.Sprintf(`{"model":"echo-test","stream":%t,"messages":[{"role":"user","content":"a request that costs something %d"}]}`, i%2 == 0, i))
	}
	settled(t, nw)
	// Each payer's channels, closed or not, against what its payee holds and received.
	for _, hop := range []struct{ payer, payee *node.Node }{{client, proxy}, {proxy, worker}} {
		var closed, paidClosed, paidAll uint64
		held := map[string]node.ChannelStatus{}
		for _, c := range hop.payee.Channels() {
			held[c.ChannelID] = c
		}
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			closed, paidClosed, paidAll = 0, 0, 0
			pending := 0
			for _, c := range hop.payer.Channels() {
				if c.Role != "payer" {
					continue
				}
				if c.Paid != held[c.ChannelID].Paid {
					t.Fatalf("channel %s: payer paid %d, payee holds %d", c.ChannelID, c.Paid, held[c.ChannelID].Paid)
				}
				paidAll += c.Paid
				switch c.State {
				case "closed":
					closed++
					paidClosed += c.Paid
				case "closing":
					pending++
				}
			}
			if pending == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d channels still closing: %+v", pending, hop.payer.Channels())
			}
		}
		if closed < 2 || paidAll < 2*deposit {
			t.Fatalf("%s paid %d on %d closed channels: want the deposit to run low more than once", hop.payer.Config().Role, paidAll, closed)
		}
		// Only the worker: the proxy also pays its own channels' deposits from its wallet.
		if hop.payee == worker {
			if got := walletBalance(ctx, t, nw, worker) - workerBefore; got != paidClosed {
				t.Fatalf("worker received %d on chain, %d was paid on the closed channels", got, paidClosed)
			}
		}
		t.Logf("%s -> %s: %d nanoTON on %d closed channels (%d in all)", hop.payer.Config().Role, hop.payee.Config().Role, paidClosed, closed, paidAll)
	}
}

// chat posts one chat completion to the network's client and fails t unless it is answered.
func chat(t *testing.T, nw *Net, body string) {
	t.Helper()
	resp, err := http.Post(nw.ClientURL()+"/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("%s: %d %s", body, resp.StatusCode, b)
	}
}

// walletBalance is n's wallet balance on the network's ledger.
func walletBalance(ctx context.Context, t *testing.T, nw *Net, n *node.Node) uint64 {
	t.Helper()
	b, err := nw.Ledger().Balance(ctx, address.MustParseAddr(n.Status().Wallet))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// testLogger logs the nodes' warnings through t.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// An operator's channel commands open channels only to peers the node pays: a client's
// proxies, a proxy's workers. A channel to anyone else would lock a deposit nothing uses, so
// it is refused, saying whom the node pays, and nothing is locked.
func TestChannelsOpenOnlyToPayees(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nw, err := Start(ctx, Options{Proxies: 1, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer nw.Close()
	client, proxy, worker := nw.Client, nw.Proxies[0], nw.Workers[0]
	before := len(client.Channels()) + len(proxy.Channels())
	for _, c := range []struct {
		n    *node.Node
		to   *node.Node
		want string
	}{
		{client, worker, "a client pays only its proxies"},
		{proxy, client, "a proxy pays only its workers"},
		{worker, proxy, "a worker pays no one"},
	} {
		for _, cmd := range []func(context.Context, peer.ID) (node.ChannelStatus, error){c.n.OpenChannel, c.n.TopUpChannel} {
			_, err := cmd(ctx, c.to.ID())
			if err == nil || !strings.Contains(err.Error(), c.want) || node.AsWireError(err).Code != wire.CodeBadRequest {
				t.Errorf("%s to %s: %v, want a refusal saying %q", c.n.Config().Role, c.to.Config().Role, err, c.want)
			}
		}
	}
	if after := len(client.Channels()) + len(proxy.Channels()); after != before {
		t.Errorf("refused commands changed the channels: %d before, %d after", before, after)
	}
	if _, err := client.OpenChannel(ctx, proxy.ID()); err != nil {
		t.Errorf("a client opening its proxy's channel: %v", err)
	}
}
