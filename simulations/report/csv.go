package report

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// labelSeparators are the characters the labels column uses to separate
// labels and keys from values, so no key or value may hold them.
const labelSeparators = ";=,"

// csvHeader is the header of samples.csv.
func csvHeader() []string { return []string{"t_s", "metric", "labels", "value"} }

// validateSamples refuses labels that the labels column could not hold
// unambiguously, naming the first one found.
func validateSamples(samples []Sample) error {
	for i, s := range samples {
		seen := make(map[string]bool, len(s.Labels))
		for _, l := range s.Labels {
			var bad string
			switch {
			case l.Key == "":
				bad = "has an empty key"
			case strings.ContainsAny(l.Key, labelSeparators):
				bad = "has a key with one of " + labelSeparators
			case strings.ContainsAny(l.Value, labelSeparators):
				bad = "has a value with one of " + labelSeparators
			case seen[l.Key]:
				bad = "repeats its key"
			}
			if bad != "" {
				return fmt.Errorf("report: sample %d (%s at %s): label %q=%q %s",
					i, s.Metric, s.At, l.Key, l.Value, bad)
			}
			seen[l.Key] = true
		}
	}
	return nil
}

// writeSamplesFile writes samples to path as CSV.
func writeSamplesFile(path string, samples []Sample) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("report: %w", cerr)
		}
	}()
	w := bufio.NewWriter(f)
	if err := writeSamples(w, samples); err != nil {
		return fmt.Errorf("report: %s: %w", path, err)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("report: %s: %w", path, err)
	}
	return nil
}

// writeSamples writes the header and one row per sample, in order.
func writeSamples(w io.Writer, samples []Sample) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(csvHeader()); err != nil {
		return err
	}
	for _, s := range samples {
		row := []string{formatTime(s.At), s.Metric, formatLabels(s.Labels),
			strconv.FormatFloat(s.Value, 'g', -1, 64)}
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// formatTime writes d as seconds with millisecond precision. It works in
// whole milliseconds so that no float rounding shows in the file.
func formatTime(d time.Duration) string {
	ms := d.Round(time.Millisecond).Milliseconds()
	sign := ""
	if ms < 0 {
		sign, ms = "-", -ms
	}
	return fmt.Sprintf("%s%d.%03d", sign, ms/1000, ms%1000)
}

// formatLabels writes ls as k=v;k=v sorted by key, so that equal label
// sets always read the same.
func formatLabels(ls []Label) string {
	sorted := slices.Clone(ls)
	slices.SortStableFunc(sorted, func(a, b Label) int { return strings.Compare(a.Key, b.Key) })
	parts := make([]string, len(sorted))
	for i, l := range sorted {
		parts[i] = l.Key + "=" + l.Value
	}
	return strings.Join(parts, ";")
}

// ReadSamples parses a samples.csv as WriteRun wrote it.
func ReadSamples(path string) ([]Sample, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	defer f.Close()
	cr, err := openCSV(f, path)
	if err != nil {
		return nil, err
	}
	var samples []Sample
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return samples, nil
		}
		if err != nil {
			return nil, fmt.Errorf("report: %s: %w", path, err)
		}
		s, err := parseSample(rec)
		if err != nil {
			line, _ := cr.FieldPos(0)
			return nil, fmt.Errorf("report: %s:%d: %w", path, line, err)
		}
		samples = append(samples, s)
	}
}

// openCSV returns a reader of samples.csv rows, past a header it checked.
func openCSV(r io.Reader, path string) (*csv.Reader, error) {
	cr := csv.NewReader(bufio.NewReader(r))
	cr.ReuseRecord = true
	head, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("report: %s: reading header: %w", path, err)
	}
	if !slices.Equal(head, csvHeader()) {
		return nil, fmt.Errorf("report: %s: header %q, want %q", path, head, csvHeader())
	}
	return cr, nil
}

// parseSample parses one row of samples.csv.
func parseSample(rec []string) (Sample, error) {
	t, err := strconv.ParseFloat(rec[0], 64)
	if err != nil {
		return Sample{}, fmt.Errorf("t_s: %w", err)
	}
	v, err := strconv.ParseFloat(rec[3], 64)
	if err != nil {
		return Sample{}, fmt.Errorf("value: %w", err)
	}
	s := Sample{
		At:     time.Duration(math.Round(t*1e3)) * time.Millisecond,
		Metric: rec[1],
		Value:  v,
	}
	if rec[2] == "" {
		return s, nil
	}
	for part := range strings.SplitSeq(rec[2], ";") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return Sample{}, fmt.Errorf("label %q has no '='", part)
		}
		s.Labels = append(s.Labels, Label{Key: k, Value: v})
	}
	return s, nil
}

// MergeCSV concatenates the samples.csv files named by inputs into w, with one header, adding columns scenario and seed taken from each file's directory's run.json.
// The output's header is scenario,seed,t_s,metric,labels,value.
func MergeCSV(w io.Writer, inputs []string) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(append([]string{"scenario", "seed"}, csvHeader()...)); err != nil {
		return fmt.Errorf("report: merge: %w", err)
	}
	for _, in := range inputs {
		r, err := ReadRun(filepath.Dir(in))
		if err != nil {
			return fmt.Errorf("report: merge %s: %w", in, err)
		}
		if err := copyRows(cw, in, r.Scenario, strconv.FormatUint(r.Seed, 10)); err != nil {
			return err
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("report: merge: %w", err)
	}
	return nil
}

// copyRows streams the rows of the samples.csv at path to cw, each
// prefixed with scenario and seed; it does not hold the file in memory.
func copyRows(cw *csv.Writer, path, scenario, seed string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("report: merge: %w", err)
	}
	defer f.Close()
	cr, err := openCSV(f, path)
	if err != nil {
		return err
	}
	row := []string{scenario, seed}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("report: merge %s: %w", path, err)
		}
		if err := cw.Write(append(row[:2], rec...)); err != nil {
			return fmt.Errorf("report: merge: %w", err)
		}
	}
}
