package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cocoon-mesh/cocoon/bench"
	"github.com/cocoon-mesh/cocoon/node"
)

// benchFlags are bench's settings, parsed and checked.
type benchFlags struct {
	proxies, workers, requests, requestsC1, rounds, warmup int
	promptWords, maxTokens, maxActive, idleWorkers         int
	window                                                 uint
	conc                                                   []int
	modes                                                  []bench.Mode
	streams                                                []bool
	jsonFile, logLevel, cpuProfile                         string
	modelFile, tokenizerFile, prompt                       string
	idleSettle                                             time.Duration
	failOnError                                            bool
	// given are the flags set on the command line: the embedded-model mode takes
	// --concurrency and --requests only then (the defaults are the echo mesh's).
	given map[string]bool
}

// bench measures the mesh path against a direct call and two plain HTTP hops, all in this
// process; package bench does the work.
func (m *Main) bench(ctx context.Context, args []string) error {
	f, err := m.benchFlags(args)
	if err != nil {
		return err
	}
	if f.modelFile != "" {
		return m.benchEmbedded(ctx, f)
	}
	log, err := newLogger(f.logLevel, os.Stderr)
	if err != nil {
		return err
	}
	out := m.Stdout
	start := time.Now()
	say := func(msg string) { fmt.Fprintf(out, "  [%6.1fs] %s\n", time.Since(start).Seconds(), msg) }
	rep, err := m.benchTargets(ctx, f, log, say)
	if err != nil {
		return err
	}
	if f.idleWorkers > 0 && !rep.Interrupted {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("bench: find own binary for the idle proxy: %w", err)
		}
		fmt.Fprintf(out, "Measuring an idle proxy (own process) with %d workers\n", f.idleWorkers)
		res, err := bench.MeasureIdleProxy(ctx, bench.IdleProxyConfig{
			Binary: exe, Workers: f.idleWorkers, Settle: f.idleSettle, Logger: log, Progress: say,
		})
		if err != nil {
			return err
		}
		rep.IdleProxy = &res
	}
	rep.Write(out)
	if f.jsonFile != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(f.jsonFile, append(b, '\n'), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(out, "\nResults written to %s\n", f.jsonFile)
	}
	if rep.Interrupted {
		fmt.Fprintf(out, "\nStopped: the results above are the %d scenarios measured before Ctrl-C.\n", len(rep.Results))
		return context.Canceled
	}
	if n := rep.Failures(); n > 0 && f.failOnError {
		return fmt.Errorf("bench: %d requests failed (see the table; --fail-on-error=false to ignore)", n)
	}
	return nil
}

// benchFlags parses and checks bench's flags.
func (m *Main) benchFlags(args []string) (*benchFlags, error) {
	fs := m.flagSet("bench")
	f := &benchFlags{}
	fs.IntVar(&f.proxies, "proxies", 2, "proxies in the local mesh")
	fs.IntVar(&f.workers, "workers", 2, "workers in the local mesh")
	concFlag := fs.String("concurrency", "1,16,64", "concurrencies to measure, comma-separated (with --model-file, when given: else 1,4,16)")
	streamFlag := fs.String("stream", "both", "stream modes to measure: both, on or off")
	modesFlag := fs.String("modes", "all", "targets to measure, comma-separated: mesh, mesh-clear, mesh-unpaid, direct, http2hop (all: every one)")
	fs.IntVar(&f.requests, "requests", 2000, "measured requests per scenario (at concurrency 1: at most 1000 unless given; with --model-file, when given: else 8)")
	fs.IntVar(&f.rounds, "rounds", 3, "split each scenario's requests into this many rounds, each running the targets back to back")
	fs.IntVar(&f.warmup, "warmup", 50, "unmeasured requests before each scenario (at least 2x its concurrency; 0: none)")
	fs.IntVar(&f.promptWords, "prompt-words", 16, "words in each prompt (the echo backend answers one token per word)")
	fs.IntVar(&f.maxTokens, "max-tokens", 16, "max_tokens of each request")
	fs.UintVar(&f.window, "window-tokens", 0, "every payee's credit window in completion tokens (0: the node default, 256)")
	fs.IntVar(&f.maxActive, "worker-max-active", 0, "each worker's concurrent request limit (0: the node default, or the highest --concurrency if above it, so admission control never refuses)")
	fs.StringVar(&f.jsonFile, "json", "", "also write all results as JSON to this file")
	fs.IntVar(&f.idleWorkers, "idle-proxy-workers", 0, "also measure an idle proxy's memory (own process) with this many workers (0: skip)")
	fs.DurationVar(&f.idleSettle, "idle-settle", 5*time.Second, "with --idle-proxy-workers: how long the proxy idles before its memory is read")
	fs.BoolVar(&f.failOnError, "fail-on-error", true, "exit non-zero if any request failed")
	fs.StringVar(&f.logLevel, "log-level", "warn", "node log level: debug, info, warn or error")
	fs.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile of the measured scenarios (the whole process) to this file")
	fs.StringVar(&f.modelFile, "model-file", "", "embedded-model mode: a llama2.c checkpoint to measure in-process and through the mesh, or \"builtin\" for the built-in model")
	fs.StringVar(&f.tokenizerFile, "tokenizer-file", "", "embedded-model mode: the checkpoint's tokenizer.bin")
	fs.StringVar(&f.prompt, "prompt", "Once upon a time", "embedded-model mode: the prompt")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	f.given = map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { f.given[fl.Name] = true })
	if f.modelFile != "" {
		var err error
		f.conc, err = parseConcurrency(*concFlag)
		return f, err
	}
	if fs.NArg() > 0 {
		return nil, usageError(fmt.Sprintf("bench: unexpected argument %q", fs.Arg(0)))
	}
	var err error
	if f.conc, err = parseConcurrency(*concFlag); err != nil {
		return nil, err
	}
	if f.modes, err = parseModes(*modesFlag); err != nil {
		return nil, err
	}
	switch *streamFlag {
	case "both":
		f.streams = []bool{false, true}
	case "on":
		f.streams = []bool{true}
	case "off":
		f.streams = []bool{false}
	default:
		return nil, usageError(fmt.Sprintf("--stream %q: want both, on or off", *streamFlag))
	}
	if err := f.check(); err != nil {
		return nil, err
	}
	explicit := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { explicit[fl.Name] = true })
	f.requestsC1 = min(f.requests, 1000)
	if explicit["requests"] {
		f.requestsC1 = f.requests
	}
	if f.maxActive == 0 {
		f.maxActive = max(slices.Max(f.conc), node.DefaultConfig().MaxActive)
	}
	if f.warmup == 0 {
		f.warmup = -1 // bench.Config: negative means none
	}
	return f, nil
}

