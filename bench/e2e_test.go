package bench

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestRunEndToEnd runs a tiny bench over all three targets and checks that every scenario
// produced results and no request failed. It asserts nothing about speed.
func TestRunEndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	targets, err := StartTargets(ctx, TargetsConfig{Proxies: 2, Workers: 2, WorkerMaxActive: 8, Progress: func(s string) { t.Log(s) }})
	if err != nil {
		t.Fatal(err)
	}
	defer targets.Close()
	for _, m := range Modes() {
		if !strings.HasSuffix(targets.URLs[m], "/v1") {
			t.Fatalf("target %s URL %q", m, targets.URLs[m])
		}
	}
	var progressed int
	rep, err := Run(ctx, targets, Config{
		Concurrency: []int{1, 4}, Streams: []bool{false, true}, Requests: 20, Warmup: 5, Rounds: 2,
		Shape:    Shape{PromptWords: 6, MaxTokens: 4},
		Progress: func(Result) { progressed++ },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", rep)
	if len(rep.Results) != 20 || progressed != 20 {
		t.Fatalf("%d results, %d progress calls; want 20 (5 modes x 2 stream modes x 2 concurrencies)", len(rep.Results), progressed)
	}
	seen := map[Mode]int{}
	vouchers := map[Mode]float64{}
	for _, r := range rep.Results {
		seen[r.Mode]++
		vouchers[r.Mode] += r.VouchersPerRequest * float64(r.Requests)
		name := string(r.Mode) + " stream " + onOff(r.Stream)
		if r.Errors != 0 || r.OK != 20 || r.Requests != 20 {
			t.Errorf("%s c=%d: %d ok, %d errors (first: %s)", name, r.Concurrency, r.OK, r.Errors, r.FirstError)
		}
		if r.RPS <= 0 || r.Wall <= 0 || r.Latency.P50 <= 0 || r.Latency.P99 < r.Latency.P50 || r.TTFT.P50 <= 0 {
			t.Errorf("%s c=%d: empty measurements: %+v", name, r.Concurrency, r)
		}
		if r.Rounds != 2 || len(r.RoundRPS) != 2 || r.Spread() <= 0 {
			t.Errorf("%s c=%d: rounds %d, round req/s %v", name, r.Concurrency, r.Rounds, r.RoundRPS)
		}
		if !r.Stream && r.TTFT != r.Latency {
			t.Errorf("%s: non-stream TTFT %+v differs from latency %+v", name, r.TTFT, r.Latency)
		}
		if r.Stream && r.TTFT.P50 > r.Latency.P50 {
			t.Errorf("%s: TTFT p50 %v after latency p50 %v", name, r.TTFT.P50, r.Latency.P50)
		}
	}
	for _, m := range Modes() {
		if seen[m] != 4 {
			t.Errorf("mode %s has %d results, want 4", m, seen[m])
		}
	}
	// Only the paying mesh signs vouchers, and they did.
	if vouchers[Mesh] == 0 || vouchers[MeshClear] == 0 || vouchers[MeshUnpaid] != 0 || vouchers[Direct] != 0 || vouchers[HTTP2Hop] != 0 {
		t.Errorf("vouchers signed per mode: %v", vouchers)
	}
	if len(rep.Comparisons) != 4 {
		t.Errorf("%d comparisons, want 4", len(rep.Comparisons))
	}
	if len(rep.Checks) != 3 { // c=1 latency and TTFT, on-chain messages; no c=16 or c=64 here
		t.Errorf("%d checks, want 3: %+v", len(rep.Checks), rep.Checks)
	} else if c := rep.Checks[2]; !c.Pass || c.Value != "0" || !strings.Contains(c.Name, "served 160 requests") {
		t.Errorf("on-chain check: %+v", c)
	}
	if rep.Failures() != 0 {
		t.Errorf("%d failures", rep.Failures())
	}
	// Every answer came through the workers' echo backends.
	var served int64
	for _, e := range targets.Net.Echo {
		served += e.Stats().Completed
	}
	if want := int64(4 * (20 + 5)); served < want { // 4 scenarios, 20 measured and at least 5 warm-up requests each
		t.Errorf("mesh echo backends completed %d requests, want at least %d", served, want)
	}
}

// TestClientCatchesWrongAnswers points the load generator at a server that answers every
// request with the same text: the unique first word of each prompt is missing, so it fails.
func TestClientCatchesWrongAnswers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	targets, err := StartTargets(ctx, TargetsConfig{Modes: []Mode{Direct}})
	if err != nil {
		t.Fatal(err)
	}
	defer targets.Close()
	c := NewClient(targets.URLs[Direct], 1, Shape{})
	defer c.Close()
	for _, stream := range []bool{false, true} {
		if _, err := c.Do(ctx, stream); err != nil {
			t.Fatalf("stream %v: %v", stream, err)
		}
	}
	// A URL whose server answers 404 counts as a failure with the status in the message.
	bad := NewClient(strings.TrimSuffix(targets.URLs[Direct], "/v1")+"/nope", 1, Shape{})
	defer bad.Close()
	if _, err := bad.Do(ctx, false); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("error = %v, want an HTTP 404 failure", err)
	}
	res, err := RunScenario(ctx, bad, Scenario{Mode: Direct, Concurrency: 2, Requests: 4})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 4 || res.OK != 0 || !strings.Contains(res.FirstError, "404") {
		t.Errorf("scenario against a 404: %+v", res)
	}
	if _, err := RunScenario(ctx, bad, Scenario{Mode: Direct, Concurrency: 1, Requests: 4, Warmup: 2}); err == nil {
		t.Error("a target failing every warm-up request must stop the run")
	}
}

