package node

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/cocoon-mesh/cocoon/node/wire"
)

// Anyone can sign adverts with fresh keys, as many as it likes, so what a node does for an
// advert of a worker it does not know yet is bounded: a token bucket (Config.AdmitRate and
// AdmitBurst) paces them, a proxy attests them with a fixed pool of goroutines from bounded
// queues, and each advert's addresses reach the peerstore only while its worker is dialled.
const (
	// admitDialers attest workers heard of only through gossip: that dials the addresses their
	// adverts name. admitConnected attest workers already connected to us (a worker sends its
	// advert straight to a proxy it connects to) over that connection; they take no token.
	admitDialers   = 8
	admitConnected = 4
	// maxPendingAdmissions bounds each kind's queue (with the admissions running). Past it,
	// adverts of unknown workers are ignored: a queue that long means the handshakes stall.
	maxPendingAdmissions = 256
	// maxAdmitAddrs bounds the addresses of one advert that are dialled, for admitAddrTTL: a
	// worker names its listen addresses, rarely more than a few.
	maxAdmitAddrs = 8
	admitAddrTTL  = 30 * time.Second
	// refusalLogEvery spaces the log lines that count refusals, so a flood logs a few lines.
	refusalLogEvery = 10 * time.Second
)

// admitKind says how a worker being admitted is reached.
type admitKind int

const (
	admitDial     admitKind = iota // known from gossip only: dial the advert's addresses
	admitOverConn                  // already connected
)

// refusal is why an advert of an unknown worker was not taken in.
type refusal int

const (
	refusedRate    refusal = iota // over Config.AdmitRate
	refusedPending                // the admission queue is full
	refusedTable                  // the worker table is full (Config.MaxWorkers)
	rejectedAdvert                // not a refusal: an invalid advert, counted for the log alike
	refusals
)

// tokenBucket paces events: up to burst at once, rate a second on average. Pure: the caller
// passes the time and serialises calls.
type tokenBucket struct {
	rate, burst float64
	tokens      float64
	last        time.Time // zero: full
}

func (b *tokenBucket) refill(now time.Time) {
	switch {
	case b.last.IsZero():
		b.tokens = b.burst
	case now.After(b.last):
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	default:
		return // a clock that went back refills nothing
	}
	b.last = now
}

// ready reports whether take would succeed now.
func (b *tokenBucket) ready(now time.Time) bool {
	b.refill(now)
	return b.tokens >= 1
}

// take uses a token if there is one.
func (b *tokenBucket) take(now time.Time) bool {
	if !b.ready(now) {
		return false
	}
	b.tokens--
	return true
}

// quietCount counts events and says when to log them: the first at once, then at most one
// line per interval with the count since the last. The caller serialises calls.
type quietCount struct {
	last time.Time
	n    int
}

// note counts one event; when a line is due it returns the count to log and resets it.
func (q *quietCount) note(now time.Time, every time.Duration) (int, bool) {
	q.n++
	if !q.last.IsZero() && now.Sub(q.last) < every {
		return 0, false
	}
	n := q.n
	q.last, q.n = now, 0
	return n, true
}

// admissions are the workers a node is taking in from adverts.
type admissions struct {
	mu      sync.Mutex
	bucket  tokenBucket
	pending map[peer.ID]*wire.Advert // queued or being attested: each worker's latest advert
	queues  [2]admitQueue            // by admitKind
	refused [refusals]quietCount
}

// admitQueue is one kind's workers waiting for a handshake, oldest first.
type admitQueue struct {
	ids   []peer.ID
	count int           // queued and running
	ready chan struct{} // one value per id queued
}

func newAdmissions(cfg Config) *admissions {
	ad := &admissions{bucket: tokenBucket{rate: cfg.AdmitRate, burst: float64(cfg.AdmitBurst)},
		pending: make(map[peer.ID]*wire.Advert)}
	for i := range ad.queues {
		ad.queues[i].ready = make(chan struct{}, maxPendingAdmissions)
	}
	return ad
}

// has reports whether p is being admitted.
func (ad *admissions) has(p peer.ID) bool {
	ad.mu.Lock()
	defer ad.mu.Unlock()
	return ad.pending[p] != nil
}

