package main

// The adversarial suite: a paying network of real processes (a development ledger, a proxy,
// an honest worker, a client) with rogue workers among them. Each rogue is the real worker
// code built with -tags rogue and one --fault-* flag: it drains, garbles, hangs, resets or
// stalls in the real code path. Each test asserts that no request the honest worker could
// serve fails, that nobody pays for what it did not get (every channel's payer and payee hold
// the same voucher, and neither counts anything owed), and that the proxy stops using the rogue.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cocoon-mesh/cocoon/node"
	"github.com/cocoon-mesh/cocoon/node/localnet"
)

// advNet is a paying network of real processes for the adversarial tests.
type advNet struct {
	*mesh
	ledger *proc
	proxy  *proc
	honest *proc
	rogues map[string]*proc // by fault
	echo   *proc
	pay    []string // the flags every node pays with
	boot   string
}

// startAdvNet starts the ledger, a proxy, the honest worker, a rogue worker for each fault
// (its --fault-* flags), and a paying client. Every node bounds its waits tightly (a 2 s first
// token, a 1 s stall, 3 s a whole non-streamed answer, 40 s a request), and reads extraConfig
// (TOML) besides.
func startAdvNet(t *testing.T, faults map[string][]string, extraConfig string) *advNet {
	t.Helper()
	if testing.Short() {
		t.Skip("starts several processes")
	}
	lp, _ := startLedger(t, "ledger", t.TempDir())
	m := &mesh{t: t, dir: t.TempDir(), network: fmt.Sprintf("adv-%d", time.Now().UnixNano())}
	cfg := filepath.Join(m.dir, "bounds.toml")
	// Tight bounds, so hangs cost the tests little (and a bound that failed would fail them
	// within the request timeout), and whatever the test adds.
	bounds := "[limits]\nfirst_token_timeout = \"2s\"\nstall_timeout = \"1s\"\nwhole_answer_timeout = \"3s\"\nrequest_timeout = \"40s\"\n" + extraConfig
	if err := os.WriteFile(cfg, []byte(bounds), 0o600); err != nil {
		t.Fatal(err)
	}
	a := &advNet{mesh: m, ledger: lp, rogues: map[string]*proc{}}
	a.pay = []string{"--config", cfg, "--ledger", lp.url, "--dev-fund", "100000000000", "--admin", "127.0.0.1:0"}
	a.echo = start(t, "echo", "echo-backend", "--listen", "127.0.0.1:0", "--token-delay", "1ms")
	a.proxy = start(t, "proxy", m.nodeArgs("proxy", "proxy", a.pay...)...)
	a.boot = a.proxy.ready.Addrs[0]
	a.honest = start(t, "honest", a.workerArgs("honest")...)
	for fault, flags := range faults {
		a.rogues[fault] = startRogue(t, "rogue-"+fault, append(a.workerArgs("rogue-"+fault), flags...)...)
	}
	m.client = start(t, "client", m.nodeArgs("client", "client", append([]string{"--bootstrap", a.boot, "--api", "127.0.0.1:0",
		"--min-proxies", "1"}, a.pay...)...)...)
	m.api = "http://" + m.client.ready.API + "/v1"
	m.waitFor("the client sees every worker", func() bool { return m.modelWorkers() == 1+len(faults) })
	return a
}

// workerArgs are the flags of a worker named name in a.
func (a *advNet) workerArgs(name string) []string {
	return a.nodeArgs(name, "worker", append([]string{"--bootstrap", a.boot, "--backend", a.echo.url,
		"--model", "echo-test@v1:none=echo-test", "--prices", "100,50,400,400"}, a.pay...)...)
}

// nodes are every node process of a.
func (a *advNet) nodes() []*proc {
	ps := []*proc{a.proxy, a.honest, a.client}
	for _, r := range a.rogues {
		ps = append(ps, r)
	}
	return ps
}

