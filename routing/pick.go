package routing

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Request is what Pick needs to know about one client request.
type Request struct {
	Model    string    // as the client asked: a full ID "name@revision:hash", or "name@revision", or just "name"
	MaxPrice uint64    // cap on Offer.Price; 0 means no cap
	Exclude  []peer.ID // workers already tried for this request (failover)
	// Trust, when set, is each worker's reputation in [0, 1] (see package reputation): below
	// Config.MinTrust a worker is not eligible, load is weighed by it, and among idle workers
	// the more trusted ranks first. Nil means no reputation: every worker is trusted alike.
	Trust func(peer.ID) float64
	// Probation, when set, reports a worker still on probation (a new identity, with little
	// evidence yet): while any candidate is not, one on probation takes at most
	// Config.ProbationActive requests at once, so fresh identities, however many, get a
	// bounded share of the traffic until they earned more.
	Probation func(peer.ID) bool
}

// Decision is Pick's answer: where to send the request and what else to try.
type Decision struct {
	Worker peer.ID
	// Offer is the chosen worker's matching offer: its full model ID, its price, and the
	// prices the worker's quote must match.
	Offer     Offer
	Fallbacks []peer.ID // other eligible workers, best first (for failover)

	why why // what Reason needs, kept so the text is built only when someone reads it
}

// Reason says in a few words why Pick chose this worker, for logs.
func (d Decision) Reason() string { return d.why.String() }

// why is a snapshot of the keys that decided a Pick.
type why struct {
	best, next view
	n, equal   int  // eligible workers; how many tie with the best on every rule key
	distrusted int  // workers left out for a reputation below Config.MinTrust
	held       int  // workers on probation left out, holding Config.ProbationActive requests
	explored   bool // an exploration pick: the least recently picked, whatever its rank
	trusted    bool // the request weighed reputation
}

// view is the part of a candidate the reason text shows.
type view struct {
	failing              bool
	load, latency, fails float64
	weighed, trust, tier float64
	running              int
	price                uint64
}

func (c candidate) view() view {
	return view{failing: c.failing, load: c.load, latency: c.latency, fails: c.fails, running: c.w.running, price: c.offer.Price,
		weighed: c.weighed, trust: c.trust, tier: c.tier}
}

// Pick's errors, distinguishable with errors.Is so the proxy can tell the
// client whether to change model, raise its cap, or retry later.
var (
	ErrUnknownModel = errors.New("routing: no worker serves this model")
	ErrPriceTooHigh = errors.New("routing: every worker serving this model is above the price cap")
	ErrNoCapacity   = errors.New("routing: every worker serving this model is busy or unhealthy")
	// ErrNoWorkers is for a model whose workers all left lately (Config.GoneFor): it may be
	// back soon, unlike a model nobody served.
	ErrNoWorkers = errors.New("routing: no worker serves this model right now: the workers that served it left")
)

// candidate is an eligible worker with its sort keys computed once.
type candidate struct {
	w       *worker
	offer   Offer
	failing bool    // failed recently (fails >= failingAbove): ranks after those that did not
	load    float64 // running x latency, nanoseconds
	latency float64 // nanoseconds
	fails   float64
	trust   float64 // reputation in [0, 1]; 1 without Request.Trust
	weighed float64 // load / trust
	tier    float64 // trust rounded down to a tenth: among idle workers the higher tier ranks first
}

// Pick chooses the worker for r by the package rule (see the package doc).
// It does not count the request as running: call Begin when actually
// sending. It does advance the round-robin state, so call it once per send.
func (t *Table) Pick(now time.Time, r Request) (Decision, error) {
	t.observe(now)
	if r.Model == "" {
		return Decision{}, fmt.Errorf("%w: empty model name", ErrUnknownModel)
	}
	cands, n, err := t.eligible(now, r)
	if err != nil {
		return Decision{}, err
	}
	t.estimate(cands)
	slices.SortFunc(cands, compareCandidates)
	w := whyOf(cands)
	w.distrusted, w.held, w.trusted = n.distrusted, n.held, r.Trust != nil
	if r.Trust != nil && len(cands) > 1 {
		t.trusted++
		if every := uint64(math.Round(1 / t.cfg.Explore)); every > 0 && t.trusted%every == 0 {
			explore(cands)
			w.explored = true
			w.best = cands[0].view()
		}
	}
	best := cands[0]
	t.seq++
	best.w.lastPick = t.seq
	best.w.picks++
	d := Decision{Worker: best.w.id, Offer: best.offer, why: w}
	if len(cands) > 1 {
		d.Fallbacks = make([]peer.ID, 0, len(cands)-1)
		for _, c := range cands[1:] {
			d.Fallbacks = append(d.Fallbacks, c.w.id)
		}
	}
	return d, nil
}

