package node

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cocoon-mesh/cocoon/audit"
	"github.com/cocoon-mesh/cocoon/reputation"
)

// Gossip of evidence, not of scores (audit.Report on the reputation topic): a proxy whose
// audit caught a worker publishes the proof; one whose worker fell below the routing floor
// publishes a complaint. Every node validates what it forwards: schema and size, the
// reporter's signature (and that the reporter published it), freshness, a rate per reporter,
// and, for a proof, the evidence record itself; a node with a reference of the model re-runs
// the canary, and refuses a proof of an answer that was right (slander). A proxy acts on a
// proof it re-checked as on its own audit; on anything it could not check (a complaint, or a
// proof without a reference here) it acts only as far as it trusts the reporter by its own
// observations (an operator's pin is full trust): a stranger's word weighs nothing.

// reputationTopic is the gossipsub topic of a network's reputation reports.
func reputationTopic(network string) string { return "/cocoon/" + network + "/reputation/1.0.0" }

// Bounds of the reputation topic.
const (
	reportMaxAge  = 10 * time.Minute // older reports are ignored (and so are replays past pubsub's seen cache)
	reportMaxSkew = time.Minute
	reportRate    = 0.1 // reports a second a reporter gets forwarded, on average (one per 10 s)
	reportBurst   = 3
	maxReporters  = 4096 // reporters' rate buckets kept; past it they start afresh
)

// rumors is a node's side of the reputation topic; mu guards it.
type rumors struct {
	n     *Node
	topic *pubsub.Topic

	mu    sync.Mutex
	seen  map[[32]byte]time.Time // reports taken in, by digest, until reportMaxAge
	rate  map[peer.ID]*tokenBucket
	stats RumorStatus
}

// RumorStatus counts the reputation reports a node judged.
type RumorStatus struct {
	Published int `json:"published"`
	Accepted  int `json:"accepted"`
	Rejected  int `json:"rejected"`
	Ignored   int `json:"ignored"`
	// Applied counts reports that moved a score here: proofs re-checked, and others weighed
	// by a trusted reporter.
	Applied int `json:"applied"`
}

// rumor is an accepted report, as the validator left it for the reader.
type rumor struct {
	report   audit.Report
	reporter peer.ID
	checked  bool // a proof this node re-ran against its reference: the worker answered wrong
}

// startRumors joins the reputation topic with its validator, and reads it.
func (n *Node) startRumors() error {
	t := reputationTopic(n.cfg.Network)
	r := &rumors{n: n, seen: map[[32]byte]time.Time{}, rate: map[peer.ID]*tokenBucket{}}
	if err := n.ps.RegisterTopicValidator(t, r.validate); err != nil {
		return fmt.Errorf("node: register report validator: %w", err)
	}
	var err error
	if r.topic, err = n.ps.Join(t); err != nil {
		return fmt.Errorf("node: join %s: %w", t, err)
	}
	n.rumors = r
	n.workers.complain = func(w peer.ID, k reputation.Kind) { r.publish(w, k, nil) }
	n.life.Loop(r.read)
	return nil
}

// validate is the reputation topic's validator.
func (r *rumors) validate(ctx context.Context, from peer.ID, m *pubsub.Message) pubsub.ValidationResult {
	res, why := r.judge(ctx, m)
	r.mu.Lock()
	switch res {
	case pubsub.ValidationAccept:
		r.stats.Accepted++
	case pubsub.ValidationReject:
		r.stats.Rejected++
	default:
		r.stats.Ignored++
	}
	r.mu.Unlock()
	if res == pubsub.ValidationReject {
		r.n.log.Warn("reputation report refused", "from", from.String(), "publisher", m.GetFrom().String(), "why", why)
	}
	return res
}

// judge is validate's verdict on one report, and why it was refused.
func (r *rumors) judge(ctx context.Context, m *pubsub.Message) (pubsub.ValidationResult, error) {
	rp, err := audit.UnmarshalReport(m.GetData())
	if err != nil {
		return pubsub.ValidationReject, err
	}
	reporter, claim, err := rp.Check()
	switch {
	case err != nil:
		return pubsub.ValidationReject, err
	case reporter != m.GetFrom():
		return pubsub.ValidationReject, fmt.Errorf("a report by %s published by %s: reporters publish their own", reporter, m.GetFrom())
	}
	if reporter == r.n.h.ID() {
		m.ValidatorData = &rumor{report: rp, reporter: reporter}
		return pubsub.ValidationAccept, nil // our own, being published
	}
	now := r.n.now()
	if rp.At.Before(now.Add(-reportMaxAge)) || rp.At.After(now.Add(reportMaxSkew)) {
		return pubsub.ValidationIgnore, nil // stale, or from a clock far ahead: no proof of malice
	}
	if !r.admit(sha256.Sum256(m.GetData()), reporter, now) {
		return pubsub.ValidationIgnore, nil // a replay, or a reporter over its rate
	}
	checked := false
	if claim != nil && r.n.audits != nil {
		v, err := audit.Compare(ctx, *claim, r.n.audits.ref, r.n.cfg.Audit.Threshold)
		switch {
		case err != nil:
			return pubsub.ValidationIgnore, nil // our reference failed: say nothing either way
		case v.Match:
			return pubsub.ValidationReject, fmt.Errorf("slander: %s reported %s's answer as wrong, and it is the model's", reporter, rp.Subject)
		}
		checked = true
	}
	m.ValidatorData = &rumor{report: rp, reporter: reporter, checked: checked}
	return pubsub.ValidationAccept, nil
}

