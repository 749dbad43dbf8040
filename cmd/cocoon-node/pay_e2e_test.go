package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cocoon-mesh/cocoon/api/admin"
	"github.com/cocoon-mesh/cocoon/node"
)

// stop ends the process as Ctrl-C would, and waits.
func (p *proc) stop() {
	p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.kill()
	}
}

// liveChannels asks a running node for its channels, with the local token its ready file
// names; nil if it does not answer (it may be being killed).
func liveChannels(p *proc) []node.ChannelStatus {
	return liveChannelsAt(p, p.ready.Admin)
}

// liveChannelsAt is liveChannels asking the node at addr (its admin address or client API).
func liveChannelsAt(p *proc, addr string) []node.ChannelStatus {
	tok, err := readToken(p.ready.TokenFile)
	if addr == "" || err != nil {
		return nil
	}
	c, err := newNodeClient(addr, tok, "")
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var list admin.ChannelList
	if c.call(ctx, http.MethodGet, "/cocoon/v1/channels", &list) != nil {
		return nil
	}
	return list.Channels
}

// agree reports whether every channel the payer pays on is held by the payee with the same
// paid and seqno.
func agree(payer, payee []node.ChannelStatus) bool {
	held := map[string]node.ChannelStatus{}
	for _, c := range payee {
		if c.Role == "payee" {
			held[c.ChannelID] = c
		}
	}
	n := 0
	for _, c := range payer {
		if c.Role != "payer" {
			continue
		}
		n++
		if h, ok := held[c.ChannelID]; !ok || h.Paid != c.Paid || h.Seqno != c.Seqno {
			return false
		}
	}
	return n > 0
}

// freePort returns a TCP port on loopback that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// listed is one line of `cocoon-node channels list`.
type listed struct {
	role, channel string
	deposit, paid uint64
	seqno         uint64
}

// listChannels runs `cocoon-node channels list` on a stopped node's data dir.
func listChannels(t *testing.T, dir string) []listed {
	t.Helper()
	b, err := exec.Command(binaryPath, "channels", "list", "--data-dir", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("channels list: %v\n%s", err, b)
	}
	var out []listed
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 7 || (f[0] != "payer" && f[0] != "payee") {
			continue
		}
		num := func(s string) uint64 {
			v, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				t.Fatalf("channels list: %q in %q", s, line)
			}
			return v
		}
		out = append(out, listed{role: f[0], channel: f[1], deposit: num(f[3]), paid: num(f[4]), seqno: num(f[6])})
	}
	return out
}

// The crash test's worker prices per token (--prices prompt,cached,completion,reasoning) and
// the proxy's default commission of 50 per mille: what a served answer costs at each hop.
const (
	workerPromptPrice, workerCompletionPrice = 100, 400
	clientPromptPrice, clientCompletionPrice = 105, 420 // +5%, exact: no rounding
)

// bill is what served answers cost, in nanoTON: the client pays the proxy, the proxy the
// worker. Computed here from the usage each answer reports, not by the nodes' code.
type bill struct{ client, worker uint64 }

// billOf prices one answer's X-Cocoon-Usage ("prompt=P cached=C completion=N ..."); false if
// the answer carried none (it failed or was cut).
func billOf(t *testing.T, usage string) (bill, bool) {
	if usage == "" {
		return bill{}, false
	}
	var prompt, cached, completion, reasoning uint64
	var estimated bool
	if _, err := fmt.Sscanf(usage, "prompt=%d cached=%d completion=%d reasoning=%d estimated=%t",
		&prompt, &cached, &completion, &reasoning, &estimated); err != nil || cached != 0 || reasoning != 0 {
		t.Errorf("unexpected usage %q (%v)", usage, err)
		return bill{}, false
	}
	return bill{client: prompt*clientPromptPrice + completion*clientCompletionPrice,
		worker: prompt*workerPromptPrice + completion*workerCompletionPrice}, true
}

// paidOn sums what role's channels in cs have paid (payer) or been paid (payee).
func paidOn(cs []node.ChannelStatus, role string) (sum uint64) {
	for _, c := range cs {
		if c.Role == role {
			sum += c.Paid
		}
	}
	return sum
}

