package scaled

import (
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cocoon-mesh/cocoon/reputation"
	"github.com/cocoon-mesh/cocoon/routing"
)

// Epoch is virtual time zero.
var Epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Config is one run's parameters; DefaultConfig has the command's defaults.
type Config struct {
	Seed     uint64
	Workers  int
	Proxies  int
	Reach    int           // how many (distinct, random) proxies each worker advertises to
	Duration time.Duration // virtual time to run
	Rate     float64       // client requests a virtual second (Poisson), over all proxies
	Models   int           // each worker serves one model, each request asks for one, uniformly

	// Fractions of the workers (Sybils apart) of each behaviour; the rest are honest.
	Wrong, Stallers, Liars, Flash, Churn float64
	Sybils                               int // identities of the Sybil group on one platform

	FlashAfter         time.Duration // when the covert-flash workers turn wrong
	ChurnUp, ChurnDown time.Duration // mean online and offline spells of churning workers
	HonestFail         float64       // chance an honest attempt fails early anyway

	AuditRate      float64       // share of requests that are the proxy's canaries (audits)
	MaxActive      int           // advertised concurrent requests per worker
	MaxAttempts    int           // attempts per request (failover is a new Pick excluding the tried)
	Service        time.Duration // median of the workers' median service times
	ServiceSpread  float64       // sigma of log(median service time) across workers
	ConnectTimeout time.Duration // how long an attempt on a worker that left takes to fail
	AdvertEvery    time.Duration // capacity advert period (whole seconds)
	ExpireEvery    time.Duration // routing.Table.Expire period
	Samples        int           // honest workers sampled per proxy per minute for the p10 score
}

// DefaultConfig is the command's defaults: 100,000 workers, 20 proxies, 24 virtual hours.
func DefaultConfig() Config {
	return Config{Seed: 1, Workers: 100_000, Proxies: 20, Reach: 1, Duration: 24 * time.Hour, Rate: 4, Models: 10,
		Wrong: 0.02, Stallers: 0.02, Liars: 0.02, Flash: 0.01, Churn: 0.10, Sybils: 200,
		FlashAfter: time.Hour, ChurnUp: 2 * time.Hour, ChurnDown: 30 * time.Minute, HonestFail: 0.001,
		AuditRate: 0.02, MaxActive: 4, MaxAttempts: 3, Service: 2 * time.Second, ServiceSpread: 0.5,
		ConnectTimeout: 2 * time.Second, AdvertEvery: 30 * time.Second, ExpireEvery: 30 * time.Second, Samples: 100}
}

// Validate says what is wrong with cfg, naming the command's flag.
func (c Config) Validate() error {
	var errs []error
	bad := func(flag string, format string, args ...any) {
		errs = append(errs, fmt.Errorf("-%s: %s", flag, fmt.Sprintf(format, args...)))
	}
	positive := []struct {
		flag string
		v    float64
	}{{"workers", float64(c.Workers)}, {"proxies", float64(c.Proxies)}, {"reach", float64(c.Reach)},
		{"hours", c.Duration.Hours()}, {"rate", c.Rate}, {"models", float64(c.Models)},
		{"max-active", float64(c.MaxActive)}, {"attempts", float64(c.MaxAttempts)}, {"service", c.Service.Seconds()},
		{"churn-up", c.ChurnUp.Seconds()}, {"churn-down", c.ChurnDown.Seconds()},
		{"connect-timeout", c.ConnectTimeout.Seconds()}, {"expire-every", c.ExpireEvery.Seconds()},
		{"samples", float64(c.Samples)}}
	for _, p := range positive {
		if !(p.v > 0) {
			bad(p.flag, "must be positive, got %v", p.v)
		}
	}
	if c.Reach > c.Proxies {
		bad("reach", "%d is more than the %d proxies (-proxies)", c.Reach, c.Proxies)
	}
	if c.AdvertEvery < time.Second || c.AdvertEvery%time.Second != 0 {
		bad("advert-every", "must be a whole number of seconds, at least 1s, got %v", c.AdvertEvery)
	}
	if c.Sybils < 0 || c.Sybils >= c.Workers {
		bad("sybils", "must be at least 0 and less than -workers (%d), got %d", c.Workers, c.Sybils)
	}
	for _, f := range []struct {
		flag string
		v    float64
	}{{"wrong", c.Wrong}, {"stallers", c.Stallers}, {"liars", c.Liars}, {"flash", c.Flash}, {"churn", c.Churn},
		{"honest-fail", c.HonestFail}, {"audit", c.AuditRate}, {"service-spread", c.ServiceSpread}} {
		if !(f.v >= 0 && f.v <= 1) {
			bad(f.flag, "must be in [0, 1], got %v", f.v)
		}
	}
	sum := c.Wrong + c.Stallers + c.Liars + c.Flash + c.Churn
	if sum > 1 {
		bad("wrong", "-wrong, -stallers, -liars, -flash and -churn add up to %v, more than 1", sum)
	}
	if c.FlashAfter < 0 {
		bad("flash-after", "must not be negative, got %v", c.FlashAfter)
	}
	return errors.Join(errs...)
}

