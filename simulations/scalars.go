package simulations

import (
	"context"
	"slices"
	"strings"

	"github.com/cocoon-mesh/cocoon/node"
	"github.com/cocoon-mesh/cocoon/simulations/report"
)

// A run's headline figures (report.Run.Scalars), averaged over seeds by report.Summarize.

// scalars computes the run's figures once its traffic is done, before its nodes stop: what
// the honest lost is read from their payment channels then.
func (s *sim) scalars(ctx context.Context) map[string]float64 {
	t := &s.tally
	t.mu.Lock()
	total := t.outcomes[served] + t.outcomes[wrong] + t.outcomes[failed]
	out := map[string]float64{"requests": float64(total)}
	if total > 0 {
		out["success_rate"] = float64(t.outcomes[served]) / float64(total)
		out["wrong_rate"] = float64(t.outcomes[wrong]) / float64(total)
		out["failure_rate"] = float64(t.outcomes[failed]) / float64(total)
	}
	answered, byAdversary := 0, 0
	for c, n := range t.byClass {
		answered += n
		if c != honest {
			byAdversary += n
		}
	}
	if answered > 0 {
		out["adversary_share"] = float64(byAdversary) / float64(answered)
	}
	out["client_paid_nanoton"] = float64(t.paidTotal)
	out["client_paid_wrong_nanoton"] = float64(t.paidWrong)
	t.mu.Unlock()
	latency := s.rec.values("latency_s", "outcome", string(served))
	ttft := s.rec.values("ttft_s", "outcome", string(served))
	for _, q := range []struct {
		name string
		p    float64
	}{{"p50", 0.5}, {"p95", 0.95}, {"p99", 0.99}} {
		if len(latency) > 0 {
			out["latency_"+q.name+"_s"] = quantile(latency, q.p)
		}
		if len(ttft) > 0 {
			out["ttft_"+q.name+"_s"] = quantile(ttft, q.p)
		}
	}
	if s.chain != nil {
		ops, fees := s.chain.snapshot()
		n := 0
		for _, v := range ops {
			n += v
		}
		out["chain_ops"], out["chain_fees_nanoton"] = float64(n), float64(fees)
		// Opening a channel is the price of a first contact; the rest is what paying costs on
		// chain while channels stay funded (top-ups by rotation, closes).
		out["chain_opens"] = float64(ops["open"])
		if total > 0 {
			out["chain_ops_after_open_per_10k_requests"] = float64(n-ops["open"]) * 10000 / float64(total)
		}
	}
	out["gossip_delivered"] = float64(s.gossip.delivered.Load())
	out["gossip_duplicates"] = float64(s.gossip.duplicate.Load())
	out["gossip_rejected"] = float64(s.gossip.rejected.Load())
	out["gossip_ignored"] = float64(s.gossip.ignored.Load())
	out["gossip_throttled"] = float64(s.gossip.throttled.Load())
	s.gossip.mu.Lock()
	for r, n := range s.gossip.reasons {
		out["gossip_rejected_"+strings.ReplaceAll(r, " ", "_")] = float64(n)
	}
	s.gossip.mu.Unlock()
	if v := s.rec.values("recovery_s"); len(v) > 0 {
		out["recovery_max_s"] = slices.Max(v)
	}
	if v := s.rec.values("proxy_discovery_s"); len(v) > 0 {
		out["proxy_discovery_max_s"] = slices.Max(v)
	}
	s.losses(ctx, out)
	return out
}

// losses adds what the honest workers and proxies delivered and were not paid for: on every
// channel they are paid on, what is owed at the end (after the drain, honest payers owe
// nothing) and what they wrote off.
func (s *sim) losses(_ context.Context, out map[string]float64) {
	if s.chain == nil {
		return
	}
	for _, role := range []node.Role{node.RoleWorker, node.RoleProxy} {
		var lost uint64
		for _, m := range s.up(role) {
			if m.class != honest {
				continue
			}
			for _, c := range m.nd.Channels() {
				if c.Role == "payee" {
					lost += c.Owed + c.WrittenOff
				}
			}
		}
		out["honest_"+string(role)+"_unpaid_nanoton"] = float64(lost)
	}
}

// values are the values of metric's samples whose labels include kv's pairs.
func (r *recorder) values(metric string, kv ...string) []float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []float64
	for _, s := range r.rows {
		if s.Metric == metric && hasLabels(s, kv) {
			out = append(out, s.Value)
		}
	}
	return out
}

func hasLabels(s report.Sample, kv []string) bool {
	for i := 0; i+1 < len(kv); i += 2 {
		if !slices.Contains(s.Labels, report.Label{Key: kv[i], Value: kv[i+1]}) {
			return false
		}
	}
	return true
}

// quantile is the p-quantile of vs (nearest rank).
func quantile(vs []float64, p float64) float64 {
	s := slices.Clone(vs)
	slices.Sort(s)
	i := int(p*float64(len(s)) + 0.5)
	return s[min(max(i-1, 0), len(s)-1)]
}
