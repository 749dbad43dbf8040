package node_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/cocoon-mesh/cocoon/internal/syncbuf"
	"github.com/cocoon-mesh/cocoon/node"
	"github.com/cocoon-mesh/cocoon/node/localnet"
)

// rogueNet is a paying network of one proxy, an honest worker (worker1) and a rogue one
// (worker2) that misbehaves as f says, with the client and proxy logging to logs.
func rogueNet(t *testing.T, f *node.Faults, logs *syncbuf.Buffer, tune func(*node.Config)) *localnet.Net {
	t.Helper()
	return startNet(t, localnet.Options{Proxies: 1, Workers: 2, Faults: map[string]*node.Faults{"worker2": f},
		Logger: slog.New(slog.NewTextHandler(logs, nil)), Tune: tune})
}

// settledAndAgreed waits until every channel of nw is settled and held alike on both sides:
// the payer owes nothing it received, the payee counts nothing owed it did not write off,
// and both hold the same newest voucher. It returns the payee's side of each channel, by
// channel id.
func settledAndAgreed(t *testing.T, nw *localnet.Net) map[string]node.ChannelStatus {
	t.Helper()
	nodes := append(append([]*node.Node{nw.Client}, nw.Proxies...), nw.Workers...)
	var why string
	var held map[string]node.ChannelStatus
	eventually(t, 15*time.Second, func() bool {
		var lists [][]node.ChannelStatus
		for _, n := range nodes {
			lists = append(lists, n.Channels())
		}
		held, why = localnet.Agreed(lists...)
		return why == ""
	}, func() string { return why })
	return held
}

// paidTo is what the channels paying n have paid it, in all.
func paidTo(held map[string]node.ChannelStatus, n *node.Node) (sum uint64) {
	for _, c := range n.Channels() {
		if c.Role == "payee" {
			sum += held[c.ChannelID].Paid
		}
	}
	return sum
}

// A worker that quotes above its advert, or claims more tokens than it could have delivered
// (more than the bytes it sent, more than max_tokens, a prompt larger than the request), is
// refused before the client pays for what it claims: every request is served by the honest
// worker, the rogue is paid at most for the chunks it really delivered (nothing, when it is
// refused before its first), the proxy is paid at least what it pays, every channel agrees,
// and the rogue, refused once, ranks after the honest worker.
func TestProxyRefusesAWorkerThatClaimsTooMuch(t *testing.T) {
	for _, tc := range []struct {
		name      string
		faults    node.Faults
		maxTokens string // the requests' max_tokens ("": none)
		why       string // in the proxy's log
		unpaid    bool   // refused before its first chunk: paid nothing
	}{
		{"quote above the advert", node.Faults{QuoteFactor: 1000}, "20", "not the", true},
		{"tokens beyond the bytes", node.Faults{ClaimTokens: 200_000}, "", "completion tokens for", true},
		{"tokens beyond max_tokens", node.Faults{ClaimTokens: 25}, "20", "over the request's max_tokens", true},
		{"prompt beyond the request", node.Faults{ClaimPrompt: 1_000_000}, "20", "prompt tokens for a request", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs syncbuf.Buffer
			nw := rogueNet(t, &tc.faults, &logs, nil)
			rogue := nw.Workers[1]
			limit := ""
			if tc.maxTokens != "" {
				limit = `"max_tokens":` + tc.maxTokens + `,`
			}
			for i := range 8 {
				body := fmt.Sprintf(`{"model":"echo-test",%s"messages":[{"role":"user","content":"request %d of eight"}]}`, limit, i)
				if r := post(t, nw.ClientURL()+"/chat/completions", "", body); r.status != 200 || r.header.Get("X-Cocoon-Worker") == rogue.ID().String() {
					t.Fatalf("request %d: %d from %s: %s", i, r.status, r.header.Get("X-Cocoon-Worker"), r.body)
				}
			}
			held := settledAndAgreed(t, nw)
			proxy := nw.Proxies[0]
			paidIn, paidOut := paidTo(held, proxy), paidTo(held, nw.Workers[0])+paidTo(held, rogue)
			if paidIn < paidOut {
				t.Errorf("the proxy was paid %d and paid the workers %d", paidIn, paidOut)
			}
			if got := paidTo(held, rogue); tc.unpaid && got != 0 {
				t.Errorf("the rogue was paid %d nanoTON", got)
			}
			// Refused once, it ranks after the honest worker: it is not tried again and again.
			if n := strings.Count(logs.String(), "worker's answer refused"); n < 1 || n > 3 || !strings.Contains(logs.String(), tc.why) {
				t.Errorf("the proxy refused the rogue %d times in 8 requests, or did not say why (%q):\n%s", n, tc.why, logs.String())
			}
		})
	}
}

