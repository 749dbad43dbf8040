package scaled

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cocoon-mesh/cocoon/routing"
)

// Class is a worker's behaviour.
type Class uint8

// The behaviours.
const (
	Honest  Class = iota // serves every request right (but for Config.HonestFail)
	Wrong                // serves every request with a wrong answer: fails every audit
	Staller              // stops sending mid-answer, every time
	Liar                 // advertises free slots, answers busy whenever routed
	Flash                // honest until Config.FlashAfter, then always wrong
	Churn                // honest, but leaves and comes back (Config.ChurnUp, ChurnDown)
	Sybil                // one of Config.Sybils identities on one platform, always wrong
	numClasses
)

var classNames = [numClasses]string{"honest", "wrong", "staller", "liar", "flash", "churn", "sybil"}

// String is the class's name, as the CSV columns and the summary write it.
func (c Class) String() string { return classNames[c] }

// answersRight reports whether the class's answers are right: the workers that must never be
// banned.
func (c Class) answersRight() bool { return c == Honest || c == Churn }

// worker is one synthetic worker.
type worker struct {
	id       peer.ID
	class    Class
	platform string
	model    int           // the one model it serves
	mean     time.Duration // its median service time
	phase    int           // its advert slot, in seconds into each Config.AdvertEvery
	proxies  []int32       // the proxies it advertises to
	online   bool
	epoch    uint32 // bumped on every leave, so answers in flight fail
	served   int    // client answers delivered
	// flash workers: wrong answers delivered to clients after the flip, before the first ban.
	flashWrong int
	caught     time.Duration // when it was first banned (AuditFailed) anywhere; -1 never
}

// outcome is what one attempt on a worker comes to.
type outcome uint8

const (
	servedRight outcome = iota
	servedWrong
	failedEarly // before the first token (connection refused, gone, honest mishap): retried
	lied        // answered busy after advertising free slots: retried
	stalled     // stopped mid-answer: not retried, the answer had started
	droppedMid  // the worker left mid-answer: not retried
)

// started reports whether the answer had started, so the proxy does not fail over.
func (o outcome) started() bool { return o == stalled || o == droppedMid }

// served reports whether the attempt delivered an answer.
func (o outcome) served() bool { return o == servedRight || o == servedWrong }

// makeWorkers draws the workers: classes by the configured fractions (shuffled), service
// times, models, platforms, advert phases and the proxies each advertises to. Sybils come
// last, all on one platform, advertising to every proxy.
func makeWorkers(cfg Config, rng *rand.Rand) []worker {
	n := cfg.Workers
	classes := make([]Class, 0, n)
	plain := n - cfg.Sybils
	for _, f := range []struct {
		c Class
		f float64
	}{{Wrong, cfg.Wrong}, {Staller, cfg.Stallers}, {Liar, cfg.Liars}, {Flash, cfg.Flash}, {Churn, cfg.Churn}} {
		for range int(math.Round(f.f * float64(plain))) {
			classes = append(classes, f.c)
		}
	}
	for len(classes) < plain {
		classes = append(classes, Honest)
	}
	classes = classes[:plain]
	rng.Shuffle(len(classes), func(i, j int) { classes[i], classes[j] = classes[j], classes[i] })
	slots := int(cfg.AdvertEvery / time.Second)
	ws := make([]worker, n)
	for i := range ws {
		w := &ws[i]
		w.id = peer.ID(fmt.Sprintf("w%07d", i))
		w.class = Sybil
		w.platform = "sybil-platform"
		if i < plain {
			w.class = classes[i]
			w.platform = fmt.Sprintf("pf-%07d", i)
		}
		w.model = rng.IntN(cfg.Models)
		w.mean = time.Duration(float64(cfg.Service) * math.Exp(cfg.ServiceSpread*rng.NormFloat64()))
		w.phase = rng.IntN(slots)
		w.online = true
		w.caught = -1
		w.proxies = pickProxies(cfg, rng, w.class == Sybil)
	}
	return ws
}

// pickProxies draws the Config.Reach distinct proxies a worker advertises to (every proxy for
// a Sybil: an attacker reaches as far as it can).
func pickProxies(cfg Config, rng *rand.Rand, all bool) []int32 {
	k := cfg.Reach
	if all {
		k = cfg.Proxies
	}
	out := make([]int32, 0, k)
	if k == cfg.Proxies {
		for p := range cfg.Proxies {
			out = append(out, int32(p))
		}
		return out
	}
	for len(out) < k {
		p := int32(rng.IntN(cfg.Proxies))
		dup := false
		for _, q := range out {
			dup = dup || q == p
		}
		if !dup {
			out = append(out, p)
		}
	}
	return out
}

