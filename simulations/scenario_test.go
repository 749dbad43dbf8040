package simulations

import (
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	_ "net/http/pprof"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cocoon-mesh/cocoon/simulations/report"
)

var (
	scenarioFlag = flag.String("scenario", "", "the scenario file TestScenario runs (simulations/scenarios/*.toml)")
	outFlag      = flag.String("out", "", "where TestScenario writes its results (default results/<scenario name>)")
	seedsFlag    = flag.Int("seeds", 1, "how many seeds TestScenario runs: the scenario's seed, and the ones after it")
	seedFlag     = flag.Uint64("seed", 0, "the first seed (default: the scenario's)")
	logFlag      = flag.String("log", "", "the nodes' log level printed (debug, info, warn, error; default none)")
	pprofFlag    = flag.String("pprof", "", "serve net/http/pprof on this address (e.g. 127.0.0.1:6060) while TestScenario runs")
	setFlags     setList
)

func init() {
	flag.Var(&setFlags, "set", "dotted.key=value: overrides a key of the scenario (repeatable; a sweep varies scenarios so)")
}

// setList is a repeatable flag.
type setList []string

func (l *setList) String() string     { return strings.Join(*l, " ") }
func (l *setList) Set(v string) error { *l = append(*l, v); return nil }

// TestScenario runs the scenario -scenario names over -seeds seeds and writes each run's
// results, and their summary, under -out:
//
//	go test ./simulations -run TestScenario -timeout 0 -args -scenario scenarios/baseline.toml -out results/baseline -seeds 5
//
// (paths are relative to simulations/, where go test runs). Without -scenario it is skipped.
func TestScenario(t *testing.T) {
	if *scenarioFlag == "" {
		t.Skip("no -scenario given: go test ./simulations -run TestScenario -args -scenario scenarios/baseline.toml")
	}
	if *pprofFlag != "" { // outside the bubble: profiles are read by the wall clock
		srv := &http.Server{Addr: *pprofFlag, ReadHeaderTimeout: 10 * time.Second}
		go srv.ListenAndServe()
		defer srv.Close()
	}
	sc, err := Load(*scenarioFlag, setFlags...)
	if err != nil {
		t.Fatal(err)
	}
	out := *outFlag
	if out == "" {
		out = filepath.Join("results", sc.Name)
	}
	first := sc.Seed
	if *seedFlag != 0 {
		first = *seedFlag
	}
	var runs []report.Run
	for i := range *seedsFlag {
		r := runOnce(t, sc, first+uint64(i))
		dir := filepath.Join(out, fmt.Sprintf("seed-%d", r.Seed))
		if err := report.WriteRun(dir, r); err != nil {
			t.Fatal(err)
		}
		t.Logf("seed %d: %d nodes, %s virtual in %s wall, peak heap %d MiB; results in %s", r.Seed, r.Nodes,
			r.Virtual.Round(time.Second), r.Wall.Round(time.Second), r.PeakHeap>>20, dir)
		runs = append(runs, r)
	}
	if err := report.WriteSummary(out, report.Summarize(runs)); err != nil {
		t.Fatal(err)
	}
	t.Logf("summary over %d seeds: %s", len(runs), filepath.Join(out, "summary.json"))
}

// runOnce runs sc with seed in a bubble of its own and times it by the wall clock.
func runOnce(t *testing.T, sc *Scenario, seed uint64) report.Run {
	t.Helper()
	t.Logf("scenario %s: seed %d", sc.Name, seed)
	var r report.Run
	var err error
	start := time.Now()
	synctest.Test(t, func(t *testing.T) {
		r, err = Run(sc, Options{Seed: seed, Logger: nodeLogger(), Progress: func(msg string) { t.Log(msg) }})
	})
	if err != nil {
		t.Fatal(err)
	}
	r.Wall = time.Since(start)
	return r
}

// nodeLogger prints the nodes' logs at -log's level, or nothing.
func nodeLogger() *slog.Logger {
	var l slog.Level
	if *logFlag == "" || l.UnmarshalText([]byte(strings.ToUpper(*logFlag))) != nil {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}
