package report

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func near(got, want, tol float64) bool { return math.Abs(got-want) <= tol }

func TestTQuantile975(t *testing.T) {
	// From a printed table of Student's t, two-sided 95%.
	for df, want := range map[int]float64{
		1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 9: 2.262, 10: 2.228, 29: 2.045, 30: 2.042, 120: 1.980,
	} {
		if got := tQuantile975(df); !near(got, want, 5e-4) {
			t.Errorf("t(0.975, %d) = %.4f, want %.3f", df, got, want)
		}
	}
	if got := tQuantile975(1_000_000); !near(got, 1.960, 5e-4) {
		t.Errorf("t(0.975, 1e6) = %.4f, want the normal's 1.960", got)
	}
}

func runsWith(name string, values ...float64) []Run {
	runs := make([]Run, len(values))
	for i, v := range values {
		runs[i] = Run{
			Scenario: "churn", Seed: uint64(10 + i),
			Wall: time.Duration(v * float64(time.Second)), PeakHeap: uint64(v * mib),
			Scalars: map[string]float64{name: v, "const": 7},
		}
	}
	return runs
}

func TestSummarize(t *testing.T) {
	s := Summarize(runsWith("success_rate", 1, 2, 3, 4, 5))
	if s.Scenario != "churn" || !reflect.DeepEqual(s.Seeds, []uint64{10, 11, 12, 13, 14}) {
		t.Errorf("scenario %q seeds %v", s.Scenario, s.Seeds)
	}
	// By hand: mean 3, sd sqrt(2.5) = 1.5811, se 0.7071, t(0.975,4) 2.7764,
	// half-width 1.9632.
	for name, st := range map[string]Stat{"success_rate": s.Figures["success_rate"], "wall_s": s.Wall, "peak_heap_mib": s.PeakHeap} {
		if st.N != 5 || st.Mean != 3 || st.Min != 1 || st.Max != 5 || !near(st.CI95, 1.9632, 5e-4) {
			t.Errorf("%s: %+v, want n 5 mean 3 min 1 max 5 ci95 1.9632", name, st)
		}
		if !reflect.DeepEqual(st.Values, []float64{1, 2, 3, 4, 5}) {
			t.Errorf("%s: values %v", name, st.Values)
		}
	}
	if c := s.Figures["const"]; c.Mean != 7 || c.CI95 != 0 || c.N != 5 {
		t.Errorf("constant figure: %+v, want mean 7, ci95 0", c)
	}
}

func TestSummarizeOneRun(t *testing.T) {
	s := Summarize(runsWith("success_rate", 0.75))
	st := s.Figures["success_rate"]
	if st.N != 1 || st.Mean != 0.75 || st.CI95 != 0 || st.Min != 0.75 || st.Max != 0.75 {
		t.Errorf("one run: %+v, want n 1 mean 0.75 ci95 0", st)
	}
	if s.Wall.CI95 != 0 || s.Wall.N != 1 {
		t.Errorf("wall over one run: %+v", s.Wall)
	}
}

func TestSummarizeSkipsUndefined(t *testing.T) {
	runs := runsWith("latency_p50_s", 2, math.NaN(), 4)
	delete(runs[2].Scalars, "const")
	runs[2].Scalars["only_here"] = math.Inf(1)
	s := Summarize(runs)
	if st := s.Figures["latency_p50_s"]; st.N != 2 || st.Mean != 3 || !near(st.CI95, 12.706, 5e-3) {
		t.Errorf("with a NaN: %+v, want n 2 mean 3 ci95 12.706", st)
	}
	if st := s.Figures["const"]; st.N != 2 {
		t.Errorf("figure missing in one run: n %d, want 2", st.N)
	}
	if _, ok := s.Figures["only_here"]; ok {
		t.Error("a figure with no finite value was summarized")
	}
	if empty := Summarize(nil); empty.Wall.N != 0 || len(empty.Figures) != 0 {
		t.Errorf("no runs: %+v", empty)
	}
}

func TestWriteSummary(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sum")
	s := Summarize(runsWith("success_rate", 1, 2, 3, 4, 5))
	if err := WriteSummary(dir, s); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	var got Summary
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, s) {
		t.Errorf("summary.json:\n got %+v\nwant %+v", got, s)
	}
	var raw map[string]any
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"scenario", "seeds", "figures", "wall_s", "peak_heap_mib"} {
		if _, ok := raw[key]; !ok {
			t.Errorf("summary.json lacks %q", key)
		}
	}
	md, err := os.ReadFile(filepath.Join(dir, "summary.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| figure | mean | ±CI95 | min | max | n |",
		"| const | 7 | ±0 | 7 | 7 | 5 |",
		"| success_rate | 3 | ±1.96324 | 1 | 5 | 5 |",
		"| wall_s | 3 | ±1.96324 | 1 | 5 | 5 |",
		"| peak_heap_mib | 3 |",
		"Seeds: 10, 11, 12, 13, 14.",
	} {
		if !strings.Contains(string(md), want) {
			t.Errorf("summary.md lacks %q:\n%s", want, md)
		}
	}
}

func TestSummarizeFromDisk(t *testing.T) {
	// The point of run.json: runs written by separate processes summarize
	// the same as runs held in memory.
	runs := runsWith("success_rate", 0.5, 0.75, 1)
	var back []Run
	for i, r := range runs {
		dir := filepath.Join(t.TempDir(), string(rune('a'+i)))
		if err := WriteRun(dir, r); err != nil {
			t.Fatal(err)
		}
		rr, err := ReadRun(dir)
		if err != nil {
			t.Fatal(err)
		}
		back = append(back, rr)
	}
	if got, want := Summarize(back), Summarize(runs); !reflect.DeepEqual(got, want) {
		t.Errorf("from disk:\n got %+v\nwant %+v", got, want)
	}
}
