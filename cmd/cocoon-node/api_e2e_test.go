package main

// What a web page in the operator's browser, or a swarm of slow clients, can do to a real
// client node on a paying mesh: nothing that costs money or locks callers out.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cocoon-mesh/cocoon/node"
)

// payingMesh starts a ledger, an echo backend, a proxy, a worker and a client (the client
// with config file lines cfg), all paying over channels, and waits until a paid request is
// served. It returns the mesh and the client.
func payingMesh(t *testing.T, cfg string) (*mesh, *proc) {
	t.Helper()
	lp, _ := startLedger(t, "ledger", t.TempDir())
	m := &mesh{t: t, dir: t.TempDir(), network: fmt.Sprintf("api-%d", time.Now().UnixNano())}
	pay := []string{"--ledger", lp.url, "--dev-fund", "100000000000"}
	m.echo = []*proc{start(t, "echo", "echo-backend", "--listen", "127.0.0.1:0")}
	proxy := start(t, "proxy", m.nodeArgs("proxy", "proxy", pay...)...)
	m.proxies = []*proc{proxy}
	boot := proxy.ready.Addrs[0]
	m.workers = []*proc{start(t, "worker", m.nodeArgs("worker", "worker", append([]string{"--bootstrap", boot, "--backend", m.echo[0].url,
		"--model", "echo-test@v1:none=echo-test", "--prices", "100,50,400,400"}, pay...)...)...)}
	cfgFile := filepath.Join(m.dir, "client.toml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	m.client = start(t, "client", m.nodeArgs("client", "client", append([]string{"--config", cfgFile, "--bootstrap", boot,
		"--api", "127.0.0.1:0", "--min-proxies", "1"}, pay...)...)...)
	m.api = "http://" + m.client.ready.API + "/v1"
	m.waitFor("the mesh serves a paid request", func() bool {
		code, _, h := m.post("/chat/completions", `{"model":"echo-test","messages":[{"role":"user","content":"warm up"}]}`)
		return code == 200 && h.Get("X-Cocoon-Cost") != ""
	})
	return m, m.client
}

// clientChannels is what the client pays on: its channels' IDs and what they paid in all,
// once that stops moving (the client pays for an answer just after it ends).
func (m *mesh) clientChannels() (ids []string, paid uint64) {
	m.t.Helper()
	last := uint64(1<<64 - 1)
	m.waitFor("the client's payments settle", func() bool {
		time.Sleep(300 * time.Millisecond) // longer than a payer's flush_after
		chans := liveChannelsAt(m.client, m.client.ready.API)
		ids, paid = nil, 0
		for _, c := range chans {
			if c.Role == "payer" {
				ids, paid = append(ids, c.ChannelID), paid+c.Paid
			}
		}
		slices.Sort(ids)
		done := len(chans) > 0 && paid == last
		last = paid
		return done
	})
	return ids, paid
}

// send makes one request to the client's API with the given headers ("Host" sets the Host
// header) and returns the status and body.
func send(t *testing.T, method, url, body string, hdr ...string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// A web page cannot spend the client's money: a cross-origin text/plain POST (which a browser
// sends without asking) gets no completion and costs nothing, a DNS-rebinding request naming
// the attacker's host is refused, and a bodiless cross-origin POST to a channel command opens
// no channel. The operator's own commands, with the local token from the data dir, still work.
func TestWebPagesCannotSpendTheClientsMoney(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 5 processes")
	}
	m, client := payingMesh(t, "")
	base := "http://" + client.ready.API
	chat := `{"model":"echo-test","messages":[{"role":"user","content":"spend the money"}]}`
	ids, paid := m.clientChannels()
	requests := m.echoStats().Requests
	for _, c := range []struct {
		name, url, body string
		hdr             []string
		status          int
		says            string
	}{
		{"cross-origin text/plain POST", base + "/v1/chat/completions", chat,
			[]string{"Content-Type", "text/plain;charset=UTF-8", "Origin", "https://evil.example"}, 403, "allowed_origins"},
		{"cross-origin JSON POST", base + "/v1/chat/completions", chat,
			[]string{"Content-Type", "application/json", "Origin", "https://evil.example"}, 403, "allowed_origins"},
		{"text/plain without Origin", base + "/v1/completions", `{"model":"echo-test","prompt":"x"}`,
			[]string{"Content-Type", "text/plain"}, 415, "Content-Type: application/json"},
		{"DNS rebinding", base + "/v1/chat/completions", chat,
			[]string{"Content-Type", "application/json", "Host", "attacker.example:" + portOf(client.ready.API)}, 403, "allowed_hosts"},
		{"DNS rebinding, models", base + "/v1/models", "", []string{"Host", "attacker.example"}, 403, "allowed_hosts"},
		{"cross-origin topup", base + "/cocoon/v1/channels/" + m.proxies[0].ready.Peer + "/topup", "",
			[]string{"Origin", "https://evil.example"}, 403, "allowed_origins"},
		{"bodiless topup, no token", base + "/cocoon/v1/channels/" + m.proxies[0].ready.Peer + "/topup", "", nil, 415, "application/json"},
		{"JSON topup, no token", base + "/cocoon/v1/channels/" + m.proxies[0].ready.Peer + "/topup", "{}",
			[]string{"Content-Type", "application/json"}, 401, "local token"},
		{"wallet, no token", base + "/cocoon/v1/wallet", "", nil, 401, "local-token"},
	} {
		method := "POST"
		if c.body == "" && !strings.Contains(c.url, "/channels/") {
			method = "GET"
		}
		status, body := send(t, method, c.url, c.body, c.hdr...)
		if status != c.status || !strings.Contains(body, c.says) || strings.Contains(body, "choices") {
			t.Errorf("%s: %d %s", c.name, status, body)
		}
	}
	afterIDs, afterPaid := m.clientChannels()
	if afterPaid != paid || !slices.Equal(afterIDs, ids) || m.echoStats().Requests != requests {
		t.Fatalf("the refused requests cost money or work: paid %d -> %d, channels %v -> %v, backend requests %d -> %d",
			paid, afterPaid, ids, afterIDs, requests, m.echoStats().Requests)
	}
	t.Logf("refused requests: the client paid %d nanoTON before and after, on channels %v", paid, ids)

	// The operator's own command, with the token the node wrote in its data dir, works.
	out, err := runCmd("channels", "topup", m.proxies[0].ready.Peer, "--node", base, "--data-dir", filepath.Join(m.dir, "client"))
	if err != nil || !strings.Contains(out, "state=open") {
		t.Fatalf("topup with the local token: %q %v", out, err)
	}
	if newIDs, _ := m.clientChannels(); slices.Equal(newIDs, ids) {
		t.Fatalf("topup with the local token opened no channel: %v", newIDs)
	}
	if st, err := os.Stat(client.ready.TokenFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("token file %s: %v %v", client.ready.TokenFile, st, err)
	}
}

