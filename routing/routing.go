package routing

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cocoon-mesh/cocoon/ton"
)

// Offer is one model a worker serves.
type Offer struct {
	Model string // full model identity "name@revision:hash"
	Price uint64 // effective price in nanoTON per completion token (list price x worker coefficient, already multiplied by the caller)

	// Prices and Coefficient are the worker's list prices per token by category and the
	// per-mille coefficient it applies to them, for showing (routing reads only Price).
	Prices      ton.Prices
	Coefficient uint32
}

// WorkerInfo is what the proxy knows about a worker from its latest capacity advert.
type WorkerInfo struct {
	ID        peer.ID
	Offers    []Offer
	MaxActive int  // max concurrent requests the worker accepts (<=0 means 1)
	Healthy   bool // backend health as advertised
}

// Config tunes a Table; zero (or negative) fields get the defaults of DefaultConfig.
type Config struct {
	TTL             time.Duration // a worker not refreshed (Upsert) within TTL is dropped by Expire; default 90s
	LatencyHalfLife time.Duration // half-life of the decayed average latency and failure count; default 30s
	// DefaultLatency is the latency assumed for a worker with no samples while no eligible
	// worker has any either; default 1s. Once some have samples, a new worker is assumed as
	// fast as the fastest of them, so it gets its share of traffic to be measured.
	DefaultLatency time.Duration
	// EjectAfter is how many failures in a row take a worker out of routing; default 3.
	EjectAfter int
	// EjectFor is how long its first ejection lasts, doubling with each ejection until a
	// success; default 30s. EjectMax caps it; default 10m.
	EjectFor, EjectMax time.Duration
	// GoneFor is how long a model whose last worker left (Remove, Expire) is remembered:
	// Pick answers ErrNoWorkers for it, "none right now", rather than ErrUnknownModel;
	// default 10m.
	GoneFor time.Duration
	// MinTrust is the reputation below which a worker is not eligible, for a Request with
	// Trust; default 0.1 (a worker with one proven wrong answer, or a run of faults, is below).
	MinTrust float64
	// Explore is the share of a Request-with-Trust's picks that go to the least recently
	// picked eligible worker whatever its rank, so that a newcomer or a worker that recovered
	// earns the evidence its reputation needs; default 0.02 (every 50th pick).
	Explore float64
	// ProbationActive is how many requests at once a worker on probation takes while others
	// are not (Request.Probation); default 1.
	ProbationActive int
}

// DefaultConfig returns the configuration New uses for fields left zero.
func DefaultConfig() Config {
	return Config{TTL: 90 * time.Second, LatencyHalfLife: 30 * time.Second, DefaultLatency: time.Second,
		EjectAfter: 3, EjectFor: 30 * time.Second, EjectMax: 10 * time.Minute, GoneFor: 10 * time.Minute,
		MinTrust: 0.1, Explore: 0.02, ProbationActive: 1}
}

// WorkerStatus is a snapshot of one worker, for status output and logs.
type WorkerStatus struct {
	ID         peer.ID
	Offers     []Offer // sorted by model, one per model
	MaxActive  int
	Running    int
	Healthy    bool
	AvgLatency time.Duration // the decayed average Pick uses (DefaultLatency until the first sample)
	LastSeen   time.Time     // time of the latest Upsert
	Failures   int           // decayed failure count, rounded, as of the latest time the Table was given
	Streak     int           // failures since its latest success
	Ejected    time.Time     // out of routing until then (zero, or past: not ejected)
	Picks      uint64        // how many times Pick chose this worker
}

// ModelSummary describes one model as offered across all workers.
type ModelSummary struct {
	Model    string
	MinPrice uint64 // the lowest effective price per completion token
	Workers  int
	Cheapest Offer // the offer at MinPrice (of the least worker ID, among equals)
}

// Table is the proxy's view of the workers. It is not safe for concurrent
// use: the caller serialises calls with its own mutex.
type Table struct {
	cfg     Config
	workers map[peer.ID]*worker
	// clock is the latest time any method was given, so that Workers, which
	// takes no time, can still report decayed failure counts.
	clock time.Time
	// seq numbers the picks; a worker remembers the seq of its latest pick
	// so that ties go to the least recently picked (round robin).
	seq uint64
	// trusted counts the picks of requests with Trust, to send every Explore-th to exploration.
	trusted uint64
	// gone holds when the workers of each model (by every name a request may use) were
	// last removed, for GoneFor; at most maxGone.
	gone map[string]time.Time
}

// maxGone bounds the models a Table remembers as gone: past it, the oldest go first.
const maxGone = 1024