// ask sends n chat requests, conc at a time, streamed or not as stream says of each, and
// returns the answers that failed (a status other than 200, or a stream ending in an error
// event) and those a rogue served, each described.
func (a *advNet) ask(n, conc int, stream func(i int) bool) (failed, byRogue []string) {
	var mu sync.Mutex
	rogue := map[string]bool{}
	for _, r := range a.rogues {
		rogue[r.ready.Peer] = true
	}
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			body := fmt.Sprintf(`{"model":"echo-test","stream":%t,"max_tokens":16,"messages":[{"role":"user","content":"request %d of %d"}]}`, stream(i), i, n)
			code, b, h := postWithin(time.Minute, a.api, "/chat/completions", body)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case code != 200 || bytes.Contains(b, []byte(`"error"`)):
				failed = append(failed, fmt.Sprintf("request %d: %d %s", i, code, b))
			case rogue[h.Get("X-Cocoon-Worker")]:
				byRogue = append(byRogue, fmt.Sprintf("request %d served by %s", i, h.Get("X-Cocoon-Worker")))
			}
		})
	}
	wg.Wait()
	return failed, byRogue
}

// maxNodeMemory bounds what any node of an adversarial test may ever hold resident: an idle
// node holds about 40 MB, and an attack that grew one without bound would pass it.
const maxNodeMemory = 256 << 20

// settled waits until every channel between a's nodes is held alike by payer and payee, and
// neither counts anything owed; it returns each payee's side, by channel id. It also checks
// that no node's peak memory passed maxNodeMemory.
func (a *advNet) settled() map[string]node.ChannelStatus {
	a.t.Helper()
	for _, p := range a.nodes() {
		if _, peak := procMemory(a.t, p); peak > maxNodeMemory {
			a.t.Errorf("%s peaked at %d MB resident, over %d MB", p.name, peak>>20, maxNodeMemory>>20)
		}
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var lists [][]node.ChannelStatus
		for _, p := range a.nodes() {
			lists = append(lists, liveChannels(p))
		}
		held, why := localnet.Agreed(lists...)
		if why == "" {
			return held
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("channels did not settle and agree: %s", why)
		}
	}
}

// status reads the running node p's status from its admin endpoint into st.
func (a *advNet) status(p *proc, st any) {
	a.t.Helper()
	c, err := newNodeClient(p.ready.Admin, "", "")
	if err != nil {
		a.t.Fatal(err)
	}
	if err := c.call(context.Background(), http.MethodGet, "/cocoon/v1/status", st); err != nil {
		a.t.Fatal(err)
	}
}

// locked is what the proxy's channels lock, as its status says.
func (a *advNet) locked() node.Locked {
	var st struct {
		Locked node.Locked `json:"locked"`
	}
	a.status(a.proxy, &st)
	return st.Locked
}

// routed is worker w as the proxy's routing table holds it.
func (a *advNet) routed(w *proc) (node.WorkerStatus, bool) {
	var st struct {
		Workers []node.WorkerStatus `json:"workers"`
	}
	a.status(a.proxy, &st)
	for _, ws := range st.Workers {
		if ws.Peer == w.ready.Peer {
			return ws, true
		}
	}
	return node.WorkerStatus{}, false
}

// logLines are the lines of logs that contain s.
func logLines(logs, s string) string {
	var b strings.Builder
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, s) {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// postWithin is post with the whole exchange bounded by d: a wait that is not bounded fails
// the test rather than hanging it.
func postWithin(d time.Duration, base, path, body string) (int, []byte, http.Header) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+path, strings.NewReader(body))
	if err != nil {
		return 0, []byte(err.Error()), nil
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, []byte(err.Error()), nil
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		b = append(b, err.Error()...)
	}
	for k, v := range resp.Trailer {
		resp.Header[k] = v
	}
	return resp.StatusCode, b, resp.Header
}

// paidTo is what the channels paying p have paid it, in all.
func paidTo(held map[string]node.ChannelStatus, p *proc) (sum uint64) {
	for _, c := range liveChannels(p) {
		if c.Role == "payee" {
			sum += held[c.ChannelID].Paid
		}
	}
	return sum
}

