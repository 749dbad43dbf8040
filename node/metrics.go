package node

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cocoon-mesh/cocoon/node/wire"
)

// metrics are a node's Prometheus collectors, on a registry of the node's own: a process may
// run many nodes (a simulation, localnet), so nothing is registered globally. Counters and
// histograms are updated as requests end (finished); gauges of the node's state (channels,
// workers, attestations) are read from Status when scraped (stateCollector).
type metrics struct {
	reg *prometheus.Registry
	log *slog.Logger
	// requestLog writes one info line per finished request (clients and proxies, unless
	// Config.NoRequestLog).
	requestLog bool

	requests *prometheus.CounterVec   // role, model, outcome
	duration *prometheus.HistogramVec // role, seconds
	ttft     *prometheus.HistogramVec // role, seconds
	rate     *prometheus.HistogramVec // role, completion tokens per second
	tokens   *prometheus.CounterVec   // role, category
	nanoton  *prometheus.CounterVec   // role: what the node's answers cost its caller
	adverts  *prometheus.CounterVec   // result: accept, reject, ignore
	recent   timeline                 // the last quarter hour, for the status page
}

func newMetrics(n *Node) *metrics {
	m := &metrics{reg: prometheus.NewRegistry(), log: n.log, requestLog: !n.cfg.NoRequestLog && n.cfg.Role != RoleWorker}
	seconds := prometheus.ExponentialBuckets(0.005, 2, 14) // 5 ms to 41 s
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cocoon_requests_total",
		Help: "Inference requests finished, by this node's role, model and outcome (ok, or the error code)."}, []string{"role", "model", "outcome"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "cocoon_request_duration_seconds",
		Help: "Time from a request's arrival to its answer's end.", Buckets: seconds}, []string{"role"})
	m.ttft = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "cocoon_time_to_first_token_seconds",
		Help: "Time from a request's arrival to its answer's first chunk.", Buckets: seconds}, []string{"role"})
	m.rate = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "cocoon_completion_tokens_per_second",
		Help: "Completion tokens of an answer over its time after the first chunk.", Buckets: prometheus.ExponentialBuckets(1, 2, 14)}, []string{"role"})
	m.tokens = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cocoon_tokens_total",
		Help: "Tokens of the answers served, by category (prompt, cached, completion, reasoning)."}, []string{"role", "category"})
	m.nanoton = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cocoon_answer_cost_nanoton_total",
		Help: "What the answers served cost their callers, nanoTON (a client: what it paid its proxies; a proxy: what its clients paid it)."}, []string{"role"})
	m.adverts = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cocoon_gossip_adverts_total",
		Help: "Capacity adverts the gossip validator judged: accept, reject (invalid, the sender penalised), ignore (stale, or over the admission rate)."}, []string{"result"})
	m.reg.MustRegister(m.requests, m.duration, m.ttft, m.rate, m.tokens, m.nanoton, m.adverts, stateCollector{n})
	return m
}

// requestRecord is one finished request, as the request log and the metrics see it.
type requestRecord struct {
	role            Role
	at              time.Time // when it ended
	id, model, peer string    // peer: the proxy a client used, or the client a proxy served
	usage           wire.Usage
	cost            uint64 // nanoTON, when paid
	duration, ttft  time.Duration
	outcome         string // "ok", or the error's code
	err             error
	answered        bool // the answer began (ttft is set)
}

// outcomeOf names how a request ended, for the metrics' outcome label.
func outcomeOf(err error) string {
	if err == nil {
		return "ok"
	}
	return asWireError(err).Code.String()
}

// finished counts r in the metrics and, when the request log is on, logs it.
func (m *metrics) finished(r requestRecord) {
	role := string(r.role)
	m.requests.WithLabelValues(role, r.model, r.outcome).Inc()
	m.recent.add(r.at, r.duration, r.usage.Completion)
	m.duration.WithLabelValues(role).Observe(r.duration.Seconds())
	if r.answered {
		m.ttft.WithLabelValues(role).Observe(r.ttft.Seconds())
		if after := r.duration - r.ttft; after > 0 && r.usage.Completion > 1 {
			m.rate.WithLabelValues(role).Observe(float64(r.usage.Completion-1) / after.Seconds())
		}
	}
	for _, c := range [...]struct {
		cat string
		v   uint32
	}{{"prompt", r.usage.Prompt}, {"cached", r.usage.Cached}, {"completion", r.usage.Completion}, {"reasoning", r.usage.Reasoning}} {
		if c.v > 0 {
			m.tokens.WithLabelValues(role, c.cat).Add(float64(c.v))
		}
	}
	if r.cost > 0 {
		m.nanoton.WithLabelValues(role).Add(float64(r.cost))
	}
	if !m.requestLog || !m.log.Enabled(context.Background(), slog.LevelInfo) {
		return // at warn (bench's default), no line: build none
	}
	via := "proxy" // the peer the request came through, or from
	if r.role == RoleProxy {
		via = "client"
	}
	attrs := []any{"request", r.id, "model", r.model, via, r.peer, "outcome", r.outcome,
		"prompt_tokens", r.usage.Prompt, "completion_tokens", r.usage.Completion, "cost_nanoton", r.cost,
		"duration_ms", r.duration.Milliseconds(), "ttft_ms", r.ttft.Milliseconds()}
	if r.err != nil {
		attrs = append(attrs, "err", r.err.Error())
	}
	m.log.Info("request", attrs...)
}

// stateCollector reads the node's state as gauges when scraped: its channels, its workers
// (a proxy's table: known, eligible to route to, refused) and its peers' attestations.
type stateCollector struct{ n *Node }

