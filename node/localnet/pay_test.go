package localnet

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cocoon-mesh/cocoon/node"
	"github.com/cocoon-mesh/cocoon/node/wire"
	"github.com/cocoon-mesh/cocoon/ton"
)

// usageOf parses the X-Cocoon-Usage header (or trailer).
func usageOf(t *testing.T, s string) ton.Usage {
	var u ton.Usage
	var est bool
	if _, err := fmt.Sscanf(s, "prompt=%d cached=%d completion=%d reasoning=%d estimated=%t", &u.Prompt, &u.Cached, &u.Completion, &u.Reasoning, &est); err != nil {
		t.Fatalf("usage %q: %v", s, err)
	}
	return u
}

// channels indexes a node's channels by peer and role.
func channels(n *node.Node) map[string]node.ChannelStatus {
	m := map[string]node.ChannelStatus{}
	for _, c := range n.Channels() {
		m[c.Role+" "+c.Peer] = c
	}
	return m
}

// settled waits until every payer has paid everything it received and every payee holds it.
func settled(t *testing.T, nw *Net) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ok := true
		for _, n := range append(append([]*node.Node{nw.Client}, nw.Proxies...), nw.Workers...) {
			for _, c := range n.Channels() {
				if c.Owed != 0 {
					ok = false
				}
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			for _, n := range append(append([]*node.Node{nw.Client}, nw.Proxies...), nw.Workers...) {
				t.Logf("%s: %+v", n.Config().Role, n.Channels())
			}
			t.Fatal("channels did not settle")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Every request is paid for exactly: the client pays each proxy what the proxy delivered, at
// the worker's price plus commission, and each proxy pays each worker at the worker's price,
// streamed or not, cancelled midway or not; and no on-chain message is sent while it runs.
func TestPaymentsFollowDelivery(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	nw, err := Start(ctx, Options{EchoTokenDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer nw.Close()
	// The client opens its channels to the proxies as it connects; a proxy opens a worker's
	// with the first request it routes there.
	opened := nw.Ledger().Messages()
	if opened != uint64(len(nw.Proxies)) {
		t.Fatalf("%d ledger messages to open the client's channels, want one per proxy", opened)
	}
	commission := nw.Proxies[0].Config().Payments.Commission
	clientPrices, err := DevPrices.WithCommission(commission)
	if err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var wantClient, wantWorker uint64 // what the completed requests cost at each hop
	account := func(usage, cost string) {
		u := usageOf(t, usage)
		c, _ := clientPrices.Cost(u, wire.CoefficientOne)
		w, _ := DevPrices.Cost(u, wire.CoefficientOne)
		if cost != strconv.FormatUint(c, 10) { // what the client tells its caller
			t.Errorf("X-Cocoon-Cost %q for usage %q, want %d", cost, usage, c)
		}
		mu.Lock()
		wantClient += c
		wantWorker += w
		mu.Unlock()
	}
	var wg sync.WaitGroup
	for i := range 24 {
		wg.Go(func() {
			words := strings.Repeat("token ", 5+i*7)
			stream := i%2 == 1
			opts := ""
			if stream && i%4 == 1 {
				opts = `"stream_options":{"include_usage":true},`
			}
			body := fmt.Sprintf(`{"model":"echo-test","stream":%t,%s"max_tokens":%d,"messages":[{"role":"user","content":%q}]}`, stream, opts, 10+i*9, words)
			resp, err := http.Post(nw.ClientURL()+"/chat/completions", "application/json", strings.NewReader(body))
			if err != nil {
				t.Error(err)
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("request %d: %d %s", i, resp.StatusCode, b)
				return
			}
			if stream {
				account(resp.Trailer.Get("X-Cocoon-Usage"), resp.Trailer.Get("X-Cocoon-Cost"))
				// Asked for usage, the stream's usage chunk carries the cost too.
				if bytes.Contains([]byte(body), []byte(`"include_usage":true`)) && !bytes.Contains(b, []byte(`"cocoon_cost_nanoton":`+resp.Trailer.Get("X-Cocoon-Cost")+`,`)) {
					t.Errorf("request %d: no cost %s in the usage chunk: %s", i, resp.Trailer.Get("X-Cocoon-Cost"), b)
				}
			} else {
				account(resp.Header.Get("X-Cocoon-Usage"), resp.Header.Get("X-Cocoon-Cost"))
			}
		})
	}
	wg.Wait()

	// A streamed request cancelled after its first event: paid for what was delivered.
	cctx, ccancel := context.WithCancel(ctx)
	req, _ := http.NewRequestWithContext(cctx, "POST", nw.ClientURL()+"/chat/completions",
		strings.NewReader(`{"model":"echo-test","stream":true,"max_tokens":200,"messages":[{"role":"user","content":"`+strings.Repeat("long ", 200)+`"}]}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	ccancel()
	resp.Body.Close()

	settled(t, nw)
	lazy := 0
	for _, p := range nw.Proxies {
		for _, c := range p.Channels() {
			if c.Role == "payer" {
				lazy++
			}
		}
	}
	if m := nw.Ledger().Messages(); m != opened+uint64(lazy) || lazy > len(nw.Proxies)*len(nw.Workers) {
		t.Fatalf("%d on-chain messages while serving, want only the %d that opened the proxies' channels to workers", m-opened, lazy)
	}
	var paidByClient, paidToWorkers uint64
	client := channels(nw.Client)
	for _, p := range nw.Proxies {
		pc := channels(p)
		out, in := client["payer "+p.ID().String()], pc["payee "+nw.Client.ID().String()]
		t.Logf("client -> proxy %s: payer %+v, payee %+v", p.ID(), out, in)
		if out.Paid != in.Paid || out.Seqno != in.Seqno || in.Delivered != in.Paid {
			t.Errorf("client and proxy disagree: client paid %d (seqno %d), proxy holds %d (seqno %d) and delivered %d",
				out.Paid, out.Seqno, in.Paid, in.Seqno, in.Delivered)
		}
		paidByClient += out.Paid
		for _, w := range nw.Workers {
			out, in := pc["payer "+w.ID().String()], channels(w)["payee "+p.ID().String()]
			if out.Paid != in.Paid || in.Delivered != in.Paid {
				t.Errorf("proxy and worker disagree: proxy paid %d, worker holds %d and delivered %d", out.Paid, in.Paid, in.Delivered)
			}
			paidToWorkers += out.Paid
		}
	}
	t.Logf("client paid %d nanoTON, workers were paid %d; completed requests cost %d and %d", paidByClient, paidToWorkers, wantClient, wantWorker)
	// The cancelled request adds what it delivered before the cancel, at both hops.
	if paidByClient < wantClient || paidToWorkers < wantWorker || paidByClient-wantClient > 400*200*2 {
		t.Fatalf("client paid %d for requests costing %d; workers got %d for %d", paidByClient, wantClient, paidToWorkers, wantWorker)
	}
	if paidByClient <= paidToWorkers {
		t.Fatalf("the proxies kept no margin: %d in, %d out", paidByClient, paidToWorkers)
	}
}

// A payee refuses forged, replayed, decreasing and over-the-deposit vouchers, and none of them
// changes what it holds.
func TestPayeeRefusesBadVouchers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nw, err := Start(ctx, Options{Proxies: 1, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer nw.Close()
	resp, err := http.Post(nw.ClientURL()+"/chat/completions", "application/json",
		strings.NewReader(`{"model":"echo-test","messages":[{"role":"user","content":"pay me"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	settled(t, nw)
	proxy := nw.Proxies[0]
	before := channels(proxy)["payee "+nw.Client.ID().String()]
	if before.Seqno == 0 {
		t.Fatalf("no voucher after a paid request: %+v", before)
	}
	idb, err := hex.DecodeString(before.ChannelID)
	if err != nil || len(idb) != 16 {
		t.Fatalf("channel id %q", before.ChannelID)
	}
	id := ton.ChannelID(idb)
	raw, _ := nw.Client.Host().Peerstore().PrivKey(nw.Client.ID()).Raw()
	key := ed25519.PrivateKey(raw)
	_, stranger, _ := ed25519.GenerateKey(nil)
	bad := map[string]ton.Voucher{
		"forged":        ton.SignVoucher(stranger, id, before.Seqno+1, before.Paid+1),
		"replayed":      ton.SignVoucher(key, id, before.Seqno, before.Paid+5),
		"decreasing":    ton.SignVoucher(key, id, before.Seqno+1, before.Paid-1),
		"over deposit":  ton.SignVoucher(key, id, before.Seqno+1, before.Deposit+1),
		"other channel": ton.SignVoucher(key, ton.ChannelID{1, 2, 3}, before.Seqno+1, before.Paid+1),
	}
	for name, v := range bad {
		if _, err := sendVoucher(ctx, nw.Client, proxy.ID(), v); err == nil || !strings.Contains(err.Error(), "payment_required") {
			t.Errorf("%s voucher: %v, want a payment_required refusal", name, err)
		}
		after := channels(proxy)["payee "+nw.Client.ID().String()]
		if after.Paid != before.Paid || after.Seqno != before.Seqno {
			t.Fatalf("%s voucher changed the channel: %+v -> %+v", name, before, after)
		}
	}
	if after := channels(proxy)["payee "+nw.Client.ID().String()]; after.Refused != len(bad) {
		t.Errorf("refused %d vouchers, want %d", after.Refused, len(bad))
	}
	// The same payee still takes the next good voucher.
	if got, err := sendVoucher(ctx, nw.Client, proxy.ID(), ton.SignVoucher(key, id, before.Seqno+1, before.Paid+7)); err != nil || got != before.Paid+7 {
		t.Fatalf("good voucher after bad ones: %v, holds %d", err, got)
	}
	// A late voucher, superseded by the one held, is answered with the state and is not
	// counted as refused: vouchers travel on many streams and may arrive out of order.
	late := ton.SignVoucher(key, id, before.Seqno, before.Paid)
	if got, err := sendVoucher(ctx, nw.Client, proxy.ID(), late); err != nil || got != before.Paid+7 {
		t.Errorf("late voucher: %v (holds %d)", err, got)
	}
	if after := channels(proxy)["payee "+nw.Client.ID().String()]; after.Refused != len(bad) || after.Seqno != before.Seqno+1 {
		t.Errorf("a late voucher changed the channel: %+v", after)
	}
}

// sendVoucher pays v on the channel stream from n to p and returns what p then holds.
func sendVoucher(ctx context.Context, n *node.Node, p peer.ID, v ton.Voucher) (uint64, error) {
	vb, _ := v.MarshalBinary()
	payload, err := channelCall(ctx, n, p, wire.FramePay, vb)
	if err != nil {
		return 0, err
	}
	st, err := wire.DecodeChannelState(payload)
	if err != nil {
		return 0, err
	}
	got, err := ton.DecodeVoucher(st.Voucher)
	return got.Sent, err
}

// channelCall sends one frame on a new channel stream from n to p and returns the answer's
// payload, or the error p answered with.
func channelCall(ctx context.Context, n *node.Node, p peer.ID, t wire.FrameType, payload []byte) ([]byte, error) {
	s, err := n.Host().NewStream(ctx, p, node.ChannelProtocol)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	w := wire.NewWriter(s)
	defer w.Release()
	if err := w.WriteFrame(t, payload); err != nil {
		return nil, err
	}
	if err := w.Flush(); err != nil {
		return nil, err
	}
	r := wire.NewReader(s, 4096)
	defer r.Release()
	rt, rp, err := r.ReadFrame()
	if err != nil {
		return nil, err
	}
	if rt == wire.FrameError {
		we, _ := wire.DecodeError(rp)
		return nil, we
	}
	return slices.Clone(rp), nil
}