// room reports whether a worker only heard of through gossip could be admitted now (a proxy
// queues it; queued false: a client just lists it), without using a token.
func (ad *admissions) room(now time.Time, queued bool) (bool, refusal) {
	ad.mu.Lock()
	defer ad.mu.Unlock()
	switch {
	case queued && ad.queues[admitDial].count >= maxPendingAdmissions:
		return false, refusedPending
	case !ad.bucket.ready(now):
		return false, refusedRate
	}
	return true, 0
}

// take uses a token for a worker a client lists.
func (ad *admissions) take(now time.Time) bool {
	ad.mu.Lock()
	defer ad.mu.Unlock()
	return ad.bucket.take(now)
}

// offer queues a's worker for its handshake, or refreshes the advert of one queued already.
// A worker to dial takes a token; one connected to us does not.
func (ad *admissions) offer(a *wire.Advert, kind admitKind, now time.Time) (bool, refusal) {
	ad.mu.Lock()
	defer ad.mu.Unlock()
	if ad.pending[a.Worker] != nil {
		ad.pending[a.Worker] = a
		return true, 0
	}
	q := &ad.queues[kind]
	if q.count >= maxPendingAdmissions {
		return false, refusedPending
	}
	if kind == admitDial && !ad.bucket.take(now) {
		return false, refusedRate
	}
	ad.pending[a.Worker] = a
	q.count++
	q.ids = append(q.ids, a.Worker)
	q.ready <- struct{}{} // never blocks: at most maxPendingAdmissions are queued
	return true, 0
}

// next waits for the oldest worker of kind queued and returns it with its latest advert.
func (ad *admissions) next(ctx context.Context, kind admitKind) (*wire.Advert, bool) {
	q := &ad.queues[kind]
	select {
	case <-ctx.Done():
		return nil, false
	case <-q.ready:
	}
	ad.mu.Lock()
	defer ad.mu.Unlock()
	p := q.ids[0]
	q.ids = slices.Delete(q.ids, 0, 1)
	return ad.pending[p], true
}

// finish ends p's admission and returns its latest advert.
func (ad *admissions) finish(p peer.ID, kind admitKind) *wire.Advert {
	ad.mu.Lock()
	defer ad.mu.Unlock()
	a := ad.pending[p]
	delete(ad.pending, p)
	ad.queues[kind].count--
	return a
}

// note counts a refusal (or a rejected advert); see quietCount.
func (ad *admissions) note(why refusal, now time.Time) (int, bool) {
	ad.mu.Lock()
	defer ad.mu.Unlock()
	return ad.refused[why].note(now, refusalLogEvery)
}

// startAdmissions starts a proxy's pools of handshakes with workers to admit.
func (ro *roster) startAdmissions() {
	for range admitDialers {
		ro.life.Loop(func(ctx context.Context) { ro.admitLoop(ctx, admitDial) })
	}
	for range admitConnected {
		ro.life.Loop(func(ctx context.Context) { ro.admitLoop(ctx, admitOverConn) })
	}
}

func (ro *roster) admitLoop(ctx context.Context, kind admitKind) {
	for {
		a, ok := ro.admit.next(ctx, kind)
		if !ok {
			return
		}
		ro.admitOne(a, kind)
	}
}

// admitOne attests a worker and, if it passes, puts its latest advert in the table. The
// advert's addresses are dialled only now, and forgotten if that fails.
func (ro *roster) admitOne(a *wire.Advert, kind admitKind) {
	p := a.Worker
	dial := kind == admitDial && !ro.connected(p)
	if dial {
		ro.h.Peerstore().AddAddrs(p, admitAddrs(a.Addrs), admitAddrTTL)
	}
	pa, err := ro.attest.peer(ro.life.ctx, p)
	a = ro.admit.finish(p, kind)
	switch {
	case ro.life.ctx.Err() != nil:
	case err == nil && pa.trusted(ro.cfg.AllowUnattested) && !ro.mismatch.has(p, ro.now()):
		if !ro.bind(p, &pa.att.Claims) {
			return
		}
		ro.refused.forget(p)
		ro.upsert(a)
	case dial && !ro.connected(p):
		ro.h.Peerstore().ClearAddrs(p)
	}
	if err == nil && pa.err != nil && !pa.unreached && !pa.trusted(ro.cfg.AllowUnattested) {
		ro.refuseWorker(p, pa.err)
	}
}

