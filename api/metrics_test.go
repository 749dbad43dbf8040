package api_test

import (
	"log/slog"
	"regexp"
	"strings"
	"testing"

	"github.com/cocoon-mesh/cocoon/internal/syncbuf"
	"github.com/cocoon-mesh/cocoon/node"
	"github.com/cocoon-mesh/cocoon/node/localnet"
)

// Each node serves Prometheus metrics and health probes: a proxy or worker at its admin
// address (/metrics, /healthz, /readyz), a client also under /cocoon/ on its API. The
// figures follow what was served, and clients and proxies log one line per request.
func TestMetricsProbesAndRequestLog(t *testing.T) {
	var logs syncbuf.Buffer
	nw := startNet(t, localnet.Options{Proxies: 1, Workers: 1, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Tune: func(c *node.Config) { c.AdminAddr = "127.0.0.1:0" }})
	for range 3 {
		if r := post(t, nw.ClientURL()+"/chat/completions", "", `{"model":"echo-test","messages":[{"role":"user","content":"one two three"}]}`); r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
	}
	post(t, nw.ClientURL()+"/chat/completions", "", `{"model":"nope","messages":[{"role":"user","content":"x"}]}`)
	api := strings.TrimSuffix(nw.ClientURL(), "/v1")
	client := call(t, "GET", api+"/cocoon/metrics", "", "").body
	proxy := call(t, "GET", "http://"+nw.AdminAddr(nw.Proxies[0])+"/metrics", "", "").body
	for _, c := range []struct{ where, body, want string }{
		{"client", client, `cocoon_requests_total{model="echo-test",outcome="ok",role="client"} 3`},
		{"client", client, `cocoon_requests_total{model="nope",outcome="model_not_found",role="client"} 1`},
		{"client", client, `cocoon_tokens_total{category="completion",role="client"} 9`},
		{"client", client, `cocoon_request_duration_seconds_count{role="client"} 4`},
		{"client", client, `cocoon_time_to_first_token_seconds_count{role="client"} 3`},
		{"client", client, `cocoon_channels{role="payer",state="open"} 1`},
		{"client", client, `cocoon_answer_cost_nanoton_total{role="client"}`},
		{"proxy", proxy, `cocoon_requests_total{model="echo-test",outcome="ok",role="proxy"} 3`},
		{"proxy", proxy, `cocoon_workers{state="eligible"} 1`},
		{"proxy", proxy, `cocoon_channel_paid_nanoton{role="payee"}`},
		{"proxy", proxy, `cocoon_gossip_adverts_total{result="accept"}`},
		{"proxy", proxy, `cocoon_worker_reputation{standing="trusted"} 1`},
		{"proxy", proxy, `cocoon_reputation_reports_total{result="published"} 0`},
	} {
		if !strings.Contains(c.body, c.want) {
			t.Errorf("the %s's metrics lack %s", c.where, c.want)
		}
	}
	for _, n := range []*node.Node{nw.Client, nw.Proxies[0], nw.Workers[0]} {
		base := "http://" + nw.AdminAddr(n)
		for _, path := range []string{"/healthz", "/readyz"} {
			if r := call(t, "GET", base+path, "", ""); r.status != 200 {
				t.Errorf("%s %s: %d %s", n.Config().Role, path, r.status, r.body)
			}
		}
	}
	if r := call(t, "GET", api+"/cocoon/readyz", "", ""); r.status != 200 || !strings.Contains(r.body, "ready") {
		t.Errorf("the client's /cocoon/readyz: %d %s", r.status, r.body)
	}
	line := regexp.MustCompile(`msg=request .*request=\S+ model=echo-test (proxy|client)=\S+ outcome=ok prompt_tokens=\d+ completion_tokens=3 cost_nanoton=\d+ duration_ms=\d+ ttft_ms=\d+`)
	if n := len(line.FindAllString(logs.String(), -1)); n != 6 { // 3 on the client, 3 on the proxy
		t.Errorf("%d request lines, want 6 (3 by the client, 3 by the proxy):\n%s", n, logs.String())
	}
}