// A worker that quotes a thousand times its advert, or claims 200,000 tokens for a few bytes,
// or a million prompt tokens for a short request, drains nothing: the proxy refuses it before
// anything is paid for what it claims, every request is served by the honest worker, the proxy
// is paid at least what it pays, and the rogues that were refused before their first chunk are
// paid nothing.
func TestRogueWorkersCannotDrainTheProxy(t *testing.T) {
	a := startAdvNet(t, map[string][]string{
		"quote":  {"--fault-quote-factor", "1000"},
		"tokens": {"--fault-claim-tokens", "200000"},
		"prompt": {"--fault-claim-prompt", "1000000"},
	}, "")
	failed, byRogue := a.ask(24, 4, func(int) bool { return false })
	if len(failed) > 0 || len(byRogue) > 0 {
		t.Fatalf("%d failed, %d served by rogues: %v %v", len(failed), len(byRogue), failed, byRogue)
	}
	held := a.settled()
	in, out := paidTo(held, a.proxy), paidTo(held, a.honest)
	for _, r := range a.rogues {
		out += paidTo(held, r)
	}
	if in < out {
		t.Errorf("the proxy was paid %d and paid its workers %d", in, out)
	}
	for _, fault := range []string{"quote", "tokens"} {
		if got := paidTo(held, a.rogues[fault]); got != 0 {
			t.Errorf("the %s rogue was paid %d nanoTON", fault, got)
		}
	}
	refusals := logLines(a.proxy.logs.String(), `msg="worker's answer refused"`)
	for _, why := range []string{"it advertised", "completion tokens, over the request", "prompt tokens for a request"} {
		if !strings.Contains(refusals, why) {
			t.Errorf("the proxy never said it refused a worker for %q:\n%s", why, refusals)
		}
	}
	t.Logf("the proxy was paid %d, paid the honest worker %d and the prompt rogue %d for the chunks it delivered", in, paidTo(held, a.honest), paidTo(held, a.rogues["prompt"]))
}

// Workers that answer garbage the client cannot open, reset every stream, or take requests
// and never answer capture no traffic: each failure counts against the rogue (never as a fast
// answer), the request fails over, every request is served by the honest worker, and the
// rogues are paid nothing.
func TestRogueWorkersCannotCaptureTraffic(t *testing.T) {
	a := startAdvNet(t, map[string][]string{
		"garbage": {"--fault-garbage"},
		"reset":   {"--fault-reset"},
		"hang":    {"--fault-hang"},
		"idle":    {"--fault-idle"},
	}, "")
	start := time.Now()
	failed, byRogue := a.ask(30, 3, func(i int) bool { return i%2 == 0 })
	took := time.Since(start)
	if len(failed) > 0 || len(byRogue) > 0 {
		t.Fatalf("%d failed, %d served by rogues: %v %v", len(failed), len(byRogue), failed, byRogue)
	}
	held := a.settled()
	for fault, r := range a.rogues {
		if got := paidTo(held, r); got != 0 {
			t.Errorf("the %s rogue was paid %d nanoTON", fault, got)
		}
	}
	logs := a.proxy.logs.String()
	failedOver := logLines(logs, "failing over")
	// The idle rogue is timed out by the first-token bound on a streamed request, by the
	// whole-answer bound on one that is not: whichever it was routed first.
	idle := regexp.MustCompile(`sent no (token within 2s|answer within 3s)`)
	for fault, why := range map[string]*regexp.Regexp{"garbage": regexp.MustCompile("the client refused an answer"),
		"reset": regexp.MustCompile("stream reset"), "hang": regexp.MustCompile("stalled: nothing for 1s"), "idle": idle} {
		if !why.MatchString(logs) {
			t.Errorf("the proxy never logged %q (the %s rogue)", why, fault)
		}
		// Each rogue failed, and counts so: it is failing, or ejected, in the proxy's table.
		w, ok := a.routed(a.rogues[fault])
		if !ok || (w.Failures == 0 && w.Streak == 0 && w.EjectedUntil == nil) {
			t.Errorf("the proxy counts no failure for the %s rogue: %+v", fault, w)
		}
	}
	t.Logf("30 requests in %v; %d failovers; the proxy ejected %d times; the client refused %d answers",
		took.Round(time.Millisecond), strings.Count(failedOver, "\n"), strings.Count(logs, "worker ejected"),
		strings.Count(a.client.logs.String(), `msg="answer refused"`))
}

// A worker that stops in the middle of a streamed answer costs that answer (it ends with an
// error event saying the worker stalled, after the 1 s bound) and no more: the proxy stops
// preferring it, the requests after are served whole, and every channel settles.
func TestStalledWorkerCostsOneAnswer(t *testing.T) {
	a := startAdvNet(t, map[string][]string{"stall": {"--fault-stall-after", "1"}}, "")
	failed, _ := a.ask(12, 1, func(int) bool { return true })
	if len(failed) > 2 {
		t.Fatalf("%d of 12 streamed answers failed, want at most the one or two the stalling worker got first: %v", len(failed), failed)
	}
	for _, f := range failed {
		if !strings.Contains(f, "stalled") {
			t.Errorf("a failed answer does not say the worker stalled: %s", f)
		}
	}
	a.settled()
}