type worker struct {
	id        peer.ID
	offers    []offer
	maxActive int
	healthy   bool
	running   int
	latency   meanLatency
	failures  decayingCount
	health    health
	lastSeen  time.Time
	lastPick  uint64
	picks     uint64
}

// offer carries the shorter names a request may use, split once at Upsert
// rather than on every Pick.
type offer struct {
	Offer
	nameRev string // "name@revision"
	name    string // "name"
}

// New returns an empty Table; zero fields of cfg get defaults.
func New(cfg Config) *Table {
	def := DefaultConfig()
	if cfg.TTL <= 0 {
		cfg.TTL = def.TTL
	}
	if cfg.LatencyHalfLife <= 0 {
		cfg.LatencyHalfLife = def.LatencyHalfLife
	}
	if cfg.DefaultLatency <= 0 {
		cfg.DefaultLatency = def.DefaultLatency
	}
	if cfg.EjectAfter <= 0 {
		cfg.EjectAfter = def.EjectAfter
	}
	if cfg.EjectFor <= 0 {
		cfg.EjectFor = def.EjectFor
	}
	if cfg.EjectMax <= 0 {
		cfg.EjectMax = max(def.EjectMax, cfg.EjectFor)
	}
	if cfg.GoneFor <= 0 {
		cfg.GoneFor = def.GoneFor
	}
	if cfg.MinTrust <= 0 {
		cfg.MinTrust = def.MinTrust
	}
	if cfg.Explore <= 0 {
		cfg.Explore = def.Explore
	}
	if cfg.ProbationActive <= 0 {
		cfg.ProbationActive = def.ProbationActive
	}
	return &Table{cfg: cfg, workers: make(map[peer.ID]*worker), gone: make(map[string]time.Time)}
}

// observe advances the Table's notion of the latest time.
func (t *Table) observe(now time.Time) {
	if now.After(t.clock) {
		t.clock = now
	}
}

// Upsert adds a worker or refreshes it from a new advert, keeping the
// running count and latency and failure history of a known worker.
func (t *Table) Upsert(now time.Time, w WorkerInfo) {
	if w.ID == "" {
		return
	}
	t.observe(now)
	k, ok := t.workers[w.ID]
	if !ok {
		k = &worker{id: w.ID}
		t.workers[w.ID] = k
	}
	k.offers = normalizeOffers(w.Offers)
	k.maxActive = max(w.MaxActive, 1)
	k.healthy = w.Healthy
	if now.After(k.lastSeen) { // a late-delivered old advert must not shorten the worker's life
		k.lastSeen = now
	}
}

// normalizeOffers copies offers (the caller may reuse its slice), drops
// empty models, keeps the lowest price of a model listed twice and sorts by
// model so snapshots and tie-breaks are deterministic.
func normalizeOffers(in []Offer) []offer {
	out := make([]offer, 0, len(in))
	for _, o := range in {
		if o.Model != "" {
			nameRev, _, _ := strings.Cut(o.Model, ":")
			name, _, _ := strings.Cut(o.Model, "@")
			out = append(out, offer{Offer: o, nameRev: nameRev, name: name})
		}
	}
	slices.SortFunc(out, func(a, b offer) int {
		return cmp.Or(strings.Compare(a.Model, b.Model), cmp.Compare(a.Price, b.Price))
	})
	return slices.CompactFunc(out, func(a, b offer) bool { return a.Model == b.Model })
}

// Remove forgets a worker, e.g. when its connection is lost, and reports
// whether it was present. Requests still running on it are simply forgotten.
func (t *Table) Remove(id peer.ID) bool {
	w, ok := t.workers[id]
	if ok {
		t.forget(t.clock, w)
	}
	return ok
}

// forget drops w and remembers its models as gone at now.
func (t *Table) forget(now time.Time, w *worker) {
	delete(t.workers, w.id)
	for len(t.gone) >= maxGone {
		oldest := ""
		for m, at := range t.gone {
			if oldest == "" || at.Before(t.gone[oldest]) {
				oldest = m
			}
		}
		delete(t.gone, oldest)
	}
	for _, o := range w.offers {
		for _, name := range []string{o.Model, o.nameRev, o.name} {
			t.gone[name] = now
		}
	}
}

// ServedLately reports whether a worker in the table offers model (by any name a request may
// use), or did until less than Config.GoneFor ago.
func (t *Table) ServedLately(now time.Time, model string) bool {
	t.observe(now)
	for _, w := range t.workers {
		if _, ok := w.match(model); ok {
			return true
		}
	}
	return t.wentAway(now, model)
}

