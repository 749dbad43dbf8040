package node_test

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"

	"github.com/cocoon-mesh/cocoon/api"
	"github.com/cocoon-mesh/cocoon/node"
	"github.com/cocoon-mesh/cocoon/node/backend"
	"github.com/cocoon-mesh/cocoon/node/backend/echo"
	"github.com/cocoon-mesh/cocoon/tee"
)

// mocknetNode starts a node of role on a new host of mn, linked to every other, with cfg,
// bootstrapping from boot, and deps (Host is set here; Verifier, if nil, accepts simulated
// attestation).
func mocknetNode(t *testing.T, mn mocknet.Mocknet, cfg node.Config, role node.Role, boot []string, deps node.Deps) *node.Node {
	t.Helper()
	h, err := mn.GenPeer()
	if err != nil {
		t.Fatal(err)
	}
	if err := mn.LinkAll(); err != nil {
		t.Fatal(err)
	}
	cfg.Role, cfg.Bootstrap, cfg.APIAddr, cfg.MinProxies = role, boot, "127.0.0.1:0", 1
	deps.Host = h
	if deps.Verifier == nil {
		deps.Verifier = tee.NewVerifier(tee.Policy{AllowSimulated: true}, nil)
	}
	n, err := node.New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// TestNodesOverMocknet builds a mesh from in-memory libp2p hosts, as simulations do: the node
// code is the same, only the hosts it is given differ.
func TestNodesOverMocknet(t *testing.T) {
	const workers = 8
	mn := mocknet.New()
	defer mn.Close()
	srv := httptest.NewServer(echo.New(echo.Config{}).Handler())
	defer srv.Close()

	cfg := node.LocalConfig()
	cfg.Models = []node.ModelConfig{{ID: "echo-test@v1:none"}}
	start := func(role node.Role, boot []string, be backend.Backend) *node.Node {
		return mocknetNode(t, mn, cfg, role, boot, node.Deps{Backend: be, TEE: tee.NewSimulated(nil)})
	}
	// serve starts a node's HTTP servers, as cocoon-node does once it started.
	serve := func(n *node.Node) *api.Servers {
		s, err := api.Serve(n, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	proxy := start(node.RoleProxy, nil, nil)
	boot := []string{proxy.Status().Addrs[0]}
	for range workers {
		be, err := backend.NewHTTP(backend.HTTPConfig{BaseURL: srv.URL + "/v1", Models: map[string]string{"echo-test@v1:none": "echo-test"}})
		if err != nil {
			t.Fatal(err)
		}
		start(node.RoleWorker, boot, be)
	}
	client := start(node.RoleClient, boot, nil)
	clientAPI := serve(client)

	deadline := time.Now().Add(30 * time.Second)
	for len(proxy.Status().Workers) < workers || len(client.Status().Proxies) < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("proxy sees %d/%d workers, client %d proxies", len(proxy.Status().Workers), workers, len(client.Status().Proxies))
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i := range 5 {
		r := post(t, "http://"+clientAPI.APIAddr()+"/v1/chat/completions", "",
			fmt.Sprintf(`{"model":"echo-test","messages":[{"role":"user","content":"over mocknet %d"}]}`, i))
		if r.status != 200 || !strings.Contains(r.body, fmt.Sprintf("over mocknet %d", i)) {
			t.Fatalf("request %d: %+v", i, r)
		}
	}
}
