package report

import (
	"bytes"
	"encoding/csv"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// allPlots are the plots a run with every metric must produce, in order.
func allPlots() []string {
	return []string{
		"latency_cdf", "ttft_cdf", "requests_over_time", "adversary_share", "queueing",
		"payments", "chain_ops", "gossip", "nodes", "discovery",
	}
}

func lbl(kv ...string) []Label {
	var ls []Label
	for i := 0; i < len(kv); i += 2 {
		ls = append(ls, Label{Key: kv[i], Value: kv[i+1]})
	}
	return ls
}

// requestSamples are latency_s (and, with ttft, ttft_s) samples of 120
// requests over two minutes, some failed, some served by adversaries.
func requestSamples(ttft bool) []Sample {
	classes := []string{"honest", "honest", "honest", "garbage", "slow"}
	var out []Sample
	for i := range 120 {
		at := time.Duration(i) * time.Second
		class, outcome := classes[i%len(classes)], "ok"
		switch {
		case i%11 == 0:
			class, outcome = "none", "failed"
		case class == "garbage":
			outcome = "wrong"
		}
		ls := lbl("stream", "true", "outcome", outcome, "class", class)
		out = append(out, Sample{At: at, Metric: "latency_s", Labels: ls, Value: 0.5 + float64(i%7)/10})
		if ttft && outcome != "failed" {
			out = append(out, Sample{At: at, Metric: "ttft_s", Labels: ls, Value: 0.1 + float64(i%5)/20})
		}
	}
	return out
}

// fullRun is a run with every metric the simulator emits.
func fullRun() Run {
	r := Run{
		Scenario: "adversaries", Seed: 7, Nodes: 42,
		Virtual: 2 * time.Minute, Wall: 1500 * time.Millisecond, PeakHeap: 64 << 20,
		Samples: requestSamples(true),
		Scalars: map[string]float64{"success_rate": 0.9, "adversary_share": 0.2, "latency_p50_s": 0.8},
	}
	for i := range 24 {
		at := time.Duration(i) * 5 * time.Second
		f := float64(i)
		r.Samples = append(r.Samples,
			Sample{At: at, Metric: "worker_running", Labels: lbl("class", "honest"), Value: 1 + f/10},
			Sample{At: at, Metric: "worker_running", Labels: lbl("class", "stall"), Value: 3},
			Sample{At: at, Metric: "proxy_inflight", Value: f},
			Sample{At: at, Metric: "paid_nanoton", Labels: lbl("role", "client"), Value: f * 1e9},
			Sample{At: at, Metric: "paid_nanoton", Labels: lbl("role", "proxy"), Value: f * 8e8},
			Sample{At: at, Metric: "chain_ops", Labels: lbl("op", "deploy"), Value: 4},
			Sample{At: at, Metric: "chain_ops", Labels: lbl("op", "topup"), Value: f},
			Sample{At: at, Metric: "gossip_messages", Labels: lbl("kind", "delivered"), Value: f * 100},
			Sample{At: at, Metric: "gossip_messages", Labels: lbl("kind", "duplicate"), Value: f * 30},
			Sample{At: at, Metric: "gossip_messages", Labels: lbl("kind", "rejected"), Value: f},
			Sample{At: at, Metric: "nodes", Labels: lbl("role", "worker"), Value: 30},
			Sample{At: at, Metric: "nodes", Labels: lbl("role", "client"), Value: 10},
		)
	}
	r.Samples = append(r.Samples,
		Sample{At: 30 * time.Second, Metric: "proxy_discovery_s", Labels: lbl("proxy", "p3"), Value: 2.5},
		Sample{At: 50 * time.Second, Metric: "proxy_discovery_s", Labels: lbl("proxy", "p4"), Value: 3.25},
		Sample{At: 70 * time.Second, Metric: "recovery_s", Labels: lbl("event", "proxy_crash"), Value: 4},
	)
	return r
}

func TestCSVRoundTrip(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	in := []Sample{
		{At: 12345 * time.Millisecond, Metric: "latency_s", Labels: lbl("stream", "false", "class", "honest", "outcome", "ok"), Value: 1.25},
		{At: 0, Metric: "proxy_inflight", Value: 3},
		{At: time.Hour + time.Millisecond, Metric: "paid_nanoton", Labels: lbl("role", "client"), Value: 123456789012345},
		{At: 2 * time.Second, Metric: "tiny", Labels: lbl("k", ""), Value: -1e-300},
		{At: 3 * time.Second, Metric: "inf", Value: math.Inf(1)},
		{At: 4 * time.Second, Metric: "third", Value: 1.0 / 3},
	}
	if err := WriteRun(dir, Run{Scenario: "s", Seed: 1, Samples: in}); err != nil {
		t.Fatal(err)
	}
	got, err := ReadSamples(filepath.Join(dir, samplesFile))
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Clone(in)
	want[0].Labels = lbl("class", "honest", "outcome", "ok", "stream", "false")
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, want)
	}
	if in[0].Labels[0].Key != "stream" {
		t.Error("WriteRun sorted the caller's labels in place")
	}
	raw, err := os.ReadFile(filepath.Join(dir, samplesFile))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(raw), "\n")
	if lines[0] != "t_s,metric,labels,value" {
		t.Errorf("header %q", lines[0])
	}
	if lines[1] != "12.345,latency_s,class=honest;outcome=ok;stream=false,1.25" {
		t.Errorf("first row %q", lines[1])
	}
	if lines[2] != "0.000,proxy_inflight,,3" {
		t.Errorf("second row %q", lines[2])
	}
}