// kill9 ends p as a crash would and starts it again on its data dir; the new process is
// returned once ready.
func kill9(t *testing.T, p *proc, args []string) *proc {
	t.Helper()
	p.kill()
	for _, a := range args {
		if strings.HasSuffix(a, ".ready") {
			os.Remove(a)
		}
	}
	return start(t, p.name, args...)
}

// After a kill -9 of a proxy or a client under load, the channels do not jam: the value the
// payee counted and the payer never received is written off when they next meet, and the
// next requests are served at once, without waiting for payment that cannot come.
func TestChannelsDoNotJamAfterKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("starts several processes")
	}
	lp, _ := startLedger(t, "ledger", t.TempDir())
	m := &mesh{t: t, dir: t.TempDir(), network: fmt.Sprintf("jam-%d", time.Now().UnixNano())}
	pay := []string{"--ledger", lp.url, "--dev-fund", "100000000000", "--admin", "127.0.0.1:0"}
	echo := start(t, "echo", "echo-backend", "--listen", "127.0.0.1:0", "--token-delay", "2ms")
	fixed := "/ip4/127.0.0.1/tcp/" + freePort(t)
	proxyArgs := m.nodeArgs("proxy", "proxy", append([]string{"--listen", fixed}, pay...)...)
	proxy := start(t, "proxy", proxyArgs...)
	boot := fixed + "/p2p/" + proxy.ready.Peer
	worker := start(t, "worker", m.nodeArgs("worker", "worker", append([]string{"--bootstrap", boot, "--backend", echo.url,
		"--model", "echo-test@v1:none=echo-test", "--prices", "100,50,400,400"}, pay...)...)...)
	clientArgs := m.nodeArgs("client", "client", append([]string{"--bootstrap", boot, "--api", "127.0.0.1:0", "--min-proxies", "1"}, pay...)...)
	client := start(t, "client", clientArgs...)
	api := func() string { return "http://" + client.ready.API + "/v1" }
	chat := `{"model":"echo-test","stream":true,"messages":[{"role":"user","content":"` + strings.Repeat("word ", 200) + `"}]}`
	served := func(what string) {
		t.Helper()
		var code int
		var b []byte
		m.waitFor(what, func() bool {
			code, b, _ = post(api(), "/chat/completions", chat)
			return code == 200 && bytes.Contains(b, []byte("[DONE]")) && !bytes.Contains(b, []byte(`"error"`))
		})
	}
	load := func(victim *proc, args []string) *proc {
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for ctx.Err() == nil {
					req, _ := http.NewRequestWithContext(ctx, "POST", api()+"/chat/completions", strings.NewReader(chat))
					req.Header.Set("Content-Type", "application/json")
					if resp, err := http.DefaultClient.Do(req); err == nil {
						_, _ = bytes.NewBuffer(nil).ReadFrom(resp.Body)
						resp.Body.Close()
					}
				}
			})
		}
		time.Sleep(700 * time.Millisecond) // answers in flight, vouchers due
		p := kill9(t, victim, args)
		cancel()
		wg.Wait()
		return p
	}
	served("the network serves")

	proxy = load(proxy, proxyArgs)
	start := time.Now()
	served("the network serves after the proxy's kill -9")
	t.Logf("after the proxy's kill -9: served in %v", time.Since(start).Round(time.Millisecond))

	client = load(client, clientArgs)
	start = time.Now()
	served("the network serves after the client's kill -9")
	t.Logf("after the client's kill -9: served in %v", time.Since(start).Round(time.Millisecond))

	a := &advNet{mesh: m, proxy: proxy, honest: worker}
	m.client = client
	a.settled()
	for _, p := range []*proc{proxy, worker} {
		if strings.Contains(p.logs.String(), "payer stopped paying") {
			t.Errorf("%s waited for payment that could not come:\n%s", p.name, p.logs.String())
		}
	}
	t.Logf("write-offs: worker %d, proxy %d", strings.Count(worker.logs.String(), "wrote off"), strings.Count(proxy.logs.String(), "wrote off"))
}

