package httpguard

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// guardOf is the guard of the default config, tuned, and apiKey.
func guardOf(t *testing.T, apiKey string, tune func(*Config)) *Guard {
	t.Helper()
	cfg := DefaultConfig()
	if tune != nil {
		tune(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return New(cfg, apiKey)
}

var testListener = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 10000}

func TestHostPolicy(t *testing.T) {
	p := newHostPolicy(testListener, []string{"cocoon.lan", "box.example:8080", "10.0.0.5"})
	for host, want := range map[string]bool{
		"127.0.0.1:10000": true, "localhost:10000": true, "LocalHost:10000": true, "[::1]:10000": true,
		"cocoon.lan": true, "cocoon.lan:443": true, "box.example:8080": true, "10.0.0.5:10000": true,
		"127.0.0.1:10001": false, "localhost": false, "attacker.example:10000": false, "box.example:9090": false,
		"": false, "[::1]": false, "127.0.0.1:10000.attacker.example": false, "localhost.attacker.example:10000": false,
		"0.0.0.0:10000": false, "127.0.0.2:10000": false,
	} {
		if got := p.allows(host); got != want {
			t.Errorf("Host %q: allowed %t, want %t", host, got, want)
		}
	}
	any := newHostPolicy(testListener, []string{"*"})
	if !any.allows("whatever.example") {
		t.Error(`"*" refused a name`)
	}
	wide := newHostPolicy(&net.TCPAddr{IP: net.IPv4zero, Port: 80}, nil)
	if !wide.allows("localhost") || !wide.allows("0.0.0.0") || wide.allows("192.168.1.5") {
		t.Error("a listener on 0.0.0.0:80: want localhost and its own address only")
	}
}

// FuzzHostPolicy: a Host header is allowed only if its host part is one of the loopback names,
// the listen address or an allowed host.
func FuzzHostPolicy(f *testing.F) {
	for _, s := range []string{"127.0.0.1:10000", "localhost:10000", "[::1]:10000", "evil.example", "cocoon.lan:1", "[", "a:b:c", "[::1]x"} {
		f.Add(s)
	}
	p := newHostPolicy(testListener, []string{"cocoon.lan"})
	f.Fuzz(func(t *testing.T, host string) {
		if !p.allows(host) {
			return
		}
		h, port := splitHost(host)
		switch {
		case h == "cocoon.lan":
		case (h == "localhost" || h == "127.0.0.1" || h == "::1") && port == "10000":
		default:
			t.Fatalf("allowed Host %q (host %q, port %q)", host, h, port)
		}
	})
}

// guarded sends r through g to a handler that counts the requests reaching it.
func guarded(g *Guard, r *http.Request) (*httptest.ResponseRecorder, int) {
	reached := 0
	h := g.Wrap(testListener, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		reached++
		w.WriteHeader(200)
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec, reached
}

// The guard refuses, before the handler runs, a Host that does not name the node, a web
// page's Origin that the config does not allow, and a POST that is not JSON; it answers
// allowed origins' preflights and labels their answers for CORS.
func TestGuard(t *testing.T) {
	n := guardOf(t, "", func(c *Config) { c.AllowedOrigins = []string{"https://app.example"} })
	req := func(method, host string, hdr ...string) *http.Request {
		r := httptest.NewRequest(method, "http://"+host+"/v1/chat/completions", strings.NewReader(`{}`))
		r.Host = host
		for i := 0; i < len(hdr); i += 2 {
			r.Header.Set(hdr[i], hdr[i+1])
		}
		return r
	}
	const local = "127.0.0.1:10000"
	json := []string{"Content-Type", "application/json"}
	for _, c := range []struct {
		name    string
		r       *http.Request
		status  int
		code    string
		reached bool
	}{
		{"plain JSON POST", req("POST", local, json...), 200, "", true},
		{"charset", req("POST", "localhost:10000", "Content-Type", "application/json; charset=utf-8"), 200, "", true},
		{"GET needs no type", req("GET", local), 200, "", true},
		{"rebinding", req("POST", "attacker.example:10000", json...), 403, "host_not_allowed", false},
		{"other port", req("GET", "127.0.0.1:8080"), 403, "host_not_allowed", false},
		{"text/plain", req("POST", local, "Content-Type", "text/plain"), 415, "unsupported_media_type", false},
		{"no type", req("POST", local), 415, "unsupported_media_type", false},
		{"form", req("POST", local, "Content-Type", "application/x-www-form-urlencoded"), 415, "unsupported_media_type", false},
		{"cross-origin simple POST", req("POST", local, "Content-Type", "text/plain", "Origin", "https://evil.example"), 403, "origin_not_allowed", false},
		{"cross-origin JSON", req("POST", local, "Content-Type", "application/json", "Origin", "https://evil.example"), 403, "origin_not_allowed", false},
		{"cross-origin GET", req("GET", local, "Origin", "http://localhost:3000"), 403, "origin_not_allowed", false},
		{"null origin", req("POST", local, "Origin", "null"), 403, "origin_not_allowed", false},
		{"cross-site without Origin", req("GET", local, "Sec-Fetch-Site", "cross-site"), 403, "origin_not_allowed", false},
		{"same-origin fetch", req("GET", local, "Sec-Fetch-Site", "none"), 200, "", true},
		{"allowed origin", req("POST", local, "Content-Type", "application/json", "Origin", "https://APP.example"), 200, "", true},
		{"disallowed preflight", req("OPTIONS", local, "Origin", "https://evil.example", "Access-Control-Request-Method", "POST"), 403, "origin_not_allowed", false},
	} {
		rec, reached := guarded(n, c.r)
		if rec.Code != c.status || (reached > 0) != c.reached || (c.code != "" && !strings.Contains(rec.Body.String(), `"`+c.code+`"`)) {
			t.Errorf("%s: status %d, reached the handler %d times: %s", c.name, rec.Code, reached, rec.Body)
		}
	}
	// An allowed origin's preflight is answered here; its requests are labelled for CORS.
	rec, reached := guarded(n, req("OPTIONS", local, "Origin", "https://app.example", "Access-Control-Request-Method", "POST",
		"Access-Control-Request-Headers", "authorization, content-type, x-stainless-os", "Access-Control-Request-Private-Network", "true"))
	h := rec.Header()
	if rec.Code != 204 || reached != 0 || h.Get("Access-Control-Allow-Origin") != "https://app.example" ||
		!strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") || !strings.Contains(h.Get("Access-Control-Allow-Headers"), "x-stainless-os") ||
		h.Get("Access-Control-Allow-Private-Network") != "true" || h.Get("Vary") != "Origin" {
		t.Errorf("preflight: %d %v", rec.Code, h)
	}
	rec, _ = guarded(n, req("POST", local, "Content-Type", "application/json", "Origin", "https://app.example"))
	if rec.Header().Get("Access-Control-Allow-Origin") != "https://app.example" || !strings.Contains(rec.Header().Get("Access-Control-Expose-Headers"), "X-Cocoon-Receipt") {
		t.Errorf("allowed origin's answer: %v", rec.Header())
	}
	if msg := func() string { r, _ := guarded(n, req("GET", "attacker.example:10000")); return r.Body.String() }(); !strings.Contains(msg, "allowed_hosts") || !strings.Contains(msg, "127.0.0.1:10000") {
		t.Errorf("the Host refusal does not say what to configure: %s", msg)
	}
}

// Channel and wallet endpoints want the API key or the local token even with no API key; a
// node with neither refuses them all.
func TestNeedSecret(t *testing.T) {
	const token = "0123456789abcdefXYZ"
	for _, c := range []struct {
		name, key, token, send string
		status                 int
	}{
		{"token", "", token, token, 200},
		{"no token sent", "", token, "", 401},
		{"wrong token", "", token, "0123456789abcdefXYz", 401},
		{"key", "sesame", token, "sesame", 200},
		{"token with a key set", "sesame", token, token, 200},
		{"neither configured", "", "", "", 403},
		{"neither configured, something sent", "", "", "x", 403},
	} {
		n := guardOf(t, c.key, func(h *Config) { h.LocalToken = c.token })
		r := httptest.NewRequest("GET", "/cocoon/v1/channels", nil)
		if c.send != "" {
			r.Header.Set("Authorization", "Bearer "+c.send)
		}
		rec := httptest.NewRecorder()
		n.Authorize(n.NeedSecret(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(200) })).ServeHTTP(rec, r)
		if rec.Code != c.status {
			t.Errorf("%s: status %d: %s", c.name, rec.Code, rec.Body)
		}
	}
}

func TestHTTPConfigErrors(t *testing.T) {
	for field, tune := range map[string]func(*Config){
		"http.allowed_hosts":   func(c *Config) { c.AllowedHosts = []string{"http://x.example"} },
		"http.allowed_origins": func(c *Config) { c.AllowedOrigins = []string{"https://x.example/app"} },
		"http.max_conns":       func(c *Config) { c.MaxConns = -1 },
		"http.body_timeout":    func(c *Config) { c.BodyTimeout = -1 },
		"http.local_token":     func(c *Config) { c.LocalToken = "short" },
	} {
		c := DefaultConfig()
		tune(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: %v", field, err)
		}
	}
}
