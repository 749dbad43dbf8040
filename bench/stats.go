package bench

import (
	"math"
	"slices"
	"time"
)

// Percentile returns the p-th percentile (0 < p <= 100) of sorted by the nearest-rank
// method: the smallest sample such that at least p% of the samples are at or below it.
// It returns 0 for no samples; p <= 0 gives the minimum and p >= 100 the maximum.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := int(math.Ceil(p * float64(n) / 100)) // p*n first: exact for whole p and n
	rank = min(max(rank, 1), n)
	return sorted[rank-1]
}

// Summary is the percentiles of one set of samples.
type Summary struct {
	P50 time.Duration `json:"p50_ns"`
	P99 time.Duration `json:"p99_ns"`
}

// Summarize sorts samples in place and returns their p50 and p99.
func Summarize(samples []time.Duration) Summary {
	slices.Sort(samples)
	return Summary{P50: Percentile(samples, 50), P99: Percentile(samples, 99)}
}

// Rate is count events over d, per second; 0 when d is not positive.
func Rate(count int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(count) / d.Seconds()
}
