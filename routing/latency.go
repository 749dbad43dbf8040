package routing

import (
	"math"
	"time"
)

// decay is the fraction of its weight that evidence of age dt keeps: a half
// per half-life. Evidence from the "future" (dt <= 0, i.e. the caller's
// times went backwards) keeps all of it rather than gaining weight.
func decay(dt, halfLife time.Duration) float64 {
	if dt <= 0 {
		return 1
	}
	return math.Exp2(-float64(dt) / float64(halfLife))
}

// historyFloor is the least weight, in samples, that a non-empty latency
// history keeps however old it is. Without it the first sample after a long
// idle spell would wholly replace the history, so one outlier (a cold cache,
// a GC pause) could make a good worker look bad or a bad one look good; with
// it a single sample moves the mean at most 1/(1+0.25) = 80% of the way.
const historyFloor = 0.25

// meanLatency is a time-decayed mean: each sample counts with weight
// 0.5^(age/halfLife). Decaying by age rather than by sample count keeps the
// mean equally fresh whatever the request rate, and a burst of samples at
// the same instant averages them instead of letting the last one win.
type meanLatency struct {
	mean   float64   // nanoseconds; meaningful only when weight > 0
	weight float64   // decayed number of samples behind mean, as of at
	at     time.Time // time of the latest sample
}

// add folds in a sample x (nanoseconds) observed at now.
func (m *meanLatency) add(now time.Time, x float64, halfLife time.Duration) {
	if m.weight == 0 {
		m.mean, m.weight, m.at = x, 1, now
		return
	}
	w := max(m.weight*decay(now.Sub(m.at), halfLife), historyFloor)
	m.mean = (m.mean*w + x) / (w + 1)
	m.weight = w + 1
	if now.After(m.at) {
		m.at = now
	}
}

// value is the mean, or def when there has been no sample, so that a new
// worker competes on equal terms with the configured expectation.
func (m *meanLatency) value(def time.Duration) float64 {
	if m.weight == 0 {
		return float64(def)
	}
	return m.mean
}

// forgetBelow is where a decayed failure count is treated as zero. Without
// it a single failure would never quite fade, and the worker would lose
// every tie (and so its round-robin share) forever.
const forgetBelow = 1.0 / 16

// decayingCount counts events, each fading by half per half-life.
type decayingCount struct {
	n  float64
	at time.Time
}

// add records one event at now.
func (c *decayingCount) add(now time.Time, halfLife time.Duration) {
	c.n = c.value(now, halfLife) + 1
	if now.After(c.at) {
		c.at = now
	}
}

// value is the count as of now.
func (c *decayingCount) value(now time.Time, halfLife time.Duration) float64 {
	v := c.n * decay(now.Sub(c.at), halfLife)
	if v < forgetBelow {
		return 0
	}
	return v
}
