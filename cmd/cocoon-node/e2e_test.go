package main

// End-to-end tests: the real binary, as separate OS processes (2 echo backends, 2 proxies,
// 2 workers, 1 client), on loopback sockets.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cocoon-mesh/cocoon/internal/syncbuf"
)

// binaryPath is the cocoon-node binary, roguePath the same built with -tags rogue (its run
// takes --fault-* flags): both built once by TestMain.
var binaryPath, roguePath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "cocoon-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binaryPath = filepath.Join(dir, "cocoon-node")
	out, err := exec.Command("go", "build", "-buildvcs=auto", "-o", binaryPath, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build cocoon-node: %v\n%s", err, out)
		os.Exit(1)
	}
	roguePath = filepath.Join(dir, "cocoon-node-rogue")
	if out, err := exec.Command("go", "build", "-tags", "rogue", "-o", roguePath, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build the rogue cocoon-node: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is one running cocoon-node process.
type proc struct {
	name  string
	cmd   *exec.Cmd
	ready ready
	url   string // echo backends: base URL
	done  chan struct{}
	logs  *syncbuf.Buffer
}

// start runs the binary with args and waits until it is ready: its ready file exists (nodes)
// or it printed its URL (echo backends).
func start(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	return startEnv(t, name, nil, args...)
}

// startEnv is start with extra environment variables.
func startEnv(t *testing.T, name string, env []string, args ...string) *proc {
	t.Helper()
	return startBinary(t, binaryPath, name, env, args...)
}

// startRogue is start of the rogue build, whose run takes --fault-* flags.
func startRogue(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	return startBinary(t, roguePath, name, nil, args...)
}

// startBinary runs binary with args and env, and waits until it is ready (see start).
func startBinary(t *testing.T, binary, name string, env []string, args ...string) *proc {
	t.Helper()
	logs := &syncbuf.Buffer{}
	p := &proc{name: name, done: make(chan struct{}), logs: logs}
	p.cmd = exec.Command(binary, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stderr = logs
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	readyFile := ""
	for i, a := range args {
		if a == "--ready-file" {
			readyFile = args[i+1]
		}
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			logs.Write([]byte(line + "\n"))
			if i := strings.Index(line, "http://"); i >= 0 && strings.Contains(line, "echo test backend") {
				select {
				case urls <- line[i:]:
				default:
				}
			}
		}
	}()
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("--- %s log ---\n%s", name, logs.String())
		}
	})
	deadline := time.After(20 * time.Second)
	for {
		if readyFile == "" {
			select {
			case p.url = <-urls:
				return p
			case <-p.done:
				t.Fatalf("%s exited early:\n%s", name, logs.String())
			case <-deadline:
				t.Fatalf("%s did not start:\n%s", name, logs.String())
			}
		}
		if b, err := os.ReadFile(readyFile); err == nil && json.Unmarshal(b, &p.ready) == nil {
			return p
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited early:\n%s", name, logs.String())
		case <-deadline:
			t.Fatalf("%s did not get ready:\n%s", name, logs.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// kill ends the process at once, as a crash would.
func (p *proc) kill() {
	if p.cmd.Process != nil {
		p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
	}
}

// mesh is the network under test.
type mesh struct {
	t                *testing.T
	echo             []*proc
	proxies, workers []*proc
	client           *proc
	api              string // client base URL, ".../v1"
	network, dir     string
}

func (m *mesh) nodeArgs(name, role string, extra ...string) []string {
	dir := filepath.Join(m.dir, name)
	return append([]string{"run", "--role", role, "--local", "--network", m.network, "--data-dir", dir,
		"--listen", "/ip4/127.0.0.1/tcp/0,/ip4/127.0.0.1/udp/0/quic-v1",
		"--tee", "simulated", "--insecure-allow-simulated-tee",
		"--ready-file", filepath.Join(m.dir, name+".ready"), "--log-level", "info"}, extra...)
}

func (m *mesh) startProxy(name string, bootstrap ...string) *proc {
	args := m.nodeArgs(name, "proxy")
	if len(bootstrap) > 0 {
		args = append(args, "--bootstrap", strings.Join(bootstrap, ","))
	}
	p := start(m.t, name, args...)
	m.proxies = append(m.proxies, p)
	return p
}

func startMesh(t *testing.T, tokenDelay time.Duration) *mesh {
	m := &mesh{t: t, dir: t.TempDir(), network: fmt.Sprintf("e2e-%d", time.Now().UnixNano())}
	for i := range 2 {
		m.echo = append(m.echo, start(t, fmt.Sprintf("echo%d", i+1), "echo-backend", "--listen", "127.0.0.1:0", "--token-delay", tokenDelay.String()))
	}
	p1 := m.startProxy("proxy1")
	boot := p1.ready.Addrs[0]
	p2 := m.startProxy("proxy2", boot)
	boots := boot + "," + p2.ready.Addrs[0]
	for i := range 2 {
		name := fmt.Sprintf("worker%d", i+1)
		m.workers = append(m.workers, start(t, name, m.nodeArgs(name, "worker",
			"--bootstrap", boots, "--backend", m.echo[i].url, "--model", "echo-test@v1:none=echo-test", "--prices", "1,0,2,2")...))
	}
	m.client = start(t, "client", m.nodeArgs("client", "client", "--bootstrap", boots, "--api", "127.0.0.1:0")...)
	m.api = "http://" + m.client.ready.API + "/v1"
	m.waitFor("client sees 2 proxies and 2 workers", func() bool {
		st := m.status()
		return len(st.Proxies) == 2 && m.modelWorkers() == 2
	})
	// Both proxies must answer (the client takes them in turn).
	seen := map[string]bool{}
	m.waitFor("every proxy answers", func() bool {
		code, _, h := m.post("/chat/completions", `{"model":"echo-test","messages":[{"role":"user","content":"warm up"}]}`)
		if code == 200 {
			seen[h.Get("X-Cocoon-Proxy")] = true
		}
		return len(seen) == 2
	})
	return m
}

func (m *mesh) waitFor(what string, cond func() bool) {
	m.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			m.t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type nodeStatus struct {
	Proxies []string `json:"proxies"`
}

func (m *mesh) status() nodeStatus {
	var st nodeStatus
	resp, err := http.Get(strings.TrimSuffix(m.api, "/v1") + "/cocoon/v1/status")
	if err == nil {
		json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
	}
	return st
}

// modelWorkers is how many workers the client lists for the echo test model.
func (m *mesh) modelWorkers() int { return m.modelCount("echo-test@v1:none") }

func (m *mesh) post(path, body string) (int, []byte, http.Header) { return post(m.api, path, body) }

// post sends body to the API at base (".../v1") and returns the status (0 and the error's text
// when no answer came), the answer and its headers with any trailers.
func post(base, path, body string) (int, []byte, http.Header) {
	resp, err := http.Post(base+path, "application/json", strings.NewReader(body))
	if err != nil {
		return 0, []byte(err.Error()), nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for k, v := range resp.Trailer { // streamed answers end with trailers (the receipt)
		resp.Header[k] = v
	}
	return resp.StatusCode, b, resp.Header
}

type echoStats struct{ Requests, Completed, Cancelled int64 }

func (m *mesh) echoStats() echoStats {
	var sum echoStats
	for _, e := range m.echo {
		var s echoStats
		resp, err := http.Get(strings.TrimSuffix(e.url, "/v1") + "/stats")
		if err != nil {
			continue
		}
		json.NewDecoder(resp.Body).Decode(&s)
		resp.Body.Close()
		sum.Requests += s.Requests
		sum.Completed += s.Completed
		sum.Cancelled += s.Cancelled
	}
	return sum
}

func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 7 processes")
	}
	m := startMesh(t, 20*time.Millisecond)

	t.Run("chat non-streaming", func(t *testing.T) {
		code, b, h := m.post("/chat/completions", `{"model":"echo-test","messages":[{"role":"user","content":"one two three"}]}`)
		var r struct {
			Object  string `json:"object"`
			Choices []struct {
				Message struct{ Content string } `json:"message"`
			} `json:"choices"`
			Usage struct {
				Prompt     int `json:"prompt_tokens"`
				Completion int `json:"completion_tokens"`
			} `json:"usage"`
		}
		if code != 200 || json.Unmarshal(b, &r) != nil || len(r.Choices) != 1 {
			t.Fatalf("status %d: %s", code, b)
		}
		if r.Object != "chat.completion" || r.Choices[0].Message.Content != "one two three" || r.Usage.Completion != 3 {
			t.Fatalf("unexpected answer: %s", b)
		}
		if !strings.Contains(h.Get("X-Cocoon-Usage"), "completion=3") || h.Get("X-Cocoon-Worker") == "" {
			t.Fatalf("usage headers missing: %v", h)
		}
	})

	t.Run("completions non-streaming", func(t *testing.T) {
		code, b, _ := m.post("/completions", `{"model":"echo-test","prompt":"alpha beta","max_tokens":1}`)
		if code != 200 || !strings.Contains(string(b), `"text":"alpha"`) || !strings.Contains(string(b), `"finish_reason":"length"`) {
			t.Fatalf("status %d: %s", code, b)
		}
	})

	t.Run("chat streaming", func(t *testing.T) {
		for _, includeUsage := range []bool{false, true} {
			body := fmt.Sprintf(`{"model":"echo-test","stream":true,"stream_options":{"include_usage":%t},"messages":[{"role":"user","content":"red green blue"}]}`, includeUsage)
			code, b, h := m.post("/chat/completions", body)
			if code != 200 || h.Get("Content-Type") != "text/event-stream" {
				t.Fatalf("status %d %v: %s", code, h, b)
			}
			events := sseData(b)
			if len(events) < 3 || events[len(events)-1] != "[DONE]" {
				t.Fatalf("stream not closed by [DONE]: %q", events)
			}
			var text strings.Builder
			usageChunks := 0
			for _, e := range events[:len(events)-1] {
				var c struct {
					Choices []struct {
						Delta struct{ Content string } `json:"delta"`
					} `json:"choices"`
					Usage *struct {
						Completion int `json:"completion_tokens"`
					} `json:"usage"`
				}
				if err := json.Unmarshal([]byte(e), &c); err != nil {
					t.Fatalf("bad event %q: %v", e, err)
				}
				for _, ch := range c.Choices {
					text.WriteString(ch.Delta.Content)
				}
				if c.Usage != nil {
					usageChunks++
					if c.Usage.Completion != 3 || len(c.Choices) != 0 {
						t.Fatalf("bad usage chunk %q", e)
					}
				}
			}
			if text.String() != "red green blue" {
				t.Fatalf("streamed text %q", text.String())
			}
			if want := map[bool]int{false: 0, true: 1}[includeUsage]; usageChunks != want {
				t.Fatalf("include_usage=%t: %d usage chunks", includeUsage, usageChunks)
			}
		}
	})

	t.Run("bad input", func(t *testing.T) {
		big := `{"model":"echo-test","messages":[{"role":"user","content":"` + strings.Repeat("x", 5<<20) + `"}]}`
		for _, c := range []struct {
			name, path, body string
			status           int
			code             string
		}{
			{"invalid JSON", "/chat/completions", `{"model":`, 400, "bad_request"},
			{"no messages", "/chat/completions", `{"model":"echo-test"}`, 400, "bad_request"},
			{"unknown model", "/chat/completions", `{"model":"nope","messages":[{"role":"user","content":"hi"}]}`, 404, "model_not_found"},
			{"excessive max_tokens", "/chat/completions", `{"model":"echo-test","max_tokens":100000000,"messages":[{"role":"user","content":"hi"}]}`, 400, "bad_request"},
			{"oversized body", "/chat/completions", big, 413, "too_large"},
			{"no prompt", "/completions", `{"model":"echo-test"}`, 400, "bad_request"},
		} {
			before := m.echoStats().Requests
			code, b, _ := m.post(c.path, c.body)
			var e struct {
				Error struct{ Message, Type, Code string } `json:"error"`
			}
			if code != c.status || json.Unmarshal(b, &e) != nil || e.Error.Code != c.code || e.Error.Message == "" {
				t.Errorf("%s: status %d body %.200s", c.name, code, b)
			}
			if after := m.echoStats().Requests; after != before {
				t.Errorf("%s reached a backend", c.name)
			}
		}
		if code, b, _ := m.post("/chat/completions", `{"model":"echo-test","messages":[{"role":"user","content":"still fine"}]}`); code != 200 {
			t.Fatalf("mesh broken after bad input: %d %s", code, b)
		}
	})

	t.Run("tools pass through", func(t *testing.T) {
		body := `{"model":"echo-test","messages":[{"role":"user","content":"weather?"}],"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}],"tool_choice":"auto"}`
		code, b, _ := m.post("/chat/completions", body)
		if code != 200 {
			t.Fatalf("status %d: %s", code, b)
		}
		found := false
		for _, e := range m.echo {
			resp, err := http.Get(strings.TrimSuffix(e.url, "/v1") + "/stats")
			if err != nil {
				continue
			}
			var s struct {
				LastBody []byte `json:"last_body"`
			}
			json.NewDecoder(resp.Body).Decode(&s)
			resp.Body.Close()
			if bytes.Contains(s.LastBody, []byte(`"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}]`)) &&
				bytes.Contains(s.LastBody, []byte(`"tool_choice":"auto"`)) {
				found = true
			}
		}
		if !found {
			t.Fatal("no backend received tools and tool_choice unchanged")
		}
	})

	t.Run("cancelled stream stops the backend", func(t *testing.T) {
		before := m.echoStats()
		words := strings.TrimSpace(strings.Repeat("word ", 200))
		body := `{"model":"echo-test","stream":true,"max_tokens":200,"messages":[{"role":"user","content":"` + words + `"}]}`
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "POST", m.api+"/chat/completions", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		// Read until the first token arrived, then hang up: 200 tokens x 20 ms would take 4 s.
		br := bufio.NewReader(resp.Body)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("stream ended before the first token: %v", err)
			}
			if strings.Contains(line, `"content":"word"`) {
				break
			}
		}
		cancel()
		resp.Body.Close()
		m.waitFor("the backend saw the cancellation", func() bool { return m.echoStats().Cancelled > before.Cancelled })
		if after := m.echoStats(); after.Completed != before.Completed {
			t.Fatalf("the cancelled request still completed on the backend: %+v -> %+v", before, after)
		}
	})

	t.Run("worker killed mid-run", func(t *testing.T) {
		var ok, failed atomic.Int64
		var firstErr atomic.Value
		stop := make(chan struct{})
		var wg sync.WaitGroup
		workersSeen := sync.Map{}
		for range 4 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					code, b, h := m.post("/chat/completions", `{"model":"echo-test","messages":[{"role":"user","content":"keep going"}]}`)
					if code == 200 {
						ok.Add(1)
						workersSeen.Store(h.Get("X-Cocoon-Worker"), true)
					} else {
						failed.Add(1)
						firstErr.CompareAndSwap(nil, fmt.Sprintf("%d %s", code, b))
					}
				}
			})
		}
		m.waitFor("traffic flows", func() bool { return ok.Load() > 20 })
		killed := m.workers[0]
		killed.kill()
		okAtKill := ok.Load()
		m.waitFor("requests keep succeeding after the kill", func() bool { return ok.Load() > okAtKill+50 })
		close(stop)
		wg.Wait()
		if n := failed.Load(); n != 0 {
			t.Fatalf("%d requests failed (first: %v); a worker dying before its first token must fail over", n, firstErr.Load())
		}
		// After the kill, only the surviving worker answers.
		for range 5 {
			_, _, h := m.post("/chat/completions", `{"model":"echo-test","messages":[{"role":"user","content":"who"}]}`)
			if h.Get("X-Cocoon-Worker") != m.workers[1].ready.Peer {
				t.Fatalf("answered by %q after worker1 died", h.Get("X-Cocoon-Worker"))
			}
		}
	})

	t.Run("proxy killed, client re-discovers", func(t *testing.T) {
		m.proxies[0].kill()
		m.waitFor("the client drops the dead proxy", func() bool {
			st := m.status()
			return len(st.Proxies) == 1 && st.Proxies[0] == m.proxies[1].ready.Peer
		})
		for range 5 {
			if code, b, _ := m.post("/chat/completions", `{"model":"echo-test","messages":[{"role":"user","content":"still here"}]}`); code != 200 {
				t.Fatalf("request after proxy death: %d %s", code, b)
			}
		}
		// A new proxy joins; the client, short of proxies, finds it through the DHT.
		p3 := m.startProxy("proxy3", m.proxies[1].ready.Addrs[0])
		m.waitFor("the client discovers the new proxy", func() bool {
			for _, p := range m.status().Proxies {
				if p == p3.ready.Peer {
					return true
				}
			}
			return false
		})
	})
}

// sseData returns the data payloads of a server-sent event stream.
func sseData(b []byte) []string {
	var out []string
	for _, ev := range strings.Split(string(b), "\n\n") {
		if d, ok := strings.CutPrefix(strings.TrimSpace(ev), "data: "); ok {
			out = append(out, d)
		}
	}
	return out
}
