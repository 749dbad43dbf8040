package report

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// Size of every plot, and of its legend's text.
const (
	plotWidth      = 6 * vg.Inch
	plotHeight     = 4 * vg.Inch
	legendFontSize = 10
)

// runData is what the plots are drawn from.
type runData struct {
	metrics map[string][]Sample // plottable samples by metric
	buckets buckets
}

// plotSpec names one plot and draws it; draw returns a nil plot when the
// run has no data for it.
type plotSpec struct {
	name string
	draw func(d runData) (*plot.Plot, error)
}

// plotSpecs are the plots WriteRun draws, in the order report.md shows them.
func plotSpecs() []plotSpec {
	return []plotSpec{
		{"latency_cdf", func(d runData) (*plot.Plot, error) {
			return cdfPlot(d.metrics["latency_s"], "Latency of successful requests, by worker class", "latency (s)")
		}},
		{"ttft_cdf", func(d runData) (*plot.Plot, error) {
			return cdfPlot(d.metrics["ttft_s"], "Time to first token of successful requests, by worker class", "time to first token (s)")
		}},
		{"requests_over_time", requestsPlot},
		{"adversary_share", adversaryPlot},
		{"queueing", timePlot("Queueing", "requests",
			part{metric: "worker_running", key: "class", prefix: "running per worker: ", scale: 1},
			part{metric: "proxy_inflight", prefix: "in flight at proxies", scale: 1})},
		{"payments", timePlot("Payments (cumulative)", "TON",
			part{metric: "paid_nanoton", key: "role", prefix: "paid by ", scale: 1e-9})},
		{"chain_ops", timePlot("On-chain operations (cumulative)", "operations",
			part{metric: "chain_ops", key: "op", scale: 1})},
		{"gossip", timePlot("Gossip messages (cumulative, all nodes)", "messages",
			part{metric: "gossip_messages", key: "kind", scale: 1})},
		{"nodes", timePlot("Nodes up", "nodes",
			part{metric: "nodes", key: "role", scale: 1})},
		{"discovery", eventsPlot},
	}
}

// writePlots draws r's plots into dir and returns the names of those it
// wrote, in order.
func writePlots(dir string, r Run) ([]string, error) {
	d := runData{metrics: indexMetrics(r.Samples), buckets: newBuckets(r)}
	var written []string
	for _, spec := range plotSpecs() {
		path := filepath.Join(dir, spec.name+".png")
		p, err := spec.draw(d)
		if err != nil {
			return nil, fmt.Errorf("report: plot %s: %w", spec.name, err)
		}
		if p == nil {
			// A plot left by an earlier run in the same directory would be
			// stale, and report.md would no longer say what plots/ holds.
			if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("report: %w", err)
			}
			continue
		}
		if err := savePNG(p, path); err != nil {
			return nil, fmt.Errorf("report: plot %s: %w", spec.name, err)
		}
		written = append(written, spec.name)
	}
	return written, nil
}

// savePNG renders p in memory first, so that a failed render leaves no
// empty file behind.
func savePNG(p *plot.Plot, path string) error {
	c, err := p.WriterTo(plotWidth, plotHeight, "png")
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if _, err := c.WriteTo(&buf); err != nil {
		return err
	}
	return writeFile(path, buf.Bytes())
}

// newPlot is a plot with a title, axis labels and a grid.
func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = x
	p.Y.Label.Text = y
	p.Legend.TextStyle.Font.Size = legendFontSize
	p.X.Tick.Marker = plainTicks{}
	p.Y.Tick.Marker = plainTicks{}
	p.Add(plotter.NewGrid())
	return p
}

// plainTicks are gonum's default ticks labelled without padding zeros:
// gonum writes 25.00 when it steps by 2.5.
type plainTicks struct{}

// Ticks returns the ticks for the range lo..hi.
func (plainTicks) Ticks(lo, hi float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(lo, hi)
	for i, t := range ticks {
		if t.Label != "" {
			ticks[i].Label = strconv.FormatFloat(t.Value, 'g', 6, 64)
		}
	}
	return ticks
}

// makeLegendRoom raises the top of p's Y axis, once the data are added, so
// that a legend of rows entries along the top sits above the lines rather
// than over them.
func makeLegendRoom(p *plot.Plot, rows int) {
	const (
		rowHeight  = legendFontSize * 1.25 // points per legend entry
		axesHeight = 70                    // points the title and X axis take
	)
	f := min(float64(rows)*rowHeight/(plotHeight.Points()-axesHeight), 0.5)
	span := p.Y.Max - p.Y.Min
	if span <= 0 {
		span = 1 // a flat series: gonum would centre it, legend and all
	}
	p.Y.Max += span * f / (1 - f)
}

