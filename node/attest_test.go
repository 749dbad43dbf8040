package node

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cocoon-mesh/cocoon/node/wire"
	"github.com/cocoon-mesh/cocoon/tee"
)

// The handshake runs once per peer, is reused for the TTL, refreshed in the background once
// three quarters of it have passed (the caller does not wait), and run anew when it expired.
func TestAttestationCacheAndRefresh(t *testing.T) {
	a, z := attestPeer(t, true), attestPeer(t, true)
	var handshakes atomic.Int32
	z.h.SetStreamHandler(AttestProtocol, func(s network.Stream) {
		handshakes.Add(1)
		z.attest.handle(s)
	})
	clk, nc := newManualClock(time.Unix(1_700_000_000, 0))
	a.clock, a.life.clock = nc, nc
	advance := clk.advance
	a.cfg.AttestTTL = time.Hour
	connect(t, a.h, z.h)
	ctx := context.Background()

	pa, err := a.attest.peer(ctx, z.h.ID())
	if err != nil || pa.err != nil {
		t.Fatalf("first handshake: %v %v", err, pa.err)
	}
	for range 5 {
		if again, _ := a.attest.peer(ctx, z.h.ID()); again != pa {
			t.Fatal("a fresh handshake was not reused")
		}
	}
	if n := handshakes.Load(); n != 1 {
		t.Fatalf("%d handshakes, want 1", n)
	}

	advance(50 * time.Minute) // past three quarters: served from cache, refreshed behind
	if got, _ := a.attest.peer(ctx, z.h.ID()); got != pa {
		t.Fatal("a request waited for the refresh")
	}
	a.life.wg.Wait()
	if n := handshakes.Load(); n != 2 {
		t.Fatalf("%d handshakes after the refresh, want 2", n)
	}
	refreshed := a.attest.cached(z.h.ID())
	if refreshed == nil || refreshed == pa || refreshed.err != nil {
		t.Fatalf("refreshed entry: %+v", refreshed)
	}

	advance(2 * time.Hour) // expired: fetched again, synchronously
	if got, _ := a.attest.peer(ctx, z.h.ID()); got == refreshed || got.err != nil {
		t.Fatal("an expired handshake was reused")
	}
	if n := handshakes.Load(); n != 3 {
		t.Fatalf("%d handshakes after expiry, want 3", n)
	}

	// A closed connection forgets the peer's handshake.
	a.attest.start()
	a.h.Network().ClosePeer(z.h.ID())
	deadline := time.Now().Add(5 * time.Second)
	for a.attest.cached(z.h.ID()) != nil {
		if time.Now().After(deadline) {
			t.Fatal("the handshake outlived the connection")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The handshake cache stays under Config.MaxAttestations: handshakes that could not run and
// refusals make room for new ones, trusted and distrusted entries never do (past the cap a
// handshake runs uncached, with the same outcome), and entries leave once they expire, with
// no disconnect needed.
func TestAttestationCacheIsBounded(t *testing.T) {
	a := attestPeer(t, true)
	clk, nc := newManualClock(time.Unix(1_700_000_000, 0))
	a.clock, a.life.clock = nc, nc
	a.cfg.MaxAttestations = 4
	size := func() int { a.attest.mu.Lock(); defer a.attest.mu.Unlock(); return len(a.attest.peers) }
	ctx := context.Background()
	attested := func() *Node {
		z := attestPeer(t, true)
		connect(t, a.h, z.h)
		if pa, err := a.attest.peer(ctx, z.h.ID()); err != nil || pa.err != nil {
			t.Fatalf("honest handshake: %v %v", err, pa.err)
		}
		return z
	}
	z1, z2 := attested(), attested()

	liar, other := attestPeer(t, true), attestPeer(t, true)
	liar.h.SetStreamHandler(AttestProtocol, other.attest.handle) // a hello binding another key
	connect(t, a.h, liar.h)
	if pa, _ := a.attest.peer(ctx, liar.h.ID()); !pa.refused() || pa.hello != nil || pa.key != nil {
		t.Fatalf("impostor's handshake: refused %v, hello kept %v", pa.refused(), pa.hello != nil)
	}
	for i := range 20 { // peers with no address: their handshakes cannot run
		key, _, _ := crypto.GenerateEd25519Key(nil)
		id, _ := peer.IDFromPrivateKey(key)
		if pa, _ := a.attest.peer(ctx, id); !pa.unreached {
			t.Fatalf("unreachable peer %d: %v", i, pa.err)
		}
		if n := size(); n > 4 {
			t.Fatalf("%d entries after %d unreachable peers, cap 4", n, i+1)
		}
	}
	for _, z := range []*Node{z1, z2} {
		if a.attest.cached(z.h.ID()) == nil {
			t.Fatal("a trusted entry was evicted")
		}
	}
	a.attest.distrust(liar.h.ID(), errors.New("bad receipt"))
	z3 := attested() // takes the place of the last unreachable peer
	if n := size(); n != 4 || a.attest.cached(z3.h.ID()) == nil || !a.attest.cached(liar.h.ID()).distrusted {
		t.Fatalf("%d entries; want z1-z3 and the distrusted one", n)
	}
	z4 := attested() // nothing left to evict
	if n := size(); n != 4 || a.attest.cached(z4.h.ID()) != nil {
		t.Fatalf("%d entries, z4 cached %v: a full cache of trusted entries must run z4 uncached", n, a.attest.cached(z4.h.ID()) != nil)
	}

	sweep := func() int {
		a.attest.mu.Lock()
		a.attest.sweep(a.now(), a.cfg.AttestTTL)
		a.attest.mu.Unlock()
		return size()
	}
	clk.advance(failedAttestTTL)
	if n := sweep(); n != 3 {
		t.Fatalf("%d entries once the distrust expired, want the 3 trusted", n)
	}
	clk.advance(a.cfg.AttestTTL)
	if n := sweep(); n != 0 {
		t.Fatalf("%d entries once every handshake expired", n)
	}
}

// Status lists at most maxStatusAttestations handshakes, trusted ones first, and counts them
// all by outcome.
func TestStatusSummarisesAttestations(t *testing.T) {
	a, z := attestPeer(t, true), attestPeer(t, true)
	connect(t, a.h, z.h)
	ctx := context.Background()
	a.attest.peer(ctx, z.h.ID())
	const unreachable = 100
	for range unreachable {
		key, _, _ := crypto.GenerateEd25519Key(nil)
		id, _ := peer.IDFromPrivateKey(key)
		a.attest.peer(ctx, id)
	}
	st := a.Status()
	if len(st.Attestations) != maxStatusAttestations || st.Attestations[z.h.ID().String()] != "simulated (INSECURE)" {
		t.Fatalf("status lists %d attestations (want %d), the attested peer as %q", len(st.Attestations), maxStatusAttestations, st.Attestations[z.h.ID().String()])
	}
	if c := st.AttestationCounts; c["unreached"] != unreachable || c["simulated (INSECURE)"] != 1 || len(c) != 2 {
		t.Fatalf("attestation counts %v", c)
	}
}

// A client checks the worker a route names: the key must be the worker's, the hello must bind
// that key, and a worker without evidence gets prompts only where unattested workers are allowed.
func TestCheckRoute(t *testing.T) {
	c, w := attestPeer(t, true), attestPeer(t, true)
	c.client = &clientState{routes: routeCache{verified: map[[32]byte]routeEntry{}, sessions: map[string]*tee.Session{},
		candidates: map[candidateKey][]candidate{}}}
	good := wire.Route{Worker: w.h.ID(), Key: w.attest.key, Hello: w.attest.hello}
	s, att, err := c.attest.checkRoute(&c.client.routes, &good)
	if err != nil || s == nil || att.Claims.Kind != tee.KindSimulated {
		t.Fatalf("honest route: %v", err)
	}
	if s2, _, _ := c.attest.checkRoute(&c.client.routes, &good); s2 != s {
		t.Fatal("a second route to the same worker set up a new session")
	}

	other := attestPeer(t, true)
	for name, r := range map[string]wire.Route{
		"someone else's key":         {Worker: w.h.ID(), Key: other.attest.key, Hello: w.attest.hello},
		"someone else's hello":       {Worker: w.h.ID(), Key: w.attest.key, Hello: other.attest.hello},
		"garbage hello":              {Worker: w.h.ID(), Key: w.attest.key, Hello: []byte("junk")},
		"another worker, same hello": {Worker: other.h.ID(), Key: other.attest.key, Hello: w.attest.hello},
	} {
		if _, _, err := c.attest.checkRoute(&c.client.routes, &r); err == nil || asWireError(err).Code != wire.CodeAttestation {
			t.Errorf("%s: %v", name, err)
		}
	}

	bare, err := newAttester(attestEnv{}, other.attest.priv, nil, other.attest.verifier) // outside a TEE
	if err != nil {
		t.Fatal(err)
	}
	unattested := wire.Route{Worker: other.h.ID(), Key: other.attest.key, Hello: bare.hello}
	if _, _, err := c.attest.checkRoute(&c.client.routes, &unattested); err == nil {
		t.Error("an unattested worker was accepted by default")
	}
	c.cfg.AllowUnattested = true
	c.client.routes.verified = map[[32]byte]routeEntry{}
	if s, _, err := c.attest.checkRoute(&c.client.routes, &unattested); err != nil || s != nil {
		t.Errorf("unattested worker where allowed: session %v, %v (want plaintext, no error)", s, err)
	}
}
