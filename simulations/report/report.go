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
	"time"
)

// Names of the files a run directory holds.
const (
	samplesFile = "samples.csv"
	runFile     = "run.json"
	reportFile  = "report.md"
	plotsDir    = "plots"
)

// mib is one mebibyte; heap figures are reported in MiB.
const mib = 1 << 20

// Label is one label of a sample.
type Label struct{ Key, Value string }

// Sample is one row of the long-format CSV: metric Metric, with Labels, had Value at At (virtual time since the run started).
type Sample struct {
	At     time.Duration
	Metric string
	Labels []Label
	Value  float64
}

// Run is what one run (one scenario, one seed) measured.
type Run struct {
	Scenario string        // the scenario's name
	Seed     uint64        // the seed the run used
	Nodes    int           // nodes simulated
	Virtual  time.Duration // virtual time simulated
	Wall     time.Duration // wall time it took
	PeakHeap uint64        // peak heap in use, bytes
	Samples  []Sample
	// Scalars are the run's headline figures, by name (success_rate, adversary_share, latency_p50_s, ...): Summarize averages them over seeds.
	Scalars map[string]float64
}

// runJSON is the layout of run.json: seconds and MiB rather than
// nanoseconds and bytes, so that it reads well by hand. A scalar that JSON
// cannot hold (NaN, ±Inf) is written as null and read back as NaN.
type runJSON struct {
	Scenario string              `json:"scenario"`
	Seed     uint64              `json:"seed"`
	Nodes    int                 `json:"nodes"`
	Virtual  float64             `json:"virtual_s"`
	Wall     float64             `json:"wall_s"`
	PeakHeap float64             `json:"peak_heap_mib"`
	Scalars  map[string]*float64 `json:"scalars"`
}

// WriteRun writes r into dir (created if missing): samples.csv, the plots (PNG) under dir/plots/, and report.md linking them.
// It also writes run.json, which ReadRun reads back.
func WriteRun(dir string, r Run) error {
	// Refuse bad labels before writing anything, so that a failed run
	// leaves no half-written directory behind.
	if err := validateSamples(r.Samples); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dir, plotsDir), 0o755); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := writeSamplesFile(filepath.Join(dir, samplesFile), r.Samples); err != nil {
		return err
	}
	if err := writeRunJSON(filepath.Join(dir, runFile), r); err != nil {
		return err
	}
	written, err := writePlots(filepath.Join(dir, plotsDir), r)
	if err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, reportFile), runMarkdown(r, written))
}

// ReadRun reads dir/run.json, as WriteRun wrote it, back into a Run; Samples is left empty (ReadSamples reads them).
func ReadRun(dir string) (Run, error) {
	path := filepath.Join(dir, runFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return Run{}, fmt.Errorf("report: %w", err)
	}
	var j runJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return Run{}, fmt.Errorf("report: %s: %w", path, err)
	}
	r := Run{
		Scenario: j.Scenario,
		Seed:     j.Seed,
		Nodes:    j.Nodes,
		Virtual:  seconds(j.Virtual),
		Wall:     seconds(j.Wall),
		PeakHeap: uint64(math.Round(j.PeakHeap * mib)),
	}
	if j.Scalars != nil {
		r.Scalars = make(map[string]float64, len(j.Scalars))
		for k, v := range j.Scalars {
			r.Scalars[k] = math.NaN()
			if v != nil {
				r.Scalars[k] = *v
			}
		}
	}
	return r, nil
}

// writeRunJSON writes run.json for r.
func writeRunJSON(path string, r Run) error {
	j := runJSON{
		Scenario: r.Scenario,
		Seed:     r.Seed,
		Nodes:    r.Nodes,
		Virtual:  r.Virtual.Seconds(),
		Wall:     r.Wall.Seconds(),
		PeakHeap: float64(r.PeakHeap) / mib,
		Scalars:  make(map[string]*float64, len(r.Scalars)),
	}
	for k, v := range r.Scalars {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			j.Scalars[k] = &v
		} else {
			j.Scalars[k] = nil
		}
	}
	data, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return fmt.Errorf("report: %s: %w", path, err)
	}
	return writeFile(path, append(data, '\n'))
}

// runMarkdown is report.md for r, linking the plots named in plots.
func runMarkdown(r Run, plots []string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s, seed %d\n\n", r.Scenario, r.Seed)
	fmt.Fprintf(&b, "%d nodes, %s virtual time, %s wall time, peak heap %.1f MiB.\n\n",
		r.Nodes, r.Virtual, r.Wall.Round(time.Millisecond), float64(r.PeakHeap)/mib)
	if len(r.Scalars) > 0 {
		b.WriteString("| scalar | value |\n|---|---:|\n")
		for _, k := range slices.Sorted(maps.Keys(r.Scalars)) {
			fmt.Fprintf(&b, "| %s | %s |\n", cell(k), number(r.Scalars[k]))
		}
		b.WriteString("\n")
	}
	for _, name := range plots {
		fmt.Fprintf(&b, "![%s](%s/%s.png)\n\n", name, plotsDir, name)
	}
	fmt.Fprintf(&b, "Samples: [%s](%s)\n", samplesFile, samplesFile)
	return []byte(b.String())
}

// seconds converts seconds to a Duration, rounding to the nanosecond.
func seconds(s float64) time.Duration {
	return time.Duration(math.Round(s * float64(time.Second)))
}

// number formats a figure for a Markdown table: six significant digits
// are plenty to read, and the exact values are in the JSON.
func number(v float64) string {
	return strconv.FormatFloat(v, 'g', 6, 64)
}

// cell escapes the one character that would break a Markdown table cell.
func cell(s string) string {
	return strings.ReplaceAll(s, "|", `\|`)
}

// writeFile writes data to path, readable by all.
func writeFile(path string, data []byte) error {
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}
