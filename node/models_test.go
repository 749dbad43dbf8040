package node_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/cocoon-mesh/cocoon/node"
	"github.com/cocoon-mesh/cocoon/node/localnet"
)

// A model whose workers are gone is "no worker right now" (503, with Retry-After; OpenAI's
// SDKs retry it), not "no such model" (404, which they raise as NotFoundError); a model the
// network never served is a 404 that points to /v1/models.
func TestGoneWorkersAre503AndUnknownModels404(t *testing.T) {
	nw := startNet(t, localnet.Options{Proxies: 1, Workers: 1})
	chat := func(model string) result {
		return post(t, nw.ClientURL()+"/chat/completions", "", `{"model":"`+model+`","messages":[{"role":"user","content":"hi"}]}`)
	}
	if r := chat("echo-test"); r.status != 200 {
		t.Fatalf("before the worker left: %d %s", r.status, r.body)
	}
	if r := chat("nope"); r.status != 404 || !strings.Contains(r.body, "model_not_found") || !strings.Contains(r.body, "GET /v1/models") {
		t.Errorf("a model nobody serves: %d %s, want a 404 pointing to GET /v1/models", r.status, r.body)
	}
	w := nw.Workers[0]
	w.Close()
	w.Host().Close() // the proxy drops it on the disconnect
	var r result
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if r = chat("echo-test"); r.status != 200 {
			break
		}
	}
	if r.status != 503 || !strings.Contains(r.body, "right now") || r.header.Get("Retry-After") == "" {
		t.Fatalf("with its only worker gone: %d %s (Retry-After %q), want a 503 saying none serves it right now, with Retry-After",
			r.status, r.body, r.header.Get("Retry-After"))
	}
}

// A worker that stops tells the network it leaves: the client's /v1/models drops its model at
// once, not after the worker's adverts have been missing for WorkerTTL.
func TestStoppedWorkerLeavesModels(t *testing.T) {
	nw := startNet(t, localnet.Options{Proxies: 1, Workers: 1, Tune: func(c *node.Config) { c.WorkerTTL = time.Minute }})
	models := func() string { return call(t, "GET", nw.ClientURL()+"/models", "", "").body }
	if m := models(); !strings.Contains(m, "echo-test") {
		t.Fatalf("before: %s", m)
	}
	nw.Workers[0].Close()
	start := time.Now()
	for strings.Contains(models(), "echo-test") {
		if time.Since(start) > 20*time.Second { // far below WorkerTTL's minute
			t.Fatalf("/v1/models still lists the stopped worker's model after %v: %s", time.Since(start), models())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("the model left /v1/models %v after its worker stopped (WorkerTTL 1m)", time.Since(start).Round(time.Millisecond))
}

// The status JSON is snake_case throughout, gives durations in milliseconds named _ms, and
// always has its lists (empty, not absent).
func TestStatusJSONShape(t *testing.T) {
	nw := startNet(t, localnet.Options{Proxies: 1, Workers: 1, Tune: func(c *node.Config) { c.AdminAddr = "127.0.0.1:0" }})
	for _, n := range []*node.Node{nw.Client, nw.Proxies[0], nw.Workers[0]} {
		raw := call(t, "GET", "http://"+nw.AdminAddr(n)+"/cocoon/v1/status", "", "").body
		var keys []string
		var walk func(v any)
		walk = func(v any) {
			switch v := v.(type) {
			case map[string]any:
				for k, e := range v {
					keys = append(keys, k)
					if k != "attestations" && k != "attestation_counts" { // keyed by peer and outcome
						walk(e)
					}
				}
			case []any:
				for _, e := range v {
					walk(e)
				}
			}
		}
		var st map[string]any
		if err := json.Unmarshal([]byte(raw), &st); err != nil {
			t.Fatalf("%s: %v: %s", n.Config().Role, err, raw)
		}
		walk(st)
		for _, k := range keys {
			if k != strings.ToLower(k) || strings.Contains(k, "-") || strings.Contains(k, "latency") && !strings.HasSuffix(k, "_ms") {
				t.Errorf("%s status: key %q is not snake_case with its unit", n.Config().Role, k)
			}
		}
		for _, list := range []string{"addrs", "proxies", "workers", "channels", "refused"} {
			if v, ok := st[list].([]any); !ok || v == nil {
				t.Errorf("%s status: %q is %v, want a list (empty if need be)", n.Config().Role, list, st[list])
			}
		}
	}
	raw := call(t, "GET", "http://"+nw.AdminAddr(nw.Proxies[0])+"/cocoon/v1/status", "", "").body
	if !strings.Contains(raw, `"avg_latency_ms"`) || !strings.Contains(raw, `"price_nanoton"`) {
		t.Errorf("the proxy's workers lack their fields: %s", raw)
	}
}
