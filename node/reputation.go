package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cocoon-mesh/cocoon/node/wire"
	"github.com/cocoon-mesh/cocoon/reputation"
	"github.com/cocoon-mesh/cocoon/tee"
)

// ReputationConfig is what a proxy counts of each worker (package reputation) and how routing
// weighs it.
type ReputationConfig struct {
	// Off routes as if every worker were trusted alike (no evidence recorded, none weighed).
	Off bool
	// MinTrust is the score below which a worker gets no requests (routing.Config.MinTrust;
	// default 0.1).
	MinTrust float64
	// PerPlatform caps the worker identities admitted from one physical platform (the PPID in
	// a TDX quote's PCK certificate; the simulated TEE's marked ID); default 8.
	PerPlatform int
	// ProbationAnswers is how many paid answers a new worker serves here before it is off
	// probation: until then it takes one request at a time while established workers can take
	// the rest (routing.Request.Probation); default 20.
	ProbationAnswers int
	// Pin and Ban are the operator's lists: a pinned worker scores 1, a banned one 0 and is
	// never routed to, whatever the evidence.
	Pin, Ban []peer.ID
}

// fill sets the defaults of fields left zero.
func (r *ReputationConfig) fill(d ReputationConfig) {
	fill(&r.MinTrust, d.MinTrust)
	fill(&r.PerPlatform, d.PerPlatform)
	fill(&r.ProbationAnswers, d.ProbationAnswers)
}

// validate checks a filled ReputationConfig.
func (r *ReputationConfig) validate() error {
	if !(r.MinTrust > 0 && r.MinTrust < 1) { // !(...) also refuses NaN
		return &ConfigError{"reputation.min_trust", r.MinTrust, "want a score between 0 and 1, exclusive (default 0.1)"}
	}
	if r.ProbationAnswers < 1 {
		return &ConfigError{"reputation.probation_answers", r.ProbationAnswers, "want at least 1 paid answer before a new worker is off probation (default 20)"}
	}
	if r.PerPlatform < 1 {
		return &ConfigError{"reputation.per_platform", r.PerPlatform, "want at least 1 identity per machine (default 8)"}
	}
	for _, p := range r.Pin {
		for _, q := range r.Ban {
			if p == q {
				return &ConfigError{"reputation.pin", p.String(), "the peer is also in reputation.ban: keep it in one list"}
			}
		}
	}
	return nil
}

// newBook is the reputation book a node keeps of its workers.
func newBook(c ReputationConfig) *reputation.Book {
	return reputation.New(reputation.Config{Pin: c.Pin, Ban: c.Ban, PerPlatform: c.PerPlatform})
}

// bind ties worker p to the physical platform its attestation names, before it is admitted
// (a worker without one, unattested or from a node that does not report it, is not capped),
// and reports whether it may be; a refusal is logged, once per worker and reason.
func (ro *roster) bind(p peer.ID, c *tee.Claims) bool {
	if ro.cfg.Reputation.Off || c == nil || c.Platform == "" {
		return true
	}
	ro.mu.Lock()
	err := ro.rep.Bind(ro.now(), p, c.Platform)
	ro.mu.Unlock()
	if err != nil {
		ro.refusePlatform(p, c.Platform, err)
	}
	return err == nil
}

// refusePlatform says, once per worker and reason, why its platform keeps it out.
func (ro *roster) refusePlatform(p peer.ID, platform string, err error) {
	reason, fix := "its machine "+platform+" holds reputation.per_platform identities already",
		"stop another identity on that machine, or raise reputation.per_platform on this proxy"
	if errors.Is(err, reputation.ErrPlatformBanned) {
		reason, fix = "its machine "+platform+" is banned: "+err.Error(), "none: the ban ends by itself; unban by reputation.pin if it was wrong"
	}
	if ro.refused.note(ro.now(), p, reason, fix) {
		ro.log.Warn("worker refused", "worker", p.String(), "reason", reason, "fix", fix)
	}
}

// trust is the routing request's view of the book at now (nil when reputation is off); call
// it, and what it returns, under ro.mu.
func (ro *roster) trust(now time.Time) func(peer.ID) float64 {
	if ro.cfg.Reputation.Off {
		return nil
	}
	return func(p peer.ID) float64 { return ro.rep.Score(now, p) }
}

// probation is the routing request's view of which workers are still on probation (nil when
// reputation is off); call it, and what it returns, under ro.mu. A pinned worker never is.
func (ro *roster) probation() func(peer.ID) bool {
	if ro.cfg.Reputation.Off {
		return nil
	}
	n := uint64(ro.cfg.Reputation.ProbationAnswers)
	return func(p peer.ID) bool {
		return ro.rep.Count(p, reputation.Served) < n && !slices.Contains(ro.cfg.Reputation.Pin, p)
	}
}

// note records ev about w now, taking ro.mu (record, for a caller that does not hold it).
func (ro *roster) note(w peer.ID, ev reputation.Event, err error) {
	ro.mu.Lock()
	defer ro.mu.Unlock()
	ro.record(ro.now(), w, ev, err)
}

