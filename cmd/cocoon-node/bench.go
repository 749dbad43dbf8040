package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cocoon-mesh/cocoon/bench"
	"github.com/cocoon-mesh/cocoon/node"
)

// bench measures the mesh path against a direct call and two plain HTTP hops, all in this
// process; package bench does the work.
func (m *Main) bench(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	proxies := fs.Int("proxies", 2, "proxies in the local mesh")
	workers := fs.Int("workers", 2, "workers in the local mesh")
	concFlag := fs.String("concurrency", "1,16,64", "concurrencies to measure, comma-separated")
	streamFlag := fs.String("stream", "both", "stream modes to measure: both, on or off")
	modesFlag := fs.String("modes", "all", "targets to measure, comma-separated: mesh, mesh-clear, mesh-unpaid, direct, http2hop (all: every one)")
	requests := fs.Int("requests", 2000, "measured requests per scenario (at concurrency 1: at most 1000 unless given)")
	rounds := fs.Int("rounds", 3, "split each scenario's requests into this many rounds, each running the targets back to back")
	warmup := fs.Int("warmup", 50, "unmeasured requests before each scenario (at least 2x its concurrency; 0: none)")
	promptWords := fs.Int("prompt-words", 16, "words in each prompt (the echo backend answers one token per word)")
	maxTokens := fs.Int("max-tokens", 16, "max_tokens of each request")
	window := fs.Uint("window-tokens", 0, "every payee's credit window in completion tokens (0: the node default, 256)")
	maxActive := fs.Int("worker-max-active", 0, "each worker's concurrent request limit (0: the node default, or the highest --concurrency if above it, so admission control never refuses)")
	jsonFile := fs.String("json", "", "also write all results as JSON to this file")
	idleWorkers := fs.Int("idle-proxy-workers", 0, "also measure an idle proxy's memory (own process) with this many workers (0: skip)")
	idleSettle := fs.Duration("idle-settle", 5*time.Second, "with --idle-proxy-workers: how long the proxy idles before its memory is read")
	failOnError := fs.Bool("fail-on-error", true, "exit non-zero if any request failed")
	logLevel := fs.String("log-level", "warn", "node log level: debug, info, warn or error")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the measured scenarios (the whole process) to this file")
	modelFile := fs.String("model-file", "", "embedded-model mode: a llama2.c checkpoint to measure in-process and through the mesh, or \"builtin\" for the built-in model")
	tokenizerFile := fs.String("tokenizer-file", "", "embedded-model mode: the checkpoint's tokenizer.bin")
	prompt := fs.String("prompt", "Once upon a time", "embedded-model mode: the prompt")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *modelFile != "" {
		return m.benchEmbedded(ctx, *modelFile, *tokenizerFile, *prompt, *maxTokens)
	}
	if fs.NArg() > 0 {
		return usageError(fmt.Sprintf("bench: unexpected argument %q", fs.Arg(0)))
	}
	conc, err := parseConcurrency(*concFlag)
	if err != nil {
		return err
	}
	modes, err := parseModes(*modesFlag)
	if err != nil {
		return err
	}
	var streams []bool
	switch *streamFlag {
	case "both":
		streams = []bool{false, true}
	case "on":
		streams = []bool{true}
	case "off":
		streams = []bool{false}
	default:
		return usageError(fmt.Sprintf("--stream %q: want both, on or off", *streamFlag))
	}
	switch {
	case *proxies < 1 || *workers < 1:
		return usageError("--proxies and --workers must be at least 1")
	case *requests < 1:
		return usageError("--requests must be at least 1")
	case *promptWords < 1 || *maxTokens < 1:
		return usageError("--prompt-words and --max-tokens must be at least 1")
	case *rounds < 1:
		return usageError("--rounds must be at least 1")
	case *idleWorkers < 0 || *maxActive < 0 || *warmup < 0:
		return usageError("--idle-proxy-workers, --worker-max-active and --warmup must not be negative")
	}
	explicit := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
	requestsC1 := min(*requests, 1000)
	if explicit["requests"] {
		requestsC1 = *requests
	}
	if *maxActive == 0 {
		*maxActive = max(slices.Max(conc), node.DefaultConfig().MaxActive)
	}
	w := *warmup
	if w == 0 {
		w = -1 // bench.Config: negative means none
	}
	log, err := newLogger(*logLevel, os.Stderr)
	if err != nil {
		return err
	}

	out := m.Stdout
	start := time.Now()
	say := func(msg string) { fmt.Fprintf(out, "  [%6.1fs] %s\n", time.Since(start).Seconds(), msg) }
	fmt.Fprintf(out, "Starting the targets (%s): a local mesh (%d proxies, %d workers, 1 client; worker max_active %d), "+
		"a direct echo backend, and two ReverseProxy hops in front of it, as the targets need\n", joinModes(modes), *proxies, *workers, *maxActive)
	sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	targets, err := bench.StartTargets(sctx, bench.TargetsConfig{
		Proxies: *proxies, Workers: *workers, WorkerMaxActive: *maxActive, WindowTokens: uint32(*window), Modes: modes, Logger: log, Progress: say,
	})
	cancel()
	if err != nil {
		return err
	}
	defer targets.Close()

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	c1 := ""
	if slices.Contains(conc, 1) && requestsC1 != *requests {
		c1 = fmt.Sprintf(", %d at concurrency 1", requestsC1)
	}
	fmt.Fprintf(out, "Measuring %d scenarios (%d requests each%s, in %d rounds)\n",
		len(streams)*len(conc)*len(modes), *requests, c1, *rounds)
	rep, err := bench.Run(ctx, targets, bench.Config{
		Concurrency: conc, Streams: streams, Requests: *requests, RequestsC1: requestsC1, Warmup: w, Rounds: *rounds,
		Shape: bench.Shape{PromptWords: *promptWords, MaxTokens: *maxTokens},
		Progress: func(r bench.Result) {
			say(fmt.Sprintf("%-8s stream %-3s c=%-3d %9.1f req/s  p50 %sms  errors %d",
				r.Mode, onOff(r.Stream), r.Concurrency, r.RPS, bench.FormatMs(r.Latency.P50), r.Errors))
		},
	})
	if err != nil {
		return err
	}
	if *cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	if err := targets.Close(); err != nil {
		say(fmt.Sprintf("warning: stopping the targets: %v", err))
	}

	if *idleWorkers > 0 {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("bench: find own binary for the idle proxy: %w", err)
		}
		fmt.Fprintf(out, "Measuring an idle proxy (own process) with %d workers\n", *idleWorkers)
		res, err := bench.MeasureIdleProxy(ctx, bench.IdleProxyConfig{
			Binary: exe, Workers: *idleWorkers, Settle: *idleSettle, Logger: log, Progress: say,
		})
		if err != nil {
			return err
		}
		rep.IdleProxy = &res
	}

	rep.Write(out)
	if *jsonFile != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(*jsonFile, append(b, '\n'), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(out, "\nResults written to %s\n", *jsonFile)
	}
	if n := rep.Failures(); n > 0 && *failOnError {
		return fmt.Errorf("bench: %d requests failed (see the table; --fail-on-error=false to ignore)", n)
	}
	return nil
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