// Fresh worker identities that take requests and never serve lock at most
// payments.unearned_cap of the proxy's deposits, however many join, and requests keep being
// served by the worker that earns.
func TestSybilWorkersLockBoundedDeposits(t *testing.T) {
	const sybils = 6
	a := startAdvNet(t, nil, "[payments]\nunearned_cap = 30000000\n") // three first channels
	if l := a.locked(); l.Total != 0 {
		t.Fatalf("the proxy locked %+v for its worker before any request", l)
	}
	if failed, _ := a.ask(2, 1, func(int) bool { return false }); len(failed) > 0 {
		t.Fatal(failed)
	}
	for i := range sybils {
		name := fmt.Sprintf("sybil%d", i)
		a.rogues[name] = startRogue(t, name, append(a.workerArgs(name), "--fault-reset")...)
	}
	a.waitFor("the client sees every worker", func() bool { return a.modelWorkers() == 1+sybils })
	failed, byRogue := a.ask(30, 3, func(i int) bool { return i%2 == 0 })
	if len(failed) > 0 || len(byRogue) > 0 {
		t.Fatalf("%d failed, %d served by sybils: %v %v", len(failed), len(byRogue), failed, byRogue)
	}
	// The default deposit is 1 TON: a first channel locks 0.01 TON; bounds.toml caps what
	// channels to workers that earned nothing lock at 0.03 TON.
	const first, capped = node.Nano / 100, 3 * node.Nano / 100
	l := a.locked()
	if l.Unearned > capped {
		t.Errorf("the proxy locked %d for workers that earned nothing, over the cap of %d", l.Unearned, capped)
	}
	for _, ch := range liveChannels(a.proxy) {
		if ch.Role == "payer" && ch.Deposit > first && ch.Paid == 0 {
			t.Errorf("a channel to a worker that earned nothing locks %d", ch.Deposit)
		}
	}
	if !strings.Contains(a.proxy.logs.String(), "the cap is reached") {
		t.Errorf("the proxy never said it reached payments.unearned_cap with %d sybils", sybils)
	}
	t.Logf("%d sybils: the proxy locks %d in all, %d for workers that earned nothing", sybils, l.Total, l.Unearned)
}

// A worker process stopped with SIGSTOP costs its callers the stall bound (1 s here), not the
// request's timeout: the requests it was streaming end with an error event saying it stalled,
// those sent after fail over to the other worker, and once it runs again (SIGCONT) every
// channel settles with nothing lost.
func TestStoppedWorkerCostsTheStallBound(t *testing.T) {
	a := startAdvNet(t, nil, "")
	second := start(t, "second", a.workerArgs("second")...)
	a.rogues["second"] = second // not a rogue: counted among the nodes whose channels must agree
	a.waitFor("the client sees both workers", func() bool { return a.modelWorkers() == 2 })
	slow := `{"model":"echo-test","stream":true,"max_tokens":3000,"messages":[{"role":"user","content":"` + strings.Repeat("word ", 3000) + `"}]}`
	type answer struct {
		body   []byte
		worker string
		took   time.Duration
	}
	answers := make(chan answer, 4)
	for range 4 {
		go func() {
			start := time.Now()
			_, b, h := a.post("/chat/completions", slow)
			answers <- answer{b, h.Get("X-Cocoon-Worker"), time.Since(start)}
		}()
	}
	time.Sleep(500 * time.Millisecond) // streaming now (3000 words at 1 ms each take 3 s)
	victim := a.honest
	if err := victim.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	var cut []time.Duration
	for range 4 {
		r := <-answers
		if bytes.Contains(r.body, []byte(`"error"`)) {
			cut = append(cut, time.Since(stopped).Round(time.Millisecond))
			if !bytes.Contains(r.body, []byte("stalled")) {
				t.Errorf("a cut answer does not say the worker stalled: %.300s", r.body[max(0, len(r.body)-300):])
			}
		}
	}
	t.Logf("%d of 4 streams were on the stopped worker; they ended %v after the SIGSTOP", len(cut), cut)
	if failed, byStopped := a.ask(6, 2, func(int) bool { return true }); len(failed) > 0 {
		t.Errorf("requests sent while the worker is stopped failed: %v %v", failed, byStopped)
	}
	if err := victim.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	a.settled()
}
