package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cocoon-mesh/cocoon/node"
	"github.com/cocoon-mesh/cocoon/node/localnet"
	"github.com/cocoon-mesh/cocoon/node/wire"
)

func startNet(t *testing.T, o localnet.Options) *localnet.Net {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nw, err := localnet.Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nw.Close() })
	return nw
}

// rawPeer is a bare libp2p host that speaks the inference protocol by hand.
func rawPeer(t *testing.T, to *node.Node) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	if err := h.Connect(context.Background(), peer.AddrInfo{ID: to.ID(), Addrs: to.Host().Addrs()}); err != nil {
		t.Fatal(err)
	}
	return h
}

// exchange sends frames on a new inference stream and returns the first frame of the answer.
func exchange(t *testing.T, h host.Host, to peer.ID, frames ...[]byte) (wire.FrameType, []byte) {
	t.Helper()
	s, err := h.NewStream(context.Background(), to, node.InferProtocol)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Write in the background: a node may answer (and stop reading) before all is sent.
	go func() {
		for _, f := range frames {
			if _, err := s.Write(f); err != nil {
				return
			}
		}
	}()
	_ = s.SetReadDeadline(time.Now().Add(10 * time.Second))
	typ, p, err := wire.NewReader(s, 1<<20).ReadFrame()
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	return typ, p
}

func frame(t wire.FrameType, p []byte) []byte {
	var b strings.Builder
	w := wire.NewWriter(&b)
	_ = w.WriteFrame(t, p)
	_ = w.Flush()
	return []byte(b.String())
}

func header(h wire.Header) []byte { return frame(wire.FrameHeader, wire.AppendHeader(nil, &h)) }

// A peer with no payment channel gets payment_required from a proxy and from a worker, and
// changes nothing.
func TestStrangerWithoutChannelMustPay(t *testing.T) {
	nw := startNet(t, localnet.Options{Proxies: 1, Workers: 1})
	good := wire.Header{ID: "t", Model: localnet.EchoModelID, Endpoint: wire.Chat, Timeout: 5 * time.Second}
	body := frame(wire.FrameBody, []byte(`{"model":"echo-test","messages":[{"role":"user","content":"free?"}]}`))
	for _, target := range []*node.Node{nw.Proxies[0], nw.Workers[0]} {
		before := len(target.Channels())
		typ, p := exchange(t, rawPeer(t, target), target.ID(), header(good), body)
		e, err := wire.DecodeError(p)
		if typ != wire.FrameError || err != nil || e.Code != wire.CodePayment {
			t.Errorf("%s: got %s %v %v, want payment_required", target.Config().Role, typ, e, err)
		}
		if after := len(target.Channels()); after != before {
			t.Errorf("%s: %d channels, then %d", target.Config().Role, before, after)
		}
	}
}

// Protocol-level checks, with payments off so they are reached by a peer with no channel.
func TestBadProtocolInputGetsClearErrors(t *testing.T) {
	nw := startNet(t, localnet.Options{Proxies: 1, Workers: 1, NoPayments: true})
	proxy, worker := nw.Proxies[0], nw.Workers[0]
	good := wire.Header{ID: "t", Model: "echo-test", Endpoint: wire.Chat, Timeout: 5 * time.Second}
	body := frame(wire.FrameBody, []byte(`{"model":"echo-test","messages":[{"role":"user","content":"hi"}]}`))
	limit := proxy.Config().MaxBodyBytes
	tooMany := good
	tooMany.MaxTokens = proxy.Config().MaxTokens + 1
	unknown := good
	unknown.Model = "no-such-model"

	for _, target := range []*node.Node{proxy, worker} {
		h := rawPeer(t, target)
		for _, c := range []struct {
			name   string
			frames [][]byte
			code   wire.Code
		}{
			{"garbage header", [][]byte{frame(wire.FrameHeader, []byte{0xff, 0xff, 0xff}), body}, wire.CodeBadRequest},
			{"body first", [][]byte{body}, wire.CodeBadRequest},
			{"oversized body", [][]byte{header(good), frame(wire.FrameBody, make([]byte, limit+1))}, wire.CodeTooLarge},
			{"excessive max_tokens", [][]byte{header(tooMany), body}, wire.CodeTooLarge},
			{"unknown model", [][]byte{header(unknown), body}, wire.CodeUnknownModel},
			{"unknown frame type", [][]byte{frame(9, []byte("x"))}, wire.CodeBadRequest},
		} {
			typ, p := exchange(t, h, target.ID(), c.frames...)
			if typ != wire.FrameError {
				t.Errorf("%s to %s: got a %s frame, want an error", c.name, target.Config().Role, typ)
				continue
			}
			e, err := wire.DecodeError(p)
			if err != nil || e.Code != c.code || e.Message == "" {
				t.Errorf("%s to %s: got %v %v, want code %s", c.name, target.Config().Role, e, err, c.code)
			}
		}
	}
	// Nothing above changed any state: the mesh still serves, and the worker holds no request.
	resp := post(t, nw.ClientURL()+"/chat/completions", "", `{"model":"echo-test","messages":[{"role":"user","content":"still fine"}]}`)
	if resp.status != 200 || !strings.Contains(resp.body, "still fine") {
		t.Fatalf("mesh broken after bad input: %+v", resp)
	}
	// The worker ends its handler just after the final goes out, as the answer travels on.
	eventually(t, 5*time.Second, func() bool { return worker.Status().Active == 0 },
		func() string { return fmt.Sprintf("worker still counts %d active requests", worker.Status().Active) })
}