// event kinds.
const (
	evArrival = iota // the next client request (or canary)
	evDone           // an attempt ends
	evAdvert         // a proxy's second of adverts
	evExpire         // a proxy's Expire
	evMinute         // a minute bucket closes
	evChurn          // a churning worker leaves or comes back
)

// event is one thing due at a virtual time; seq breaks ties in scheduling order.
type event struct {
	at     time.Duration
	seq    uint64
	kind   uint8
	proxy  int32
	worker int32
	req    *request
	out    outcome
	epoch  uint32
	took   time.Duration
}

// queue is a binary min-heap of events by (at, seq).
type queue []event

func (q queue) less(i, j int) bool {
	return q[i].at < q[j].at || (q[i].at == q[j].at && q[i].seq < q[j].seq)
}

func (q *queue) push(e event) {
	*q = append(*q, e)
	h := *q
	for i := len(h) - 1; i > 0; {
		up := (i - 1) / 2
		if !h.less(i, up) {
			break
		}
		h[i], h[up] = h[up], h[i]
		i = up
	}
}

func (q *queue) pop() event {
	h := *q
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	h[last] = event{}
	h = h[:last]
	for i := 0; ; {
		l, r, least := 2*i+1, 2*i+2, i
		if l < len(h) && h.less(l, least) {
			least = l
		}
		if r < len(h) && h.less(r, least) {
			least = r
		}
		if least == i {
			break
		}
		h[i], h[least] = h[least], h[i]
		i = least
	}
	*q = h
	return top
}

// proxy is one proxy: its own real routing table and reputation book.
type proxy struct {
	table *routing.Table
	book  *reputation.Book
	trust func(peer.ID) float64 // book.Score at the model's current time
	// slots holds, for each second of the advert period, the workers advertising then.
	slots [][]int32
	// admitted: bound (Book.Bind) and in the table; recorded: evidence recorded (by worker index).
	admitted, recorded, triedSybil []bool
	honestSeen                     []int32 // right-answering workers with evidence here, for sampling
	sybilsIn                       int
}

// request is one client request (or canary) on its way through attempts.
type request struct {
	proxy int32
	model int
	audit bool
	tried []peer.ID
}

// Model is one run: the workers, the proxies, the event queue, the measurements.
type Model struct {
	cfg     Config
	rng     *rand.Rand // the dynamics
	mrng    *rand.Rand // measurement sampling only, so sampling never perturbs the dynamics
	now     time.Duration
	seq     uint64
	q       queue
	workers []worker
	index   map[peer.ID]int32
	proxies []proxy
	offers  [][]routing.Offer
	cur     bucket
	minute  int
	csv     *csvWriter
	sum     Summary
}

// at is virtual time d as the cores take it.
func (m *Model) at(d time.Duration) time.Time { return Epoch.Add(d) }

// schedule queues e.
func (m *Model) schedule(e event) {
	m.seq++
	e.seq = m.seq
	m.q.push(e)
}

