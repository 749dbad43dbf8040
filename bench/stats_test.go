package bench

import (
	"testing"
	"time"
)

func ms(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }

func TestPercentile(t *testing.T) {
	ten := []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i + 1)
	}
	for _, tc := range []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one sample p50", []time.Duration{7}, 50, 7},
		{"one sample p99", []time.Duration{7}, 99, 7},
		{"ten p50", ten, 50, 5},
		{"ten p90", ten, 90, 9},
		{"ten p99", ten, 99, 10},
		{"ten p100", ten, 100, 10},
		{"ten p0 is min", ten, 0, 1},
		{"ten p-5 is min", ten, -5, 1},
		{"ten p150 is max", ten, 150, 10},
		{"ten p10", ten, 10, 1},
		{"ten p11", ten, 11, 2},
		{"hundred p50", hundred, 50, 50},
		{"hundred p99", hundred, 99, 99},
		{"hundred p99.5", hundred, 99.5, 100},
		{"two p50", []time.Duration{1, 2}, 50, 1},
		{"two p51", []time.Duration{1, 2}, 51, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Percentile(tc.sorted, tc.p); got != tc.want {
				t.Errorf("Percentile(%v, %v) = %v, want %v", tc.sorted, tc.p, got, tc.want)
			}
		})
	}
}

func TestSummarizeSorts(t *testing.T) {
	s := []time.Duration{9, 3, 7, 1, 5, 2, 8, 4, 10, 6}
	got := Summarize(s)
	if got.P50 != 5 || got.P99 != 10 {
		t.Errorf("Summarize = %+v, want p50 5 p99 10", got)
	}
	if s[0] != 1 || s[9] != 10 {
		t.Errorf("samples not sorted in place: %v", s)
	}
	if z := Summarize(nil); z != (Summary{}) {
		t.Errorf("Summarize(nil) = %+v", z)
	}
}

func TestRate(t *testing.T) {
	for _, tc := range []struct {
		n    int
		d    time.Duration
		want float64
	}{
		{1000, time.Second, 1000},
		{500, 250 * time.Millisecond, 2000},
		{5, 0, 0},
		{5, -time.Second, 0},
		{0, time.Second, 0},
	} {
		if got := Rate(tc.n, tc.d); got != tc.want {
			t.Errorf("Rate(%d, %v) = %v, want %v", tc.n, tc.d, got, tc.want)
		}
	}
}
