package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cocoon-mesh/cocoon/simulations/report"
)

// A sweep file expands into one command line per scenario, setting and seed; bad files are
// refused naming the key.
func TestJobs(t *testing.T) {
	sw, err := loadSweep("../../sweeps/baseline.toml")
	if err != nil {
		t.Fatal(err)
	}
	jobs := sw.jobs("out", "./sim.test")
	if len(jobs) != len(sw.Scenarios)*sw.Seeds {
		t.Fatalf("%d jobs for %d scenarios x %d seeds", len(jobs), len(sw.Scenarios), sw.Seeds)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.toml"), []byte("name = \"a\""), 0o644)
	os.WriteFile(filepath.Join(dir, "s.toml"), []byte("seeds = 2\nscenarios = [\"a.toml\"]\n[[vary]]\nkey = \"traffic.rate_per_sec\"\nvalues = [\"4\", \"16\"]\n"), 0o644)
	sw, err = loadSweep(filepath.Join(dir, "s.toml"))
	if err != nil {
		t.Fatal(err)
	}
	jobs = sw.jobs("out", "./sim.test")
	want := "./sim.test -test.run '^TestScenario$' -test.timeout 0 -scenario " + filepath.Join(dir, "a.toml") + " -seed 2 -out out/a_traffic-rate_per_sec-16 -set traffic.rate_per_sec=16"
	if len(jobs) != 4 || jobs[3] != want {
		t.Fatalf("jobs:\n%s\nwant last:\n%s", strings.Join(jobs, "\n"), want)
	}
	for text, key := range map[string]string{"seeds = 0\nscenarios = [\"a.toml\"]": "seeds", "scenarios = []": "scenarios",
		"scenarios = [\"none.toml\"]": "scenarios", "scenario = [\"a.toml\"]": "unknown key scenario"} {
		os.WriteFile(filepath.Join(dir, "bad.toml"), []byte(text), 0o644)
		if _, err := loadSweep(filepath.Join(dir, "bad.toml")); err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%q: %v, want an error naming %s", text, err, key)
		}
	}
}

// Merging writes each scenario's summary over its seeds, one table of them all, and one CSV
// of every run's samples.
func TestMerge(t *testing.T) {
	out := t.TempDir()
	for _, sc := range []string{"steady", "garbage10"} {
		for seed := uint64(1); seed <= 2; seed++ {
			r := report.Run{Scenario: sc, Seed: seed, Nodes: 10, Virtual: time.Minute, Wall: time.Second,
				Scalars: map[string]float64{"success_rate": 0.9 + float64(seed)/100, "latency_p50_s": 1},
				Samples: []report.Sample{{At: time.Second, Metric: "latency_s", Value: 1, Labels: []report.Label{{Key: "outcome", Value: "ok"}}}}}
			if err := report.WriteRun(filepath.Join(out, sc, "seed-"+string(rune('0'+seed))), r); err != nil {
				t.Fatal(err)
			}
		}
	}
	var table strings.Builder
	if err := merge(out, &table); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "| steady | 2 | 0.915 ± 0.064 |") || !strings.Contains(table.String(), "| garbage10 | 2 |") {
		t.Errorf("table:\n%s", table.String())
	}
	csv, _ := os.ReadFile(filepath.Join(out, "samples.csv"))
	if lines := strings.Split(strings.TrimSpace(string(csv)), "\n"); len(lines) != 5 || !strings.HasPrefix(lines[0], "scenario,seed,") {
		t.Errorf("merged samples:\n%s", csv)
	}
	if _, err := os.Stat(filepath.Join(out, "steady", "summary.json")); err != nil {
		t.Error(err)
	}
	if err := replot(filepath.Join(out, "steady", "seed-1")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(out, "steady", "seed-1", "plots", "latency_cdf.png")); err != nil {
		t.Errorf("replot drew no latency plot: %v", err)
	}
	if err := merge(t.TempDir(), &table); err == nil {
		t.Error("merging nothing succeeded")
	}
}
