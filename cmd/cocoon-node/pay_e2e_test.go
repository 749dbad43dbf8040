package main

import (
	"context"
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

// liveChannels asks a running node for its channels; nil if it does not answer (it may be
// being killed).
func liveChannels(p *proc) []node.ChannelStatus {
	c, err := newNodeClient(p.ready.Admin, "")
	if p.ready.Admin == "" || err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var list node.ChannelList
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

// TestPaymentsSurviveKill9 runs a paying network of real processes on a shared development
// ledger, kills the client, the worker and the proxy with SIGKILL at random points of streaming
// traffic, restarts each on its data dir, and checks that every channel ends with payer and
// payee holding the same durable state: the payer never lost a voucher it sent (it would
// re-sign a used seqno, which the payee refuses), and the payee never lost one it
// acknowledged. After every kill, once traffic stops, each hop must agree again over the
// running nodes' admin endpoints; while it runs, a monitor reads every live node's channels and
// checks that no channel's paid or seqno ever goes down, across the restarts too.
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
	post := func(body string) int {
		resp, err := http.Post(*api.Load()+"/chat/completions", "application/json", strings.NewReader(body))
		if err != nil {
			return 0
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	restart("worker")
	restart("client")
	serving := func() bool {
		return post(`{"model":"echo-test","messages":[{"role":"user","content":"are you up"}]}`) == 200
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
	for round := range 6 {
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
					code := post(`{"model":"echo-test","stream":true,"max_tokens":40,"messages":[{"role":"user","content":"` + strings.Repeat("pay as you go ", 8) + `"}]}`)
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
	close(stopMonitor)
	<-monitorDone
	// Requests fail while a victim is down (the only proxy or worker, or the client itself).
	t.Logf("%d streamed requests served, %d failed across 6 kills; %d channel observations never went back", ok.Load(), failed.Load(), observed.Load())
	if ok.Load() == 0 {
		t.Fatal("no request was served")
	}
	time.Sleep(time.Second) // the payers settle what their last answers left unpaid
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