func TestFormatTime(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                           "0.000",
		1234567 * time.Microsecond:  "1.235",
		999 * time.Microsecond:      "0.001",
		-1500 * time.Millisecond:    "-1.500",
		100*time.Hour + time.Second: "360001.000",
	} {
		if got := formatTime(d); got != want {
			t.Errorf("formatTime(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestWriteRunRefusesBadLabels(t *testing.T) {
	for _, tc := range []struct {
		labels []Label
		want   string
	}{
		{lbl("class", "hon;est"), `"hon;est"`},
		{lbl("cl=ass", "honest"), `"cl=ass"`},
		{lbl("class", "a,b"), `"a,b"`},
		{lbl("", "x"), "empty key"},
		{lbl("class", "a", "class", "b"), "repeats"},
	} {
		dir := filepath.Join(t.TempDir(), "run")
		r := Run{Samples: []Sample{
			{Metric: "fine", Value: 1},
			{Metric: "latency_s", Labels: tc.labels, Value: 1},
		}}
		err := WriteRun(dir, r)
		if err == nil {
			t.Errorf("labels %v: no error", tc.labels)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "sample 1") {
			t.Errorf("labels %v: error %q does not name %s in sample 1", tc.labels, err, tc.want)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("labels %v: WriteRun created %s before refusing", tc.labels, dir)
		}
	}
}

func TestReadRun(t *testing.T) {
	dir := t.TempDir()
	r := fullRun()
	r.Samples = nil
	r.Seed = math.MaxUint64
	r.Virtual = 10*time.Minute + 123456789
	r.PeakHeap = 123456789
	r.Scalars["undefined"] = math.NaN()
	if err := WriteRun(dir, r); err != nil {
		t.Fatal(err)
	}
	got, err := ReadRun(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !math.IsNaN(got.Scalars["undefined"]) {
		t.Errorf("NaN scalar read back as %v", got.Scalars["undefined"])
	}
	delete(got.Scalars, "undefined")
	delete(r.Scalars, "undefined")
	if !reflect.DeepEqual(got, r) {
		t.Errorf("ReadRun:\n got %+v\nwant %+v", got, r)
	}
	if _, err := ReadRun(t.TempDir()); err == nil {
		t.Error("ReadRun of a directory without run.json: no error")
	}
}

const pngSignature = "\x89PNG\r\n\x1a\n"

// checkPlots checks that dir/plots holds exactly the PNGs named by want and
// that dir/report.md links exactly them, in order.
func checkPlots(t *testing.T, dir string, want []string) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, plotsDir))
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, e := range entries {
		files = append(files, strings.TrimSuffix(e.Name(), ".png"))
		data, err := os.ReadFile(filepath.Join(dir, plotsDir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if len(data) < 1000 || !bytes.HasPrefix(data, []byte(pngSignature)) {
			t.Errorf("%s: %d bytes, not a plausible PNG", e.Name(), len(data))
		}
	}
	if sorted := slices.Sorted(slices.Values(want)); !slices.Equal(files, sorted) {
		t.Errorf("plots/ holds %v, want %v", files, sorted)
	}
	md, err := os.ReadFile(filepath.Join(dir, reportFile))
	if err != nil {
		t.Fatal(err)
	}
	var linked []string
	for _, m := range regexp.MustCompile(`!\[([^\]]*)\]\(plots/([^)]*)\.png\)`).FindAllStringSubmatch(string(md), -1) {
		if m[1] != m[2] {
			t.Errorf("image %q links plots/%s.png", m[1], m[2])
		}
		linked = append(linked, m[2])
	}
	if !slices.Equal(linked, want) {
		t.Errorf("report.md links %v, want %v", linked, want)
	}
	if !strings.Contains(string(md), "(samples.csv)") {
		t.Error("report.md does not link samples.csv")
	}
}

func TestWriteRunEveryPlot(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "a", "b")
	if err := WriteRun(dir, fullRun()); err != nil {
		t.Fatal(err)
	}
	checkPlots(t, dir, allPlots())
	md, err := os.ReadFile(filepath.Join(dir, reportFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"# adversaries, seed 7\n",
		"42 nodes, 2m0s virtual time, 1.5s wall time, peak heap 64.0 MiB.",
		"| adversary_share | 0.2 |\n| latency_p50_s | 0.8 |\n| success_rate | 0.9 |\n",
	} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report.md lacks %q:\n%s", want, md)
		}
	}
}

