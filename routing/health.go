package routing

import "time"

// health is what a worker's outcomes say about it beyond its latency: how many of its latest
// requests failed in a row, and whether it is ejected from routing for a while.
type health struct {
	streak     int       // failures since the latest success
	ejections  int       // ejections since the latest success: each doubles the next back-off
	ejectedTil time.Time // no picks before this (zero: not ejected)
}

// ejected reports whether the worker sits out picks at now.
func (h *health) ejected(now time.Time) bool { return now.Before(h.ejectedTil) }

// succeeded clears the failure history: a worker that serves is trusted again at once.
func (h *health) succeeded() { h.streak, h.ejections = 0, 0 }

// failed counts one failure and ejects the worker once cfg.EjectAfter failures came in a row,
// for cfg.EjectFor doubled on every ejection since its latest success, at most cfg.EjectMax.
// It returns the length of the ejection it started (0: none). A worker back from an ejection
// is on probation: its next failure ejects it again, for twice as long.
func (h *health) failed(now time.Time, cfg Config) time.Duration {
	h.streak++
	if h.streak < cfg.EjectAfter || h.ejected(now) {
		return 0
	}
	d := cfg.EjectMax
	if h.ejections < 30 {
		d = min(cfg.EjectFor<<h.ejections, cfg.EjectMax)
	}
	h.ejections++
	h.ejectedTil = now.Add(d)
	h.streak = cfg.EjectAfter - 1
	return d
}