// modelID is the full model identity of model m, as workers offer it; requests ask for its
// name only ("model-03"), as clients may.
func modelID(m int) string { return fmt.Sprintf("model-%02d@r1:sha256-%02x", m, m) }

// modelName is the name requests ask for.
func modelName(m int) string { return fmt.Sprintf("model-%02d", m) }

// offers is each model's offer list, shared by every advert (Upsert copies it).
func offers(models int) [][]routing.Offer {
	out := make([][]routing.Offer, models)
	for m := range out {
		out[m] = []routing.Offer{{Model: modelID(m), Price: 400}}
	}
	return out
}

// behave is what the attempt a proxy sends to w at now comes to, and how long it takes: the
// worker's behaviour, its own service time and the configured mishaps.
func (m *Model) behave(w *worker, now time.Duration) (outcome, time.Duration) {
	cfg := &m.cfg
	if !w.online {
		return failedEarly, cfg.ConnectTimeout
	}
	service := time.Duration(float64(w.mean) * math.Exp(0.3*m.rng.NormFloat64()))
	class := w.class
	if class == Flash && now >= cfg.FlashAfter {
		class = Wrong
	}
	switch class {
	case Wrong, Sybil:
		return servedWrong, service
	case Staller:
		return stalled, service / 2
	case Liar:
		return lied, 50 * time.Millisecond
	}
	if m.rng.Float64() < cfg.HonestFail {
		return failedEarly, 100 * time.Millisecond
	}
	return servedRight, service
}

// advertise is w's capacity advert reaching proxy p: admission first (reputation.Book.Bind,
// on every advert until admitted: a platform over its cap or banned keeps the identity out),
// then routing.Table.Upsert.
func (m *Model) advertise(p *proxy, wi int32) {
	w := &m.workers[wi]
	now := m.at(m.now)
	if !p.admitted[wi] {
		if w.class == Sybil && !p.triedSybil[wi] {
			p.triedSybil[wi] = true
			m.sum.SybilAttempted++
		}
		if err := p.book.Bind(now, w.id, w.platform); err != nil {
			return
		}
		p.admitted[wi] = true
		if w.class == Sybil {
			p.sybilsIn++
			m.sum.SybilAccepted++
			m.sum.SybilMaxPerProxy = max(m.sum.SybilMaxPerProxy, p.sybilsIn)
		}
	}
	p.table.Upsert(now, routing.WorkerInfo{ID: w.id, Offers: m.offers[w.model], MaxActive: m.cfg.MaxActive, Healthy: true})
}

// advertTick delivers, at proxy p, the adverts of the online workers whose phase is this
// second, and schedules the next second's.
func (m *Model) advertTick(pi int32) {
	p := &m.proxies[pi]
	slot := int(m.now/time.Second) % len(p.slots)
	for _, wi := range p.slots[slot] {
		if m.workers[wi].online {
			m.advertise(p, wi)
		}
	}
	m.schedule(event{at: m.now + time.Second, kind: evAdvert, proxy: pi})
}

// expireTick drops, at proxy p, the workers whose adverts stopped (routing.Table.Expire), and
// frees their places on their platforms (reputation.Book.Unbind).
func (m *Model) expireTick(pi int32) {
	p := &m.proxies[pi]
	for _, id := range p.table.Expire(m.at(m.now)) {
		wi := m.index[id]
		p.admitted[wi] = false
		if m.workers[wi].class == Sybil {
			p.sybilsIn--
		}
		p.book.Unbind(id)
	}
	m.schedule(event{at: m.now + m.cfg.ExpireEvery, kind: evExpire, proxy: pi})
}

// churnTick flips a churning worker between online and offline, each spell exponential with
// mean Config.ChurnUp or Config.ChurnDown.
func (m *Model) churnTick(wi int32) {
	w := &m.workers[wi]
	w.online = !w.online
	mean := m.cfg.ChurnUp
	if !w.online {
		w.epoch++
		mean = m.cfg.ChurnDown
	}
	m.schedule(event{at: m.now + m.exp(mean), kind: evChurn, worker: wi})
}

// exp is an exponential duration of the given mean, at least a microsecond.
func (m *Model) exp(mean time.Duration) time.Duration {
	return max(time.Duration(m.rng.ExpFloat64()*float64(mean)), time.Microsecond)
}
