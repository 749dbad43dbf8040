package bench

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"time"
)

// Config is what to measure.
type Config struct {
	Concurrency []int  // default 1, 16, 64
	Streams     []bool // stream modes, in order; default false then true
	Requests    int    // measured requests per scenario; default 2000
	RequestsC1  int    // at concurrency 1; default min(Requests, 1000)
	// Warmup is how many unmeasured requests precede each scenario, at its concurrency and at
	// least twice it, so connections are open and warm (default 50; negative: none).
	Warmup int
	Shape  Shape // the requests' prompt and max_tokens
	// Rounds splits each scenario's requests into this many rounds (default 1). Each round
	// runs the targets back to back, so a change in the machine's speed during the run (shared
	// machines have them) hits every target alike instead of skewing their ratios.
	Rounds int
	// Progress, if set, is called after each scenario.
	Progress func(Result)
}

func (c Config) withDefaults() Config {
	if len(c.Concurrency) == 0 {
		c.Concurrency = []int{1, 16, 64}
	}
	if len(c.Streams) == 0 {
		c.Streams = []bool{false, true}
	}
	if c.Requests <= 0 {
		c.Requests = 2000
	}
	if c.RequestsC1 <= 0 {
		c.RequestsC1 = min(c.Requests, 1000)
	}
	if c.Warmup == 0 {
		c.Warmup = 50
	}
	c.Warmup = max(c.Warmup, 0)
	c.Shape = c.Shape.withDefaults()
	c.Rounds = max(c.Rounds, 1)
	return c
}

