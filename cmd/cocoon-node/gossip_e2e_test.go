package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/cocoon-mesh/cocoon/node"
	"github.com/cocoon-mesh/cocoon/node/wire"
)

// floodAdverts is how many fresh identities the attacker advertises.
const floodAdverts = 20000

// TestAdvertFloodStaysBounded runs a proxy, a worker and a client as processes, then floods the
// proxy's capacity topic from this test: one libp2p peer publishes validly signed adverts "from"
// floodAdverts fresh identities (pubsub lets a publisher sign with any key), each naming the 16
// addresses of listeners that count the connections made to them. The proxy must spend bounded
// memory, dials and attestation entries on them, forward only a bounded number to the client,
// keep serving, and still admit an honest worker that joins during the flood.
func TestAdvertFloodStaysBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 5 processes and floods one")
	}
	m := &mesh{t: t, dir: t.TempDir(), network: fmt.Sprintf("e2e-flood-%d", time.Now().UnixNano())}
	echo := start(t, "echo", "echo-backend", "--listen", "127.0.0.1:0")
	proxy := start(t, "proxy", m.nodeArgs("proxy", "proxy", "--admin", "127.0.0.1:0")...)
	boot := proxy.ready.Addrs[0]
	workerArgs := func(name string) []string {
		return m.nodeArgs(name, "worker", "--bootstrap", boot, "--backend", echo.url, "--model", "echo-test@v1:none=echo-test")
	}
	start(t, "worker1", workerArgs("worker1")...)
	m.client = start(t, "client", m.nodeArgs("client", "client", "--bootstrap", boot, "--api", "127.0.0.1:0")...)
	m.api = "http://" + m.client.ready.API + "/v1"
	m.waitFor("the client sees the worker", func() bool { return m.modelWorkers() == 1 })
	for range 20 {
		if code, b, _ := m.post("/chat/completions", `{"model":"echo-test","messages":[{"role":"user","content":"warm up"}]}`); code != 200 {
			t.Fatalf("warm-up: %d %s", code, b)
		}
	}
	time.Sleep(time.Second)
	idleRSS, _ := procMemory(t, proxy)
	idleRSS >>= 10 // kB

	dials, addrs := countingListeners(t, wire.MaxAdvertAddrs)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	topic := attacker(ctx, t, m.network, proxy)

	// Honest traffic runs all through the flood.
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if code, b, _ := m.post("/chat/completions", `{"model":"echo-test","messages":[{"role":"user","content":"during the flood"}]}`); code == 200 {
				ok.Add(1)
			} else {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, fmt.Sprintf("%d %s", code, b))
			}
		}
	})

	floodStart := time.Now()
	published := make(chan int, 1)
	wg.Go(func() { published <- flood(ctx, t, topic, floodAdverts, addrs) })
	time.Sleep(500 * time.Millisecond)
	worker2 := start(t, "worker2", workerArgs("worker2")...) // an honest worker joins mid-flood
	n := <-published
	floodTime := time.Since(floodStart)
	t.Logf("published %d adverts in %s", n, floodTime.Round(time.Millisecond))

	m.waitFor("the proxy admits the worker that joined during the flood", func() bool {
		return hasWorker(proxyStatus(t, proxy), worker2.ready.Peer)
	})
	time.Sleep(2 * time.Second) // let the proxy work through what it queued
	close(stop)
	wg.Wait()

	elapsed := time.Since(floodStart)
	st := proxyStatus(t, proxy)
	d := node.LocalConfig()
	// Each admission of an unknown worker takes a token; each dials at most maxAdmitAddrs.
	admissions := d.AdmitBurst + int(d.AdmitRate*elapsed.Seconds()) + 1
	const maxAdmitAddrs = 8
	rss, hwm := procMemory(t, proxy)
	rss, hwm = rss>>10, hwm>>10 // kB
	clientFlood := m.modelCount("flood@1:abc")
	t.Logf("proxy RSS idle %d kB, peak %d kB, now %d kB; attestations %d; workers %d; dials to advertised addresses %d; "+
		"client lists %d flood workers; honest requests ok %d failed %d; flood to measurement %s",
		idleRSS, hwm, rss, st.attestations(), len(st.Workers), dials.Load(), clientFlood, ok.Load(), failed.Load(), elapsed.Round(time.Millisecond))

	if n < floodAdverts/2 {
		t.Fatalf("only %d of %d adverts published: the flood did not happen", n, floodAdverts)
	}
	if f := failed.Load(); f != 0 || ok.Load() == 0 {
		t.Errorf("honest requests during the flood: %d ok, %d failed (first: %v)", ok.Load(), f, firstErr.Load())
	}
	if a := st.attestations(); a > admissions+8 {
		t.Errorf("proxy holds %d attestation entries after %d adverts, want at most %d (admission burst + rate x time)", a, n, admissions+8)
	}
	if len(st.Workers) != 2 {
		t.Errorf("proxy table has %d workers, want the 2 honest ones", len(st.Workers))
	}
	if got, limit := dials.Load(), int64(admissions*maxAdmitAddrs); got > limit {
		t.Errorf("proxy made %d connections to addresses named in adverts, want at most %d", got, limit)
	}
	if clientFlood > admissions {
		t.Errorf("client lists %d flood workers, want at most %d: the proxy forwarded the flood", clientFlood, admissions)
	}
	// Generous: an unbounded map of 20,000 entries grew the heap by ~175 MB.
	if growth := hwm - idleRSS; growth > 64<<10 {
		t.Errorf("proxy RSS grew by %d kB during the flood (idle %d kB), want under 64 MB", growth, idleRSS)
	}
}