type result struct {
	status int
	body   string
	header http.Header
}

// post sends a JSON body with an optional bearer key and returns the answer.
func post(t *testing.T, url, key, body string) result { return call(t, "POST", url, key, body) }

// call sends a request, with a JSON body (always so labelled for a POST) and an optional
// bearer key, and returns the answer.
func call(t *testing.T, method, url, key, body string) result {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" || method == "POST" {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return result{resp.StatusCode, string(b), resp.Header}
}

func TestAPIKeyAndTimeouts(t *testing.T) {
	nw := startNet(t, localnet.Options{Proxies: 1, Workers: 1, EchoTokenDelay: 100 * time.Millisecond, Tune: func(c *node.Config) {
		c.APIKey = "sesame"
		c.RequestTimeout = 400 * time.Millisecond
	}})
	chat := `{"model":"echo-test","messages":[{"role":"user","content":"a b"}]}`
	if r := post(t, nw.ClientURL()+"/chat/completions", "", chat); r.status != 401 || !strings.Contains(r.body, "invalid_api_key") {
		t.Fatalf("no key: %+v", r)
	}
	if r := post(t, nw.ClientURL()+"/chat/completions", "wrong", chat); r.status != 401 {
		t.Fatalf("wrong key: %+v", r)
	}
	if r := post(t, nw.ClientURL()+"/chat/completions", "sesame", chat); r.status != 200 {
		t.Fatalf("right key: %+v", r)
	}
	// 20 tokens at 100 ms each cannot fit in 400 ms: the worker's shorter deadline fires first,
	// so the caller gets the mesh's timeout error rather than a cut connection.
	long := `{"model":"echo-test","messages":[{"role":"user","content":"` + strings.Repeat("w ", 20) + `"}]}`
	if r := post(t, nw.ClientURL()+"/chat/completions", "sesame", long); r.status != 504 || !strings.Contains(r.body, `"timeout"`) {
		t.Fatalf("over time: %+v", r)
	}
}