// tally counts why the workers serving a model were not eligible, for ErrNoCapacity's text.
type tally struct {
	serving, excluded, pricey, distrusted, ejected, unhealthy, full, held int
	cheapest                                                              uint64
}

// eligible is the candidates for r, or the error saying why there are none.
func (t *Table) eligible(now time.Time, r Request) ([]candidate, tally, error) {
	var n tally
	cands := make([]candidate, 0, len(t.workers))
	for _, w := range t.workers {
		o, found := w.match(r.Model)
		trust := 1.0
		if found && r.Trust != nil {
			trust = min(max(r.Trust(w.id), 0), 1)
		}
		switch {
		case !found:
			continue
		case slices.Contains(r.Exclude, w.id):
			n.excluded++
		case r.MaxPrice != 0 && o.Price > r.MaxPrice:
			if n.pricey == 0 || o.Price < n.cheapest {
				n.cheapest = o.Price
			}
			n.pricey++
		case trust < t.cfg.MinTrust:
			n.distrusted++
		case w.health.ejected(now):
			n.ejected++
		case !w.healthy:
			n.unhealthy++
		case w.running >= w.maxActive:
			n.full++
		default:
			fails := w.failures.value(now, t.cfg.LatencyHalfLife)
			cands = append(cands, candidate{w: w, offer: o, fails: fails, failing: fails >= failingAbove,
				trust: trust, tier: math.Floor(trust*10) / 10})
		}
		n.serving++
	}
	before := len(cands)
	cands = t.probation(cands, r.Probation)
	n.held = before - len(cands)
	switch {
	case n.serving == 0 && t.wentAway(now, r.Model):
		return nil, n, fmt.Errorf("%w: %q", ErrNoWorkers, r.Model)
	case n.serving == 0:
		return nil, n, fmt.Errorf("%w: %q", ErrUnknownModel, r.Model)
	case len(cands) == 0 && n.pricey > 0 && n.pricey == n.serving-n.excluded:
		return nil, n, fmt.Errorf("%w: %q: cheapest is %d, cap %d", ErrPriceTooHigh, r.Model, n.cheapest, r.MaxPrice)
	case len(cands) == 0:
		distrusted := ""
		if n.distrusted > 0 {
			distrusted = fmt.Sprintf(", %d below the reputation floor %.2f", n.distrusted, t.cfg.MinTrust)
		}
		return nil, n, fmt.Errorf("%w: %q: %d serving: %d excluded, %d above cap%s, %d ejected for failing, %d unhealthy, %d full",
			ErrNoCapacity, r.Model, n.serving, n.excluded, n.pricey, distrusted, n.ejected, n.unhealthy, n.full)
	}
	return cands, n, nil
}

// probation drops the candidates on probation that hold Config.ProbationActive requests
// already, as long as one candidate is not on probation.
func (t *Table) probation(cands []candidate, on func(peer.ID) bool) []candidate {
	if on == nil {
		return cands
	}
	probation := make([]bool, len(cands))
	established := false
	for i, c := range cands {
		probation[i] = on(c.w.id)
		established = established || !probation[i]
	}
	if !established {
		return cands // everyone is new (a network starting): no one to prefer
	}
	out := cands[:0]
	for i, c := range cands {
		if !probation[i] || c.w.running < t.cfg.ProbationActive {
			out = append(out, c)
		}
	}
	return out
}

// explore moves to the front the least recently picked candidate that is not failing, so
// that a worker the rule ranks low still gets the requests that measure it.
func explore(cands []candidate) {
	at := -1
	for i, c := range cands {
		if !c.failing && (at < 0 || c.w.lastPick < cands[at].w.lastPick) {
			at = i
		}
	}
	if at > 0 {
		c := cands[at]
		copy(cands[1:at+1], cands[:at])
		cands[0] = c
	}
}

// failingAbove is the decayed failure count from which a worker is failing: it ranks after
// every worker that is not, whatever their loads. One failure keeps it there for a half-life.
const failingAbove = 0.5

// estimate fills in each candidate's latency and load. A worker never measured is assumed as
// fast as the fastest measured candidate (DefaultLatency when none is measured): assuming it
// slower would starve it of the requests that measure it, and one that turns out slow loses
// its share after a sample or two.
func (t *Table) estimate(cands []candidate) {
	prior := math.Inf(1)
	for _, c := range cands {
		if c.w.latency.weight > 0 {
			prior = min(prior, c.w.latency.mean)
		}
	}
	if math.IsInf(prior, 1) {
		prior = float64(t.cfg.DefaultLatency)
	}
	for i := range cands {
		c := &cands[i]
		c.latency = prior
		if c.w.latency.weight > 0 {
			c.latency = c.w.latency.mean
		}
		c.load = float64(c.w.running) * c.latency
		c.weighed = c.load
		if c.trust < 1 {
			c.weighed = c.load / c.trust // trust >= MinTrust > 0 here
		}
	}
}

