package main

// End-to-end tests of the worker's model backends: real processes (a proxy, a worker running
// the built-in engine, a client) on loopback sockets.

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cocoon-mesh/cocoon/model"
)

// procMemory reads a process's resident set (VmRSS) and its peak (VmHWM) in bytes.
func procMemory(t *testing.T, p *proc) (rss, peak int64) {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, value, _ := strings.Cut(sc.Text(), ":")
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		switch {
		case err != nil:
		case name == "VmRSS":
			rss = kb << 10
		case name == "VmHWM":
			peak = kb << 10
		}
	}
	if rss == 0 || peak == 0 {
		t.Fatalf("no VmRSS/VmHWM in /proc/%d/status", p.cmd.Process.Pid)
	}
	return rss, peak
}

// startEmbeddedMesh starts a proxy, a worker serving the built-in model with --backend embedded,
// and a client, and returns the mesh with the worker and the client's API at m.api.
func startEmbeddedMesh(t *testing.T) (*mesh, *proc) {
	m := &mesh{t: t, dir: t.TempDir(), network: fmt.Sprintf("e2e-be-%d", time.Now().UnixNano())}
	boot := m.startProxy("proxy1").ready.Addrs[0]
	w := start(t, "worker1", m.nodeArgs("worker1", "worker", "--bootstrap", boot, "--backend", "embedded")...)
	m.workers = append(m.workers, w)
	m.client = start(t, "client", m.nodeArgs("client", "client", "--bootstrap", boot, "--api", "127.0.0.1:0")...)
	m.api = "http://" + m.client.ready.API + "/v1"
	m.waitFor("the built-in model answers", func() bool {
		code, _, _ := m.post("/completions", `{"model":"`+model.EmbeddedName+`","prompt":"Package strings","max_tokens":4}`)
		return code == 200
	})
	return m, w
}

// TestEmbeddedWorkerRefusesHugePromptsCheaply sends ten prompts of nearly 4 MiB (the nodes'
// body limit) at once to a worker running the built-in engine, whose context is 128 tokens. Each
// must be refused with a 400 or 413 naming the limit, and the worker's memory must stay near
// its idle figure: before the engine checked prompt sizes ahead of tokenizing, each such
// request took about 450 MB, and this burst took the worker above 2 GB.
func TestEmbeddedWorkerRefusesHugePromptsCheaply(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 3 processes")
	}
	m, w := startEmbeddedMesh(t)
	idle, _ := procMemory(t, w)

	const parallel = 10
	huge := strings.Repeat("Package strings implements simple functions. ", (4<<20-1024)/46)
	bodies := []struct{ path, body string }{
		{"/completions", `{"model":"` + model.EmbeddedName + `","prompt":"` + huge + `"}`},
		{"/chat/completions", `{"model":"` + model.EmbeddedName + `","messages":[{"role":"user","content":"` + huge + `"}]}`},
	}
	one := time.Now()
	code, out, _ := m.post(bodies[0].path, bodies[0].body)
	t.Logf("one huge prompt: %d after %v: %.200s", code, time.Since(one).Round(time.Millisecond), out)

	began := time.Now()
	var wg sync.WaitGroup
	answers := make([]string, parallel)
	codes := make([]int, parallel)
	for i := range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := bodies[i%len(bodies)]
			code, out, _ := m.post(b.path, b.body)
			codes[i], answers[i] = code, string(out)
		}()
	}
	wg.Wait()
	took := time.Since(began)
	rss, peak := procMemory(t, w)
	t.Logf("worker memory: idle %d MB, after %d MB, peak %d MB; %d refusals in %v", idle>>20, rss>>20, peak>>20, parallel, took.Round(time.Millisecond))

	for i := range parallel {
		if (codes[i] != 400 && codes[i] != 413) || !strings.Contains(answers[i], "context of 128 tokens") {
			t.Errorf("request %d: status %d: %.300s", i, codes[i], answers[i])
		}
	}
	// The worker holds each body a few times over while it unseals and checks it (10 x 4 MiB
	// x a few); 512 MB is far above that and far below what tokenizing the prompts takes.
	const ceiling = 512 << 20
	if peak > ceiling {
		t.Errorf("worker peak RSS %d MB (idle %d MB) is above %d MB", peak>>20, idle>>20, ceiling>>20)
	}
	if code, b, _ := m.post("/completions", `{"model":"`+model.EmbeddedName+`","prompt":"Package strings","max_tokens":4}`); code != 200 {
		t.Fatalf("worker broken after the burst: %d %s", code, b)
	}
}
