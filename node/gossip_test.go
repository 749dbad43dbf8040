package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/cocoon-mesh/cocoon/internal/syncbuf"
	"github.com/cocoon-mesh/cocoon/node/p2phost"
	"github.com/cocoon-mesh/cocoon/node/wire"
	"github.com/cocoon-mesh/cocoon/tee"
)

func TestCheckAdvert(t *testing.T) {
	now := time.UnixMilli(1_800_000_000_000)
	cfg := DefaultConfig()
	ro := &roster{cfg: &cfg, life: newLife(NewMockClock(now), "test")}
	key, _, _ := crypto.GenerateEd25519Key(nil)
	id, _ := peer.IDFromPrivateKey(key)
	other, _, _ := crypto.GenerateEd25519Key(nil)
	otherID, _ := peer.IDFromPrivateKey(other)
	mk := func(at time.Time) []byte {
		b, err := wire.SignAdvert(&wire.Advert{Worker: id, Time: at, MaxActive: 1, Coefficient: 1000,
			Offers: []wire.Offer{{Model: "m@1:abc"}}}, key)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if _, err := ro.check(mk(now), id); err != nil {
		t.Fatalf("good advert refused: %v", err)
	}
	if _, err := ro.check(mk(now), otherID); err == nil || !strings.Contains(err.Error(), "published by") {
		t.Fatalf("advert relayed as someone else's accepted: %v", err)
	}
	if _, err := ro.check(mk(now.Add(-2*cfg.AdvertMaxAge)), id); !errors.Is(err, wire.ErrStale) {
		t.Fatalf("stale advert: %v", err)
	}
	if _, err := ro.check(mk(now.Add(time.Hour)), id); !errors.Is(err, wire.ErrFuture) {
		t.Fatalf("future advert: %v", err)
	}
	forged := mk(now)
	forged[len(forged)-1] ^= 1
	if _, err := ro.check(forged, id); !errors.Is(err, wire.ErrBadSignature) {
		t.Fatalf("forged advert: %v", err)
	}
	if _, err := ro.check(make([]byte, wire.MaxAdvertSize+1), id); !errors.Is(err, wire.ErrFrameTooLarge) {
		t.Fatalf("oversized advert: %v", err)
	}
}

// manualClock is a test's time, moved by hand.
type manualClock struct {
	m interface {
		Add(time.Duration)
		Now() time.Time
	}
}

// newManualClock is a test clock at t and the node clock that reads it.
func newManualClock(t time.Time) (*manualClock, Clock) {
	m := NewMockClock(t)
	return &manualClock{m}, m
}

func (c *manualClock) now() time.Time { return c.m.Now() }

func (c *manualClock) advance(d time.Duration) { c.m.Add(d) }

// gossipNode is a node of role on a loopback host, with a hand-moved clock and its log in
// logs, not started: tests call its validator and admissions themselves.
func gossipNode(t testing.TB, role Role, tweak func(*Config)) (*Node, *manualClock, *syncbuf.Buffer) {
	t.Helper()
	key, _, _ := crypto.GenerateEd25519Key(nil)
	hc := p2phost.DefaultConfig()
	hc.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	h, err := p2phost.New(hc, key, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	cfg := LocalConfig()
	cfg.Role = role
	if tweak != nil {
		tweak(&cfg)
	}
	c, nc := newManualClock(time.Unix(1_800_000_000, 0))
	logs := &syncbuf.Buffer{}
	n, err := New(cfg, Deps{Host: h, Clock: nc, Logger: slog.New(slog.NewTextHandler(logs, nil)),
		TEE: tee.NewSimulated(nil), Verifier: tee.NewVerifier(tee.Policy{AllowSimulated: true}, nil)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n, c, logs
}

// advertMsg is a capacity message as pubsub hands it to the validator: published by the
// advert's worker, signed with key.
func advertMsg(t testing.TB, key crypto.PrivKey, at time.Time, addrs []ma.Multiaddr) *pubsub.Message {
	t.Helper()
	id, _ := peer.IDFromPrivateKey(key)
	b, err := wire.SignAdvert(&wire.Advert{Worker: id, Time: at, Addrs: addrs, MaxActive: 4, Coefficient: 1000,
		Healthy: true, Offers: []wire.Offer{{Model: "m@1:abc"}}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return &pubsub.Message{Message: &pb.Message{From: []byte(id), Data: b}}
}

// freshAdverts makes n adverts, each from a new identity.
func freshAdverts(t *testing.T, n int, at time.Time, addrs []ma.Multiaddr) []*pubsub.Message {
	ms := make([]*pubsub.Message, n)
	for i := range ms {
		key, _, _ := crypto.GenerateEd25519Key(nil)
		ms[i] = advertMsg(t, key, at, addrs)
	}
	return ms
}

// validateAll runs the validator on each message and counts the outcomes.
func validateAll(n *Node, ms []*pubsub.Message) map[pubsub.ValidationResult]int {
	got := map[pubsub.ValidationResult]int{}
	for _, m := range ms {
		got[n.workers.validate(context.Background(), "", m)]++
	}
	return got
}

// refusalLines counts the log lines saying adverts of new workers were ignored.
func refusalLines(logs *syncbuf.Buffer) int {
	return strings.Count(logs.String(), "adverts of new workers ignored")
}

// closedAddrs opens k loopback listeners that drop every connection, and counts them: what a
// node dials for adverts naming them.
func closedAddrs(t *testing.T, k int) (*atomic.Int64, []ma.Multiaddr) {
	t.Helper()
	var dials atomic.Int64
	var addrs []ma.Multiaddr
	for range k {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				dials.Add(1)
				c.Close()
			}
		}()
		addrs = append(addrs, ma.StringCast(fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", ln.Addr().(*net.TCPAddr).Port)))
	}
	return &dials, addrs
}

// pendingAdmissions is how many workers n is admitting.
func pendingAdmissions(n *Node) int {
	n.workers.admit.mu.Lock()
	defer n.workers.admit.mu.Unlock()
	return len(n.workers.admit.pending)
}

func TestTokenBucket(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	b := tokenBucket{rate: 4, burst: 3}
	for i := range 3 {
		if !b.take(t0) {
			t.Fatalf("take %d of a full bucket of 3 refused", i+1)
		}
	}
	if b.take(t0) || b.ready(t0) {
		t.Fatal("an empty bucket gave a token")
	}
	if !b.take(t0.Add(250*time.Millisecond)) || b.take(t0.Add(250*time.Millisecond)) {
		t.Fatal("a quarter second at 4/s must refill exactly one token")
	}
	if b.take(t0) {
		t.Fatal("a clock that went back refilled the bucket")
	}
	later := t0.Add(time.Hour)
	n := 0
	for b.take(later) {
		n++
	}
	if n != 3 {
		t.Fatalf("an hour refilled %d tokens, want the burst of 3", n)
	}
}

func TestQuietCount(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	var q quietCount
	if n, ok := q.note(t0, time.Second); !ok || n != 1 {
		t.Fatalf("first event: %d %v, want a line at once", n, ok)
	}
	for range 5 {
		if _, ok := q.note(t0.Add(100*time.Millisecond), time.Second); ok {
			t.Fatal("a line within the interval")
		}
	}
	if n, ok := q.note(t0.Add(time.Second), time.Second); !ok || n != 6 {
		t.Fatalf("after the interval: %d %v, want a line counting 6", n, ok)
	}
}

// Admissions queue each worker once (a later advert replaces the queued one), take a token
// only for workers to dial, and stop at maxPendingAdmissions.
func TestAdmissionsQueue(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	cfg := DefaultConfig()
	cfg.AdmitRate, cfg.AdmitBurst = 1, 2
	ad := newAdmissions(cfg)
	adv := func(seq uint64) *wire.Advert {
		key, _, _ := crypto.GenerateEd25519Key(nil)
		id, _ := peer.IDFromPrivateKey(key)
		return &wire.Advert{Worker: id, Seq: seq}
	}
	a, b, c := adv(1), adv(1), adv(1)
	for _, x := range []*wire.Advert{a, b} {
		if ok, _ := ad.offer(x, admitDial, t0); !ok {
			t.Fatal("a worker within the burst was refused")
		}
	}
	newer := *a
	newer.Seq = 2
	if ok, _ := ad.offer(&newer, admitDial, t0); !ok {
		t.Fatal("a queued worker's newer advert was refused")
	}
	if ok, why := ad.offer(c, admitDial, t0); ok || why != refusedRate {
		t.Fatalf("a third worker past the burst of 2: %v %v", ok, why)
	}
	if ok, _ := ad.offer(c, admitOverConn, t0); !ok {
		t.Fatal("a connected worker needs no token, but was refused")
	}
	got, _ := ad.next(context.Background(), admitDial)
	if got.Worker != a.Worker || got.Seq != 2 {
		t.Fatalf("next: %v seq %d, want the first worker with its newer advert", got.Worker, got.Seq)
	}
	if ad.finish(a.Worker, admitDial) != &newer || ad.has(a.Worker) || !ad.has(b.Worker) {
		t.Fatal("finish did not end the admission")
	}
	for i := range maxPendingAdmissions {
		if ok, _ := ad.offer(adv(1), admitOverConn, t0); !ok && i < maxPendingAdmissions-1 {
			t.Fatalf("connected worker %d refused below the cap", i)
		}
	}
	if ok, why := ad.offer(adv(1), admitOverConn, t0); ok || why != refusedPending {
		t.Fatalf("past maxPendingAdmissions: %v %v", ok, why)
	}
}

// A flood of adverts from fresh identities at a proxy: within the burst they are accepted,
// and each queued for one handshake that dials at most maxAdmitAddrs of its 16 addresses; the
// rest are ignored (not forwarded) with one log line. Failed handshakes leave neither
// attestation entries (once expired) nor addresses behind. A connected worker is admitted
// with the bucket empty, and a known worker's adverts always pass.
func TestProxyAdvertFloodIsBounded(t *testing.T) {
	p, clk, logs := gossipNode(t, RoleProxy, nil)
	p.workers.startAdmissions()
	dials, addrs := closedAddrs(t, wire.MaxAdvertAddrs)
	const flood = 1000
	ms := freshAdverts(t, flood, clk.now(), addrs)
	got := validateAll(p, ms)
	burst := p.cfg.AdmitBurst
	if got[pubsub.ValidationAccept] != burst || got[pubsub.ValidationIgnore] != flood-burst {
		t.Fatalf("validator on %d fresh identities, clock still: %v, want %d accepted and the rest ignored", flood, got, burst)
	}
	if n := refusalLines(logs); n != 1 {
		t.Fatalf("%d log lines for %d refusals within %s, want 1", n, flood-burst, refusalLogEvery)
	}
	deadline := time.Now().Add(20 * time.Second)
	for pendingAdmissions(p) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d admissions still pending", pendingAdmissions(p))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if d := dials.Load(); d == 0 || d > int64(burst*maxAdmitAddrs) {
		t.Fatalf("%d dials for %d admissions, want 1 to %d", d, burst, burst*maxAdmitAddrs)
	}
	withAddrs := 0
	for _, m := range ms {
		if len(p.h.Peerstore().Addrs(m.GetFrom())) > 0 {
			withAddrs++
		}
	}
	if withAddrs != 0 || p.workers.table.Len() != 0 {
		t.Fatalf("after failed admissions: %d flood identities have addresses, %d are in the table", withAddrs, p.workers.table.Len())
	}
	// The bucket is empty: a worker connected to the proxy still gets in, and once known its
	// adverts always pass.
	w := attestPeer(t, true)
	connect(t, w.h, p.h)
	wm := advertMsg(t, w.attest.priv, clk.now(), nil)
	if r := p.workers.validate(context.Background(), "", freshAdverts(t, 1, clk.now(), nil)[0]); r != pubsub.ValidationIgnore {
		t.Fatalf("an unknown worker with the bucket empty: %v, want ignored", r)
	}
	if r := p.workers.validate(context.Background(), "", wm); r != pubsub.ValidationAccept {
		t.Fatalf("a connected worker's advert with the bucket empty: %v", r)
	}
	p.workers.observe(wm.ValidatorData.(*wire.Advert))
	for !p.workers.known(w.h.ID()) || pendingAdmissions(p) > 0 || !p.workers.table.Has(w.h.ID()) {
		if time.Now().After(deadline) {
			t.Fatal("the connected worker was not admitted")
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.h.Network().ClosePeer(w.h.ID()) // known by the table alone now
	for range 3 {
		if r := p.workers.validate(context.Background(), "", advertMsg(t, w.attest.priv, clk.now(), nil)); r != pubsub.ValidationAccept {
			t.Fatalf("a known worker's advert: %v", r)
		}
	}

	_, counts := p.attest.summary()
	if counts["unreached"] != burst || counts["simulated (INSECURE)"] != 1 || len(counts) != 2 {
		t.Fatalf("attestation entries %v, want %d unreached and the connected worker's", counts, burst)
	}
	clk.advance(unreachableAttestTTL)
	p.attest.mu.Lock()
	p.attest.sweep(p.now(), p.cfg.AttestTTL)
	left := len(p.attest.peers)
	p.attest.mu.Unlock()
	if left != 1 {
		t.Fatalf("%d attestation entries after the failed ones expired, want the connected worker's", left)
	}

	// The bucket refills at AdmitRate: unreachableAttestTTL and one second since it emptied.
	clk.advance(time.Second)
	got = validateAll(p, freshAdverts(t, 100, clk.now(), nil))
	if want := int(p.cfg.AdmitRate * (unreachableAttestTTL + time.Second).Seconds()); got[pubsub.ValidationAccept] != want {
		t.Fatalf("3 s later: %v, want %d accepted", got, want)
	}
}

// A client lists new workers at AdmitRate too, and no more than MaxWorkers; known workers'
// adverts still pass, and the refusal is logged once and names the setting to change.
func TestClientTableIsBounded(t *testing.T) {
	c, clk, logs := gossipNode(t, RoleClient, func(cfg *Config) { cfg.MaxWorkers = 10 })
	keys := make([]crypto.PrivKey, 100)
	for i := range keys {
		keys[i], _, _ = crypto.GenerateEd25519Key(nil)
	}
	for _, key := range keys {
		m := advertMsg(t, key, clk.now(), nil)
		if c.workers.validate(context.Background(), "", m) == pubsub.ValidationAccept {
			c.workers.observe(m.ValidatorData.(*wire.Advert))
		}
	}
	if n := c.workers.table.Len(); n != 10 {
		t.Fatalf("client table has %d workers, want MaxWorkers=10", n)
	}
	if n := refusalLines(logs); n != 1 || !strings.Contains(logs.String(), "gossip.max_workers") {
		t.Fatalf("%d refusal lines, want 1 naming gossip.max_workers:\n%s", n, logs)
	}
	if r := c.workers.validate(context.Background(), "", advertMsg(t, keys[0], clk.now(), nil)); r != pubsub.ValidationAccept {
		t.Fatalf("a listed worker's next advert: %v", r)
	}
	if len(c.h.Peerstore().PeersWithAddrs()) > 1 {
		t.Fatal("a client put advertised addresses in its peerstore: it never dials workers")
	}
}

// FuzzValidateAdvert feeds the capacity validator arbitrary messages: it never panics, accepts
// only a valid advert of the peer that published it, and whatever it does not accept leaves
// the table, the admissions and the attestation cache as they were.
func FuzzValidateAdvert(f *testing.F) {
	p, clk, _ := gossipNode(f, RoleProxy, nil) // not started: what is queued stays queued
	key, _, _ := crypto.GenerateEd25519Key(nil)
	good := advertMsg(f, key, clk.now(), []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/1")})
	f.Add([]byte(good.GetFrom()), good.GetData())
	f.Add([]byte("not a peer id"), []byte{})
	f.Add([]byte(good.GetFrom()), good.GetData()[:len(good.GetData())/2])
	state := func() [3]int {
		p.attest.mu.Lock()
		defer p.attest.mu.Unlock()
		return [3]int{p.workers.table.Len(), pendingAdmissions(p), len(p.attest.peers)}
	}
	f.Fuzz(func(t *testing.T, from, data []byte) {
		before := state()
		m := &pubsub.Message{Message: &pb.Message{From: from, Data: data}}
		r := p.workers.validate(context.Background(), "", m)
		if r != pubsub.ValidationAccept {
			if after := state(); after != before {
				t.Fatalf("%v advert changed the state: %v -> %v", r, before, after)
			}
			return
		}
		a, ok := m.ValidatorData.(*wire.Advert)
		if !ok || string(a.Worker) != string(from) {
			t.Fatalf("accepted an advert for %v published by %x", a, from)
		}
	})
}