func benchChat(b *testing.B, mode Mode) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	targets, err := StartTargets(ctx, TargetsConfig{Modes: []Mode{mode}})
	if err != nil {
		b.Fatal(err)
	}
	defer targets.Close()
	c := NewClient(targets.URLs[mode], 1, Shape{})
	defer c.Close()
	var s scratch
	for range 20 { // warm connections and caches
		if _, err := c.do(ctx, false, &s); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.do(ctx, false, &s); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMeshChat sends non-stream chat completions, one at a time, through a local mesh
// (client API -> proxy -> worker -> echo backend). Allocations count the whole process.
func BenchmarkMeshChat(b *testing.B) { benchChat(b, Mesh) }

// BenchmarkDirectChat sends the same requests straight to an echo backend.
func BenchmarkDirectChat(b *testing.B) { benchChat(b, Direct) }

// BenchmarkHTTP2HopChat sends them through two ReverseProxy hops to an echo backend.
func BenchmarkHTTP2HopChat(b *testing.B) { benchChat(b, HTTP2Hop) }

func benchChatParallel(b *testing.B, mode Mode, stream bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	const conc = 64
	targets, err := StartTargets(ctx, TargetsConfig{Modes: []Mode{mode}, WorkerMaxActive: conc})
	if err != nil {
		b.Fatal(err)
	}
	defer targets.Close()
	c := NewClient(targets.URLs[mode], conc, Shape{})
	defer c.Close()
	b.SetParallelism(conc / 2) // 64 goroutines on 2 CPUs, as the bench's c=64
	b.ReportAllocs()
	b.ResetTimer() // starting the mesh is not part of a request
	cpu0 := processCPU()
	defer func() { b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op") }()
	b.RunParallel(func(pb *testing.PB) {
		var s scratch
		for pb.Next() {
			if _, err := c.do(ctx, stream, &s); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkMeshChatParallel is BenchmarkMeshChat at concurrency 64.
func BenchmarkMeshChatParallel(b *testing.B) { benchChatParallel(b, Mesh, false) }

// BenchmarkMeshStreamParallel streams the answers (16 tokens each) at concurrency 64.
func BenchmarkMeshStreamParallel(b *testing.B) { benchChatParallel(b, Mesh, true) }

// BenchmarkHTTP2HopStreamParallel streams them through two ReverseProxy hops.
func BenchmarkHTTP2HopStreamParallel(b *testing.B) { benchChatParallel(b, HTTP2Hop, true) }

// BenchmarkHTTP2HopChatParallel is BenchmarkHTTP2HopChat at concurrency 64.
func BenchmarkHTTP2HopChatParallel(b *testing.B) { benchChatParallel(b, HTTP2Hop, false) }

// BenchmarkMeshClearChatParallel is BenchmarkMeshChatParallel with sealing off.
func BenchmarkMeshClearChatParallel(b *testing.B) { benchChatParallel(b, MeshClear, false) }