func portOf(hostport string) string {
	_, p, _ := net.SplitHostPort(hostport)
	return p
}

// openFDs counts the descriptors process pid holds (Linux: /proc), or skips the test.
func openFDs(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Skipf("cannot count descriptors here: %v", err)
	}
	return len(ents)
}

// keepAlive opens a connection, asks for the node's status on it, reads the answer and leaves
// the connection open: an idle keep-alive connection. It returns the connection and the status
// (0 if the node closed it first).
func keepAlive(addr string) (net.Conn, int, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, 0, err
	}
	fmt.Fprintf(c, "GET /cocoon/v1/status HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return c, 0, nil
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	c.SetReadDeadline(time.Time{})
	return c, resp.StatusCode, nil
}

// 2,000 idle keep-alive connections and 20 bodies trickling in cannot take the client's
// descriptors: it holds at most [http] max_conns of them (the idlest make room for new ones),
// a normal completion and a health check succeed meanwhile, and the trickling bodies are cut
// after body_timeout.
func TestSlowClientsCannotExhaustTheClient(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 5 processes and opens 2,000 connections")
	}
	m, client := payingMesh(t, "[http]\nbody_timeout = \"2s\"\n")
	pid, addr := client.cmd.Process.Pid, client.ready.API
	maxConns := node.DefaultConfig().HTTP.MaxConns
	before := openFDs(t, pid)

	const idle, trickling = 2000, 20
	conns := make([]net.Conn, idle)
	var ok, refused atomic.Int64
	var dialErr atomic.Value
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < idle; i += 8 {
				c, status, err := keepAlive(addr)
				if err != nil {
					dialErr.CompareAndSwap(nil, err)
					return
				}
				conns[i] = c
				switch status {
				case 200:
					ok.Add(1)
				case 503:
					refused.Add(1)
				}
			}
		})
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	})
	if err, _ := dialErr.Load().(error); errors.Is(err, syscall.EMFILE) {
		t.Skipf("this test process cannot open %d connections: %v", idle, err)
	} else if err != nil {
		t.Fatal(err)
	}
	var slow []net.Conn
	stop := make(chan struct{})
	defer close(stop)
	for range trickling {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "POST /v1/chat/completions HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{", addr)
		go func() { // a byte every 100 ms: the body would take more than a day
			for {
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Millisecond):
				}
				if _, err := c.Write([]byte(" ")); err != nil {
					return
				}
			}
		}()
		slow = append(slow, c)
	}
	time.Sleep(200 * time.Millisecond) // the trickling requests' headers are read
	during := openFDs(t, pid)

	// Meanwhile: a health check and a paid completion, each on a new connection.
	if code, body := send(t, "GET", "http://"+addr+"/cocoon/v1/status", ""); code != 200 {
		t.Errorf("health check while %d connections are held: %d %s", idle+trickling, code, body)
	}
	if code, b, _ := m.post("/chat/completions", `{"model":"echo-test","messages":[{"role":"user","content":"still served"}]}`); code != 200 {
		t.Errorf("completion while %d connections are held: %d %s", idle+trickling, code, b)
	}
	// The trickling bodies are cut after body_timeout, with a 408.
	cut, deadline := 0, time.Now().Add(20*time.Second)
	for _, c := range slow {
		c.SetReadDeadline(deadline)
		b, _ := io.ReadAll(c)
		if strings.Contains(string(b), " 408 ") && strings.Contains(string(b), "body_timeout") {
			cut++
		}
	}
	after := openFDs(t, pid)
	for end := time.Now().Add(3 * time.Second); after > during-trickling && time.Now().Before(end); after = openFDs(t, pid) {
		time.Sleep(50 * time.Millisecond) // a cut connection is closed 500 ms after its answer
	}
	t.Logf("client descriptors: %d before, %d with %d idle and %d trickling connections held (max_conns %d), %d after the bodies were cut; %d status requests served, %d refused 503",
		before, during, idle, trickling, maxConns, after, ok.Load(), refused.Load())
	if during > before+maxConns+64 {
		t.Errorf("the client holds %d descriptors with %d connections open against it, %d before: the cap of %d does not hold",
			during, idle+trickling, before, maxConns)
	}
	if cut != trickling {
		t.Errorf("%d of %d trickling bodies were cut with a 408 naming body_timeout", cut, trickling)
	}
}