// Env describes where a run happened, so its numbers can be read in context.
type Env struct {
	GoVersion  string `json:"go_version"`
	OS         string `json:"os"`
	Arch       string `json:"arch"`
	NumCPU     int    `json:"num_cpu"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	Proxies    int    `json:"proxies,omitempty"`
	Workers    int    `json:"workers,omitempty"`
	MaxActive  int    `json:"worker_max_active,omitempty"` // 0: the node default
	// WindowTokens is the payees' credit window in tokens (0: the mesh does not pay). The
	// vouchers per request, and so what payments cost, follow it.
	WindowTokens uint32 `json:"window_tokens,omitempty"`
	PromptWords  int    `json:"prompt_words"`
	MaxTokens    int    `json:"max_tokens"`
	Rounds       int    `json:"rounds"`
	Time         string `json:"time"`
}

// Report is the outcome of a run.
type Report struct {
	Env         Env              `json:"env"`
	Results     []Result         `json:"results"`
	Comparisons []Comparison     `json:"comparisons"`
	Checks      []Check          `json:"checks"`
	IdleProxy   *IdleProxyResult `json:"idle_proxy,omitempty"`
	// Interrupted says the run was stopped (its context ended) after the scenarios in Results.
	Interrupted bool `json:"interrupted,omitempty"`
}

// Failures is the number of failed requests over all scenarios.
func (r *Report) Failures() int {
	n := 0
	for _, res := range r.Results {
		n += res.Errors
	}
	return n
}

// Run measures every scenario on the targets: for each stream mode and concurrency, the
// targets in Modes order, back to back, so they meet the same machine state.
func Run(ctx context.Context, t *Targets, cfg Config) (*Report, error) {
	cfg = cfg.withDefaults()
	rep := &Report{Env: Env{
		GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH,
		NumCPU: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0),
		PromptWords: cfg.Shape.PromptWords, MaxTokens: cfg.Shape.MaxTokens, Rounds: cfg.Rounds,
		Time: time.Now().UTC().Format(time.RFC3339),
	}}
	if t.Net != nil {
		rep.Env.Proxies, rep.Env.Workers = len(t.Net.Proxies), len(t.Net.Workers)
		rep.Env.MaxActive = t.Net.Workers[0].Config().MaxActive
		if t.Net.Ledger() != nil {
			rep.Env.WindowTokens = t.Net.Workers[0].Config().Payments.WindowTokens
		}
	}
	maxConc := slices.Max(cfg.Concurrency)
	clients := map[Mode]*Client{}
	for _, m := range Modes() {
		if u, ok := t.URLs[m]; ok {
			clients[m] = NewClient(u, maxConc, cfg.Shape)
			defer clients[m].Close()
		}
	}
	if len(clients) == 0 {
		return nil, fmt.Errorf("bench: no targets")
	}
	onChain := t.onChainMessages()
scenarios:
	for _, stream := range cfg.Streams {
		for _, conc := range cfg.Concurrency {
			n := cfg.Requests
			if conc == 1 {
				n = cfg.RequestsC1
			}
			results, err := runPair(ctx, clients, t.payCounters(), cfg, stream, conc, n)
			if err != nil && ctx.Err() != nil { // stopped: report the scenarios measured so far
				rep.Interrupted = true
				break scenarios
			}
			if err != nil {
				return nil, err
			}
			rep.Results = append(rep.Results, results...)
		}
	}
	rep.Comparisons = Compare(rep.Results)
	rep.Checks = Checks(rep.Results)
	if onChain != nil {
		rep.Checks = append(rep.Checks, onChainCheck(rep.Results, onChain()))
	}
	return rep, nil
}

// onChainCheck is the target that a paying mesh sends no on-chain message while its channels
// stay funded: messages were sent to the ledger during the run, its paid requests measured
// in results (their warm-up requests paid too, and are not counted).
func onChainCheck(results []Result, messages uint64) Check {
	paid := 0
	for _, r := range results {
		if r.Mode == Mesh || r.Mode == MeshClear {
			paid += r.Requests
		}
	}
	return Check{Name: fmt.Sprintf("on-chain messages while the paying mesh served %d requests", paid),
		Value: fmt.Sprint(messages), Target: "0: channels opened before, none topped up or closed", Pass: messages == 0}
}

// runPair measures every target at one stream mode and concurrency: n requests each, split
// into rounds that run the targets back to back, in alternating order. A target with a
// payment counter also gets what its channels counted while it was measured.
func runPair(ctx context.Context, clients map[Mode]*Client, pays map[Mode]func() payCount, cfg Config, stream bool, conc, n int) ([]Result, error) {
	rounds := max(1, min(cfg.Rounds, n))
	scs := map[Mode]Scenario{}
	got := map[Mode][]measured{}
	for _, m := range Modes() {
		if clients[m] == nil {
			continue
		}
		sc := Scenario{Mode: m, Stream: stream, Concurrency: conc, Requests: n}
		if cfg.Warmup > 0 {
			sc.Warmup = min(n, max(cfg.Warmup, 2*conc))
		}
		scs[m] = sc
	}
	for round := range rounds {
		// Spread n over the rounds: the first n%rounds rounds take one more.
		size := n / rounds
		if round < n%rounds {
			size++
		}
		// Odd rounds run the targets in reverse, so none always follows the same one (and
		// inherits its garbage to collect, or its warm caches).
		order := Modes()
		if round%2 == 1 {
			slices.Reverse(order)
		}
		for _, m := range order {
			sc, ok := scs[m]
			if !ok {
				continue
			}
			if round == 0 {
				if err := warm(ctx, clients[m], sc); err != nil {
					return nil, err
				}
			}
			var before payCount
			if count := pays[m]; count != nil {
				before = count()
			}
			meas, err := measure(ctx, clients[m], stream, conc, size)
			if err == nil {
				err = ctx.Err() // stopped mid-way: its failed requests measure nothing
			}
			if err != nil {
				return nil, err
			}
			if count := pays[m]; count != nil {
				after := count()
				meas.pay = payCount{after.vouchers - min(after.vouchers, before.vouchers), after.waits - min(after.waits, before.waits)}
			}
			got[m] = append(got[m], meas)
		}
	}
	var out []Result
	for _, m := range Modes() {
		if sc, ok := scs[m]; ok {
			r := result(sc, got[m])
			out = append(out, r)
			if cfg.Progress != nil {
				cfg.Progress(r)
			}
		}
	}
	return out, nil
}
