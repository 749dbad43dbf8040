package httpguard

import (
	"fmt"
	"mime"
	"net"
	"net/http"
)

// Guard is what every request to one of a node's HTTP servers goes through before any work is
// done: deadlines, a Host that names the node, an allowed Origin, JSON for a POST (Wrap), and
// the bearer API key or local token (Authorize, NeedSecret). It holds no state of its own.
type Guard struct {
	cfg    Config
	apiKey string // the node's api_key ("" : none)
}

// New returns the guard of cfg (filled and validated, as node.New leaves it) and the node's
// API key.
func New(cfg Config, apiKey string) *Guard { return &Guard{cfg: cfg, apiKey: apiKey} }

// hostPolicy decides which Host headers name a server: a pure core, so the fuzzer reaches it.
type hostPolicy struct {
	port    string          // the listener's port
	local   map[string]bool // names accepted at that port
	extra   []string        // AllowedHosts, each "host" or "host:port"
	any     bool            // AllowedHosts holds "*"
	example string          // a name to suggest in a refusal
}

// newHostPolicy accepts the listen address and the loopback names at its port, and allowed.
func newHostPolicy(addr net.Addr, allowed []string) *hostPolicy {
	p := &hostPolicy{local: map[string]bool{"localhost": true, "127.0.0.1": true, "::1": true}}
	host := "127.0.0.1"
	if a, ok := addr.(*net.TCPAddr); ok {
		p.port = fmt.Sprint(a.Port)
		p.local[a.IP.String()] = true
		if !a.IP.IsUnspecified() {
			host = a.IP.String()
		}
	}
	p.example = net.JoinHostPort(host, p.port)
	for _, h := range allowed {
		if h == "*" {
			p.any = true
		}
		p.extra = append(p.extra, h)
	}
	return p
}

// allows reports whether a request's Host header names this server.
func (p *hostPolicy) allows(hostHeader string) bool {
	if p.any {
		return true
	}
	host, port := splitHost(hostHeader)
	if host == "" {
		return false
	}
	if port == "" {
		port = "80" // what a URL without a port means for http
	}
	if p.local[host] && port == p.port {
		return true
	}
	for _, e := range p.extra {
		eh, ep := splitHost(e)
		if eh == host && (ep == "" || ep == port) {
			return true
		}
	}
	return false
}

// originPolicy decides which browser origins may call a server.
type originPolicy struct {
	allowed map[string]bool
	any     bool
}

func newOriginPolicy(allowed []string) *originPolicy {
	p := &originPolicy{allowed: map[string]bool{}}
	for _, o := range allowed {
		if o == "*" {
			p.any = true
		} else if n, ok := normalOrigin(o); ok {
			p.allowed[n] = true
		}
	}
	return p
}

func (p *originPolicy) allows(origin string) bool {
	if p.any {
		return true
	}
	n, ok := normalOrigin(origin)
	return ok && p.allowed[n]
}

// exposedHeaders are the answer's headers a browser page allowed by CORS may read.
const exposedHeaders = "X-Request-Id, X-Cocoon-Proxy, X-Cocoon-Proxy-Tee, X-Cocoon-Worker, X-Cocoon-Worker-Tee, X-Cocoon-Usage, X-Cocoon-Receipt, X-Cocoon-Cost"

// Wrap wraps h, served at addr, with what every request goes through before any work is done:
// deadlines for its body and for each write of its answer, a Host that names this node
// (against DNS rebinding), an Origin, if any, that the config allows (against web pages: CORS,
// answering allowed preflights), and JSON for a POST.
func (g *Guard) Wrap(addr net.Addr, h http.Handler) http.Handler {
	hosts, origins := newHostPolicy(addr, g.cfg.AllowedHosts), newOriginPolicy(g.cfg.AllowedOrigins)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		dw := g.bound(w, r)
		w = dw
		defer dw.finish()
		if !hosts.allows(r.Host) {
			WriteError(w, http.StatusForbidden, "host_not_allowed", "", fmt.Sprintf(
				"Host %q does not name this node: call it as %s or localhost:%s (a web page reaching the node under a name of its own is refused, against DNS rebinding); to use another name, add it to [http] allowed_hosts",
				r.Host, hosts.example, hosts.port))
			return
		}
		origin := r.Header.Get("Origin")
		site := r.Header.Get("Sec-Fetch-Site")
		if origin != "" || site == "cross-site" || site == "same-site" {
			if !origins.allows(origin) {
				WriteError(w, http.StatusForbidden, "origin_not_allowed", "", fmt.Sprintf(
					"requests from web pages are refused: Origin %q is not in [http] allowed_origins (add it there to let that site's pages call this node, and spend its money)", origin))
				return
			}
			if corsHeaders(w, r, origin) {
				return // a preflight, answered
			}
		}
		if r.Method == http.MethodPost {
			if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
				WriteError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "", fmt.Sprintf(
					"a POST must carry JSON and say so with the header \"Content-Type: application/json\" (got %q)", r.Header.Get("Content-Type")))
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// corsHeaders sets the CORS headers of an answer to an allowed origin, and answers it if it is
// a preflight (reporting true).
func corsHeaders(w http.ResponseWriter, r *http.Request, origin string) bool {
	hd := w.Header()
	if origin != "" {
		hd.Set("Access-Control-Allow-Origin", origin)
	}
	hd.Add("Vary", "Origin")
	if r.Method != http.MethodOptions || r.Header.Get("Access-Control-Request-Method") == "" {
		hd.Set("Access-Control-Expose-Headers", exposedHeaders)
		return false
	}
	hd.Set("Access-Control-Allow-Methods", "GET, POST")
	if req := r.Header.Get("Access-Control-Request-Headers"); req != "" {
		hd.Set("Access-Control-Allow-Headers", req) // the origin is trusted: whatever its SDK sends
	}
	if r.Header.Get("Access-Control-Request-Private-Network") == "true" {
		hd.Set("Access-Control-Allow-Private-Network", "true")
	}
	hd.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
	return true
}