// New draws a run's workers and proxies from cfg.Seed and queues its first events.
func New(cfg Config) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &Model{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0x5ca1ed)), mrng: rand.New(rand.NewPCG(cfg.Seed, 0x3ea5))}
	m.sum.WrongAt10, m.sum.WrongAt60, m.sum.HonestP10Last, m.sum.HonestP10Min = math.NaN(), math.NaN(), math.NaN(), math.Inf(1)
	m.workers = makeWorkers(cfg, m.rng)
	m.index = make(map[peer.ID]int32, len(m.workers))
	m.offers = offers(cfg.Models)
	slots := int(cfg.AdvertEvery / time.Second)
	m.proxies = make([]proxy, cfg.Proxies)
	for i := range m.proxies {
		p := &m.proxies[i]
		p.table = routing.New(routing.Config{})
		p.book = reputation.New(reputation.Config{})
		p.trust = func(id peer.ID) float64 { return p.book.Score(m.at(m.now), id) }
		p.slots = make([][]int32, slots)
		p.admitted, p.recorded = make([]bool, cfg.Workers), make([]bool, cfg.Workers)
		p.triedSybil = make([]bool, cfg.Workers)
	}
	for i := range m.workers {
		w := &m.workers[i]
		m.index[w.id] = int32(i)
		for _, p := range w.proxies {
			m.proxies[p].slots[w.phase] = append(m.proxies[p].slots[w.phase], int32(i))
		}
		if w.class == Churn {
			up := float64(cfg.ChurnUp) / float64(cfg.ChurnUp+cfg.ChurnDown)
			w.online = m.rng.Float64() < up
			w.online = !w.online // churnTick flips it back at time zero
			m.schedule(event{at: 0, kind: evChurn, worker: int32(i)})
		}
	}
	for i := range m.proxies {
		m.schedule(event{at: 0, kind: evAdvert, proxy: int32(i)})
		m.schedule(event{at: cfg.ExpireEvery, kind: evExpire, proxy: int32(i)})
	}
	m.schedule(event{at: m.exp(m.meanGap()), kind: evArrival})
	m.schedule(event{at: time.Minute, kind: evMinute})
	return m, nil
}

// meanGap is the mean time between arrivals.
func (m *Model) meanGap() time.Duration { return time.Duration(float64(time.Second) / m.cfg.Rate) }

// Run runs the model to Config.Duration, writing one CSV row a virtual minute to csv (nil:
// none), and returns the summary.
func (m *Model) Run(csv io.Writer) (Summary, error) {
	start := time.Now()
	if csv != nil {
		m.csv = newCSVWriter(csv)
		if err := m.csv.header(); err != nil {
			return Summary{}, err
		}
	}
	var ms runtime.MemStats
	for len(m.q) > 0 && m.q[0].at <= m.cfg.Duration {
		e := m.q.pop()
		m.now = e.at
		m.sum.Events++
		m.dispatch(e)
		if e.kind == evMinute {
			runtime.ReadMemStats(&ms)
			m.sum.PeakHeap = max(m.sum.PeakHeap, ms.HeapAlloc)
			m.sum.Sys = max(m.sum.Sys, ms.Sys)
		}
		if m.csv != nil && m.csv.err != nil {
			return Summary{}, m.csv.err
		}
	}
	m.finish()
	if m.csv != nil {
		if err := m.csv.flush(); err != nil {
			return Summary{}, err
		}
	}
	m.sum.Wall = time.Since(start)
	return m.sum, nil
}

// dispatch runs one event.
func (m *Model) dispatch(e event) {
	switch e.kind {
	case evArrival:
		m.arrive()
	case evDone:
		m.done(e)
	case evAdvert:
		m.advertTick(e.proxy)
	case evExpire:
		m.expireTick(e.proxy)
	case evMinute:
		m.closeMinute()
	case evChurn:
		m.churnTick(e.worker)
	}
}