// match returns the worker's offer for model, the cheapest if several match
// (e.g. two revisions of "name"); offers are sorted by model, so equal
// prices go to the smaller model ID.
func (w *worker) match(model string) (Offer, bool) {
	var best Offer
	found := false
	for _, o := range w.offers {
		if (o.Model == model || o.nameRev == model || o.name == model) && (!found || o.Price < best.Price) {
			best, found = o.Offer, true
		}
	}
	return best, found
}

// compareCandidates orders candidates best first: the rule's keys in order,
// then least recently picked (round robin), then peer ID so that the order
// is total and deterministic.
func compareCandidates(a, b candidate) int {
	return cmp.Or(
		compareBool(a.failing, b.failing),
		cmp.Compare(a.weighed, b.weighed),
		cmp.Compare(b.tier, a.tier),
		cmp.Compare(a.latency, b.latency),
		cmp.Compare(a.fails, b.fails),
		cmp.Compare(a.offer.Price, b.offer.Price),
		cmp.Compare(a.w.lastPick, b.w.lastPick),
		strings.Compare(string(a.w.id), string(b.w.id)),
	)
}

// compareBool orders false before true.
func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// whyOf snapshots what set the winner apart from the runner-up.
func whyOf(cands []candidate) why {
	w := why{best: cands[0].view(), n: len(cands), equal: 1}
	if len(cands) > 1 {
		w.next = cands[1].view()
	}
	for w.equal < len(cands) && equalRule(cands[w.equal], cands[0]) {
		w.equal++
	}
	return w
}

// String names the first rule key that set the winner apart from the runner-up, so logs say
// why this worker and not the next, and whether reputation decided.
func (w why) String() string {
	s := w.rule()
	if w.explored {
		s = fmt.Sprintf("exploration pick (1 in every few weighing reputation): least recently picked of %d eligible, reputation %.2f, %s",
			w.n, w.best.trust, w.best.loadText())
	}
	if w.distrusted > 0 {
		s += fmt.Sprintf("; %d excluded by reputation", w.distrusted)
	}
	if w.held > 0 {
		s += fmt.Sprintf("; %d on probation held to their share", w.held)
	}
	return s
}

// loadText spells a candidate's load and what it is made of.
func (b view) loadText() string {
	lat := time.Duration(b.latency).Round(time.Microsecond)
	return fmt.Sprintf("load %v (running %d x latency %v)", time.Duration(b.load).Round(time.Microsecond), b.running, lat)
}

// rule is the reason by the rule proper.
func (w why) rule() string {
	b, c, n := w.best, w.next, w.n
	load := b.loadText()
	if n == 1 {
		if w.trusted {
			return fmt.Sprintf("only eligible worker, reputation %.2f, %s", b.trust, load)
		}
		return "only eligible worker, " + load
	}
	switch {
	case b.failing:
		return fmt.Sprintf("every one of %d eligible failed recently; fewest failures (%.2f), %s", n, b.fails, load)
	case c.failing:
		return fmt.Sprintf("the others of %d eligible failed recently; %s", n, load)
	case b.weighed != c.weighed && b.load >= c.load:
		return fmt.Sprintf("higher reputation %.2f vs %.2f outweighs load: %s vs %v, among %d eligible",
			b.trust, c.trust, load, time.Duration(c.load).Round(time.Microsecond), n)
	case b.weighed != c.weighed:
		return fmt.Sprintf("lowest %s among %d eligible", load, n)
	case b.tier != c.tier:
		return fmt.Sprintf("tied %s, higher reputation %.2f vs %.2f among %d eligible", load, b.trust, c.trust, n)
	case b.latency != c.latency:
		return fmt.Sprintf("tied %s, lowest latency among %d eligible", load, n)
	case b.fails != c.fails:
		return fmt.Sprintf("tied %s, fewest recent failures (%.2f) among %d eligible", load, b.fails, n)
	case b.price != c.price:
		return fmt.Sprintf("tied %s, lowest price %d among %d eligible", load, b.price, n)
	}
	return fmt.Sprintf("round robin among %d equal of %d eligible, %s", w.equal, n, load)
}

// equalRule reports whether a and b tie on every key of the rule proper.
func equalRule(a, b candidate) bool {
	return a.failing == b.failing && a.weighed == b.weighed && a.tier == b.tier && a.latency == b.latency && a.fails == b.fails && a.offer.Price == b.offer.Price
}
