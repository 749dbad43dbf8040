package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"

	"github.com/cocoon-mesh/cocoon/api"
	"github.com/cocoon-mesh/cocoon/node"
	"github.com/cocoon-mesh/cocoon/node/localnet"
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

// openAIError decodes an error answer, failing the test if it is not in OpenAI's shape.
func openAIError(t *testing.T, r result) (code, param, msg string) {
	t.Helper()
	var e struct {
		Error struct {
			Message, Type, Code string
			Param               *string
		}
	}
	if err := json.Unmarshal([]byte(r.body), &e); err != nil || e.Error.Message == "" || e.Error.Type == "" {
		t.Fatalf("not an OpenAI error: %+v (%v)", r, err)
	}
	if e.Error.Param != nil {
		param = *e.Error.Param
	}
	return e.Error.Code, param, e.Error.Message
}

// Every role serves the operator endpoints: a client on its API, proxies and workers on their
// admin address, all behind the API key; bad input and a node without payments get clear errors.
func TestAdminEndpointsWithoutPayments(t *testing.T) {
	nw := startNet(t, localnet.Options{Proxies: 1, Workers: 1, NoPayments: true, Tune: func(c *node.Config) {
		c.APIKey = "sesame"
		c.AdminAddr = "127.0.0.1:0"
	}})
	proxy, worker := nw.Proxies[0], nw.Workers[0]
	bases := map[string]string{"client": "http://" + nw.APIAddr(nw.Client)}
	for _, n := range []*node.Node{proxy, worker} {
		if nw.AdminAddr(n) == "" || nw.APIAddr(n) != "" {
			t.Fatalf("%s: admin at %q, API at %q", n.Config().Role, nw.AdminAddr(n), nw.APIAddr(n))
		}
		bases[string(n.Config().Role)] = "http://" + nw.AdminAddr(n)
	}
	for role, base := range bases {
		if r := call(t, "GET", base+"/cocoon/v1/status", "", ""); r.status != 401 {
			t.Errorf("%s: status without the key: %+v", role, r)
		}
		r := call(t, "GET", base+"/cocoon/v1/status", "sesame", "")
		var st node.Status
		if err := json.Unmarshal([]byte(r.body), &st); r.status != 200 || err != nil || string(st.Role) != role {
			t.Errorf("%s: status: %+v (%v)", role, r, err)
		}
		r = call(t, "GET", base+"/cocoon/v1/channels", "sesame", "")
		if code, _, msg := openAIError(t, r); r.status != 409 || code != "payments_off" || !strings.Contains(msg, "payments are off") {
			t.Errorf("%s: channels with payments off: %+v", role, r)
		}
		for _, cmd := range []string{"open", "topup", "close", "close?force=true"} {
			r := call(t, "POST", base+"/cocoon/v1/channels/"+proxy.ID().String()+"/"+cmd, "sesame", "")
			if role == "proxy" { // its own ID
				if _, param, _ := openAIError(t, r); r.status != 400 || param != "peer" {
					t.Errorf("%s: %s on its own ID: %+v", role, cmd, r)
				}
				continue
			}
			if code, _, _ := openAIError(t, r); r.status != 409 || code != "payments_off" {
				t.Errorf("%s: %s with payments off: %+v", role, cmd, r)
			}
		}
		r = call(t, "POST", base+"/cocoon/v1/channels/not-a-peer/open", "sesame", "")
		if code, param, _ := openAIError(t, r); r.status != 400 || code != "bad_request" || param != "peer" {
			t.Errorf("%s: bad peer ID: %+v", role, r)
		}
		r = call(t, "POST", base+"/cocoon/v1/channels/"+worker.ID().String()+"/close?force=maybe", "sesame", "")
		if _, param, _ := openAIError(t, r); r.status != 400 || param != "force" {
			t.Errorf("%s: bad force: %+v", role, r)
		}
	}
	// The admin address serves no inference: that is the client's API alone.
	if r := call(t, "GET", bases["worker"]+"/v1/models", "sesame", ""); r.status != 404 {
		t.Errorf("worker admin serves /v1/models: %+v", r)
	}
}

// With payments on, the channels list is an object holding every channel the node pays or is
// paid on, in ChannelStatus form.
func TestAdminListsChannels(t *testing.T) {
	const token = "local-token-for-tests"
	nw := startNet(t, localnet.Options{Proxies: 1, Workers: 1, Tune: func(c *node.Config) {
		c.AdminAddr, c.HTTP.LocalToken = "127.0.0.1:0", token
	}})
	chat := `{"model":"echo-test","messages":[{"role":"user","content":"pay me"}]}`
	if r := post(t, nw.ClientURL()+"/chat/completions", "", chat); r.status != 200 {
		t.Fatalf("paid request: %+v", r)
	}
	for _, c := range []struct {
		url, role, peer string
	}{
		{"http://" + nw.APIAddr(nw.Client), "payer", nw.Proxies[0].ID().String()},
		{"http://" + nw.AdminAddr(nw.Workers[0]), "payee", nw.Proxies[0].ID().String()},
	} {
		if r := call(t, "GET", c.url+"/cocoon/v1/channels", "", ""); r.status != 401 || !strings.Contains(r.body, "local token") {
			t.Errorf("%s: channels without the token: %+v", c.url, r)
		}
		r := call(t, "GET", c.url+"/cocoon/v1/channels", token, "")
		var list struct {
			Channels []map[string]any `json:"channels"`
		}
		if err := json.Unmarshal([]byte(r.body), &list); r.status != 200 || err != nil || len(list.Channels) == 0 {
			t.Fatalf("%s: channels: %+v (%v)", c.url, r, err)
		}
		ch := list.Channels[0]
		for _, k := range []string{"peer", "role", "state", "channel_id", "address", "deposit", "paid", "owed", "seqno"} {
			if _, ok := ch[k]; !ok {
				t.Errorf("%s: channel without %q: %v", c.url, k, ch)
			}
		}
		if ch["role"] != c.role || ch["peer"] != c.peer || ch["state"] != "open" || len(ch["channel_id"].(string)) != 32 {
			t.Errorf("%s: channel %v, want %s with %s, open", c.url, ch, c.role, c.peer)
		}
	}
}

// A bad admin address is refused before anything starts; one that cannot be bound is refused
// when the servers start; both name the field.
func TestAdminAddrErrors(t *testing.T) {
	cfg := node.LocalConfig()
	cfg.Role, cfg.AdminAddr = node.RoleProxy, "9100"
	var ce *node.ConfigError
	if _, err := node.New(cfg, node.Deps{}); !errors.As(err, &ce) || ce.Field != "admin_addr" {
		t.Fatalf("admin_addr without a port: %v", err)
	}

	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	mn := mocknet.New()
	defer mn.Close()
	h, err := mn.GenPeer()
	if err != nil {
		t.Fatal(err)
	}
	cfg.AdminAddr = taken.Addr().String()
	n, err := node.New(cfg, node.Deps{Host: h})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	if s, err := api.Serve(n, nil); !errors.As(err, &ce) || ce.Field != "admin_addr" || !errors.Is(err, node.ErrConfig) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("admin_addr in use: %v", err)
	}
}