// A worker whose chunks the client cannot open is failing, not fast: the client refuses its
// answer (telling the proxy, which takes back what it billed and refuses the worker in turn),
// asks again without it, and gets the honest worker's answer; the proxy stops preferring the
// rogue, and ejects it once it failed three times in a row. Nothing is paid for what was
// refused, and no channel is left with value owed that nobody will pay. The proxy settles a
// channel a millisecond after an answer ends, so one answer's settle falls while another is
// still being judged by the client: it must not pay for that one.
func TestClientRefusesAnswersItCannotOpen(t *testing.T) {
	var logs syncbuf.Buffer
	nw := rogueNet(t, &node.Faults{Garbage: true}, &logs, func(c *node.Config) { c.Payments.FlushAfter = time.Millisecond })
	rogue := nw.Workers[1]
	errs := make(chan string, 12)
	for i := range 12 { // concurrently, so the rogue is picked while it still looks idle
		go func() {
			body := fmt.Sprintf(`{"model":"echo-test","stream":%t,"messages":[{"role":"user","content":"request %d of twelve"}]}`, i%2 == 0, i)
			r := post(t, nw.ClientURL()+"/chat/completions", "", body)
			if r.status != 200 || r.header.Get("X-Cocoon-Worker") == rogue.ID().String() {
				errs <- fmt.Sprintf("request %d: %d %s", i, r.status, r.body)
				return
			}
			errs <- ""
		}()
	}
	for range 12 {
		if e := <-errs; e != "" {
			t.Error(e)
		}
	}
	held := settledAndAgreed(t, nw)
	if got := paidTo(held, rogue); got != 0 {
		t.Errorf("the rogue was paid %d nanoTON for answers that did not open", got)
	}
	if !strings.Contains(logs.String(), "answer refused") || !strings.Contains(logs.String(), "does not open") {
		t.Errorf("the client did not log its refusal:\n%s", logs.String())
	}
	for _, w := range nw.Proxies[0].Status().Workers {
		if w.Peer == rogue.ID().String() && w.Failures == 0 {
			t.Errorf("the proxy counts no failure for the rogue: %+v", w)
		}
	}
	t.Logf("client refusals: %d; proxy refusals passed on: %d; ejections: %d", strings.Count(logs.String(), `msg="answer refused"`),
		strings.Count(logs.String(), "the proxy refused our answer"), strings.Count(logs.String(), "worker ejected"))
}

