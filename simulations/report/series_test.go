package report

import (
	"reflect"
	"testing"
	"time"

	"gonum.org/v1/plot/plotter"
)

func TestECDF(t *testing.T) {
	got := ecdf([]float64{3, 1, 2, 2})
	want := plotter.XYs{{X: 1, Y: 0}, {X: 1, Y: 0.25}, {X: 2, Y: 0.5}, {X: 2, Y: 0.75}, {X: 3, Y: 1}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ecdf = %v, want %v", got, want)
	}
	big := make([]float64, 12345)
	for i := range big {
		big[i] = float64(len(big) - i)
	}
	xys := ecdf(big)
	if len(xys) > maxCDFPoints+2 {
		t.Errorf("ecdf of %d values has %d points, want about %d", len(big), len(xys), maxCDFPoints)
	}
	if last := xys[len(xys)-1]; last != (plotter.XY{X: 12345, Y: 1}) {
		t.Errorf("thinned ecdf ends at %v, want (12345, 1)", last)
	}
	for i := 1; i < len(xys); i++ {
		if xys[i].X < xys[i-1].X || xys[i].Y < xys[i-1].Y {
			t.Fatalf("thinned ecdf not monotone at %d: %v then %v", i, xys[i-1], xys[i])
		}
	}
}

func TestBuckets(t *testing.T) {
	b := newBuckets(Run{Virtual: 10 * time.Minute})
	if b.width != 10*time.Second || b.n != 60 {
		t.Errorf("10 min: width %v n %d, want 10s 60", b.width, b.n)
	}
	if b.index(0) != 0 || b.index(15*time.Second) != 1 || b.index(10*time.Minute) != 59 || b.index(time.Hour) != 59 {
		t.Error("index does not clamp to the run")
	}
	if b.mid(1) != 15 {
		t.Errorf("mid(1) = %v, want 15", b.mid(1))
	}
	short := newBuckets(Run{Virtual: 5 * time.Second})
	if short.width != time.Second || short.n != 5 {
		t.Errorf("5 s: width %v n %d, want 1s 5", short.width, short.n)
	}
	// Samples past the nominal end stretch the run rather than pile up in
	// its last bucket.
	late := newBuckets(Run{Virtual: 0, Samples: []Sample{{At: 90 * time.Second}}})
	if late.width != 2*time.Second || late.n != 45 { // 1.5 s, rounded to whole seconds
		t.Errorf("from samples: width %v n %d, want 2s 45", late.width, late.n)
	}
	if none := newBuckets(Run{}); none.n != 1 || none.width != time.Second {
		t.Errorf("empty run: %+v", none)
	}
}

func TestRequestsAndAdversaryShare(t *testing.T) {
	b := buckets{width: 10 * time.Second, n: 3}
	req := func(sec int, outcome, class string) Sample {
		return Sample{At: time.Duration(sec) * time.Second, Metric: "latency_s", Labels: lbl("outcome", outcome, "class", class), Value: 1}
	}
	latency := []Sample{
		req(1, "ok", "honest"), req(2, "ok", "honest"), req(3, "ok", "honest"), req(4, "ok", "sybil"),
		req(5, "failed", "none"),
		req(25, "ok", "sybil"), req(26, "wrong", "garbage"), req(27, "ok", "honest"),
	}
	share := adversaryShare(latency, b)
	want := plotter.XYs{{X: 5, Y: 0.25}, {X: 25, Y: 2.0 / 3}} // wrong answers count as answered
	if !reflect.DeepEqual(share, want) {
		t.Errorf("adversary share = %v, want %v (no point for the bucket without answers)", share, want)
	}
	var names []string
	counts := map[string][]float64{}
	for _, s := range requestSeries(latency, b) {
		names = append(names, s.name)
		for _, xy := range s.xys {
			counts[s.name] = append(counts[s.name], xy.Y)
		}
	}
	if want := []string{"failed/none", "ok/honest", "ok/sybil", "wrong/garbage"}; !reflect.DeepEqual(names, want) {
		t.Errorf("request series %v, want %v", names, want)
	}
	if got := counts["ok/sybil"]; !reflect.DeepEqual(got, []float64{1, 0, 1}) {
		t.Errorf("ok/sybil per bucket %v, want [1 0 1]", got)
	}
	if got := counts["ok/honest"]; !reflect.DeepEqual(got, []float64{3, 0, 1}) {
		t.Errorf("ok/honest per bucket %v, want [3 0 0]", got)
	}
}

func TestTimeSeries(t *testing.T) {
	p := part{metric: "paid_nanoton", key: "role", prefix: "paid by ", scale: 1e-9}
	ss := p.timeSeries([]Sample{
		{At: 2 * time.Second, Labels: lbl("role", "proxy"), Value: 3e9},
		{At: 1 * time.Second, Labels: lbl("role", "proxy"), Value: 1e9},
		{At: 1 * time.Second, Labels: lbl("role", "client"), Value: 2e9},
		{At: 1 * time.Second, Value: 5e9},
	})
	want := []series{
		{name: "paid by (none)", xys: plotter.XYs{{X: 1, Y: 5}}},
		{name: "paid by client", xys: plotter.XYs{{X: 1, Y: 2}}},
		{name: "paid by proxy", xys: plotter.XYs{{X: 1, Y: 1}, {X: 2, Y: 3}}},
	}
	if !reflect.DeepEqual(ss, want) {
		t.Errorf("time series = %+v, want %+v", ss, want)
	}
}

func TestEventSeries(t *testing.T) {
	p := part{metric: "recovery_s", key: "event", prefix: "recovery after ", scale: 1}
	ss := p.eventSeries([]Sample{
		{Labels: lbl("event", "proxy_crash"), Value: 4},
		{Labels: lbl("event", "partition"), Value: 9},
		{Labels: lbl("event", "proxy_crash"), Value: 6},
	})
	want := []series{
		{name: "recovery after partition", xys: plotter.XYs{{X: 1, Y: 9}}},
		{name: "recovery after proxy_crash", xys: plotter.XYs{{X: 1, Y: 4}, {X: 2, Y: 6}}},
	}
	if !reflect.DeepEqual(ss, want) {
		t.Errorf("event series = %+v, want %+v", ss, want)
	}
}
