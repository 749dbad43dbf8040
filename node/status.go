package node

import (
	"fmt"
	"time"

	"github.com/cocoon-mesh/cocoon/routing"
)

// The status an operator reads (the admin endpoint's JSON, `cocoon-node status`): keys in
// snake_case, durations in milliseconds named _ms, lists always present (empty, not absent).

// Status is a snapshot for operators (the status endpoint and logs).
type Status struct {
	Role    Role           `json:"role"`
	Peer    string         `json:"peer"`
	Network string         `json:"network"`
	Addrs   []string       `json:"addrs"`
	Peers   int            `json:"connected_peers"`
	Proxies []string       `json:"proxies"` // a client's or worker's connected proxies
	Workers []WorkerStatus `json:"workers"` // a proxy's worker table
	// Reputation is a proxy's book of workers, or a client's of proxies, lowest scores first
	// (at most 512).
	Reputation []ReputationStatus `json:"reputation,omitempty"`
	// Audits counts a proxy's canaries and what they found (nil: it audits none).
	Audits *AuditStatus `json:"audits,omitempty"`
	// Reports counts the reputation reports this node published and judged.
	Reports *RumorStatus `json:"reports,omitempty"`
	Active  int          `json:"active_requests,omitempty"`
	Healthy *bool        `json:"backend_healthy,omitempty"`
	// BackendError is why a worker's backend failed its last health check.
	BackendError string `json:"backend_error,omitempty"`
	// TEE is this node's own attestation; Attestations what each peer's handshake established.
	// Attestations lists at most maxStatusAttestations of them (trusted ones first);
	// AttestationCounts counts all the node holds, by outcome.
	TEE          string            `json:"tee"`
	Attestations map[string]string `json:"attestations,omitempty"`
	// Refused are the peers this node refuses work with, why, and what changes it.
	Refused []RefusedPeer `json:"refused"`
	// Recent is the last quarter hour of finished requests, in 10 s steps (the status page's plots).
	Recent            []StatPoint    `json:"recent"`
	AttestationCounts map[string]int `json:"attestation_counts,omitempty"`
	// Wallet is the node's TON wallet and Channels its payment channels, when payments are on;
	// Locked is what its channels lock as a payer, and how much of it for payees that have
	// earned nothing yet (capped by payments.unearned_cap).
	Wallet   string          `json:"wallet,omitempty"`
	Channels []ChannelStatus `json:"channels"`
	Locked   *Locked         `json:"locked,omitempty"`
}

// WorkerStatus is one worker of a proxy's table.
type WorkerStatus struct {
	Peer         string        `json:"peer"`
	Offers       []OfferStatus `json:"offers"` // one per model, by model
	MaxActive    int           `json:"max_active"`
	Running      int           `json:"running"`
	Healthy      bool          `json:"healthy"`
	AvgLatencyMs float64       `json:"avg_latency_ms"` // the decayed average routing ranks by
	LastSeen     time.Time     `json:"last_seen"`      // its latest advert
	Failures     int           `json:"failures"`       // decayed failure count
	Streak       int           `json:"failure_streak"` // failures since its latest success
	EjectedUntil *time.Time    `json:"ejected_until"`  // out of routing until then; null when not ejected
	Picks        uint64        `json:"picks"`          // requests routed to it
	Score        float64       `json:"score"`          // its reputation, as routing weighs it
}

// OfferStatus is a model a worker offers, at what prices.
type OfferStatus struct {
	Model       string       `json:"model"`
	Prices      PricesStatus `json:"prices"`        // nanoTON per token, by category, before the coefficient
	Coefficient uint32       `json:"coefficient"`   // per mille
	Price       uint64       `json:"price_nanoton"` // per completion token, coefficient applied: what routing ranks by
}

// PricesStatus are a worker's list prices, nanoTON per token of each category.
type PricesStatus struct {
	Prompt     uint64 `json:"prompt"`
	Cached     uint64 `json:"cached"`
	Completion uint64 `json:"completion"`
	Reasoning  uint64 `json:"reasoning"`
}

// workerStatus is w as Status shows it at now.
func workerStatus(w routing.WorkerStatus, now time.Time) WorkerStatus {
	ws := WorkerStatus{Peer: w.ID.String(), Offers: make([]OfferStatus, 0, len(w.Offers)), MaxActive: w.MaxActive, Running: w.Running,
		Healthy: w.Healthy, AvgLatencyMs: float64(w.AvgLatency) / float64(time.Millisecond), LastSeen: w.LastSeen,
		Failures: w.Failures, Streak: w.Streak, Picks: w.Picks}
	if w.Ejected.After(now) {
		t := w.Ejected
		ws.EjectedUntil = &t
	}
	for _, o := range w.Offers {
		p := o.Prices
		ws.Offers = append(ws.Offers, OfferStatus{Model: o.Model, Coefficient: o.Coefficient, Price: o.Price,
			Prices: PricesStatus{Prompt: p.Prompt, Cached: p.Cached, Completion: p.Completion, Reasoning: p.Reasoning}})
	}
	return ws
}

// Status reports what the node sees now.
func (n *Node) Status() Status {
	st := Status{Role: n.cfg.Role, Peer: n.h.ID().String(), Network: n.cfg.Network, Peers: len(n.h.Network().Peers()),
		Addrs: []string{}, Proxies: []string{}, Workers: []WorkerStatus{}, Channels: []ChannelStatus{}}
	for _, a := range n.h.Addrs() {
		st.Addrs = append(st.Addrs, fmt.Sprintf("%s/p2p/%s", a, n.h.ID()))
	}
	st.TEE = "none"
	if n.attest.provider != nil {
		st.TEE = n.attest.provider.Kind().String()
	}
	st.Attestations, st.AttestationCounts = n.attest.summary()
	if st.Attestations == nil {
		st.Attestations, st.AttestationCounts = map[string]string{}, map[string]int{}
	}
	st.Refused = n.refused.list()
	st.Recent = []StatPoint{}
	if n.metrics != nil { // nil in unit tests that build a bare Node
		st.Recent = n.metrics.recent.points(n.now())
	}
	if n.keeper != nil {
		for _, p := range n.keeper.Proxies() {
			st.Proxies = append(st.Proxies, p.String())
		}
	}
	st.Reports = n.rumors.status()
	if n.cfg.Role == RoleProxy {
		n.workers.mu.Lock()
		now := n.now()
		for _, w := range n.workers.table.Workers() {
			ws := workerStatus(w, now)
			ws.Score = n.workers.rep.Score(now, w.ID)
			st.Workers = append(st.Workers, ws)
		}
		st.Audits = n.audits.status()
		n.workers.mu.Unlock()
	}
	if n.workers != nil && n.cfg.Role != RoleWorker && !n.cfg.Reputation.Off { // a proxy's book of workers, a client's of proxies
		n.workers.mu.Lock()
		st.Reputation = n.workers.reputationStatus(n.now())
		n.workers.mu.Unlock()
	}
	if n.payments != nil {
		st.Wallet = n.payments.wallet.String()
		st.Channels = n.Channels()
		_, l := lockedBy(st.Channels)
		st.Locked = &l
	}
	if n.worker != nil {
		st.Active = int(n.worker.active.Load())
		h := n.worker.healthy.Load()
		st.Healthy = &h
		if e := n.worker.backendErr.Load(); e != nil {
			st.BackendError = *e
		}
	}
	return st
}