// TestPaymentsSurviveKill9 runs a paying network of real processes on a shared development
// ledger, kills the client, the worker and the proxy with SIGKILL at random points of streaming
// traffic, restarts each on its data dir, and checks that every channel ends with payer and
// payee holding the same durable state: the payer never lost a voucher it sent (it would
// re-sign a used seqno, which the payee refuses), and the payee never lost one it
// acknowledged. After every kill, once traffic stops, each hop must agree again over the
// running nodes' admin endpoints; while it runs, a monitor reads every live node's channels and
// checks that no channel's paid or seqno ever goes down, across the restarts too.
//
// Request by request: what each hop paid in the end is what the answers served cost at the
// quoted prices, to within what the kills allow (a killed payer loses at most one window of
// value received and not yet paid; a cut answer costs at most a whole one), and after the
// last restart every single answer raises each hop's payments by exactly its cost.
func TestPaymentsSurviveKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 5 processes and restarts some of them")
	}
	lp, _ := startLedger(t, "ledger", t.TempDir())
	m := &mesh{t: t, dir: t.TempDir(), network: fmt.Sprintf("pay-%d", time.Now().UnixNano())}
	pay := []string{"--ledger", lp.url, "--dev-fund", "100000000000", "--admin", "127.0.0.1:0"}
	echo := start(t, "echo", "echo-backend", "--listen", "127.0.0.1:0", "--token-delay", "2ms")
	// The proxy keeps its TCP port across restarts: it is everyone's bootstrap peer.
	fixed := "/ip4/127.0.0.1/tcp/" + freePort(t)
	args := map[string][]string{"proxy": m.nodeArgs("proxy", "proxy", append([]string{"--listen", fixed}, pay...)...)}
	procs := map[string]*proc{}
	var api atomic.Pointer[string] // the client's URL: it changes with each restart
	var mu sync.Mutex              // guards procs against the monitor
	restart := func(name string) {
		os.Remove(filepath.Join(m.dir, name+".ready"))
		p := start(t, name, args[name]...)
		mu.Lock()
		procs[name] = p
		mu.Unlock()
		if name == "client" {
			u := "http://" + p.ready.API + "/v1"
			api.Store(&u)
		}
	}
	restart("proxy")
	boot := fixed + "/p2p/" + procs["proxy"].ready.Peer
	args["worker"] = m.nodeArgs("worker", "worker", append([]string{"--bootstrap", boot, "--backend", echo.url,
		"--model", "echo-test@v1:none=echo-test", "--prices", "100,50,400,400"}, pay...)...)
	args["client"] = m.nodeArgs("client", "client", append([]string{"--bootstrap", boot, "--api", "127.0.0.1:0", "--min-proxies", "1"}, pay...)...)
	// What every answer cost, as its usage shows. Served answers add to served. A streamed
	// answer refused with an error status failed before its first token and must cost
	// nothing, as must a request the client's port refused (the client was down). Any other
	// (an answer cut by a kill, a non-streamed one that failed) may have been paid for in
	// part: at most the dearest answer.
	var acct struct {
		sync.Mutex
		served  bill
		dearest bill
		cut     int
	}
	ask := func(body string) (int, bill) {
		stream := strings.Contains(body, `"stream":true`)
		resp, err := http.Post(*api.Load()+"/chat/completions", "application/json", strings.NewReader(body))
		var dial *net.OpError
		if errors.As(err, &dial) && dial.Op == "dial" {
			return 0, bill{}
		}
		code, usage, cost := 0, "", ""
		if err == nil {
			if _, err = io.Copy(io.Discard, resp.Body); err == nil && resp.StatusCode == 200 {
				usage = resp.Trailer.Get("X-Cocoon-Usage") + resp.Header.Get("X-Cocoon-Usage")
				cost = resp.Trailer.Get("X-Cocoon-Cost") + resp.Header.Get("X-Cocoon-Cost")
			}
			resp.Body.Close()
			code = resp.StatusCode
			if stream && code != 200 {
				return code, bill{}
			}
		}
		b, served := billOf(t, usage)
		if served && cost != strconv.FormatUint(b.client, 10) {
			t.Errorf("the client says an answer cost %q, its usage %q costs %d", cost, usage, b.client)
		}
		acct.Lock()
		defer acct.Unlock()
		if !served {
			acct.cut++
			return code, b
		}
		acct.served.client += b.client
		acct.served.worker += b.worker
		acct.dearest.client, acct.dearest.worker = max(acct.dearest.client, b.client), max(acct.dearest.worker, b.worker)
		return code, b
	}
	restart("worker")
	restart("client")
	serving := func() bool {
		code, _ := ask(`{"model":"echo-test","stream":true,"messages":[{"role":"user","content":"are you up"}]}`)
		return code == 200
	}
	m.waitFor("the mesh serves a paid request", serving)

	stopMonitor := make(chan struct{})
	monitorDone := make(chan struct{})
	var observed atomic.Int64
	go func() {
		defer close(monitorDone)
		seen := map[string]node.ChannelStatus{} // node, role, channel -> the highest seen
		for {
			select {
			case <-stopMonitor:
				return
			case <-time.After(50 * time.Millisecond):
			}
			mu.Lock()
			live := maps.Clone(procs)
			mu.Unlock()
			for name, p := range live {
				for _, c := range liveChannels(p) {
					k := name + " " + c.Role + " " + c.ChannelID
					if prev, ok := seen[k]; ok && (c.Seqno < prev.Seqno || c.Paid < prev.Paid) {
						t.Errorf("%s: channel went back from seqno %d paid %d to seqno %d paid %d", k, prev.Seqno, prev.Paid, c.Seqno, c.Paid)
					}
					seen[k] = c
					observed.Add(1)
				}
			}
		}
	}()

	var ok, failed atomic.Int64
	kills := map[string]int{}
	const rounds = 12 // each of the three killed four times
	for round := range rounds {
		victim := []string{"client", "worker", "proxy"}[round%3]
		stopTraffic := make(chan struct{})
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for {
					select {
					case <-stopTraffic:
						return
					default:
					}
					code, _ := ask(`{"model":"echo-test","stream":true,"max_tokens":40,"messages":[{"role":"user","content":"` + strings.Repeat("pay as you go ", 8) + `"}]}`)
					if code == 200 {
						ok.Add(1)
					} else {
						failed.Add(1)
						time.Sleep(20 * time.Millisecond)
					}
				}
			})
		}
		time.Sleep(time.Duration(150+rand.IntN(400)) * time.Millisecond)
		procs[victim].kill()
		kills[victim]++
		restart(victim)
		m.waitFor("the mesh serves again after restarting the "+victim, serving)
		close(stopTraffic)
		wg.Wait()
		// Once the payers settle, each hop agrees again: the kill lost nothing either side
		// had acknowledged.
		m.waitFor(fmt.Sprintf("payers and payees agree after killing the %s", victim), func() bool {
			return agree(liveChannels(procs["client"]), liveChannels(procs["proxy"])) &&
				agree(liveChannels(procs["proxy"]), liveChannels(procs["worker"]))
		})
	}
	// Requests fail while a victim is down (the only proxy or worker, or the client itself).
	t.Logf("%d streamed requests served, %d failed across %d kills", ok.Load(), failed.Load(), rounds)
	if ok.Load() == 0 {
		t.Fatal("no request was served")
	}

	// Every hop paid for what was served through the kills. A killed payer loses what it had
	// received and not yet paid, at most the payee's window (256 completion tokens); a cut
	// answer was paid as far as it was delivered, at most a whole answer.
	hops := func() (client, proxy uint64) {
		return paidOn(liveChannels(procs["client"]), "payer"), paidOn(liveChannels(procs["proxy"]), "payer")
	}
	settled := func() bill {
		var last bill
		m.waitFor("the payers settle", func() bool {
			time.Sleep(300 * time.Millisecond) // longer than a payer's flush_after
			c, p := hops()
			now := bill{client: c, worker: p}
			done := now == last && agree(liveChannels(procs["client"]), liveChannels(procs["proxy"])) &&
				agree(liveChannels(procs["proxy"]), liveChannels(procs["worker"]))
			last = now
			return done
		})
		return last
	}
	paid := settled()
	acct.Lock()
	served, dearest, cut := acct.served, acct.dearest, uint64(acct.cut)
	acct.Unlock()
	within := func(hop string, paid, served uint64, payerKills int, window, dearest uint64) {
		lo, hi := served-min(served, uint64(payerKills)*window), served+cut*dearest
		t.Logf("%s: paid %d nanoTON for answers served worth %d (bounds %d..%d)", hop, paid, served, lo, hi)
		if paid < lo || paid > hi {
			t.Errorf("%s: paid %d nanoTON, outside %d..%d: answers served cost %d, the payer was killed %d times, %d answers were cut",
				hop, paid, lo, hi, served, payerKills, cut)
		}
	}
	within("client->proxy", paid.client, served.client, kills["client"], 256*clientCompletionPrice, dearest.client)
	within("proxy->worker", paid.worker, served.worker, kills["proxy"], 256*workerCompletionPrice, dearest.worker)

	// After the last restart, each answer raises each hop's payments by exactly its cost.
	for i := range 5 {
		before := paid
		code, b := ask(fmt.Sprintf(`{"model":"echo-test","stream":%t,"max_tokens":%d,"messages":[{"role":"user","content":"exact %s"}]}`,
			i%2 == 0, 10+i*7, strings.Repeat("pay ", 3+i)))
		if code != 200 || b == (bill{}) {
			t.Fatalf("exact payment %d: status %d, usage %+v", i, code, b)
		}
		paid = settled()
		if paid.client-before.client != b.client || paid.worker-before.worker != b.worker {
			t.Errorf("answer %d cost %+v, but the client paid %d more and the proxy %d more",
				i, b, paid.client-before.client, paid.worker-before.worker)
		}
	}
	close(stopMonitor)
	<-monitorDone
	t.Logf("%d channel observations never went back", observed.Load())
	for _, name := range []string{"client", "worker", "proxy"} {
		procs[name].stop()
	}

	client, prx, worker := listChannels(t, filepath.Join(m.dir, "client")), listChannels(t, filepath.Join(m.dir, "proxy")), listChannels(t, filepath.Join(m.dir, "worker"))
	t.Logf("client %+v\nproxy %+v\nworker %+v", client, prx, worker)
	match := func(payers, payees []listed, hop string) {
		if len(payers) == 0 {
			t.Fatalf("%s: no channel", hop)
		}
		for _, a := range payers {
			if a.role != "payer" {
				continue
			}
			found := false
			for _, b := range payees {
				if b.role == "payee" && b.channel == a.channel {
					found = true
					if a.paid != b.paid || a.seqno != b.seqno {
						t.Errorf("%s channel %s: the payer signed %d (seqno %d), the payee holds %d (seqno %d)", hop, a.channel, a.paid, a.seqno, b.paid, b.seqno)
					}
					if b.paid == 0 {
						t.Errorf("%s channel %s: nothing paid", hop, a.channel)
					}
				}
			}
			if !found {
				t.Errorf("%s channel %s: the payee has no record of it", hop, a.channel)
			}
		}
	}
	match(client, prx, "client->proxy")
	match(prx, worker, "proxy->worker")
}