// indexTicks marks whole event numbers only: event 1.5 means nothing.
func indexTicks(lo, hi float64) []plot.Tick {
	step := max(1, math.Ceil((hi-lo)/10))
	var ticks []plot.Tick
	for v := math.Ceil(lo); v <= hi; v += step {
		ticks = append(ticks, plot.Tick{Value: v, Label: strconv.Itoa(int(v))})
	}
	return ticks
}

// addLines adds one line per series, each with its own colour and dash
// pattern (7 colours and 9 patterns give 63 distinct lines), and a legend
// entry for each named one.
func addLines(p *plot.Plot, ss []series, step bool) error {
	for i, s := range ss {
		l, err := plotter.NewLine(s.xys)
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		l.Color = plotutil.Color(i)
		l.Dashes = plotutil.Dashes(i)
		l.Width = vg.Points(1.5)
		if step {
			l.StepStyle = plotter.PostStep
		}
		p.Add(l)
		if s.name != "" {
			p.Legend.Add(s.name, l)
		}
	}
	return nil
}

// cdfPlot draws the CDFs of the successful requests among samples.
func cdfPlot(samples []Sample, title, x string) (*plot.Plot, error) {
	ss := cdfSeries(samples)
	if len(ss) == 0 {
		return nil, nil
	}
	p := newPlot(title, x, "fraction of requests")
	p.Y.Min, p.Y.Max = 0, 1
	// Bottom right, where every CDF has already risen.
	p.Legend.Top, p.Legend.Left = false, false
	return p, addLines(p, ss, true)
}

// requestsPlot draws requests ended per bucket by outcome and class.
func requestsPlot(d runData) (*plot.Plot, error) {
	ss := requestSeries(d.metrics["latency_s"], d.buckets)
	if len(ss) == 0 {
		return nil, nil
	}
	p := newPlot("Requests ended, by outcome/class", "virtual time (s)",
		fmt.Sprintf("requests per %s", d.buckets.width))
	p.X.Min, p.Y.Min = 0, 0
	p.Legend.Top = true
	if err := addLines(p, ss, false); err != nil {
		return nil, err
	}
	makeLegendRoom(p, len(ss))
	return p, nil
}

// adversaryPlot draws the share of answered requests (right or wrong) adversaries served.
func adversaryPlot(d runData) (*plot.Plot, error) {
	xys := adversaryShare(d.metrics["latency_s"], d.buckets)
	if len(xys) == 0 {
		return nil, nil
	}
	p := newPlot("Share of answered requests served by non-honest workers",
		"virtual time (s)", fmt.Sprintf("share (per %s)", d.buckets.width))
	p.X.Min, p.Y.Min, p.Y.Max = 0, 0, 1
	return p, addLines(p, []series{{xys: xys}}, false)
}

// timePlot returns a draw function for the metrics of parts over time.
func timePlot(title, y string, parts ...part) func(runData) (*plot.Plot, error) {
	return func(d runData) (*plot.Plot, error) {
		var ss []series
		for _, pt := range parts {
			ss = append(ss, pt.timeSeries(d.metrics[pt.metric])...)
		}
		if len(ss) == 0 {
			return nil, nil
		}
		p := newPlot(title, "virtual time (s)", y)
		p.X.Min, p.Y.Min = 0, 0
		p.Legend.Top, p.Legend.Left = true, true
		if err := addLines(p, ss, false); err != nil {
			return nil, err
		}
		makeLegendRoom(p, len(ss))
		return p, nil
	}
}

// eventsPlot draws proxy discovery and recovery times as points.
func eventsPlot(d runData) (*plot.Plot, error) {
	parts := []part{
		{metric: "proxy_discovery_s", prefix: "proxy discovery", scale: 1},
		{metric: "recovery_s", key: "event", prefix: "recovery after ", scale: 1},
	}
	var ss []series
	for _, pt := range parts {
		ss = append(ss, pt.eventSeries(d.metrics[pt.metric])...)
	}
	if len(ss) == 0 {
		return nil, nil
	}
	p := newPlot("Proxy discovery and recovery", "event index", "seconds")
	p.Y.Min = 0
	p.Legend.Top = true
	p.X.Tick.Marker = plot.TickerFunc(indexTicks)
	events := 0
	for i, s := range ss {
		events = max(events, len(s.xys))
		sc, err := plotter.NewScatter(s.xys)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
		sc.GlyphStyle.Color = plotutil.Color(i)
		sc.GlyphStyle.Shape = plotutil.Shape(i)
		sc.GlyphStyle.Radius = vg.Points(3)
		p.Add(sc)
		p.Legend.Add(s.name, sc)
	}
	// Half an event of margin keeps the first and last points off the axes.
	p.X.Min, p.X.Max = 0.5, float64(events)+0.5
	makeLegendRoom(p, len(ss))
	return p, nil
}