func TestWriteRunLatencyOnly(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// A full run first: writing a smaller run into the same directory must
	// not leave its plots behind.
	if err := WriteRun(dir, fullRun()); err != nil {
		t.Fatal(err)
	}
	r := Run{Scenario: "baseline", Seed: 1, Virtual: 2 * time.Minute, Samples: requestSamples(false)}
	if err := WriteRun(dir, r); err != nil {
		t.Fatal(err)
	}
	checkPlots(t, dir, []string{"latency_cdf", "requests_over_time", "adversary_share"})

	empty := t.TempDir()
	if err := WriteRun(empty, Run{Scenario: "idle"}); err != nil {
		t.Fatal(err)
	}
	checkPlots(t, empty, nil)
}

func TestWriteRunOddData(t *testing.T) {
	t.Parallel()
	// One point per series, NaN values and an unlabelled sample must not
	// break the plots.
	r := Run{Samples: []Sample{
		{At: time.Second, Metric: "latency_s", Labels: lbl("outcome", "ok", "class", "honest"), Value: 1},
		{At: time.Second, Metric: "latency_s", Labels: lbl("outcome", "ok"), Value: math.NaN()},
		{At: time.Second, Metric: "recovery_s", Value: 2},
		{At: time.Second, Metric: "proxy_inflight", Value: 0},
	}}
	dir := t.TempDir()
	if err := WriteRun(dir, r); err != nil {
		t.Fatal(err)
	}
	checkPlots(t, dir, []string{"latency_cdf", "requests_over_time", "adversary_share", "queueing", "discovery"})
}

func writeRunDir(t *testing.T, dir, scenario string, seed uint64, samples []Sample) string {
	t.Helper()
	if err := WriteRun(dir, Run{Scenario: scenario, Seed: seed, Samples: samples}); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, samplesFile)
}

func TestMergeCSV(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	a := writeRunDir(t, filepath.Join(root, "a"), "sweep,x=1", 1, []Sample{
		{At: time.Second, Metric: "nodes", Labels: lbl("role", "worker"), Value: 3},
		{At: 2 * time.Second, Metric: "proxy_inflight", Value: 4},
	})
	b := writeRunDir(t, filepath.Join(root, "b"), "sweep", 2, []Sample{
		{At: 3 * time.Second, Metric: "nodes", Labels: lbl("role", "client"), Value: 5},
	})
	var out bytes.Buffer
	if err := MergeCSV(&out, []string{a, b}); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&out).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		{"scenario", "seed", "t_s", "metric", "labels", "value"},
		{"sweep,x=1", "1", "1.000", "nodes", "role=worker", "3"},
		{"sweep,x=1", "1", "2.000", "proxy_inflight", "", "4"},
		{"sweep", "2", "3.000", "nodes", "role=client", "5"},
	}
	if !reflect.DeepEqual(rows, want) {
		t.Errorf("merged:\n got %q\nwant %q", rows, want)
	}

	orphan := filepath.Join(root, "orphan.csv")
	if err := os.WriteFile(orphan, []byte("t_s,metric,labels,value\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := MergeCSV(&bytes.Buffer{}, []string{a, orphan}); err == nil {
		t.Error("merging a CSV whose directory has no run.json: no error")
	}
}

func TestReadSamplesRejects(t *testing.T) {
	for name, content := range map[string]string{
		"header": "time,metric,labels,value\n",
		"fields": "t_s,metric,labels,value\n1.000,m,\n",
		"time":   "t_s,metric,labels,value\nsoon,m,,1\n",
		"value":  "t_s,metric,labels,value\n1.000,m,,many\n",
		"label":  "t_s,metric,labels,value\n1.000,m,novalue,1\n",
	} {
		path := filepath.Join(t.TempDir(), "samples.csv")
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadSamples(path); err == nil {
			t.Errorf("%s: bad samples.csv read without error", name)
		}
	}
}

func TestWriteRunConcurrently(t *testing.T) {
	t.Parallel()
	// The simulator may write the runs of several seeds at once; with -race
	// this checks that nothing, here or in gonum/plot, is shared unguarded.
	root := t.TempDir()
	errs := make(chan error, 3)
	for i := range 3 {
		go func() {
			r := Run{Scenario: "parallel", Seed: uint64(i), Virtual: 2 * time.Minute, Samples: requestSamples(true)}
			errs <- WriteRun(filepath.Join(root, strconv.Itoa(i)), r)
		}()
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	for i := range 3 {
		checkPlots(t, filepath.Join(root, strconv.Itoa(i)), []string{"latency_cdf", "ttft_cdf", "requests_over_time", "adversary_share"})
	}
}