// refuseWorker says, once per worker and reason, why a worker is kept out of the table.
func (ro *roster) refuseWorker(p peer.ID, err error) {
	reason, fix := attestRefusal(err, RoleProxy)
	if ro.refused.note(ro.now(), p, reason, fix) {
		ro.log.Warn("worker refused", "worker", p.String(), "reason", reason, "fix", fix)
	}
}

// admitAddrs is the start of an advert's addresses, without repeats.
func admitAddrs(addrs []ma.Multiaddr) []ma.Multiaddr {
	out := make([]ma.Multiaddr, 0, min(len(addrs), maxAdmitAddrs))
	for _, m := range addrs {
		if len(out) == maxAdmitAddrs {
			break
		}
		if !slices.ContainsFunc(out, m.Equal) {
			out = append(out, m)
		}
	}
	return out
}

func (ro *roster) connected(p peer.ID) bool {
	return ro.h.Network().Connectedness(p) == network.Connected
}

// known reports whether adverts published by p pass without a token: its own node's,
// a worker in the table, and at a proxy one being admitted or connected to it.
func (ro *roster) known(p peer.ID) bool {
	if p == ro.h.ID() {
		return true
	}
	ro.mu.Lock()
	in := ro.table.Has(p)
	ro.mu.Unlock()
	if in || ro.cfg.Role != RoleProxy {
		return in
	}
	return ro.admit.has(p) || ro.connected(p)
}

// mayAdmit reports whether an advert of an unknown worker could be taken in now: checked
// before its signature, so a flood beyond the rate costs no more than pubsub's own check.
func (ro *roster) mayAdmit() bool {
	ok, why := ro.tableRoom()
	if ok {
		ok, why = ro.admit.room(ro.now(), ro.cfg.Role == RoleProxy)
	}
	if !ok {
		ro.refuse(why)
	}
	return ok
}

// admitNew takes in a valid advert of a worker this node did not know, and reports whether
// the advert may be forwarded: a proxy queues the worker's handshake, a client lists it
// (observe does that once the validator accepted it).
func (ro *roster) admitNew(a *wire.Advert) bool {
	ok, why := ro.tableRoom()
	switch {
	case !ok:
	case ro.cfg.Role == RoleProxy:
		ok, why = ro.admit.offer(a, admitDial, ro.now())
	default:
		ok, why = ro.admit.take(ro.now()), refusedRate
	}
	if !ok {
		ro.refuse(why)
	}
	return ok
}

// tableRoom reports whether the worker table has room for one more.
func (ro *roster) tableRoom() (bool, refusal) {
	ro.mu.Lock()
	defer ro.mu.Unlock()
	return ro.table.Len() < ro.cfg.MaxWorkers, refusedTable
}

// refuse logs refusals of unknown workers' adverts, a line per kind every refusalLogEvery.
func (ro *roster) refuse(why refusal) {
	count, ok := ro.admit.note(why, ro.now())
	if !ok {
		return
	}
	var reason, fix string
	switch why {
	case refusedRate:
		reason = fmt.Sprintf("more new workers than %g a second (burst %d)", ro.cfg.AdmitRate, ro.cfg.AdmitBurst)
		fix = "raise gossip.admit_rate or gossip.admit_burst if these workers are real"
	case refusedPending:
		reason = fmt.Sprintf("%d attestation handshakes already queued", maxPendingAdmissions)
		fix = "none: workers' handshakes are slow or failing; they are retried on their next advert"
	default:
		reason = fmt.Sprintf("the worker table is full (%d workers)", ro.cfg.MaxWorkers)
		fix = "raise gossip.max_workers if the network has that many workers"
	}
	ro.log.Warn("adverts of new workers ignored", "count", count, "reason", reason, "fix", fix)
}