var (
	descChannels = prometheus.NewDesc("cocoon_channels", "Payment channels, by role (payer: this node pays) and state.", []string{"role", "state"}, nil)
	descDeposit  = prometheus.NewDesc("cocoon_channel_deposit_nanoton", "What the open channels lock, by role.", []string{"role"}, nil)
	descPaid     = prometheus.NewDesc("cocoon_channel_paid_nanoton", "What the open channels paid so far (newest durable voucher), by role.", []string{"role"}, nil)
	descOwed     = prometheus.NewDesc("cocoon_channel_owed_nanoton", "What the open channels owe now (delivered, not paid yet), by role.", []string{"role"}, nil)
	descWorkers  = prometheus.NewDesc("cocoon_workers", "Workers this node knows of: known (in the table), eligible (healthy, not ejected), refused.", []string{"state"}, nil)
	descAttest   = prometheus.NewDesc("cocoon_attestations", "Peers' attestation handshakes held, by outcome.", []string{"outcome"}, nil)
	descScores   = prometheus.NewDesc("cocoon_worker_reputation", "A proxy's workers by reputation: banned (by evidence or the operator), below the routing floor, trusted.", []string{"standing"}, nil)
	descAudits   = prometheus.NewDesc("cocoon_audits_total", "A proxy's canaries, by result (passed, failed, error), and the completion tokens canaries and client answers took.", []string{"result"}, nil)
	descReports  = prometheus.NewDesc("cocoon_reputation_reports_total", "Reputation reports: published here, and of those received accepted, rejected, ignored, applied.", []string{"result"}, nil)
	descRefusals = prometheus.NewDesc("cocoon_resource_refusals_total", "Connections and streams the host's resource manager refused, by kind and direction.", []string{"kind"}, nil)
)

// reputation reports the book, the audits and the reports of st.
func (c stateCollector) reputation(ch chan<- prometheus.Metric, st Status) {
	if st.Role == RoleProxy {
		standing := map[string]int{"banned": 0, "below_floor": 0, "trusted": 0}
		for _, r := range st.Reputation {
			switch {
			case r.Score == 0:
				standing["banned"]++
			case r.Score < c.n.cfg.Reputation.MinTrust:
				standing["below_floor"]++
			default:
				standing["trusted"]++
			}
		}
		for k, v := range standing {
			ch <- prometheus.MustNewConstMetric(descScores, prometheus.GaugeValue, float64(v), k)
		}
	}
	if a := st.Audits; a != nil {
		for k, v := range map[string]uint64{"passed": uint64(a.Passed), "failed": uint64(a.Failed), "error": uint64(a.Errors),
			"canary_tokens": a.CanaryTokens, "served_tokens": a.ServedTokens} {
			ch <- prometheus.MustNewConstMetric(descAudits, prometheus.CounterValue, float64(v), k)
		}
	}
	if r := st.Reports; r != nil {
		for k, v := range map[string]int{"published": r.Published, "accepted": r.Accepted, "rejected": r.Rejected, "ignored": r.Ignored, "applied": r.Applied} {
			ch <- prometheus.MustNewConstMetric(descReports, prometheus.CounterValue, float64(v), k)
		}
	}
}

// refusalCounter is a resource manager that counts its refusals (p2phost's does).
type refusalCounter interface{ Refusals() map[string]uint64 }

func (stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descChannels, descDeposit, descPaid, descOwed, descWorkers, descAttest, descRefusals, descScores, descAudits, descReports} {
		ch <- d
	}
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.n.Status()
	type key struct{ role, state string }
	count := map[key]int{}
	sums := map[string][3]uint64{}
	for _, cs := range st.Channels {
		count[key{cs.Role, cs.State}]++
		if cs.State == "open" {
			s := sums[cs.Role]
			sums[cs.Role] = [3]uint64{s[0] + cs.Deposit, s[1] + cs.Paid, s[2] + cs.Owed}
		}
	}
	for k, v := range count {
		ch <- prometheus.MustNewConstMetric(descChannels, prometheus.GaugeValue, float64(v), k.role, k.state)
	}
	for role, s := range sums {
		ch <- prometheus.MustNewConstMetric(descDeposit, prometheus.GaugeValue, float64(s[0]), role)
		ch <- prometheus.MustNewConstMetric(descPaid, prometheus.GaugeValue, float64(s[1]), role)
		ch <- prometheus.MustNewConstMetric(descOwed, prometheus.GaugeValue, float64(s[2]), role)
	}
	eligible := 0
	for _, w := range st.Workers {
		if w.Healthy && w.EjectedUntil == nil {
			eligible++
		}
	}
	ch <- prometheus.MustNewConstMetric(descWorkers, prometheus.GaugeValue, float64(len(st.Workers)), "known")
	ch <- prometheus.MustNewConstMetric(descWorkers, prometheus.GaugeValue, float64(eligible), "eligible")
	ch <- prometheus.MustNewConstMetric(descWorkers, prometheus.GaugeValue, float64(len(st.Refused)), "refused")
	c.reputation(ch, st)
	for outcome, v := range st.AttestationCounts {
		ch <- prometheus.MustNewConstMetric(descAttest, prometheus.GaugeValue, float64(v), outcome)
	}
	if rc, ok := c.n.h.Network().ResourceManager().(refusalCounter); ok {
		for kind, v := range rc.Refusals() {
			ch <- prometheus.MustNewConstMetric(descRefusals, prometheus.CounterValue, float64(v), kind)
		}
	}
}

// Metrics is the node's Prometheus registry: what GET /metrics serves (package api/admin).
func (n *Node) Metrics() prometheus.Gatherer { return n.metrics.reg }