// /v1/models shows each model's prices by category as the client pays them: the cheapest
// worker's list prices with its coefficient and the proxy's commission (50 per mille) applied,
// each rounded up as answers are billed. The completion price is what the price cap compares.
func TestModelsListsOffers(t *testing.T) {
	nw := startNet(t, localnet.Options{Proxies: 1, Workers: 2, Prices: wire.Prices{Prompt: 10, Cached: 5, Completion: 3, Reasoning: 7}})
	resp, err := http.Get(nw.ClientURL() + "/models")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	type prices struct{ Prompt, Cached, Completion, Reasoning uint64 }
	var list struct {
		Data []struct {
			ID           string
			Workers      int     `json:"cocoon_workers"`
			MinPrice     uint64  `json:"cocoon_min_price_nanoton"`
			Prices       prices  `json:"cocoon_prices"`
			WorkerPrices prices  `json:"cocoon_worker_prices"`
			Coefficient  uint32  `json:"cocoon_worker_coefficient"`
			Commission   *uint32 `json:"cocoon_proxy_commission"`
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || len(list.Data) != 1 {
		t.Fatalf("models: %+v, %v", list, err)
	}
	m := list.Data[0]
	if m.ID != "echo-test@v1:none" || m.Workers != 2 || m.Coefficient != 1000 || m.Commission == nil || *m.Commission != 50 ||
		m.WorkerPrices != (prices{10, 5, 3, 7}) || m.Prices != (prices{11, 6, 4, 8}) || m.MinPrice != 4 {
		t.Fatalf("models: %+v (commission %v)", m, m.Commission)
	}
	capped := func(limit string) int {
		req, _ := http.NewRequest("POST", nw.ClientURL()+"/chat/completions", strings.NewReader(`{"model":"echo-test","messages":[{"role":"user","content":"x"}]}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Cocoon-Max-Price", limit)
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		return r.StatusCode
	}
	// A price cap below every offer is refused with 402; one at the price shown is served.
	if code := capped("3"); code != http.StatusPaymentRequired {
		t.Fatalf("price cap under the price shown: status %d", code)
	}
	if code := capped("4"); code != http.StatusOK {
		t.Fatalf("price cap at the price shown: status %d", code)
	}
}

// TestWarmRequestsReuseConnections: requests are streams on the connections the client and
// workers already hold, never a new connection per request.
func TestWarmRequestsReuseConnections(t *testing.T) {
	nw := startNet(t, localnet.Options{Proxies: 2, Workers: 2})
	conns := func() int {
		n := 0
		for _, nd := range append([]*node.Node{nw.Client}, nw.Workers...) {
			n += len(nd.Host().Network().Conns())
		}
		return n
	}
	chat := `{"model":"echo-test","messages":[{"role":"user","content":"again"}]}`
	post(t, nw.ClientURL()+"/chat/completions", "", chat) // warm
	before := conns()
	for range 50 {
		if r := post(t, nw.ClientURL()+"/chat/completions", "", chat); r.status != 200 {
			t.Fatalf("%+v", r)
		}
	}
	if after := conns(); after != before {
		t.Fatalf("connections went from %d to %d over 50 warm requests", before, after)
	}
}

// A worker that lost its sealing sessions answers the next resumed body with
// seal_session_unknown; the client sends the body again with the session's key, and the
// caller never sees the hiccup.
func TestLostSealSessionIsResent(t *testing.T) {
	nw := startNet(t, localnet.Options{Proxies: 1, Workers: 1})
	url := "http://" + nw.APIAddr(nw.Client) + "/v1/chat/completions"
	ask := func(i int) {
		t.Helper()
		r := post(t, url, "", fmt.Sprintf(`{"model":"echo-test","messages":[{"role":"user","content":"lost %d"}]}`, i))
		if r.status != 200 || !strings.Contains(r.body, fmt.Sprintf("lost %d", i)) {
			t.Fatalf("request %d: %+v", i, r)
		}
	}
	for i := range 3 {
		ask(i)
	}
	node.ForgetSealSessions(nw.Workers[0])
	for i := 3; i < 6; i++ {
		ask(i)
	}
}

// A body at the size limit still goes through sealed, through the route and through the
// sealed set: sealing's few hundred bytes do not push it over the proxy's frame limit.
func TestSealedBodyAtTheLimit(t *testing.T) {
	const limit = 32 << 10
	nw := startNet(t, localnet.Options{Proxies: 1, Workers: 2, Tune: func(c *node.Config) { c.MaxBodyBytes = limit }})
	url := "http://" + nw.APIAddr(nw.Client) + "/v1/chat/completions"
	head := `{"model":"echo-test","max_tokens":4,"messages":[{"role":"user","content":"`
	tail := `"}]}`
	body := head + strings.Repeat("x", limit-len(head)-len(tail)) + tail
	for i := range 4 { // the first takes the route, the rest the sealed set
		if r := post(t, url, "", body); r.status != 200 {
			t.Fatalf("request %d at the limit: %d %.300s", i, r.status, r.body)
		}
	}
	if r := post(t, url, "", body+" "); r.status != 413 {
		t.Fatalf("one byte over: %d", r.status)
	}
}