// check refuses settings out of range, naming the flag.
func (f *benchFlags) check() error {
	switch {
	case f.proxies < 1 || f.workers < 1:
		return usageError("--proxies and --workers must be at least 1")
	case f.requests < 1:
		return usageError("--requests must be at least 1")
	case f.promptWords < 1 || f.maxTokens < 1:
		return usageError("--prompt-words and --max-tokens must be at least 1")
	case f.rounds < 1:
		return usageError("--rounds must be at least 1")
	case f.idleWorkers < 0 || f.maxActive < 0 || f.warmup < 0:
		return usageError("--idle-proxy-workers, --worker-max-active and --warmup must not be negative")
	}
	return nil
}

// benchTargets starts the targets f names, measures every scenario on them (under a CPU
// profile, if asked) and stops them.
func (m *Main) benchTargets(ctx context.Context, f *benchFlags, log *slog.Logger, say func(string)) (*bench.Report, error) {
	out := m.Stdout
	fmt.Fprintf(out, "Starting the targets (%s): a local mesh (%d proxies, %d workers, 1 client; worker max_active %d), "+
		"a direct echo backend, and two ReverseProxy hops in front of it, as the targets need\n", joinModes(f.modes), f.proxies, f.workers, f.maxActive)
	sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	targets, err := bench.StartTargets(sctx, bench.TargetsConfig{
		Proxies: f.proxies, Workers: f.workers, WorkerMaxActive: f.maxActive, WindowTokens: uint32(f.window), Modes: f.modes, Logger: log, Progress: say,
	})
	cancel()
	if err != nil {
		return nil, err
	}
	defer targets.Close()
	if f.cpuProfile != "" {
		pf, err := os.Create(f.cpuProfile)
		if err != nil {
			return nil, err
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return nil, err
		}
		defer pprof.StopCPUProfile()
	}
	c1 := ""
	if slices.Contains(f.conc, 1) && f.requestsC1 != f.requests {
		c1 = fmt.Sprintf(", %d at concurrency 1", f.requestsC1)
	}
	fmt.Fprintf(out, "Measuring %d scenarios (%d requests each%s, in %d rounds)\n",
		len(f.streams)*len(f.conc)*len(f.modes), f.requests, c1, f.rounds)
	rep, err := bench.Run(ctx, targets, bench.Config{
		Concurrency: f.conc, Streams: f.streams, Requests: f.requests, RequestsC1: f.requestsC1, Warmup: f.warmup, Rounds: f.rounds,
		Shape: bench.Shape{PromptWords: f.promptWords, MaxTokens: f.maxTokens},
		Progress: func(r bench.Result) {
			say(fmt.Sprintf("%-8s stream %-3s c=%-3d %9.1f req/s  p50 %sms  errors %d",
				r.Mode, onOff(r.Stream), r.Concurrency, r.RPS, bench.FormatMs(r.Latency.P50), r.Errors))
		},
	})
	if err != nil {
		return nil, err
	}
	if f.cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	if err := targets.Close(); err != nil {
		say(fmt.Sprintf("warning: stopping the targets: %v", err))
	}
	return rep, nil
}

// joinModes lists modes for a message.
func joinModes(modes []bench.Mode) string {
	s := make([]string, len(modes))
	for i, m := range modes {
		s[i] = string(m)
	}
	return strings.Join(s, ", ")
}

// parseModes reads "mesh,mesh-unpaid", or "all".
func parseModes(s string) ([]bench.Mode, error) {
	if strings.TrimSpace(s) == "all" {
		return bench.Modes(), nil
	}
	var out []bench.Mode
	for _, f := range strings.Split(s, ",") {
		m := bench.Mode(strings.TrimSpace(f))
		if m == "" {
			continue
		}
		if !slices.Contains(bench.Modes(), m) {
			return nil, usageError(fmt.Sprintf("--modes: %q is not a target: want mesh, mesh-clear, mesh-unpaid, direct or http2hop", m))
		}
		if !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	if len(out) == 0 {
		return nil, usageError("--modes: give at least one target")
	}
	return out, nil
}

// parseConcurrency reads "1,16,64".
func parseConcurrency(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 || n > 4096 {
			return nil, usageError(fmt.Sprintf("--concurrency: %q is not a whole number from 1 to 4096", f))
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return nil, usageError("--concurrency: give at least one number")
	}
	return out, nil
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}