// arrive is a new request at a random proxy: a canary (audit) with Config.AuditRate, else a
// client's.
func (m *Model) arrive() {
	m.schedule(event{at: m.now + m.exp(m.meanGap()), kind: evArrival})
	r := &request{proxy: int32(m.rng.IntN(m.cfg.Proxies)), model: m.rng.IntN(m.cfg.Models)}
	r.audit = m.rng.Float64() < m.cfg.AuditRate
	if r.audit {
		m.cur.audits++
	} else {
		m.cur.requests++
	}
	m.attempt(r)
}

// attempt picks a worker for r at its proxy, as a proxy does (routing.Table.Pick with the
// book's scores as Trust, excluding the workers already tried), sends it and schedules the end.
func (m *Model) attempt(r *request) {
	p := &m.proxies[r.proxy]
	m.sum.Picks++
	d, err := p.table.Pick(m.at(m.now), routing.Request{Model: modelName(r.model), Exclude: r.tried, Trust: p.trust})
	if err != nil {
		if !r.audit {
			m.cur.failed++
			m.cur.noWorker++
		}
		return
	}
	p.table.Begin(d.Worker)
	r.tried = append(r.tried, d.Worker)
	wi := m.index[d.Worker]
	w := &m.workers[wi]
	if !r.audit {
		m.cur.att[w.class]++
	}
	out, took := m.behave(w, m.now)
	m.schedule(event{at: m.now + took, kind: evDone, req: r, worker: wi, out: out, epoch: w.epoch, took: took})
}

// done is an attempt's end: the table learns it (End), the book records the evidence, and a
// failure before the answer started fails over to another worker, up to Config.MaxAttempts.
func (m *Model) done(e event) {
	r, w := e.req, &m.workers[e.worker]
	p := &m.proxies[r.proxy]
	out := e.out
	if w.epoch != e.epoch && out.served() {
		out = droppedMid // it left while answering
	}
	now := m.at(m.now)
	p.table.End(now, w.id, e.took, out.served())
	ev := evidence(out, r.audit)
	p.book.Record(now, w.id, ev)
	m.noteEvidence(p, e.worker)
	if ev.Kind == reputation.AuditFailed {
		m.cur.auditsFailed++
		if w.caught < 0 {
			w.caught = m.now
		}
		if w.class.answersRight() {
			m.sum.HonestAuditFailed++ // never, by construction: a sanity check
		}
	}
	switch {
	case out.served():
		m.served(r, w, out)
	case !out.started() && len(r.tried) < m.cfg.MaxAttempts:
		m.attempt(r)
	case !r.audit:
		m.cur.failed++
	}
}

// evidence is what the proxy records of an attempt's outcome. A wrong answer is caught only
// when the request was a canary; otherwise it is served and paid like any other.
func evidence(out outcome, audit bool) reputation.Event {
	paid := reputation.Event{Kind: reputation.Served, Paid: reputation.DefaultConfig().FullAnswer}
	switch out {
	case servedRight:
		if audit {
			return reputation.Event{Kind: reputation.AuditPassed}
		}
		return paid
	case servedWrong:
		if audit {
			return reputation.Event{Kind: reputation.AuditFailed}
		}
		return paid
	case lied:
		return reputation.Event{Kind: reputation.CapacityLie}
	case stalled:
		return reputation.Event{Kind: reputation.Stalled}
	case droppedMid:
		return reputation.Event{Kind: reputation.FailedMidStream}
	}
	return reputation.Event{Kind: reputation.FailedEarly}
}

// served counts a delivered answer.
func (m *Model) served(r *request, w *worker, out outcome) {
	if r.audit {
		return
	}
	m.cur.srv[w.class]++
	w.served++
	if out == servedRight {
		m.cur.servedRight++
		return
	}
	m.cur.servedWrong++
	if w.class == Flash && w.caught < 0 {
		w.flashWrong++
	}
}

// noteEvidence remembers that p holds evidence of worker wi, for the score samples.
func (m *Model) noteEvidence(p *proxy, wi int32) {
	if !p.recorded[wi] {
		p.recorded[wi] = true
		if m.workers[wi].class.answersRight() {
			p.honestSeen = append(p.honestSeen, wi)
		}
	}
}
