package main

import (
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cocoon-mesh/cocoon/simulations/report"
)

// merge summarizes the runs of each scenario under out (out/<scenario>/seed-N, as the jobs
// wrote them) into out/<scenario>/summary.*, merges every run's samples into out/samples.csv,
// and writes out/summary.md, one row per scenario, also to w.
func merge(out string, w io.Writer) error {
	dirs, err := filepath.Glob(filepath.Join(out, "*", "seed-*", "run.json"))
	if err != nil {
		return err
	}
	if len(dirs) == 0 {
		return fmt.Errorf("%w under %s (expected %s/<scenario>/seed-N/run.json)", errNoRuns, out, out)
	}
	byScenario := map[string][]report.Run{}
	var samples []string
	for _, f := range dirs {
		dir := filepath.Dir(f)
		r, err := report.ReadRun(dir)
		if err != nil {
			return err
		}
		sc := filepath.Dir(dir)
		byScenario[sc] = append(byScenario[sc], r)
		samples = append(samples, filepath.Join(dir, "samples.csv"))
	}
	var table strings.Builder
	table.WriteString("| scenario | seeds | success | adversary share | latency p50 s | latency p95 s | honest unpaid nanoTON (workers + proxies) | client paid for wrong nanoTON |\n|---|---|---|---|---|---|---|---|\n")
	for _, sc := range slices.Sorted(maps.Keys(byScenario)) {
		s := report.Summarize(byScenario[sc])
		if err := report.WriteSummary(sc, s); err != nil {
			return err
		}
		f := func(k string) string { return stat(s.Figures[k]) }
		unpaid := report.Stat{}
		if a, b := s.Figures["honest_worker_unpaid_nanoton"], s.Figures["honest_proxy_unpaid_nanoton"]; a.N > 0 {
			unpaid = report.Stat{N: a.N, Mean: a.Mean + b.Mean, CI95: a.CI95 + b.CI95}
		}
		fmt.Fprintf(&table, "| %s | %d | %s | %s | %s | %s | %s | %s |\n", filepath.Base(sc), len(s.Seeds), f("success_rate"), f("adversary_share"),
			f("latency_p50_s"), f("latency_p95_s"), stat(unpaid), f("client_paid_wrong_nanoton"))
	}
	csv, err := os.Create(filepath.Join(out, "samples.csv"))
	if err != nil {
		return err
	}
	if err := report.MergeCSV(csv, samples); err != nil {
		csv.Close()
		return err
	}
	if err := csv.Close(); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "summary.md"), []byte(table.String()), 0o644); err != nil {
		return err
	}
	_, err = io.WriteString(w, table.String())
	return err
}

// stat is a figure as mean ± its 95% confidence interval ("-" when not measured).
func stat(s report.Stat) string {
	if s.N == 0 {
		return "-"
	}
	if s.CI95 == 0 {
		return fmt.Sprintf("%.4g", s.Mean)
	}
	return fmt.Sprintf("%.4g ± %.2g", s.Mean, s.CI95)
}

// replot writes the run in dir again (plots, report, samples) from what it wrote before.
func replot(dir string) error {
	r, err := report.ReadRun(dir)
	if err != nil {
		return err
	}
	if r.Samples, err = report.ReadSamples(filepath.Join(dir, "samples.csv")); err != nil {
		return err
	}
	return report.WriteRun(dir, r)
}