// admit reports whether a report of this digest is new and its reporter within its rate.
func (r *rumors) admit(digest [32]byte, reporter peer.ID, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.seen[digest]; dup {
		return false
	}
	for d, at := range r.seen {
		if now.Sub(at) > reportMaxAge {
			delete(r.seen, d)
		}
	}
	b := r.rate[reporter]
	if b == nil {
		if len(r.rate) >= maxReporters {
			clear(r.rate)
		}
		b = &tokenBucket{rate: reportRate, burst: reportBurst}
		r.rate[reporter] = b
	}
	if !b.take(now) {
		return false
	}
	r.seen[digest] = now
	return true
}

// read applies accepted reports until the node closes.
func (r *rumors) read(ctx context.Context) {
	readTopic(ctx, r.topic, r.n.log, "reputation reports", func(m *pubsub.Message) {
		if ru, ok := m.ValidatorData.(*rumor); ok && m.ReceivedFrom != r.n.h.ID() {
			r.apply(ru)
		}
	})
}

// apply moves the subject's score at a proxy: fully for a proof it re-checked, by its trust in
// the reporter for anything else.
func (r *rumors) apply(ru *rumor) {
	n := r.n
	if n.cfg.Role == RoleWorker || n.cfg.Reputation.Off || ru.report.Subject == n.h.ID() {
		return
	}
	ro, now := n.workers, n.now()
	ev, weight := reputation.Event{Kind: ru.report.Kind}, 1.0
	ro.mu.Lock()
	if !ru.checked {
		weight = hearsayWeight(ro.rep.Score(now, ru.reporter))
		ev.Hearsay = weight
	}
	if weight > 0 {
		ro.record(now, ru.report.Subject, ev, fmt.Errorf("reported by %s", ru.reporter))
	}
	ro.mu.Unlock()
	if weight == 0 {
		return
	}
	r.mu.Lock()
	r.stats.Applied++
	r.mu.Unlock()
	n.log.Info("reputation report applied", "worker", ru.report.Subject.String(), "evidence", ru.report.Kind.String(),
		"reporter", ru.reporter.String(), "rechecked", ru.checked, "weight", fmt.Sprintf("%.2f", weight))
}

// hearsayWeight is how far a node trusts a reporter's word it cannot check, from its own
// score of the reporter: nothing for a stranger (one half) or worse, fully for a pinned one.
func hearsayWeight(score float64) float64 { return max(0, 2*score-1) }

// publish gossips a report of ours about subject, in the background (never under the
// roster's lock, which gossipsub's scoring takes): a proof (rec, for an audit failure) or a
// complaint.
func (r *rumors) publish(subject peer.ID, kind reputation.Kind, rec *audit.Record) {
	if r == nil {
		return
	}
	r.n.life.Go(func() { r.send(subject, kind, rec) })
}

func (r *rumors) send(subject peer.ID, kind reputation.Kind, rec *audit.Record) {
	rp := audit.Report{Subject: subject, Kind: kind, At: r.n.now()}
	if rec != nil {
		rp.Record = rec.Marshal()
	}
	if err := rp.Sign(r.n.attest.priv); err != nil {
		return
	}
	data := rp.Marshal()
	if len(data) > audit.MaxReport {
		r.n.log.Info("evidence too large to gossip: kept here only", "worker", subject.String(), "bytes", len(data))
		return
	}
	if err := r.topic.Publish(r.n.ctx, data); err != nil {
		r.n.log.Info("could not gossip a reputation report", "worker", subject.String(), "err", err)
		return
	}
	r.mu.Lock()
	r.stats.Published++
	r.mu.Unlock()
}

// status is a copy of the counts (nil before the topic is joined).
func (r *rumors) status() *RumorStatus {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.stats
	return &s
}