// record notes what an attempt's outcome says of worker w, under ro.mu, and says so in the
// log when the worker's score falls below the routing floor.
func (ro *roster) record(now time.Time, w peer.ID, ev reputation.Event, err error) {
	if ro.cfg.Reputation.Off {
		return
	}
	before := ro.rep.Score(now, w)
	ro.rep.Record(now, w, ev)
	after := ro.rep.Score(now, w)
	if floor := ro.cfg.Reputation.MinTrust; before >= floor && after < floor {
		if ev.Hearsay == 0 && ev.Kind != reputation.AuditFailed && ro.complain != nil {
			ro.complain(w, ev.Kind) // what we saw ourselves; an audit publishes its proof itself
		}
		what := "worker"
		if ro.cfg.Role == RoleClient {
			what = "proxy"
		}
		ro.log.Warn(what+" excluded by reputation: no requests until its score recovers", what, w.String(),
			"score", fmt.Sprintf("%.3f", after), "floor", floor, "evidence", ev.Kind.String(), "err", err)
	}
}

// evidence is what an attempt's outcome says of its worker; ok is false when it says nothing
// (the client left, we had no channel for it, or the failure was ours).
func (rl *relay) evidence(err error, claimed capacityClaim) (ev reputation.Event, ok bool) {
	switch {
	case err == nil:
		var paid uint64
		if rl.meter != nil {
			paid = rl.meter.tab.Charged()
		}
		return reputation.Event{Kind: reputation.Served, Paid: paid}, true
	case errors.Is(err, context.Canceled) || errors.Is(err, errUnearnedCap):
		return ev, false
	case rl.pa != nil && rl.pa.err != nil && !rl.pa.unreached && !rl.pa.distrusted && !errors.Is(rl.pa.err, tee.ErrNotAttested):
		return reputation.Event{Kind: reputation.AttestFailed}, true
	case !workerFault(err):
		return ev, false
	}
	if rl.c != nil {
		if first, stalled := rl.c.Silent(); first {
			return reputation.Event{Kind: reputation.TimedOut}, true
		} else if stalled {
			return reputation.Event{Kind: reputation.Stalled}, true
		}
	}
	switch {
	case rl.started:
		return reputation.Event{Kind: reputation.FailedMidStream}, true
	case asWireError(err).Code == wire.CodeNoCapacity && claimed.free():
		return reputation.Event{Kind: reputation.CapacityLie}, true
	case asWireError(err).Code == wire.CodeNoCapacity:
		return reputation.Event{Kind: reputation.Refused}, true
	}
	return reputation.Event{Kind: reputation.FailedEarly}, true
}

// capacityClaim is what a worker's latest advert said of its capacity.
type capacityClaim struct{ max, running uint32 }

// free reports whether the advert left at least half the worker's capacity free: a worker that
// said so and answers busy lied, since other proxies' requests fill a worker only so fast (one
// near its limit that fills up between adverts did not).
func (c capacityClaim) free() bool { return c.max > 0 && c.running <= c.max/2 }

// ReputationStatus is what a proxy's book holds of one peer, for operators.
type ReputationStatus struct {
	Peer  string  `json:"peer"`
	Score float64 `json:"score"` // what routing weighs, in [0, 1]; below reputation.min_trust: no requests
	Good  float64 `json:"good"`  // paid answers (and passed audits), faded
	Bad   float64 `json:"bad"`   // faults weighed by kind, faded
	// Evidence counts every event ever recorded, by kind.
	Evidence    map[string]uint64 `json:"evidence"`
	BannedUntil *time.Time        `json:"banned_until,omitempty"` // banned by a failed audit, or its platform's
	Pinned      bool              `json:"pinned,omitempty"`       // in reputation.pin
	Banned      bool              `json:"banned,omitempty"`       // in reputation.ban
	Platform    string            `json:"platform,omitempty"`
}

// maxStatusReputation bounds the peers Status lists, the lowest scores first.
const maxStatusReputation = 512

// reputationStatus lists the book at now, lowest scores first, at most maxStatusReputation;
// call it under ro.mu.
func (ro *roster) reputationStatus(now time.Time) []ReputationStatus {
	all := ro.rep.Standings(now)
	out := make([]ReputationStatus, 0, min(len(all), maxStatusReputation))
	for i := len(all) - 1; i >= 0 && len(out) < maxStatusReputation; i-- {
		s := all[i]
		rs := ReputationStatus{Peer: s.Peer.String(), Score: s.Score, Good: s.Good, Bad: s.Bad, Evidence: map[string]uint64{},
			Pinned: s.Pinned, Banned: s.Blocked, Platform: s.Platform}
		for k, n := range s.Counts {
			rs.Evidence[k.String()] = n
		}
		if s.Banned.After(now) {
			t := s.Banned
			rs.BannedUntil = &t
		}
		out = append(out, rs)
	}
	return out
}
