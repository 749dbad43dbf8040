package node_test

import (
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"

	"github.com/cocoon-mesh/cocoon/internal/syncbuf"
	"github.com/cocoon-mesh/cocoon/node"
	"github.com/cocoon-mesh/cocoon/node/backend"
	"github.com/cocoon-mesh/cocoon/node/backend/echo"
	"github.com/cocoon-mesh/cocoon/tee"
)

// A proxy admits at most reputation.per_platform workers from one machine (the platform ID in
// their attestation), says so in its log for each one refused, and admits workers on other
// machines as usual.
func TestIdentitiesPerPlatformCapped(t *testing.T) {
	const perPlatform, sybils = 2, 4
	mn := mocknet.New()
	defer mn.Close()
	srv := httptest.NewServer(echo.New(echo.Config{}).Handler())
	defer srv.Close()
	var logs syncbuf.Buffer
	cfg := node.LocalConfig()
	cfg.Models = []node.ModelConfig{{ID: "echo-test@v1:none"}}
	cfg.Reputation.PerPlatform = perPlatform
	start := func(role node.Role, boot []string, prov *tee.Simulated) *node.Node {
		deps := node.Deps{TEE: prov}
		if role == node.RoleWorker {
			be, err := backend.NewHTTP(backend.HTTPConfig{BaseURL: srv.URL + "/v1", Models: map[string]string{"echo-test@v1:none": "echo-test"}})
			if err != nil {
				t.Fatal(err)
			}
			deps.Backend = be
		} else {
			deps.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		}
		return mocknetNode(t, mn, cfg, role, boot, deps)
	}
	proxy := start(node.RoleProxy, nil, tee.NewSimulated(nil))
	boot := []string{proxy.Status().Addrs[0]}
	machine := tee.SimulatedPlatform{0xca, 0xfe}
	for range sybils {
		start(node.RoleWorker, boot, tee.NewSimulatedOn(nil, machine))
	}
	start(node.RoleWorker, boot, tee.NewSimulated(nil)) // on a machine of its own

	refused := func() int { return strings.Count(logs.String(), "holds reputation.per_platform identities already") }
	for deadline := time.Now().Add(30 * time.Second); len(proxy.Status().Workers) < perPlatform+1 || refused() < sybils-perPlatform; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("proxy sees %d workers and refused %d by platform; want %d and %d\n%s",
				len(proxy.Status().Workers), refused(), perPlatform+1, sybils-perPlatform, logs.String())
		}
	}
	st := proxy.Status()
	if len(st.Workers) != perPlatform+1 {
		t.Fatalf("proxy admitted %d workers, want %d: %d of its machine and the other", len(st.Workers), perPlatform+1, perPlatform)
	}
	onMachine := 0
	for _, r := range st.Reputation {
		if r.Platform == machine.String() {
			onMachine++
		}
	}
	if onMachine != perPlatform {
		t.Fatalf("%d identities bound to %s, want %d: %+v", onMachine, machine, perPlatform, st.Reputation)
	}
}
