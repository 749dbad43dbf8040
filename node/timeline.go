package node

import (
	"slices"
	"sync"
	"time"
)

// The status page plots the last quarter of an hour: requests per second, the median and 99th
// percentile of their latency, and tokens per second, in timelineStep buckets.
const (
	timelineStep    = 10 * time.Second
	timelineBuckets = 90 // 15 minutes
	// maxBucketSamples bounds the latencies one bucket keeps for its percentiles: past it, a
	// new one takes the place of an older one in turn (a sample of the bucket, not all of it).
	maxBucketSamples = 512
)

// StatPoint is one step of the recent timeline, as Status.Recent lists it.
type StatPoint struct {
	Time           time.Time `json:"time"` // the step's start
	Requests       int       `json:"requests"`
	RequestsPerSec float64   `json:"requests_per_sec"`
	P50Ms          float64   `json:"latency_p50_ms"`
	P99Ms          float64   `json:"latency_p99_ms"`
	TokensPerSec   float64   `json:"completion_tokens_per_sec"`
}

// timeline keeps the finished requests of the last timelineBuckets steps. Its caller passes
// the time; it holds its own lock, as requests end on many goroutines.
type timeline struct {
	mu      sync.Mutex
	buckets [timelineBuckets]bucket
}

type bucket struct {
	start  time.Time // zero: unused
	n      int
	tokens uint64
	lat    []float64 // milliseconds, a sample
}

// add counts a request that ended at end, after latency, with tokens completion tokens.
func (t *timeline) add(end time.Time, latency time.Duration, tokens uint32) {
	start := end.Truncate(timelineStep)
	t.mu.Lock()
	defer t.mu.Unlock()
	b := &t.buckets[int(start.Unix()/int64(timelineStep/time.Second))%timelineBuckets]
	if !b.start.Equal(start) {
		*b = bucket{start: start, lat: b.lat[:0]}
	}
	b.n++
	b.tokens += uint64(tokens)
	ms := float64(latency) / float64(time.Millisecond)
	if len(b.lat) < maxBucketSamples {
		b.lat = append(b.lat, ms)
	} else {
		b.lat[b.n%maxBucketSamples] = ms
	}
}

// points is the timeline of the timelineBuckets steps up to now, oldest first, with zeros
// where nothing ended.
func (t *timeline) points(now time.Time) []StatPoint {
	last := now.Truncate(timelineStep)
	out := make([]StatPoint, timelineBuckets)
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range out {
		start := last.Add(-time.Duration(timelineBuckets-1-i) * timelineStep)
		p := StatPoint{Time: start}
		b := &t.buckets[int(start.Unix()/int64(timelineStep/time.Second))%timelineBuckets]
		if b.start.Equal(start) && b.n > 0 {
			secs := timelineStep.Seconds()
			p.Requests, p.RequestsPerSec, p.TokensPerSec = b.n, float64(b.n)/secs, float64(b.tokens)/secs
			lat := slices.Clone(b.lat)
			slices.Sort(lat)
			p.P50Ms, p.P99Ms = quantile(lat, 0.50), quantile(lat, 0.99)
		}
		out[i] = p
	}
	return out
}

// quantile is the q-quantile of sorted (nearest rank); 0 for none.
func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}
