package routing

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func of(model string, price uint64) Offer { return Offer{Model: model, Price: price} }

func info(id peer.ID, maxActive int, offers ...Offer) WorkerInfo {
	return WorkerInfo{ID: id, Offers: offers, MaxActive: maxActive, Healthy: true}
}

// sample feeds one successful request of the given latency to id at now.
func sample(tb *Table, now time.Time, id peer.ID, latency time.Duration) {
	tb.Begin(id)
	tb.End(now, id, latency, true)
}

// busy marks n requests running on id.
func busy(tb *Table, id peer.ID, n int) {
	for range n {
		tb.Begin(id)
	}
}

func TestPick(t *testing.T) {
	const llama = "llama@1:abc"
	tests := []struct {
		name      string
		setup     func(tb *Table)
		req       Request
		want      peer.ID
		wantModel string
		wantPrice uint64
		wantFall  []peer.ID
		wantErr   error
	}{
		{
			name:  "match full ID",
			setup: func(tb *Table) { tb.Upsert(t0, info("w1", 1, of(llama, 3))) },
			req:   Request{Model: llama}, want: "w1", wantModel: llama, wantPrice: 3,
		},
		{
			name:  "match name@revision",
			setup: func(tb *Table) { tb.Upsert(t0, info("w1", 1, of(llama, 3))) },
			req:   Request{Model: "llama@1"}, want: "w1", wantModel: llama, wantPrice: 3,
		},
		{
			name:  "match name",
			setup: func(tb *Table) { tb.Upsert(t0, info("w1", 1, of(llama, 3))) },
			req:   Request{Model: "llama"}, want: "w1", wantModel: llama, wantPrice: 3,
		},
		{
			name:  "name matches the cheapest of several revisions",
			setup: func(tb *Table) { tb.Upsert(t0, info("w1", 1, of("llama@1:abc", 5), of("llama@2:def", 4))) },
			req:   Request{Model: "llama"}, want: "w1", wantModel: "llama@2:def", wantPrice: 4,
		},
		{
			name:    "other revision is unknown",
			setup:   func(tb *Table) { tb.Upsert(t0, info("w1", 1, of(llama, 3))) },
			req:     Request{Model: "llama@2"},
			wantErr: ErrUnknownModel,
		},
		{
			name:    "prefix of a name is unknown",
			setup:   func(tb *Table) { tb.Upsert(t0, info("w1", 1, of(llama, 3))) },
			req:     Request{Model: "lla"},
			wantErr: ErrUnknownModel,
		},
		{
			name:    "truncated hash is unknown",
			setup:   func(tb *Table) { tb.Upsert(t0, info("w1", 1, of(llama, 3))) },
			req:     Request{Model: "llama@1:ab"},
			wantErr: ErrUnknownModel,
		},
		{
			name:    "empty model never matches",
			setup:   func(tb *Table) { tb.Upsert(t0, info("w1", 1, of(llama, 3))) },
			req:     Request{},
			wantErr: ErrUnknownModel,
		},
		{
			name:    "empty table",
			setup:   func(tb *Table) {},
			req:     Request{Model: "llama"},
			wantErr: ErrUnknownModel,
		},
		{
			name: "price cap skips the dear worker",
			setup: func(tb *Table) {
				tb.Upsert(t0, info("w1", 1, of(llama, 5)))
				tb.Upsert(t0, info("w2", 1, of(llama, 3)))
			},
			req: Request{Model: "llama", MaxPrice: 4}, want: "w2", wantPrice: 3, wantModel: llama,
		},
		{
			name: "price cap is inclusive",
			setup: func(tb *Table) {
				tb.Upsert(t0, info("w1", 1, of(llama, 5)))
			},
			req: Request{Model: "llama", MaxPrice: 5}, want: "w1", wantPrice: 5, wantModel: llama,
		},
		{
			name: "everyone above the cap",
			setup: func(tb *Table) {
				tb.Upsert(t0, info("w1", 1, of(llama, 5)))
				tb.Upsert(t0, info("w2", 1, of(llama, 3)))
			},
			req:     Request{Model: "llama", MaxPrice: 2},
			wantErr: ErrPriceTooHigh,
		},
		{
			name: "zero cap means no cap, cheaper wins the idle tie",
			setup: func(tb *Table) {
				tb.Upsert(t0, info("w1", 1, of(llama, 5)))
				tb.Upsert(t0, info("w2", 1, of(llama, 3)))
			},
			req: Request{Model: "llama"}, want: "w2", wantPrice: 3, wantModel: llama, wantFall: []peer.ID{"w1"},
		},
		{
			name: "worker at capacity is skipped",
			setup: func(tb *Table) {
				tb.Upsert(t0, info("w1", 2, of(llama, 1)))
				tb.Upsert(t0, info("w2", 1, of(llama, 1)))
				busy(tb, "w1", 2)
			},
			req: Request{Model: "llama"}, want: "w2", wantPrice: 1, wantModel: llama,
		},
		{
			name: "everyone at capacity",
			setup: func(tb *Table) {
				tb.Upsert(t0, info("w1", 2, of(llama, 1)))
				tb.Upsert(t0, info("w2", 0, of(llama, 1))) // MaxActive 0 means 1
				busy(tb, "w1", 2)
				busy(tb, "w2", 1)
			},
			req:     Request{Model: "llama"},
			wantErr: ErrNoCapacity,
		},
		{
			name: "unhealthy worker is skipped",
			setup: func(tb *Table) {
				tb.Upsert(t0, WorkerInfo{ID: "w1", Offers: []Offer{of(llama, 1)}, MaxActive: 4})
				tb.Upsert(t0, info("w2", 1, of(llama, 9)))
			},
			req: Request{Model: "llama"}, want: "w2", wantPrice: 9, wantModel: llama,
		},
		{
			name: "everyone unhealthy",
			setup: func(tb *Table) {
				tb.Upsert(t0, WorkerInfo{ID: "w1", Offers: []Offer{of(llama, 1)}, MaxActive: 4})
			},
			req:     Request{Model: "llama"},
			wantErr: ErrNoCapacity,
		},
		{
			name: "in-price worker busy, the rest too dear: capacity is the problem",
			setup: func(tb *Table) {
				tb.Upsert(t0, info("w1", 1, of(llama, 1)))
				tb.Upsert(t0, info("w2", 1, of(llama, 9)))
				busy(tb, "w1", 1)
			},
			req:     Request{Model: "llama", MaxPrice: 5},
			wantErr: ErrNoCapacity,
		},
		{
			name: "exclude for failover, fallbacks best first",
			setup: func(tb *Table) {
				for _, id := range []peer.ID{"w1", "w2", "w3", "w4"} {
					tb.Upsert(t0, info(id, 4, of(llama, 1)))
					sample(tb, t0, id, 10*time.Millisecond)
				}
				busy(tb, "w2", 2)
				busy(tb, "w4", 1)
			},
			req:  Request{Model: "llama", Exclude: []peer.ID{"w1"}},
			want: "w3", wantPrice: 1, wantModel: llama, wantFall: []peer.ID{"w4", "w2"},
		},
		{
			name: "everyone excluded",
			setup: func(tb *Table) {
				tb.Upsert(t0, info("w1", 1, of(llama, 1)))
				tb.Upsert(t0, info("w2", 1, of(llama, 1)))
			},
			req:     Request{Model: "llama", Exclude: []peer.ID{"w2", "w1"}},
			wantErr: ErrNoCapacity,
		},
		{
			name: "excluded cheap worker, the rest too dear",
			setup: func(tb *Table) {
				tb.Upsert(t0, info("w1", 1, of(llama, 1)))
				tb.Upsert(t0, info("w2", 1, of(llama, 9)))
			},
			req:     Request{Model: "llama", MaxPrice: 5, Exclude: []peer.ID{"w1"}},
			wantErr: ErrPriceTooHigh,
		},
		{
			name: "load rule: 2 running at 10ms beats 1 running at 50ms",
			setup: func(tb *Table) {
				tb.Upsert(t0, info("fast", 4, of(llama, 1)))
				tb.Upsert(t0, info("slow", 4, of(llama, 1)))
				sample(tb, t0, "fast", 10*time.Millisecond)
				sample(tb, t0, "slow", 50*time.Millisecond)
				busy(tb, "fast", 2)
				busy(tb, "slow", 1)
			},
			req: Request{Model: "llama"}, want: "fast", wantPrice: 1, wantModel: llama, wantFall: []peer.ID{"slow"},
		},
		{
			name: "idle: lower latency wins",
			setup: func(tb *Table) {
				tb.Upsert(t0, info("a", 4, of(llama, 1)))
				tb.Upsert(t0, info("b", 4, of(llama, 1)))
				sample(tb, t0, "a", 30*time.Millisecond)
				sample(tb, t0, "b", 20*time.Millisecond)
			},
			req: Request{Model: "llama"}, want: "b", wantPrice: 1, wantModel: llama, wantFall: []peer.ID{"a"},
		},
		{
			name: "idle, equal latency: fewer recent failures wins over lower price",
			setup: func(tb *Table) {
				tb.Upsert(t0, info("a", 4, of(llama, 1)))
				tb.Upsert(t0, info("b", 4, of(llama, 2)))
				tb.Begin("a")
				tb.End(t0, "a", 0, false)
			},
			req: Request{Model: "llama"}, want: "b", wantPrice: 2, wantModel: llama, wantFall: []peer.ID{"a"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tb := New(Config{})
			tc.setup(tb)
			d, err := tb.Pick(t0.Add(time.Second), tc.req)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				if tc.req.Model != "" && !strings.Contains(err.Error(), tc.req.Model) {
					t.Errorf("error %q does not name the model", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			if d.Worker != tc.want || d.Offer.Model != tc.wantModel || d.Offer.Price != tc.wantPrice {
				t.Errorf("got %s %s %d, want %s %s %d", d.Worker, d.Offer.Model, d.Offer.Price, tc.want, tc.wantModel, tc.wantPrice)
			}
			if !slices.Equal(d.Fallbacks, tc.wantFall) {
				t.Errorf("fallbacks = %q, want %q", d.Fallbacks, tc.wantFall)
			}
			if d.Reason() == "" {
				t.Error("empty reason")
			}
		})
	}
}

func TestRoundRobin(t *testing.T) {
	tb := New(Config{})
	for _, id := range []peer.ID{"w3", "w1", "w2"} {
		tb.Upsert(t0, info(id, 1, of("m@1:x", 1)))
	}
	var got []peer.ID
	pick := func() {
		d, err := tb.Pick(t0, Request{Model: "m"})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, d.Worker)
	}
	for range 6 {
		pick()
	}
	// A newcomer gets one turn (it was never picked) and then joins the rotation
	// instead of taking every tie while its count catches up.
	tb.Upsert(t0, info("w0", 1, of("m@1:x", 1)))
	for range 5 {
		pick()
	}
	want := []peer.ID{"w1", "w2", "w3", "w1", "w2", "w3", "w0", "w1", "w2", "w3", "w0"}
	if !slices.Equal(got, want) {
		t.Fatalf("picks = %q, want %q", got, want)
	}
	if ws := tb.Workers(); ws[1].ID != "w1" || ws[1].Picks != 3 {
		t.Errorf("w1 status = %+v, want 3 picks", ws[1])
	}
}

func TestLatencyDecay(t *testing.T) {
	const slow, fast = 500 * time.Millisecond, 10 * time.Millisecond
	tb := New(Config{LatencyHalfLife: 30 * time.Second})
	tb.Upsert(t0, info("oldslow", 1, of("m", 1)))
	tb.Upsert(t0, info("oldfast", 1, of("m", 1)))
	sample(tb, t0, "oldslow", slow)
	sample(tb, t0, "oldfast", fast)
	later := t0.Add(2 * time.Minute)
	sample(tb, later, "oldslow", fast)
	sample(tb, later, "oldfast", slow)

	d, err := tb.Pick(later, Request{Model: "m"})
	if err != nil || d.Worker != "oldslow" {
		t.Fatalf("Pick = %v, %v; want oldslow, whose slow sample is old", d.Worker, err)
	}
	lat := map[peer.ID]time.Duration{}
	for _, w := range tb.Workers() {
		lat[w.ID] = w.AvgLatency
	}
	// The old sample has decayed to the floor weight 0.25 (4 half-lives would
	// leave 1/16): the new sample moves the mean 80% of the way, not all of it.
	if want := (slow/4 + fast) * 4 / 5; lat["oldslow"] != want {
		t.Errorf("oldslow avg = %v, want %v", lat["oldslow"], want)
	}
	if want := (fast/4 + slow) * 4 / 5; lat["oldfast"] != want {
		t.Errorf("oldfast avg = %v, want %v", lat["oldfast"], want)
	}

	// Samples at the same instant are averaged, not overwritten.
	tb.Upsert(t0, info("burst", 4, of("m", 1)))
	sample(tb, t0, "burst", 10*time.Millisecond)
	sample(tb, t0, "burst", 20*time.Millisecond)
	sample(tb, t0, "burst", 30*time.Millisecond)
	// One half-life later the history (weight 3 -> 1.5) still outweighs one sample.
	sample(tb, t0.Add(30*time.Second), "burst", 45*time.Millisecond)
	for _, w := range tb.Workers() {
		if w.ID == "burst" && w.AvgLatency != 30*time.Millisecond { // (20*1.5 + 45) / 2.5
			t.Errorf("burst avg = %v, want 30ms", w.AvgLatency)
		}
	}
}

func TestFailuresDecay(t *testing.T) {
	tb := New(Config{LatencyHalfLife: 10 * time.Second})
	tb.Upsert(t0, info("w", 8, of("m", 1)))
	for range 4 {
		tb.Begin("w")
		tb.End(t0, "w", 0, false)
	}
	failures := func(at time.Time) int {
		tb.Expire(at) // only to advance the table's clock; TTL is 90s
		return tb.Workers()[0].Failures
	}
	if got := failures(t0); got != 4 {
		t.Errorf("failures now = %d, want 4", got)
	}
	if got := failures(t0.Add(10 * time.Second)); got != 2 {
		t.Errorf("failures after a half-life = %d, want 2", got)
	}
	if got := failures(t0.Add(60 * time.Second)); got != 0 {
		t.Errorf("failures after 6 half-lives = %d, want 0", got)
	}
	if r := tb.Workers()[0].Running; r != 0 {
		t.Errorf("running = %d after failed requests ended", r)
	}
}

func TestExpire(t *testing.T) {
	tb := New(Config{TTL: 10 * time.Second})
	tb.Upsert(t0, info("c", 1, of("m", 1)))
	tb.Upsert(t0, info("a", 1, of("m", 1)))
	tb.Upsert(t0, info("b", 1, of("m", 1)))
	tb.Upsert(t0.Add(5*time.Second), info("b", 1, of("m", 1)))
	tb.Begin("a") // running work does not keep a silent worker alive

	if got := tb.Expire(t0.Add(10 * time.Second)); len(got) != 0 {
		t.Errorf("expired at exactly TTL: %q", got)
	}
	if got := tb.Expire(t0.Add(11 * time.Second)); !slices.Equal(got, []peer.ID{"a", "c"}) {
		t.Errorf("expired %q, want [a c]", got)
	}
	if tb.Len() != 1 {
		t.Errorf("Len = %d, want 1", tb.Len())
	}
	if got := tb.Expire(t0.Add(16 * time.Second)); !slices.Equal(got, []peer.ID{"b"}) {
		t.Errorf("expired %q, want [b]", got)
	}
	if _, err := tb.Pick(t0.Add(16*time.Second), Request{Model: "m"}); !errors.Is(err, ErrNoWorkers) {
		t.Errorf("Pick after expiry: %v, want ErrNoWorkers (its workers left lately)", err)
	}
}

func TestRemoveAndUnknownEnd(t *testing.T) {
	tb := New(Config{})
	tb.Upsert(t0, info("w", 2, of("m", 1)))
	tb.Begin("w")
	if !tb.Remove("w") || tb.Remove("w") {
		t.Fatal("Remove should report presence once")
	}
	tb.End(t0, "w", time.Millisecond, true) // late End for a removed worker
	tb.End(t0, "nobody", time.Millisecond, false)
	tb.Begin("nobody")
	if tb.Len() != 0 {
		t.Fatalf("Len = %d after ignored calls", tb.Len())
	}
	// Re-adding starts fresh, and a stray End does not drive running negative.
	tb.Upsert(t0, info("w", 2, of("m", 1)))
	tb.End(t0, "w", time.Millisecond, true)
	if ws := tb.Workers(); ws[0].Running != 0 {
		t.Errorf("running = %d", ws[0].Running)
	}
}

func TestUpsert(t *testing.T) {
	tb := New(Config{DefaultLatency: 7 * time.Millisecond})
	tb.Upsert(t0, WorkerInfo{Offers: []Offer{of("m", 1)}, MaxActive: 3, Healthy: true}) // empty ID
	if tb.Len() != 0 {
		t.Fatal("empty ID was added")
	}
	offers := []Offer{of("z@1:a", 5), of("", 1), of("a@1:b", 2), of("z@1:a", 4)}
	tb.Upsert(t0, WorkerInfo{ID: "w", Offers: offers, MaxActive: -2, Healthy: true})
	offers[0].Price = 999 // the table holds its own copy
	ws := tb.Workers()
	want := []Offer{of("a@1:b", 2), of("z@1:a", 4)}
	if len(ws) != 1 || ws[0].MaxActive != 1 || !slices.Equal(ws[0].Offers, want) || ws[0].AvgLatency != 7*time.Millisecond {
		t.Fatalf("status = %+v", ws)
	}

	// A refresh replaces the advert but keeps what the proxy measured.
	tb.Begin("w")
	sample(tb, t0, "w", 40*time.Millisecond)
	tb.Upsert(t0.Add(time.Second), WorkerInfo{ID: "w", Offers: []Offer{of("n", 1)}, MaxActive: 5})
	s := tb.Workers()[0]
	if s.Running != 1 || s.AvgLatency != 40*time.Millisecond || s.MaxActive != 5 || s.Healthy ||
		!s.LastSeen.Equal(t0.Add(time.Second)) || len(s.Offers) != 1 {
		t.Errorf("after refresh: %+v", s)
	}
}

func TestModels(t *testing.T) {
	tb := New(Config{})
	listed := func(o Offer, prompt uint64) Offer {
		o.Prices.Prompt, o.Prices.Completion, o.Coefficient = prompt, o.Price, 1000
		return o
	}
	tb.Upsert(t0, info("w1", 1, listed(of("llama@1:a", 5), 1), listed(of("qwen@2:b", 7), 2)))
	tb.Upsert(t0, info("w2", 1, listed(of("llama@1:a", 3), 3)))
	tb.Upsert(t0, info("w3", 1, listed(of("llama@2:c", 9), 4)))
	tb.Upsert(t0, info("w4", 1, listed(of("llama@2:c", 9), 5))) // as cheap as w3: w3 is shown
	want := []ModelSummary{
		{"llama@1:a", 3, 2, listed(of("llama@1:a", 3), 3)},
		{"llama@2:c", 9, 2, listed(of("llama@2:c", 9), 4)},
		{"qwen@2:b", 7, 1, listed(of("qwen@2:b", 7), 2)},
	}
	if got := tb.Models(); !slices.Equal(got, want) {
		t.Errorf("Models = %+v, want %+v", got, want)
	}
}

func TestDefaults(t *testing.T) {
	got := New(Config{TTL: -1, DefaultLatency: 5 * time.Millisecond}).cfg
	want := DefaultConfig()
	want.DefaultLatency = 5 * time.Millisecond
	if got != want {
		t.Errorf("cfg = %+v, want %+v", got, want)
	}
}

func BenchmarkPick(b *testing.B) {
	models := []string{"llama@3:aaa", "qwen@2:bbb", "mistral@1:ccc"}
	tb := New(Config{})
	for i := range 100 {
		id := peer.ID(fmt.Sprintf("worker-%03d", i))
		tb.Upsert(t0, info(id, 8, of(models[i%3], uint64(10+i%7)), of(models[(i+1)%3], uint64(20+i%5))))
		sample(tb, t0, id, time.Duration(5+i%13)*time.Millisecond)
		busy(tb, id, i%4)
	}
	req := Request{Model: "qwen", MaxPrice: 25, Exclude: []peer.ID{"worker-001", "worker-004"}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tb.Pick(t0, req); err != nil {
			b.Fatal(err)
		}
	}
}
