package bench

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// The project's targets for the mesh's overhead.
const (
	// TargetRatioVsHop: at concurrency 16 and 64 the mesh serves at least this fraction of the
	// requests per second two plain HTTP reverse-proxy hops serve.
	TargetRatioVsHop = 0.9
	// TargetAddedLatency: at concurrency 1, non-stream, the mesh adds at most this much to the
	// p50 latency of a direct call.
	TargetAddedLatency = 500 * time.Microsecond
	// TargetTTFTOverhead: at concurrency 1, streaming, the mesh adds at most this much to the
	// p50 time to first token of a direct call.
	TargetTTFTOverhead = time.Millisecond
	// TargetSealedRatio: at concurrency 16 and 64 the mesh with prompts sealed serves at least
	// this fraction of the requests per second it serves with sealing off.
	TargetSealedRatio = 0.9
	// TargetPaidRatio: at concurrency 16 and 64 the mesh with payments on serves at least this
	// fraction of the requests per second a mesh without payments serves.
	TargetPaidRatio = 0.9
)

// UnstableSpread is the spread of a scenario's per-round req/s above which the table warns
// that the machine's speed changed during the run.
const UnstableSpread = 1.3

// minRoundForSpread is the fewest requests per round for which the table compares rounds.
const minRoundForSpread = 100

// Comparison sets the mesh against the baselines for one stream mode and concurrency.
type Comparison struct {
	Stream      bool `json:"stream"`
	Concurrency int  `json:"concurrency"`
	HasDirect   bool `json:"has_direct"`
	HasHop      bool `json:"has_http2hop"`
	// Requests per second, mesh over baseline (0 when the baseline is missing or served none).
	MeshOverHop    float64 `json:"mesh_over_http2hop"`
	MeshOverDirect float64 `json:"mesh_over_direct"`
	MeshOverClear  float64 `json:"mesh_over_mesh_clear"`  // sealed over unsealed
	MeshOverUnpaid float64 `json:"mesh_over_mesh_unpaid"` // payments on over payments off
	// p50 differences, mesh minus baseline.
	AddedLatency    time.Duration `json:"added_latency_p50_vs_direct_ns"`
	AddedTTFT       time.Duration `json:"added_ttft_p50_vs_direct_ns"`
	AddedLatencyHop time.Duration `json:"added_latency_p50_vs_http2hop_ns"`
	AddedTTFTHop    time.Duration `json:"added_ttft_p50_vs_http2hop_ns"`
}

type key struct {
	stream bool
	conc   int
}

// index maps (stream, concurrency) to each mode's result, and lists the pairs in order.
func index(results []Result) (map[key]map[Mode]Result, []key) {
	m := map[key]map[Mode]Result{}
	var order []key
	for _, r := range results {
		k := key{r.Stream, r.Concurrency}
		if m[k] == nil {
			m[k] = map[Mode]Result{}
			order = append(order, k)
		}
		m[k][r.Mode] = r
	}
	return m, order
}

// ratio is a / b, or 0 when b is not positive.
func ratio(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return a / b
}

// Compare sets the mesh's results against the baselines', for every (stream, concurrency)
// pair that has a mesh result, in the order the results came.
func Compare(results []Result) []Comparison {
	byKey, order := index(results)
	var out []Comparison
	for _, k := range order {
		mesh, ok := byKey[k][Mesh]
		if !ok {
			continue
		}
		c := Comparison{Stream: k.stream, Concurrency: k.conc}
		if d, ok := byKey[k][Direct]; ok {
			c.HasDirect = true
			c.MeshOverDirect = ratio(mesh.RPS, d.RPS)
			c.AddedLatency = mesh.Latency.P50 - d.Latency.P50
			c.AddedTTFT = mesh.TTFT.P50 - d.TTFT.P50
		}
		if cl, ok := byKey[k][MeshClear]; ok {
			c.MeshOverClear = ratio(mesh.RPS, cl.RPS)
		}
		if up, ok := byKey[k][MeshUnpaid]; ok {
			c.MeshOverUnpaid = ratio(mesh.RPS, up.RPS)
		}
		if h, ok := byKey[k][HTTP2Hop]; ok {
			c.HasHop = true
			c.MeshOverHop = ratio(mesh.RPS, h.RPS)
			c.AddedLatencyHop = mesh.Latency.P50 - h.Latency.P50
			c.AddedTTFTHop = mesh.TTFT.P50 - h.TTFT.P50
		}
		out = append(out, c)
	}
	return out
}