// A worker that takes requests and never answers, or stops in the middle of one, costs its
// callers only the configured bounds: before the first token the proxy fails over to the
// honest worker (every request is served); a streamed answer that stalls after its first
// token ends with an error event that says so. Neither waits for the request's timeout.
func TestHungAndStalledWorkersCostOnlyTheBounds(t *testing.T) {
	tune := func(c *node.Config) {
		c.FirstTokenTimeout, c.StallTimeout, c.WholeAnswerTimeout = time.Second, 600*time.Millisecond, 2*time.Second
		c.RequestTimeout = time.Minute
	}
	t.Run("hang", func(t *testing.T) {
		var logs syncbuf.Buffer
		nw := rogueNet(t, &node.Faults{Hang: true}, &logs, tune)
		for i := range 6 {
			body := fmt.Sprintf(`{"model":"echo-test","stream":%t,"messages":[{"role":"user","content":"request %d"}]}`, i%2 == 0, i)
			start := time.Now()
			r := post(t, nw.ClientURL()+"/chat/completions", "", body)
			if r.status != 200 || r.header.Get("X-Cocoon-Worker") == nw.Workers[1].ID().String() {
				t.Fatalf("request %d: %d: %s", i, r.status, r.body)
			}
			t.Logf("request %d served in %v", i, time.Since(start).Round(time.Millisecond))
		}
		if !strings.Contains(logs.String(), "stalled") && !strings.Contains(logs.String(), "sent no token") {
			t.Errorf("the proxy never timed the hung worker out:\n%s", logs.String())
		}
	})
	t.Run("idle: heartbeats, never a token", func(t *testing.T) {
		var logs syncbuf.Buffer
		nw := rogueNet(t, &node.Faults{Idle: true}, &logs, tune)
		for i := range 4 { // the first-token and whole-answer bounds end the wait, not the heartbeats
			body := fmt.Sprintf(`{"model":"echo-test","stream":%t,"messages":[{"role":"user","content":"request %d"}]}`, i < 2, i)
			r := post(t, nw.ClientURL()+"/chat/completions", "", body)
			if r.status != 200 || strings.Contains(r.body, `"error"`) {
				t.Fatalf("request %d: %d: %s", i, r.status, r.body)
			}
		}
		if !strings.Contains(logs.String(), "sent no token within 1s") && !strings.Contains(logs.String(), "sent no answer within 2s") {
			t.Errorf("the proxy never timed the idle worker out on its first token or its whole answer:\n%s", logs.String())
		}
	})
	t.Run("stall mid-stream", func(t *testing.T) {
		var logs syncbuf.Buffer
		nw := startNet(t, localnet.Options{Proxies: 1, Workers: 1, Faults: map[string]*node.Faults{"worker1": {StallAfter: 2}}, EchoTokenDelay: 20 * time.Millisecond,
			Logger: slog.New(slog.NewTextHandler(&logs, nil)), Tune: tune})
		start := time.Now()
		r := post(t, nw.ClientURL()+"/chat/completions", "", `{"model":"echo-test","stream":true,"messages":[{"role":"user","content":"one two three four five six"}]}`)
		if r.status != 200 || !strings.Contains(r.body, `"worker_failed"`) || !strings.Contains(r.body, "stalled") || strings.Contains(r.body, "[DONE]") {
			t.Fatalf("a stalled stream: %d %s", r.status, r.body)
		}
		t.Logf("the stalled stream ended after %v", time.Since(start).Round(time.Millisecond))
		settledAndAgreed(t, nw)
	})
}