// A client whose wallet cannot fund a channel tells the app why, with 402 and what to do: the
// wallet, what it holds, what a channel needs. No proxy would do better, so none is retried.
func TestPoorClientIsToldToFundItsWallet(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 4 processes")
	}
	lp, _ := startLedger(t, "ledger", t.TempDir())
	m := &mesh{t: t, dir: t.TempDir(), network: fmt.Sprintf("poor-%d", time.Now().UnixNano())}
	pay := func(fund string) []string { return []string{"--ledger", lp.url, "--dev-fund", fund} }
	echo := start(t, "echo", "echo-backend", "--listen", "127.0.0.1:0")
	proxy := start(t, "proxy", m.nodeArgs("proxy", "proxy", pay("100000000000")...)...)
	boot := proxy.ready.Addrs[0]
	start(t, "worker", m.nodeArgs("worker", "worker", append([]string{"--bootstrap", boot, "--backend", echo.url,
		"--model", "echo-test@v1:none=echo-test", "--prices", "100,50,400,400"}, pay("100000000000")...)...)...)
	client := start(t, "client", m.nodeArgs("client", "client", append([]string{"--bootstrap", boot, "--api", "127.0.0.1:0",
		"--min-proxies", "1"}, pay("50000000")...)...)...) // 0.05 TON: a first channel locks 0.0625, and fees
	var status int
	var body string
	m.waitFor("the client answers with a payment error", func() bool {
		var b []byte
		status, b, _ = post("http://"+client.ready.API+"/v1", "/chat/completions", `{"model":"echo-test","messages":[{"role":"user","content":"hi"}]}`)
		body = string(b)
		// Not yet connected, or no worker known yet:
		return status != 0 && status != http.StatusServiceUnavailable && status != http.StatusNotFound
	})
	if status != http.StatusPaymentRequired || !strings.Contains(body, `"payment_required"`) ||
		!strings.Contains(body, "cannot fund a payment channel") || !strings.Contains(body, "holds 50000000") ||
		!strings.Contains(body, "fund the wallet") || !strings.Contains(body, "--dev-fund") {
		t.Fatalf("status %d: %s", status, body)
	}
}

