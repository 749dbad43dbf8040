package simulations

import (
	"cmp"
	"fmt"
	"slices"
	"testing"

	"github.com/cocoon-mesh/cocoon/simulations/report"
)

// small is a network of one proxy, six workers and two clients whose GPUs run two requests
// at once, under enough load to fill them; adversary is added as the scenario's last table.
func small(rate int, adversary string) string {
	return `
name = "adversary"
seed = 3
duration = "100s"
warmup = "20s"
[nodes]
proxies = 1
workers = 6
clients = 2
[gpu]
capacity = 2
decode_tps = 40
[traffic]
rate_per_sec = ` + fmt.Sprint(rate) + `
stream_share = 0.5
answer_tokens = { min = 8, max = 32 }
` + adversary
}

// Every adversary behaviour shows in what the run measured: each is the real node code
// misbehaving, and the network's honest part reacts to it as it would to a real one.
func TestAdversariesShowUp(t *testing.T) {
	for _, c := range []struct {
		behaviour, extra string
		rate             int // requests a second (default 3)
		check            func(t *testing.T, r report.Run)
	}{
		{"garbage", "", 0, func(t *testing.T, r report.Run) {
			failedAttempts(t, r, "garbage")
			atLeast(t, r, "success_rate", 0.99) // the client refuses garbage, and the proxy fails over
			servedBy(t, r, "garbage", 0)
		}},
		{"wrong", "", 0, func(t *testing.T, r report.Run) {
			// The proxy audits 2% of its answers: over 220 requests its few canaries have not
			// caught every wrong worker yet (RESULTS.md measures what they do over longer runs).
			atLeast(t, r, "wrong_rate", 0.05)
			if n := count(r, "latency_s", "outcome", "wrong", "class", "wrong"); n == 0 {
				t.Error("no wrong answer came from a wrong worker")
			}
		}},
		{"stall", "after = 2", 0, func(t *testing.T, r report.Run) { failedAttempts(t, r, "stall") }},
		{"hang", "", 0, func(t *testing.T, r report.Run) { failedAttempts(t, r, "hang") }},
		{"capacity_liar", "factor = 8", 20, func(t *testing.T, r report.Run) { failedAttempts(t, r, "capacity_liar") }},
		{"slow", "factor = 4", 0, func(t *testing.T, r report.Run) {
			slow, fair := median(r, "latency_s", "outcome", "ok", "class", "slow"), median(r, "latency_s", "outcome", "ok", "class", "honest")
			if slow <= 2*fair {
				t.Errorf("slow workers' median latency %.2fs, honest %.2fs: want it well above", slow, fair)
			}
		}},
		{"price_raise", "factor = 3", 0, func(t *testing.T, r report.Run) {
			failedAttempts(t, r, "price_raise") // the proxy refuses a quote above the advert
			servedBy(t, r, "price_raise", 0)
		}},
		{"withhold_payment", "", 0, func(t *testing.T, r report.Run) { atLeast(t, r, "honest_proxy_unpaid_nanoton", 1) }},
		{"sybil", "at = \"40s\"\nas = \"wrong\"", 0, func(t *testing.T, r report.Run) {
			if count(r, "latency_s", "class", "sybil") == 0 {
				t.Error("the sybils answered nothing")
			}
		}},
		{"gossip_spam", "spam = 5", 0, func(t *testing.T, r report.Run) { atLeast(t, r, "gossip_rejected", 1) }},
	} {
		t.Run(c.behaviour, func(t *testing.T) {
			fraction := 0.34
			if c.behaviour == "withhold_payment" {
				fraction = 0.5
			}
			rate := cmp.Or(c.rate, 3)
			sc, err := Parse([]byte(small(rate, fmt.Sprintf("[[adversaries]]\nbehaviour = %q\nfraction = %v\n%s\n", c.behaviour, fraction, c.extra))))
			if err != nil {
				t.Fatal(err)
			}
			r := runOnce(t, sc, sc.Seed)
			if r.Scalars["requests"] < 100 {
				t.Fatalf("only %v requests ended", r.Scalars["requests"])
			}
			c.check(t, r)
			if t.Failed() {
				t.Logf("figures: %v", r.Scalars)
			}
		})
	}
}

// count is the number of r's samples of metric whose labels include kv's pairs.
func count(r report.Run, metric string, kv ...string) int {
	return len(values(r, metric, kv...))
}

func values(r report.Run, metric string, kv ...string) []float64 {
	var out []float64
	for _, s := range r.Samples {
		if s.Metric == metric && hasLabels(s, kv) {
			out = append(out, s.Value)
		}
	}
	return out
}

func median(r report.Run, metric string, kv ...string) float64 {
	v := values(r, metric, kv...)
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	return v[len(v)/2]
}

func failedAttempts(t *testing.T, r report.Run, class string) {
	t.Helper()
	if count(r, "attempt_s", "class", class, "outcome", "failed") == 0 {
		t.Errorf("no attempt on a %s worker failed", class)
	}
}

func servedBy(t *testing.T, r report.Run, class string, want int) {
	t.Helper()
	if n := count(r, "latency_s", "outcome", "ok", "class", class); n != want {
		t.Errorf("%d requests served by %s workers, want %d", n, class, want)
	}
}

func atLeast(t *testing.T, r report.Run, figure string, min float64) {
	t.Helper()
	if r.Scalars[figure] < min {
		t.Errorf("%s = %v, want at least %v", figure, r.Scalars[figure], min)
	}
}