// Value a payee counts as delivered that never reached its payer (a broken stream, a payer
// that restarted) does not jam the channel: the next bill, answered as settled, or the payer
// resuming the channel, writes it off, and the next request is served at once, not after the
// payee gave up waiting for payment.
func TestChannelsReconcileWhatNeverArrived(t *testing.T) {
	for _, tc := range []struct {
		name   string
		before func(t *testing.T, nw *localnet.Net)
	}{
		{"a bill settled", func(*testing.T, *localnet.Net) {}},
		{"the payer restarted", func(t *testing.T, nw *localnet.Net) { node.ForgetPayer(nw.Client, nw.Proxies[0].ID()) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs syncbuf.Buffer
			nw := startNet(t, localnet.Options{Proxies: 1, Workers: 1, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			served(t, nw, "open the channels")
			settledAndAgreed(t, nw)
			client, proxy := nw.Client, nw.Proxies[0]
			// A whole window's worth (256 tokens at 420 nanoTON) that never reached the client.
			const lost = 256 * 420
			if err := node.Drift(proxy, client.ID(), lost); err != nil {
				t.Fatal(err)
			}
			tc.before(t, nw)
			start := time.Now()
			served(t, nw, "after the loss")
			took := time.Since(start)
			held := settledAndAgreed(t, nw)
			var in node.ChannelStatus
			for _, c := range proxy.Channels() {
				if c.Role == "payee" && c.State == "open" {
					in = held[c.ChannelID]
				}
			}
			if in.WrittenOff != lost || !strings.Contains(logs.String(), "wrote off value the payer never received") {
				t.Errorf("the proxy wrote off %d, not the %d its client never received:\n%s", in.WrittenOff, lost, logs.String())
			}
			if strings.Contains(logs.String(), "payer stopped paying") {
				t.Errorf("the answer waited for a payment that could not come (%v):\n%s", took, logs.String())
			}
			t.Logf("served %v after the loss", took.Round(time.Millisecond))
		})
	}
}

// A flood of fresh worker identities that never serve cannot lock a proxy's deposits: a
// channel opens only with a request routed to a worker, the first one to a worker locks
// payments.first_deposit, and all those to workers that earned nothing lock at most
// payments.unearned_cap. Every request is still served, by the worker that earns.
func TestSybilWorkersLockAtMostTheCap(t *testing.T) {
	var logs syncbuf.Buffer
	const sybils = 8
	nw := startNet(t, localnet.Options{Proxies: 1, Workers: 1, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Tune: func(c *node.Config) { c.Payments.UnearnedCap = 4 * c.Payments.Deposit / 100 }})
	proxy := nw.Proxies[0]
	if l := proxy.Status().Locked; l == nil || l.Total != 0 {
		t.Fatalf("the proxy locked %+v for workers before any request", l)
	}
	served(t, nw, "the honest worker earns something first")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for range sybils {
		if _, err := nw.AddWorker(ctx, &node.Faults{Reset: true}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 30 {
		body := fmt.Sprintf(`{"model":"echo-test","messages":[{"role":"user","content":"request %d"}]}`, i)
		if r := post(t, nw.ClientURL()+"/chat/completions", "", body); r.status != 200 {
			t.Fatalf("request %d: %d %s", i, r.status, r.body)
		}
	}
	cfg := proxy.Config().Payments
	l := proxy.Status().Locked
	unearned := 0
	for _, c := range proxy.Channels() {
		if c.Role == "payer" && c.State != "closed" && c.Paid == 0 {
			unearned++
		}
		if c.Role == "payer" && c.Deposit > cfg.FirstDeposit {
			t.Errorf("a channel to a new worker locks %d, over payments.first_deposit %d", c.Deposit, cfg.FirstDeposit)
		}
	}
	if l.Unearned > cfg.UnearnedCap || uint64(unearned)*cfg.FirstDeposit > cfg.UnearnedCap || unearned == 0 {
		t.Errorf("%d channels to workers that earned nothing lock %d, cap %d", unearned, l.Unearned, cfg.UnearnedCap)
	}
	if !strings.Contains(logs.String(), "the cap is reached") {
		t.Errorf("the proxy never said it reached the cap (%d channels unearned):\n%s", unearned, logs.String())
	}
	t.Logf("%d sybil workers: %d channels opened to workers that earned nothing, %d nanoTON locked for them (cap %d), %d in all",
		sybils, unearned, l.Unearned, cfg.UnearnedCap, l.Total)
}

// A proxy that quotes its client more than the worker's advertised prices with its commission
// is refused before the client pays it anything: the client takes its requests to the honest
// proxy, and pays the rogue nothing.
func TestClientRefusesAProxyThatOvercharges(t *testing.T) {
	var logs syncbuf.Buffer
	nw := startNet(t, localnet.Options{Proxies: 2, Workers: 1, Faults: map[string]*node.Faults{"proxy2": {QuoteFactor: 3}},
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	rogue := nw.Proxies[1]
	for i := range 8 {
		body := fmt.Sprintf(`{"model":"echo-test","stream":%t,"messages":[{"role":"user","content":"request %d"}]}`, i%2 == 0, i)
		if r := post(t, nw.ClientURL()+"/chat/completions", "", body); r.status != 200 || strings.Contains(r.body, `"error"`) {
			t.Fatalf("request %d: %d %s", i, r.status, r.body)
		}
	}
	held := settledAndAgreed(t, nw)
	if got := paidTo(held, rogue); got != 0 {
		t.Errorf("the overcharging proxy was paid %d nanoTON", got)
	}
	if !strings.Contains(logs.String(), "the proxy's commission is") {
		t.Errorf("the client never said why it refused the proxy's quote:\n%s", logs.String())
	}
	// The client judges its proxies: the rogue's overcharge is evidence in its book, and it
	// scores below the honest proxy, which it tries first from now on.
	scores := map[string]node.ReputationStatus{}
	for _, r := range nw.Client.Status().Reputation {
		scores[r.Peer] = r
	}
	bad, good := scores[rogue.ID().String()], scores[nw.Proxies[0].ID().String()]
	if bad.Evidence["overcharge"] == 0 || bad.Score >= good.Score || good.Evidence["served"] == 0 {
		t.Errorf("the client's book: rogue %+v, honest %+v", bad, good)
	}
}

// A worker that takes longer than the stall bound to answer is working, not stalled: its
// heartbeats fill the silence, and the answer is served, streamed or not.
func TestSlowAnswersAreNotStalls(t *testing.T) {
	nw := startNet(t, localnet.Options{Proxies: 1, Workers: 1, EchoTokenDelay: 150 * time.Millisecond,
		Tune: func(c *node.Config) { c.FirstTokenTimeout, c.StallTimeout = time.Second, 600*time.Millisecond }})
	for _, stream := range []bool{false, true} {
		start := time.Now()
		r := post(t, nw.ClientURL()+"/chat/completions", "", fmt.Sprintf(`{"model":"echo-test","stream":%t,"messages":[{"role":"user","content":"one two three four five six seven eight"}]}`, stream))
		if r.status != 200 || strings.Contains(r.body, `"error"`) {
			t.Errorf("stream %t: a slow answer (%v) was not served: %d %s", stream, time.Since(start).Round(time.Millisecond), r.status, r.body)
		}
	}
}

// A proxy bills its client for each chunk before it counts it as owed to the worker: when the
// client does not pay (here it is five windows behind, more than the proxy writes off on its
// word), the proxy refuses the worker's answer, pays the worker nothing for it, and tells it
// so, and the worker's books agree with the proxy's.
func TestProxyPaysNothingItsClientDoesNotPay(t *testing.T) {
	nw := startNet(t, localnet.Options{Proxies: 1, Workers: 1})
	served(t, nw, "open the channels")
	before := settledAndAgreed(t, nw)
	worker := nw.Workers[0]
	if err := node.Drift(nw.Proxies[0], nw.Client.ID(), 5*256*420); err != nil {
		t.Fatal(err)
	}
	r := post(t, nw.ClientURL()+"/chat/completions", "", `{"model":"echo-test","messages":[{"role":"user","content":"one two three four five six seven eight"}]}`)
	if r.status == 200 || !strings.Contains(r.body, "payment") {
		t.Fatalf("served though the client is five windows behind: %d %s", r.status, r.body)
	}
	var w node.ChannelStatus
	eventually(t, 20*time.Second, func() bool {
		w, _ = channelWhere(worker, func(c node.ChannelStatus) bool { return c.Role == "payee" && c.State == "open" })
		p, _ := channelWhere(nw.Proxies[0], func(c node.ChannelStatus) bool { return c.Role == "payer" && c.State == "open" })
		return w.Owed == 0 && p.Owed == 0 && w.Paid == p.Paid
	}, func() string { return fmt.Sprintf("the worker's channel does not settle: %+v", w) })
	if w.Paid != paidTo(before, worker) {
		t.Errorf("the proxy paid the worker %d nanoTON for an answer its client did not pay for", w.Paid-paidTo(before, worker))
	}
}

// A worker that fails every request is ejected after three in a row, and requests for its
// model then say so, instead of being sent to it again.
func TestFailingWorkerIsEjected(t *testing.T) {
	var logs syncbuf.Buffer
	nw := startNet(t, localnet.Options{Proxies: 1, Workers: 1, Faults: map[string]*node.Faults{"worker1": {Reset: true}},
		Logger: slog.New(slog.NewTextHandler(&logs, nil)), NoPayments: true})
	var r result
	for range 4 {
		r = post(t, nw.ClientURL()+"/chat/completions", "", `{"model":"echo-test","messages":[{"role":"user","content":"hello"}]}`)
	}
	if !strings.Contains(logs.String(), "worker ejected from routing") {
		t.Errorf("the worker was never ejected:\n%s", logs.String())
	}
	if r.status != 503 || !strings.Contains(r.body, "ejected for failing") {
		t.Errorf("a request for the ejected worker's model: %d %s", r.status, r.body)
	}
}

// A proxy that passes on chunks claiming more tokens than they carry is refused by its client,
// which pays it nothing for them and takes its requests to the honest proxy.
func TestClientRefusesAProxyThatOverclaims(t *testing.T) {
	var logs syncbuf.Buffer
	nw := startNet(t, localnet.Options{Proxies: 2, Workers: 1, Faults: map[string]*node.Faults{"proxy2": {ClaimTokens: 100_000}},
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	for i := range 6 {
		body := fmt.Sprintf(`{"model":"echo-test","stream":%t,"messages":[{"role":"user","content":"request %d"}]}`, i%2 == 0, i)
		if r := post(t, nw.ClientURL()+"/chat/completions", "", body); r.status != 200 || strings.Contains(r.body, `"error"`) {
			t.Fatalf("request %d: %d %s", i, r.status, r.body)
		}
	}
	held := settledAndAgreed(t, nw)
	if got := paidTo(held, nw.Proxies[1]); got != 0 {
		t.Errorf("the proxy that overclaims was paid %d nanoTON", got)
	}
	if !strings.Contains(logs.String(), "completion tokens for") {
		t.Errorf("the client never said why it refused the proxy's chunks:\n%s", logs.String())
	}
}
