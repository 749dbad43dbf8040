package report

import (
	"cmp"
	"math"
	"slices"
	"time"

	"gonum.org/v1/plot/plotter"
)

// maxCDFPoints bounds the points of one CDF line: a run may end a million
// requests, and a thousand steps already look smooth at 6x4 inches.
const maxCDFPoints = 1000

// bucketsPerRun is how many time buckets the per-bucket plots split a run into.
const bucketsPerRun = 60

// series is one line, or one set of points, of a plot.
type series struct {
	name string
	xys  plotter.XYs
}

// group is the samples sharing one series name.
type group struct {
	name    string
	samples []Sample
}

// indexMetrics returns the samples that can be plotted, by metric, in the
// order given. Non-finite values are dropped: plotter refuses them.
func indexMetrics(samples []Sample) map[string][]Sample {
	idx := map[string][]Sample{}
	for _, s := range samples {
		if !math.IsNaN(s.Value) && !math.IsInf(s.Value, 0) {
			idx[s.Metric] = append(idx[s.Metric], s)
		}
	}
	return idx
}

// labelOf is the value of s's label key, "" when it has none.
func labelOf(s Sample, key string) string {
	for _, l := range s.Labels {
		if l.Key == key {
			return l.Value
		}
	}
	return ""
}

// groupBy splits samples by name, keeping their order within a group; the
// groups are sorted by name so that lines, colours and legends come out the
// same for the same input.
func groupBy(samples []Sample, name func(Sample) string) []group {
	at := map[string]int{}
	var groups []group
	for _, s := range samples {
		n := name(s)
		i, ok := at[n]
		if !ok {
			i = len(groups)
			at[n] = i
			groups = append(groups, group{name: n})
		}
		groups[i].samples = append(groups[i].samples, s)
	}
	slices.SortFunc(groups, func(a, b group) int { return cmp.Compare(a.name, b.name) })
	return groups
}

// ecdf is the empirical CDF of vs as the corners of a post-step line,
// thinned to about maxCDFPoints. vs must not be empty.
func ecdf(vs []float64) plotter.XYs {
	sorted := slices.Clone(vs)
	slices.Sort(sorted)
	n := len(sorted)
	step := (n + maxCDFPoints - 1) / maxCDFPoints
	xys := plotter.XYs{{X: sorted[0], Y: 0}}
	for i := step - 1; i < n; i += step {
		xys = append(xys, plotter.XY{X: sorted[i], Y: float64(i+1) / float64(n)})
	}
	if last := xys[len(xys)-1]; last.Y != 1 {
		xys = append(xys, plotter.XY{X: sorted[n-1], Y: 1})
	}
	return xys
}

// cdfSeries is, per worker class, the CDF of the values of the successful
// requests among samples.
func cdfSeries(samples []Sample) []series {
	var ok []Sample
	for _, s := range samples {
		if labelOf(s, "outcome") == "ok" {
			ok = append(ok, s)
		}
	}
	var out []series
	for _, g := range groupBy(ok, func(s Sample) string { return orNone(labelOf(s, "class")) }) {
		vs := make([]float64, len(g.samples))
		for i, s := range g.samples {
			vs[i] = s.Value
		}
		out = append(out, series{name: g.name, xys: ecdf(vs)})
	}
	return out
}

// buckets splits a run's time into equal buckets for counting requests.
type buckets struct {
	width time.Duration
	n     int
}

// newBuckets splits r's length, or its last sample's time if later, into
// bucketsPerRun buckets of at least a second.
func newBuckets(r Run) buckets {
	length := r.Virtual
	for _, s := range r.Samples {
		length = max(length, s.At)
	}
	width := max((length / bucketsPerRun).Round(time.Second), time.Second)
	n := int((length + width - 1) / width)
	return buckets{width: width, n: max(n, 1)}
}

// index is the bucket holding at; times past the end fall in the last.
func (b buckets) index(at time.Duration) int {
	return min(max(int(at/b.width), 0), b.n-1)
}

// mid is the middle of bucket i, in seconds: where its point is drawn.
func (b buckets) mid(i int) float64 {
	return (time.Duration(i)*b.width + b.width/2).Seconds()
}

// requestSeries counts the requests ended per bucket, one series per
// (outcome, class) pair that occurs in latency.
func requestSeries(latency []Sample, b buckets) []series {
	name := func(s Sample) string {
		return orNone(labelOf(s, "outcome")) + "/" + orNone(labelOf(s, "class"))
	}
	var out []series
	for _, g := range groupBy(latency, name) {
		counts := make([]float64, b.n)
		for _, s := range g.samples {
			counts[b.index(s.At)]++
		}
		xys := make(plotter.XYs, b.n)
		for i, c := range counts {
			xys[i] = plotter.XY{X: b.mid(i), Y: c}
		}
		out = append(out, series{name: g.name, xys: xys})
	}
	return out
}

// adversaryShare is, per bucket with answered requests (right or wrong), the
// share of them that a worker of a class other than honest served. It is
// empty when no request was answered.
func adversaryShare(latency []Sample, b buckets) plotter.XYs {
	ok := make([]int, b.n)
	bad := make([]int, b.n)
	for _, s := range latency {
		if o := labelOf(s, "outcome"); o != "ok" && o != "wrong" {
			continue
		}
		i := b.index(s.At)
		ok[i]++
		if labelOf(s, "class") != "honest" {
			bad[i]++
		}
	}
	var xys plotter.XYs
	for i := range ok {
		if ok[i] > 0 {
			xys = append(xys, plotter.XY{X: b.mid(i), Y: float64(bad[i]) / float64(ok[i])})
		}
	}
	return xys
}

// part says how one metric becomes lines of a time plot: one line per value
// of label key (a single line when key is ""), named prefix+value, with
// values multiplied by scale.
type part struct {
	metric, key, prefix string
	scale               float64
}

// name is the series s belongs to.
func (p part) name(s Sample) string {
	if p.key == "" {
		return p.prefix
	}
	return p.prefix + orNone(labelOf(s, p.key))
}

// timeSeries draws p's samples over time, sorted by time in case they were
// not given in order.
func (p part) timeSeries(samples []Sample) []series {
	var out []series
	for _, g := range groupBy(samples, p.name) {
		xys := make(plotter.XYs, len(g.samples))
		for i, s := range g.samples {
			xys[i] = plotter.XY{X: s.At.Seconds(), Y: s.Value * p.scale}
		}
		slices.SortStableFunc(xys, func(a, b plotter.XY) int { return cmp.Compare(a.X, b.X) })
		out = append(out, series{name: g.name, xys: xys})
	}
	return out
}

// eventSeries numbers p's samples 1, 2, ... in the order given, one series
// per value of label p.key: x is the event's index, y its value.
func (p part) eventSeries(samples []Sample) []series {
	var out []series
	for _, g := range groupBy(samples, p.name) {
		xys := make(plotter.XYs, len(g.samples))
		for i, s := range g.samples {
			xys[i] = plotter.XY{X: float64(i + 1), Y: s.Value * p.scale}
		}
		out = append(out, series{name: g.name, xys: xys})
	}
	return out
}

// orNone names a missing label in legends.
func orNone(v string) string {
	return cmp.Or(v, "(none)")
}