// wentAway reports whether model was served lately, by workers now gone.
func (t *Table) wentAway(now time.Time, model string) bool {
	at, ok := t.gone[model]
	return ok && now.Sub(at) < t.cfg.GoneFor
}

// Expire drops the workers whose last Upsert is more than TTL before now
// and returns their IDs, sorted.
func (t *Table) Expire(now time.Time) []peer.ID {
	t.observe(now)
	var dropped []peer.ID
	for id, w := range t.workers {
		if now.Sub(w.lastSeen) > t.cfg.TTL {
			dropped = append(dropped, id)
			t.forget(now, w)
		}
	}
	slices.Sort(dropped)
	return dropped
}

// Begin records that a request was sent to id; unknown workers are ignored.
func (t *Table) Begin(id peer.ID) {
	if w, ok := t.workers[id]; ok {
		w.running++
	}
}

// End records that a request to id finished after latency. A successful
// one feeds the latency average (a non-positive latency carries no
// information and is skipped) and clears the worker's failure streak; a
// failed one counts a failure, never a latency, and the EjectAfter-th in a
// row ejects the worker: End then returns how long it sits out (0 otherwise).
// End for an unknown worker (removed or expired meanwhile) is ignored, and the
// running count never goes below zero, as an End may follow a Remove and
// re-Upsert.
func (t *Table) End(now time.Time, id peer.ID, latency time.Duration, ok bool) (ejected time.Duration) {
	t.observe(now)
	w, known := t.workers[id]
	if !known {
		return 0
	}
	if w.running > 0 {
		w.running--
	}
	if !ok {
		w.failures.add(now, t.cfg.LatencyHalfLife)
		return w.health.failed(now, t.cfg)
	}
	w.health.succeeded()
	if latency > 0 {
		w.latency.add(now, float64(latency), t.cfg.LatencyHalfLife)
	}
	return 0
}

// Drop records that a request to id ended with no word on the worker (the caller went away,
// or the proxy would not send it): it no longer runs, and nothing else changes.
func (t *Table) Drop(now time.Time, id peer.ID) {
	t.observe(now)
	if w, ok := t.workers[id]; ok && w.running > 0 {
		w.running--
	}
}

// Len is the number of workers known.
func (t *Table) Len() int { return len(t.workers) }

// Workers returns a snapshot of every worker, sorted by ID.
func (t *Table) Workers() []WorkerStatus {
	out := make([]WorkerStatus, 0, len(t.workers))
	for _, w := range t.workers {
		offers := make([]Offer, len(w.offers))
		for i, o := range w.offers {
			offers[i] = o.Offer
		}
		out = append(out, WorkerStatus{
			ID:         w.id,
			Offers:     offers,
			MaxActive:  w.maxActive,
			Running:    w.running,
			Healthy:    w.healthy,
			AvgLatency: time.Duration(w.latency.value(t.cfg.DefaultLatency)),
			LastSeen:   w.lastSeen,
			Failures:   int(w.failures.value(t.clock, t.cfg.LatencyHalfLife) + 0.5),
			Streak:     w.health.streak,
			Ejected:    w.health.ejectedTil,
			Picks:      w.picks,
		})
	}
	slices.SortFunc(out, func(a, b WorkerStatus) int { return strings.Compare(string(a.ID), string(b.ID)) })
	return out
}

// Models returns every offered model ID with the lowest price offered for
// it and how many workers offer it, sorted by model.
func (t *Table) Models() []ModelSummary {
	byModel := make(map[string]*ModelSummary)
	cheapest := make(map[string]peer.ID)
	for _, w := range t.workers {
		for _, o := range w.offers { // one per model, so Workers counts each worker once
			s, ok := byModel[o.Model]
			if !ok {
				s = &ModelSummary{Model: o.Model}
				byModel[o.Model] = s
			}
			if id, seen := cheapest[o.Model]; !seen || o.Price < s.MinPrice || (o.Price == s.MinPrice && w.id < id) {
				s.MinPrice, s.Cheapest, cheapest[o.Model] = o.Price, o.Offer, w.id
			}
			s.Workers++
		}
	}
	out := make([]ModelSummary, 0, len(byModel))
	for _, s := range byModel {
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b ModelSummary) int { return strings.Compare(a.Model, b.Model) })
	return out
}

// Offer is worker id's offer for model (matched as Pick matches it), if it has one.
func (t *Table) Offer(id peer.ID, model string) (Offer, bool) {
	w, ok := t.workers[id]
	if !ok {
		return Offer{}, false
	}
	return w.match(model)
}

// Has reports whether id is in the table.
func (t *Table) Has(id peer.ID) bool {
	_, ok := t.workers[id]
	return ok
}
