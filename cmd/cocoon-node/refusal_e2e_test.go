package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Refusals are loud and name the fix. A proxy refuses a worker that offers no attestation
// with one warn line naming --allow-unattested (not one per advert, not at debug) and lists it
// in its status; once it routes there, a client that does not allow unattested workers answers
// with an error naming the client's own flag, and logs it once too.
func TestRefusedWorkersAreLoudAndNameTheFix(t *testing.T) {
	m := &mesh{t: t, dir: t.TempDir(), network: fmt.Sprintf("refuse-%d", time.Now().UnixNano())}
	echo := start(t, "echo", "echo-backend", "--listen", "127.0.0.1:0")
	plain := func(name, role string, extra ...string) []string { // outside a TEE, as a first user runs it
		return append([]string{"run", "--role", role, "--local", "--network", m.network, "--data-dir", m.dir + "/" + name,
			"--listen", "/ip4/127.0.0.1/tcp/0", "--ready-file", m.dir + "/" + name + ".ready", "--log-level", "info"}, extra...)
	}
	strict := start(t, "strict-proxy", plain("strict-proxy", "proxy", "--admin", "127.0.0.1:0")...)
	lax := start(t, "lax-proxy", plain("lax-proxy", "proxy", "--allow-unattested", "--bootstrap", strict.ready.Addrs[0])...)
	boots := strict.ready.Addrs[0] + "," + lax.ready.Addrs[0]
	worker := start(t, "worker", plain("worker", "worker", "--bootstrap", boots, "--backend", echo.url, "--model", "echo-test@v1:none=echo-test")...)
	client := start(t, "client", plain("client", "client", "--bootstrap", boots, "--api", "127.0.0.1:0")...)

	m.waitFor("the strict proxy refuses the worker, naming the flag", func() bool {
		return strings.Contains(strict.logs.String(), `msg="worker refused"`)
	})
	time.Sleep(3 * time.Second) // more adverts arrive (every 2 s here): still one line
	if n := strings.Count(strict.logs.String(), `msg="worker refused"`); n != 1 || !strings.Contains(strict.logs.String(), "--allow-unattested") {
		t.Errorf("%d refusal lines, want one naming --allow-unattested:\n%s", n, strict.logs.String())
	}
	var st struct {
		Refused []struct{ Peer, Reason, Fix string } `json:"refused"`
	}
	resp, err := http.Get("http://" + strict.ready.Admin + "/cocoon/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if len(st.Refused) != 1 || st.Refused[0].Peer != worker.ready.Peer || !strings.Contains(st.Refused[0].Fix, "--allow-unattested") {
		t.Errorf("the strict proxy's status lists %+v as refused, want the worker with the fix", st.Refused)
	}

	code, out, errOut := runBinary(t, "status", "--node", "http://"+strict.ready.Admin)
	if code != 0 || !strings.Contains(out, "Workers (0)") || !strings.Contains(out, "Refused (1):\n  "+worker.ready.Peer) ||
		!strings.Contains(out, "fix: start the proxy with --allow-unattested") {
		t.Errorf("cocoon-node status: exit %d\n%s%s", code, out, errOut)
	}

	// Through the lax proxy the client is routed to the worker, and refuses to send it the
	// prompt: the error says which flag of the client's changes that.
	api := "http://" + client.ready.API + "/v1"
	var body []byte
	m.waitFor("the client is routed to the unattested worker", func() bool {
		code, body, _ = post(api, "/chat/completions", `{"model":"echo-test","messages":[{"role":"user","content":"hi"}]}`)
		return code == http.StatusBadGateway
	})
	if !strings.Contains(string(body), "start the client with --allow-unattested") {
		t.Errorf("the client's error: %d %s, want it to name the client's --allow-unattested", code, body)
	}
	post(api, "/chat/completions", `{"model":"echo-test","messages":[{"role":"user","content":"again"}]}`)
	if n := strings.Count(client.logs.String(), `msg="worker refused"`); n != 1 {
		t.Errorf("the client logged %d refusal lines, want one:\n%s", n, client.logs.String())
	}
}

// A worker whose model backend is down from the start says so, with what to check, and its
// status says why (it used to log only a change from healthy to unhealthy, so never).
func TestWorkerSaysItsBackendIsDown(t *testing.T) {
	dir := t.TempDir()
	w := start(t, "worker", "run", "--role", "worker", "--local", "--network", "down", "--data-dir", dir+"/w",
		"--listen", "/ip4/127.0.0.1/tcp/0", "--admin", "127.0.0.1:0", "--ready-file", dir+"/w.ready", "--log-level", "info",
		"--backend", "http://127.0.0.1:1/v1", "--model", "m@1:abc=m")
	if !strings.Contains(w.logs.String(), "backend unhealthy") || !strings.Contains(w.logs.String(), "check --backend") {
		t.Errorf("the worker did not say its backend is down:\n%s", w.logs.String())
	}
	code, out, _ := runBinary(t, "status", "--node", "http://"+w.ready.Admin)
	if code != 0 || !strings.Contains(out, "backend healthy: false") {
		t.Errorf("status: %d\n%s", code, out)
	}
}

// A node bootstrapping from a peer of another network is told so, with the flag to change,
// instead of connecting and never finding a proxy.
func TestBootstrapOnAnotherNetworkIsNamed(t *testing.T) {
	dir := t.TempDir()
	node := func(name, network string, extra ...string) []string {
		return append([]string{"run", "--role", "client", "--local", "--network", network, "--data-dir", dir + "/" + name,
			"--listen", "/ip4/127.0.0.1/tcp/0", "--api", "127.0.0.1:0", "--ready-file", dir + "/" + name + ".ready", "--log-level", "info"}, extra...)
	}
	proxy := start(t, "proxy", append(node("proxy", "blue"), "--role", "proxy")...)
	client := start(t, "client", node("client", "green", "--bootstrap", proxy.ready.Addrs[0])...)
	m := &mesh{t: t}
	m.waitFor("the client names the other network", func() bool {
		return strings.Contains(client.logs.String(), "bootstrap peer on another network")
	})
	if l := client.logs.String(); !strings.Contains(l, "--network blue") || strings.Count(l, "bootstrap peer on another network") != 1 {
		t.Errorf("want one line naming --network blue:\n%s", l)
	}
}