// attacker starts a libp2p peer with gossipsub as nodes run it, joined to the network's
// capacity topic, connected to proxy, and returns the topic once the proxy is on it.
func attacker(ctx context.Context, t *testing.T, network string, proxy *proc) *pubsub.Topic {
	t.Helper()
	key, _, _ := crypto.GenerateEd25519Key(nil)
	return attackerOn(ctx, t, "/cocoon/"+network+"/capacity/1.0.0", key, proxy)
}

// attackerOn is attacker on topic name, with identity key.
func attackerOn(ctx context.Context, t *testing.T, name string, key crypto.PrivKey, proxy *proc) *pubsub.Topic {
	t.Helper()
	h, err := libp2p.New(libp2p.Identity(key), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	ps, err := pubsub.NewGossipSub(ctx, h,
		pubsub.WithFloodPublish(true),
		pubsub.WithMessageSigning(true),
		pubsub.WithStrictSignatureVerification(true),
		pubsub.WithMaxMessageSize(4*wire.MaxAdvertSize),
		pubsub.WithPeerOutboundQueueSize(floodAdverts), // send everything: drops here would prove nothing
	)
	if err != nil {
		t.Fatal(err)
	}
	topic, err := ps.Join(name)
	if err != nil {
		t.Fatal(err)
	}
	pi, err := peer.AddrInfoFromString(proxy.ready.Addrs[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Connect(ctx, *pi); err != nil {
		t.Fatal(err)
	}
	for !onTopic(topic, pi.ID) {
		if ctx.Err() != nil {
			t.Fatal("the proxy never joined " + name)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return topic
}

func onTopic(topic *pubsub.Topic, p peer.ID) bool {
	for _, q := range topic.ListPeers() {
		if q == p {
			return true
		}
	}
	return false
}

// flood publishes n adverts, each signed by a fresh identity and naming addrs, at a pace the
// proxy's validation queue takes (pubsub drops what overflows it), and returns how many it sent.
func flood(ctx context.Context, t *testing.T, topic *pubsub.Topic, n int, addrs []ma.Multiaddr) int {
	sent := 0
	for i := range n {
		key, _, _ := crypto.GenerateEd25519Key(nil)
		id, _ := peer.IDFromPrivateKey(key)
		b, err := wire.SignAdvert(&wire.Advert{Worker: id, Seq: 1, Time: time.Now(), Addrs: addrs, MaxActive: 16,
			Coefficient: wire.CoefficientOne, Healthy: true, Offers: []wire.Offer{{Model: "flood@1:abc"}}}, key)
		if err != nil {
			t.Error(err)
			return sent
		}
		if err := topic.Publish(ctx, b, pubsub.WithSecretKeyAndPeerId(key, id)); err != nil {
			t.Errorf("publish %d: %v", i, err)
			return sent
		}
		sent++
		if i%16 == 15 {
			time.Sleep(time.Millisecond)
		}
	}
	return sent
}

// countingListeners opens k loopback listeners that close every connection at once, as a port
// nobody serves would refuse it, and count them: the dials the adverts naming them drew.
func countingListeners(t *testing.T, k int) (*atomic.Int64, []ma.Multiaddr) {
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
		addrs = append(addrs, ma.StringCast("/ip4/127.0.0.1/tcp/"+strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)))
	}
	return &dials, addrs
}

// floodStatus is the part of a node's status this test reads. Attestations is the old shape
// (one entry per peer); AttestationCounts the summary by outcome.
type floodStatus struct {
	Workers []struct {
		Peer string `json:"peer"`
	} `json:"workers"`
	Attestations      map[string]string `json:"attestations"`
	AttestationCounts map[string]int    `json:"attestation_counts"`
}

// attestations is how many handshake outcomes the node holds.
func (s floodStatus) attestations() int {
	sum := 0
	for _, n := range s.AttestationCounts {
		sum += n
	}
	return max(sum, len(s.Attestations))
}

func hasWorker(st floodStatus, id string) bool {
	for _, w := range st.Workers {
		if w.Peer == id {
			return true
		}
	}
	return false
}

func proxyStatus(t *testing.T, p *proc) floodStatus {
	t.Helper()
	var st floodStatus
	resp, err := http.Get("http://" + p.ready.Admin + "/cocoon/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// modelCount is how many workers the client lists for model.
func (m *mesh) modelCount(model string) int {
	resp, err := http.Get(m.api + "/models")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var list struct {
		Data []struct {
			ID      string `json:"id"`
			Workers int    `json:"cocoon_workers"`
		} `json:"data"`
	}
	json.NewDecoder(resp.Body).Decode(&list)
	for _, d := range list.Data {
		if d.ID == model {
			return d.Workers
		}
	}
	return 0
}