// Nodes whose payments do not match leave each other alone, with a log line saying why. A
// paying proxy does not route to a worker that takes no payments (started without a ledger),
// and a paying client does not use such a proxy: every request goes where it can be paid.
// Likewise a proxy without a ledger drops a worker that demands payment, and a client without
// one skips a proxy that does: its requests go to the free proxy and the free worker.
func TestNodesSkipPeersWhosePaymentsDoNotMatch(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 8 processes")
	}
	lp, _ := startLedger(t, "ledger", t.TempDir())
	m := &mesh{t: t, dir: t.TempDir(), network: fmt.Sprintf("mixed-%d", time.Now().UnixNano())}
	pay := []string{"--ledger", lp.url, "--dev-fund", "100000000000"}
	paid := start(t, "echo-paid", "echo-backend", "--listen", "127.0.0.1:0")
	// Slow, so that concurrent requests keep it busy and its proxy tries the other worker too.
	free := start(t, "echo-free", "echo-backend", "--listen", "127.0.0.1:0", "--token-delay", "20ms")
	proxy := start(t, "proxy", m.nodeArgs("proxy", "proxy", pay...)...)
	boot := proxy.ready.Addrs[0]
	worker := func(name string, be *proc, extra ...string) {
		start(t, name, m.nodeArgs(name, "worker", append([]string{"--bootstrap", boot, "--backend", be.url,
			"--model", "echo-test@v1:none=echo-test", "--prices", "100,50,400,400"}, extra...)...)...)
	}
	worker("worker-paid", paid, pay...)
	worker("worker-free", free)                                                                    // no ledger: takes no payments
	proxyFree := start(t, "proxy-free", m.nodeArgs("proxy-free", "proxy", "--bootstrap", boot)...) // no ledger
	client := start(t, "client", m.nodeArgs("client", "client", append([]string{"--bootstrap", boot, "--api", "127.0.0.1:0",
		"--min-proxies", "2"}, pay...)...)...)
	m.waitFor("the proxy drops the worker that takes no payments", func() bool {
		return strings.Contains(proxy.logs.String(), "takes no payments")
	})
	m.waitFor("the client leaves alone the proxy that takes no payments", func() bool {
		return strings.Contains(client.logs.String(), "not using a proxy whose payments do not match ours")
	})
	dropped, skipped := len(proxy.logs.String()), len(client.logs.String())
	for i := range 10 {
		if code, b, _ := post("http://"+client.ready.API+"/v1", "/chat/completions",
			fmt.Sprintf(`{"model":"echo-test","messages":[{"role":"user","content":"paid %d"}]}`, i)); code != 200 {
			t.Fatalf("request %d: %d %s", i, code, b)
		}
	}
	if !strings.Contains(proxy.logs.String(), "worker dropped") {
		t.Errorf("no clear log line:\n%s", proxy.logs.String())
	}
	if after := proxy.logs.String()[dropped:]; strings.Contains(after, "failing over") {
		t.Errorf("requests were still routed to the worker that takes no payments:\n%s", after)
	}
	if after := client.logs.String()[skipped:]; strings.Contains(after, "proxy failed") {
		t.Errorf("requests were still sent to the proxy that takes no payments:\n%s", after)
	}
	m.echo = []*proc{free}
	if n := m.echoStats().Requests; n != 0 {
		t.Errorf("the worker that takes no payments got %d requests", n)
	}
	m.echo = []*proc{paid}
	if n := m.echoStats().Completed; n < 10 {
		t.Errorf("the paid worker completed %d requests, want 10", n)
	}

	// The other way round: a client without a ledger, connected to both proxies.
	freeClient := start(t, "client-free", m.nodeArgs("client-free", "client", "--bootstrap", boot, "--api", "127.0.0.1:0", "--min-proxies", "2")...)
	freeAPI := "http://" + freeClient.ready.API + "/v1"
	m.waitFor("the free client is served", func() bool {
		code, _, _ := post(freeAPI, "/chat/completions", `{"model":"echo-test","messages":[{"role":"user","content":"free"}]}`)
		return code == 200
	})
	var wg sync.WaitGroup
	for i := range 10 { // at once: the free proxy routes some to the idle, paid worker first
		wg.Go(func() {
			code, b, _ := post(freeAPI, "/chat/completions",
				fmt.Sprintf(`{"model":"echo-test","stream":true,"messages":[{"role":"user","content":"free %d"}]}`, i))
			if code != 200 || bytes.Contains(b, []byte(`"error"`)) {
				t.Errorf("free request %d: %d %s", i, code, b)
			}
		})
	}
	wg.Wait()
	m.echo = []*proc{free}
	if n := m.echoStats().Completed; n < 10 {
		t.Errorf("the free worker completed %d requests, want at least 10", n)
	}
	if !strings.Contains(proxyFree.logs.String(), "demands payment") {
		t.Errorf("the free proxy never said why it dropped the paid worker:\n%s", proxyFree.logs.String())
	}
}