// Check is one target, marked against this run's numbers.
type Check struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	Target string `json:"target"`
	Pass   bool   `json:"pass"`
	// Note warns that a scenario behind the figure had failed requests.
	Note string `json:"note,omitempty"`
}

// Checks marks the project's targets against results; a target whose scenarios did not run
// is left out.
func Checks(results []Result) []Check {
	byKey, order := index(results)
	var out []Check
	note := func(rs ...Result) string {
		n := 0
		for _, r := range rs {
			n += r.Errors
		}
		if n == 0 {
			return ""
		}
		return fmt.Sprintf("%d failed requests behind this figure", n)
	}
	// ratioCheck marks mesh req/s over base's against target, at concurrency 16 and 64.
	ratioCheck := func(k key, name string, base Mode, target float64) {
		mesh, okM := byKey[k][Mesh]
		b, okB := byKey[k][base]
		if (k.conc != 16 && k.conc != 64) || !okM || !okB {
			return
		}
		r := ratio(mesh.RPS, b.RPS)
		out = append(out, Check{
			Name:   fmt.Sprintf("%s req/s, stream %s, c=%d", name, onOff(k.stream), k.conc),
			Value:  fmt.Sprintf("%.2f", r),
			Target: fmt.Sprintf(">= %.2f", target),
			Pass:   r >= target,
			Note:   note(mesh, b),
		})
	}
	for _, k := range order {
		ratioCheck(k, "mesh/http2hop", HTTP2Hop, TargetRatioVsHop)
		ratioCheck(k, "sealed/unsealed mesh", MeshClear, TargetSealedRatio)
		ratioCheck(k, "paid/unpaid mesh", MeshUnpaid, TargetPaidRatio)
	}
	for _, k := range order {
		mesh, okM := byKey[k][Mesh]
		direct, okD := byKey[k][Direct]
		if k.conc != 1 || !okM || !okD {
			continue
		}
		if k.stream {
			d := mesh.TTFT.P50 - direct.TTFT.P50
			out = append(out, Check{
				Name: "TTFT p50 overhead vs direct, stream, c=1", Value: FormatDelta(d),
				Target: "<= " + FormatMs(TargetTTFTOverhead) + "ms", Pass: d <= TargetTTFTOverhead, Note: note(mesh, direct),
			})
		} else {
			d := mesh.Latency.P50 - direct.Latency.P50
			out = append(out, Check{
				Name: "added p50 latency vs direct, non-stream, c=1", Value: FormatDelta(d),
				Target: "<= " + FormatMs(TargetAddedLatency) + "ms", Pass: d <= TargetAddedLatency, Note: note(mesh, direct),
			})
		}
	}
	return out
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// FormatMs formats d in milliseconds with three decimals (microsecond resolution).
func FormatMs(d time.Duration) string {
	return fmt.Sprintf("%.3f", float64(d)/float64(time.Millisecond))
}

// FormatDelta formats a difference in milliseconds with its sign, e.g. "+0.412ms".
func FormatDelta(d time.Duration) string {
	s := FormatMs(d)
	if d >= 0 {
		s = "+" + s
	}
	return s + "ms"
}

// FormatRatio formats a ratio with two decimals, or "n/a" for none.
func FormatRatio(r float64, ok bool) string {
	if !ok || r <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", r)
}

// WriteTable writes one line per result, then the first error of each failing scenario.
func WriteTable(w io.Writer, results []Result) {
	fmt.Fprintf(w, "%-9s %-6s %5s %10s %9s %9s %9s %9s %8s %6s %7s %9s %9s\n",
		"mode", "stream", "conc", "req/s", "p50 ms", "p99 ms", "ttft p50", "ttft p99", "cpu/req", "cores", "errors", "vouch/req", "waits/req")
	for _, r := range results {
		vouchers, waits := "-", "-"
		if r.VouchersPerRequest > 0 {
			vouchers, waits = fmt.Sprintf("%.2f", r.VouchersPerRequest), fmt.Sprintf("%.2f", r.WaitsPerRequest)
		}
		fmt.Fprintf(w, "%-9s %-6s %5d %10.1f %9s %9s %9s %9s %8s %6.2f %7d %9s %9s\n",
			r.Mode, onOff(r.Stream), r.Concurrency, r.RPS,
			FormatMs(r.Latency.P50), FormatMs(r.Latency.P99), FormatMs(r.TTFT.P50), FormatMs(r.TTFT.P99),
			fmt.Sprintf("%.0fµs", float64(r.CPUPerRequest)/float64(time.Microsecond)), r.CPUCores, r.Errors, vouchers, waits)
	}
	for _, r := range results {
		if r.Errors > 0 {
			fmt.Fprintf(w, "  %s stream %s c=%d: %d of %d requests failed; first error: %s\n",
				r.Mode, onOff(r.Stream), r.Concurrency, r.Errors, r.Requests, r.FirstError)
		}
	}
	for _, r := range results {
		// Rounds of a few requests differ by chance alone; only larger ones say something.
		if s := r.Spread(); s > UnstableSpread && r.Requests >= minRoundForSpread*len(r.RoundRPS) {
			fmt.Fprintf(w, "  note: %s stream %s c=%d: req/s differed %.1fx between its %d rounds (%.0f to %.0f): "+
				"the machine's speed changed during the run; read its ratios with care\n",
				r.Mode, onOff(r.Stream), r.Concurrency, s, len(r.RoundRPS), slices.Min(r.RoundRPS), slices.Max(r.RoundRPS))
		}
	}
}

// WriteComparisons writes the mesh-versus-baseline ratios and differences of this run.
func WriteComparisons(w io.Writer, cs []Comparison) {
	fmt.Fprintf(w, "%-6s %5s %14s %12s %12s %12s %15s %16s %15s %16s\n", "stream", "conc", "mesh/http2hop", "mesh/direct",
		"sealed/clear", "paid/unpaid", "+p50 vs direct", "+ttft vs direct", "+p50 vs 2hop", "+ttft vs 2hop")
	for _, c := range cs {
		d := func(v time.Duration, ok bool) string {
			if !ok {
				return "n/a"
			}
			return FormatDelta(v)
		}
		fmt.Fprintf(w, "%-6s %5d %14s %12s %12s %12s %15s %16s %15s %16s\n", onOff(c.Stream), c.Concurrency,
			FormatRatio(c.MeshOverHop, c.HasHop), FormatRatio(c.MeshOverDirect, c.HasDirect),
			FormatRatio(c.MeshOverClear, c.MeshOverClear > 0), FormatRatio(c.MeshOverUnpaid, c.MeshOverUnpaid > 0),
			d(c.AddedLatency, c.HasDirect), d(c.AddedTTFT, c.HasDirect),
			d(c.AddedLatencyHop, c.HasHop), d(c.AddedTTFTHop, c.HasHop))
	}
}

// WriteChecks writes one PASS or MISS line per target.
func WriteChecks(w io.Writer, cs []Check) {
	for _, c := range cs {
		mark := "MISS"
		if c.Pass {
			mark = "PASS"
		}
		line := fmt.Sprintf("  %s  %s: %s (target %s)", mark, c.Name, c.Value, c.Target)
		if c.Note != "" {
			line += "; " + c.Note
		}
		fmt.Fprintln(w, line)
	}
}

// Write writes the whole report: the environment, the table, the ratios and the targets.
func (r *Report) Write(w io.Writer) {
	e := r.Env
	window := ""
	if e.WindowTokens > 0 {
		window = fmt.Sprintf(", credit window %d tokens", e.WindowTokens)
	}
	fmt.Fprintf(w, "\nCocoon mesh bench: %s %s/%s, %d CPUs (GOMAXPROCS %d); mesh of %d proxies and %d workers (max_active %d%s);\n"+
		"prompt %d words, max_tokens %d; echo test backend (repeats the prompt, not a model), no token delay;\n"+
		"each scenario's requests in %d round(s), every round running the targets back to back, in reverse order on odd rounds\n"+
		"(mesh: prompts sealed to the workers; mesh-clear: the same mesh through a client that does not seal).\n"+
		"Everything runs in this one process: load generator, mesh nodes, backends and HTTP hops share the CPUs;\n"+
		"cpu/req is the process's CPU time per request, cores its CPU time over wall time.\n\n",
		e.GoVersion, e.OS, e.Arch, e.NumCPU, e.GOMAXPROCS, e.Proxies, e.Workers, e.MaxActive, window, e.PromptWords, e.MaxTokens, max(e.Rounds, 1))
	WriteTable(w, r.Results)
	if len(r.Comparisons) > 0 {
		fmt.Fprintf(w, "\nRatios from this run (req/s of mesh over baseline; +x = mesh p50 minus baseline p50):\n")
		WriteComparisons(w, r.Comparisons)
	}
	if len(r.Checks) > 0 {
		fmt.Fprintf(w, "\nTargets (informational):\n")
		WriteChecks(w, r.Checks)
	}
	if r.IdleProxy != nil {
		fmt.Fprintf(w, "\n%s\n", r.IdleProxy)
	}
}

// String is the report as Write writes it.
func (r *Report) String() string {
	var b strings.Builder
	r.Write(&b)
	return b.String()
}
