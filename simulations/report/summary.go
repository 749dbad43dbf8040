package report

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/gonum/floats"
	"gonum.org/v1/gonum/stat"
	"gonum.org/v1/gonum/stat/distuv"
)

// Summary holds each scalar's statistics over the runs of one scenario.
type Summary struct {
	Scenario string          `json:"scenario"`
	Seeds    []uint64        `json:"seeds"`
	Figures  map[string]Stat `json:"figures"` // by scalar name
	Wall     Stat            `json:"wall_s"`
	PeakHeap Stat            `json:"peak_heap_mib"`
}

// Stat is one figure over seeds: its mean and the half-width of its 95% confidence interval (Student's t with n-1 degrees of freedom; 0 when n < 2).
type Stat struct {
	N      int       `json:"n"`
	Mean   float64   `json:"mean"`
	CI95   float64   `json:"ci95"`
	Min    float64   `json:"min"`
	Max    float64   `json:"max"`
	Values []float64 `json:"values"`
}

// Summarize computes the statistics of runs (all of one scenario).
// The scenario's name is the first run's; values keep the runs' order. A
// scalar counts only over the runs that have it with a finite value, so a
// figure undefined in one seed (NaN) does not spoil the others.
func Summarize(runs []Run) Summary {
	s := Summary{Seeds: make([]uint64, 0, len(runs)), Figures: map[string]Stat{}}
	if len(runs) > 0 {
		s.Scenario = runs[0].Scenario
	}
	figures := map[string][]float64{}
	wall := make([]float64, 0, len(runs))
	heap := make([]float64, 0, len(runs))
	for _, r := range runs {
		s.Seeds = append(s.Seeds, r.Seed)
		wall = append(wall, r.Wall.Seconds())
		heap = append(heap, float64(r.PeakHeap)/mib)
		for name, v := range r.Scalars {
			figures[name] = append(figures[name], v)
		}
	}
	for name, vs := range figures {
		if st := newStat(vs); st.N > 0 {
			s.Figures[name] = st
		}
	}
	s.Wall = newStat(wall)
	s.PeakHeap = newStat(heap)
	return s
}

// newStat computes the statistics of the finite values among vs.
func newStat(vs []float64) Stat {
	st := Stat{Values: make([]float64, 0, len(vs))}
	for _, v := range vs {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			st.Values = append(st.Values, v)
		}
	}
	st.N = len(st.Values)
	if st.N == 0 {
		return st
	}
	st.Min, st.Max = floats.Min(st.Values), floats.Max(st.Values)
	if st.N == 1 {
		st.Mean = st.Values[0]
		return st
	}
	mean, sd := stat.MeanStdDev(st.Values, nil)
	st.Mean = mean
	st.CI95 = tQuantile975(st.N-1) * sd / math.Sqrt(float64(st.N))
	return st
}

// tQuantile975 is the 0.975 quantile of Student's t with df degrees of
// freedom: the multiplier of the standard error for a two-sided 95% interval.
func tQuantile975(df int) float64 {
	return distuv.StudentsT{Mu: 0, Sigma: 1, Nu: float64(df)}.Quantile(0.975)
}

// WriteSummary writes s into dir as summary.json and summary.md (a Markdown table: figure, mean, ±CI95, min, max, n).
func WriteSummary(dir string, s Summary) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("report: summary of %s: %w", s.Scenario, err)
	}
	if err := writeFile(filepath.Join(dir, "summary.json"), append(data, '\n')); err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, "summary.md"), summaryMarkdown(s))
}

// summaryMarkdown is summary.md for s: the scalars sorted by name, then
// wall time and peak heap.
func summaryMarkdown(s Summary) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s: summary over %d seeds\n\n", s.Scenario, len(s.Seeds))
	seeds := make([]string, len(s.Seeds))
	for i, seed := range s.Seeds {
		seeds[i] = strconv.FormatUint(seed, 10)
	}
	fmt.Fprintf(&b, "Seeds: %s. CI95 is the half-width of the 95%% confidence interval of the mean (Student's t).\n\n",
		strings.Join(seeds, ", "))
	b.WriteString("| figure | mean | ±CI95 | min | max | n |\n|---|---:|---:|---:|---:|---:|\n")
	row := func(name string, st Stat) {
		fmt.Fprintf(&b, "| %s | %s | ±%s | %s | %s | %d |\n",
			cell(name), number(st.Mean), number(st.CI95), number(st.Min), number(st.Max), st.N)
	}
	for _, name := range slices.Sorted(maps.Keys(s.Figures)) {
		row(name, s.Figures[name])
	}
	row("wall_s", s.Wall)
	row("peak_heap_mib", s.PeakHeap)
	return []byte(b.String())
}
