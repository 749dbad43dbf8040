package bench

import (
	"strings"
	"testing"
	"time"
)

func res(m Mode, stream bool, conc int, rps float64, p50, ttft50 time.Duration, errs int) Result {
	return Result{Mode: m, Stream: stream, Concurrency: conc, Requests: 100, OK: 100 - errs, Errors: errs, RPS: rps,
		Latency: Summary{P50: p50, P99: 2 * p50}, TTFT: Summary{P50: ttft50, P99: 2 * ttft50}}
}

func TestFormatters(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{FormatMs(0), "0.000"},
		{FormatMs(412 * time.Microsecond), "0.412"},
		{FormatMs(1500 * time.Nanosecond), "0.002"}, // rounds to the microsecond
		{FormatMs(12345678 * time.Nanosecond), "12.346"},
		{FormatDelta(412 * time.Microsecond), "+0.412ms"},
		{FormatDelta(0), "+0.000ms"},
		{FormatDelta(-30 * time.Microsecond), "-0.030ms"},
		{FormatRatio(0.8765, true), "0.88"},
		{FormatRatio(1.5, true), "1.50"},
		{FormatRatio(0.5, false), "n/a"},
		{FormatRatio(0, true), "n/a"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestCompare(t *testing.T) {
	results := []Result{
		res(Mesh, false, 1, 2000, ms(0.7), ms(0.7), 0),
		res(Direct, false, 1, 5000, ms(0.2), ms(0.2), 0),
		res(HTTP2Hop, false, 1, 2500, ms(0.4), ms(0.4), 0),
		res(Mesh, true, 16, 900, ms(9), ms(4), 0),
		res(HTTP2Hop, true, 16, 1000, ms(8), ms(3.5), 0),
		res(Direct, true, 64, 1000, ms(8), ms(3.5), 0), // no mesh: no comparison
	}
	got := Compare(results)
	if len(got) != 2 {
		t.Fatalf("Compare gave %d comparisons, want 2: %+v", len(got), got)
	}
	c := got[0]
	if c.Stream || c.Concurrency != 1 || !c.HasDirect || !c.HasHop {
		t.Errorf("first comparison keys wrong: %+v", c)
	}
	if c.MeshOverHop != 0.8 || c.MeshOverDirect != 0.4 {
		t.Errorf("ratios = %v, %v; want 0.8, 0.4", c.MeshOverHop, c.MeshOverDirect)
	}
	if c.AddedLatency != ms(0.5) || c.AddedTTFT != ms(0.5) || c.AddedLatencyHop != ms(0.3) {
		t.Errorf("added = %v, %v, %v; want 0.5ms, 0.5ms, 0.3ms", c.AddedLatency, c.AddedTTFT, c.AddedLatencyHop)
	}
	c = got[1]
	if !c.Stream || c.Concurrency != 16 || c.HasDirect || !c.HasHop || c.MeshOverHop != 0.9 || c.MeshOverDirect != 0 {
		t.Errorf("second comparison wrong: %+v", c)
	}
	if c.AddedTTFTHop != ms(0.5) {
		t.Errorf("AddedTTFTHop = %v, want 0.5ms", c.AddedTTFTHop)
	}
	// A baseline that served nothing gives no ratio rather than a division by zero.
	z := Compare([]Result{res(Mesh, false, 1, 10, 1, 1, 0), res(HTTP2Hop, false, 1, 0, 0, 0, 100)})
	if z[0].MeshOverHop != 0 || !z[0].HasHop {
		t.Errorf("zero baseline: %+v", z[0])
	}
}

func TestChecks(t *testing.T) {
	results := []Result{
		res(Mesh, false, 1, 2000, ms(0.6), ms(0.6), 0),
		res(Direct, false, 1, 5000, ms(0.2), ms(0.2), 0),
		res(HTTP2Hop, false, 1, 2500, ms(0.4), ms(0.4), 0),
		res(Mesh, false, 16, 950, ms(9), ms(9), 2),
		res(Direct, false, 16, 2000, ms(5), ms(5), 0),
		res(HTTP2Hop, false, 16, 1000, ms(8), ms(8), 0),
		res(Mesh, false, 64, 800, ms(9), ms(9), 0),
		res(HTTP2Hop, false, 64, 1000, ms(8), ms(8), 0),
		res(Mesh, true, 1, 900, ms(2), ms(1.2), 0),
		res(Direct, true, 1, 1000, ms(1), ms(0.3), 0),
		res(Mesh, true, 4, 900, ms(2), ms(1.2), 0), // c=4: no target
		res(HTTP2Hop, true, 4, 1000, ms(1), ms(0.3), 0),
	}
	got := Checks(results)
	want := []Check{
		{Name: "mesh/http2hop req/s, stream off, c=16", Value: "0.95", Target: ">= 0.90", Pass: true, Note: "2 failed requests behind this figure"},
		{Name: "mesh/http2hop req/s, stream off, c=64", Value: "0.80", Target: ">= 0.90", Pass: false},
		{Name: "added p50 latency vs direct, non-stream, c=1", Value: "+0.400ms", Target: "<= 0.500ms", Pass: true},
		{Name: "TTFT p50 overhead vs direct, stream, c=1", Value: "+0.900ms", Target: "<= 1.000ms", Pass: true},
	}
	if len(got) != len(want) {
		t.Fatalf("Checks gave %d, want %d:\n%+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("check %d:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
	// Exactly at the limits passes; just above misses.
	edge := Checks([]Result{
		res(Mesh, false, 1, 1, ms(0.7), ms(0.7), 0), res(Direct, false, 1, 1, ms(0.2), ms(0.2), 0),
		res(Mesh, true, 1, 1, ms(5), ms(1.3)+1, 0), res(Direct, true, 1, 1, ms(1), ms(0.3), 0),
		res(Mesh, true, 64, 900, 1, 1, 0), res(HTTP2Hop, true, 64, 1000, 1, 1, 0),
	})
	if len(edge) != 3 || !edge[0].Pass || !edge[1].Pass || edge[2].Pass {
		t.Errorf("edge checks: %+v", edge)
	}
}

func TestWriteTableAndChecks(t *testing.T) {
	r := res(Mesh, true, 16, 1234.56, ms(1.5), ms(0.75), 3)
	r.FirstError = "HTTP 503: busy"
	r.CPUPerRequest = 250 * time.Microsecond
	r.CPUCores = 1.93
	r.VouchersPerRequest = 0.875
	r.WaitsPerRequest = 0.125
	steady := res(Direct, false, 1, 10, ms(0.1), ms(0.1), 0)
	steady.RoundRPS = []float64{10, 12.9}
	jumpy := res(HTTP2Hop, false, 64, 10, ms(0.1), ms(0.1), 0)
	jumpy.RoundRPS = []float64{900, 2000, 1100}
	jumpy.Requests = 300
	small := res(Direct, true, 1, 10, ms(0.1), ms(0.1), 0) // too few requests per round for a note
	small.RoundRPS = []float64{900, 2000, 1100}
	var b strings.Builder
	WriteTable(&b, []Result{r, steady, jumpy, small})
	want := "" +
		"mode      stream  conc      req/s    p50 ms    p99 ms  ttft p50  ttft p99  cpu/req  cores  errors vouch/req waits/req\n" +
		"mesh      on        16     1234.6     1.500     3.000     0.750     1.500    250µs   1.93       3      0.88      0.12\n" +
		"direct    off        1       10.0     0.100     0.200     0.100     0.200      0µs   0.00       0         -         -\n" +
		"http2hop  off       64       10.0     0.100     0.200     0.100     0.200      0µs   0.00       0         -         -\n" +
		"direct    on         1       10.0     0.100     0.200     0.100     0.200      0µs   0.00       0         -         -\n" +
		"  mesh stream on c=16: 3 of 100 requests failed; first error: HTTP 503: busy\n" +
		"  note: http2hop stream off c=64: req/s differed 2.2x between its 3 rounds (900 to 2000): " +
		"the machine's speed changed during the run; read its ratios with care\n"
	if b.String() != want {
		t.Errorf("WriteTable:\n%s\nwant:\n%s", b.String(), want)
	}

	b.Reset()
	WriteChecks(&b, []Check{
		{Name: "a", Value: "0.95", Target: ">= 0.90", Pass: true},
		{Name: "b", Value: "+2.000ms", Target: "<= 1.000ms", Note: "1 failed requests behind this figure"},
	})
	want = "  PASS  a: 0.95 (target >= 0.90)\n  MISS  b: +2.000ms (target <= 1.000ms); 1 failed requests behind this figure\n"
	if b.String() != want {
		t.Errorf("WriteChecks:\n%s\nwant:\n%s", b.String(), want)
	}

	b.Reset()
	WriteComparisons(&b, []Comparison{{Stream: false, Concurrency: 1, HasDirect: true, MeshOverDirect: 0.5, MeshOverClear: 0.97, AddedLatency: ms(0.25), AddedTTFT: ms(0.25)}})
	want = "" +
		"stream  conc  mesh/http2hop  mesh/direct sealed/clear  paid/unpaid  +p50 vs direct  +ttft vs direct    +p50 vs 2hop    +ttft vs 2hop\n" +
		"off        1            n/a         0.50         0.97          n/a        +0.250ms         +0.250ms             n/a              n/a\n"
	if b.String() != want {
		t.Errorf("WriteComparisons:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestReportWriteAndFailures(t *testing.T) {
	rep := &Report{
		Env:     Env{GoVersion: "go1.x", OS: "linux", Arch: "amd64", NumCPU: 2, GOMAXPROCS: 2, Proxies: 2, Workers: 2, MaxActive: 16, WindowTokens: 256, PromptWords: 16, MaxTokens: 16},
		Results: []Result{res(Mesh, false, 1, 100, ms(1), ms(1), 2), res(Direct, false, 1, 200, ms(0.5), ms(0.5), 1)},
	}
	rep.Comparisons, rep.Checks = Compare(rep.Results), Checks(rep.Results)
	rep.IdleProxy = &IdleProxyResult{Workers: 100, RSSBaseline: 40 << 20, RSS: 50 << 20, PeakRSS: 51 << 20}
	if n := rep.Failures(); n != 3 {
		t.Errorf("Failures = %d, want 3", n)
	}
	s := rep.String()
	for _, want := range []string{"mesh of 2 proxies and 2 workers (max_active 16, credit window 256 tokens)", "Ratios from this run", "PASS  added p50 latency",
		"idle proxy: RSS 40.0 MiB with 0 workers, 50.0 MiB with 100 workers (102 KiB per worker; peak 51.0 MiB)"} {
		if !strings.Contains(s, want) {
			t.Errorf("report lacks %q:\n%s", want, s)
		}
	}
}

func TestSpread(t *testing.T) {
	for _, tc := range []struct {
		rps  []float64
		want float64
	}{
		{nil, 1}, {[]float64{5}, 1}, {[]float64{100, 150, 120}, 1.5}, {[]float64{0, 10}, 0},
	} {
		if got := (Result{RoundRPS: tc.rps}).Spread(); got != tc.want {
			t.Errorf("Spread(%v) = %v, want %v", tc.rps, got, tc.want)
		}
	}
}
