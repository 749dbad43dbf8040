package node

import (
	"crypto/subtle"
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// HTTPConfig guards a node's HTTP servers (a client's API, any node's admin endpoints) from web
// pages in the operator's browser and from slow or idle clients. Zero fields take the values
// of DefaultConfig.
type HTTPConfig struct {
	// AllowedHosts are the names (host or host:port) a request's Host header may give besides
	// the listen address and localhost, 127.0.0.1 or [::1] at the listen port. A web page that
	// reaches the node through a name it controls (DNS rebinding) gives that name and is
	// refused. A name without a port matches any port; "*" allows every Host.
	AllowedHosts []string
	// AllowedOrigins are the web origins (scheme://host[:port], or "null") whose pages may
	// call the node from a browser: their requests get CORS headers, and their preflights an
	// answer. A request with any other Origin header is refused before any work is done. "*"
	// allows every origin: then every web page the operator opens can spend the node's money.
	AllowedOrigins []string
	// LocalToken is a secret accepted wherever the API key is. Channel and wallet endpoints
	// require one of the two even when APIKey is empty; with neither set they are refused.
	// cocoon-node keeps it in the file local-token in the node's data dir.
	LocalToken string
	// MaxConns caps each HTTP server's open connections. At the cap, the connection idle the
	// longest is closed to make room; when every one is busy, a new one is answered 503.
	MaxConns int
	// BodyTimeout bounds the time a request body takes to arrive after its headers.
	BodyTimeout time.Duration
	// WriteTimeout bounds each write of an answer: the deadline moves on with every chunk, so
	// a streamed answer may last as long as the request's timeout, but a client that stops
	// reading is dropped.
	WriteTimeout time.Duration
	// IdleTimeout is how long a kept-alive connection may wait for its next request.
	IdleTimeout time.Duration
}

// Limits of the HTTP servers that need no setting.
const (
	headerTimeout  = 10 * time.Second // for a request's headers to arrive
	maxHeaderBytes = 64 << 10
	minTokenLen    = 16
)

// fill takes zero fields from d.
func (c *HTTPConfig) fill(d HTTPConfig) {
	fill(&c.MaxConns, d.MaxConns)
	fill(&c.BodyTimeout, d.BodyTimeout)
	fill(&c.WriteTimeout, d.WriteTimeout)
	fill(&c.IdleTimeout, d.IdleTimeout)
}

// validate checks the settings; names are those of the config file's [http] section.
func (c *HTTPConfig) validate() error {
	switch {
	case c.MaxConns < 1 || c.MaxConns > 1<<20:
		return &ConfigError{"http.max_conns", c.MaxConns, "want 1..1048576, well below the process's file descriptor limit"}
	case c.BodyTimeout < 0:
		return &ConfigError{"http.body_timeout", c.BodyTimeout, "want a positive duration"}
	case c.WriteTimeout < 0:
		return &ConfigError{"http.write_timeout", c.WriteTimeout, "want a positive duration"}
	case c.IdleTimeout < 0:
		return &ConfigError{"http.idle_timeout", c.IdleTimeout, "want a positive duration"}
	case c.LocalToken != "" && len(c.LocalToken) < minTokenLen:
		return &ConfigError{"http.local_token", "(hidden)", fmt.Sprintf("want at least %d characters", minTokenLen)}
	}
	for _, h := range c.AllowedHosts {
		if h != "*" && (h == "" || strings.ContainsAny(h, "/ \t") || !validHostPort(h)) {
			return &ConfigError{"http.allowed_hosts", h, "want a host name or IP, optionally with :port (no scheme, no path), or \"*\""}
		}
	}
	for _, o := range c.AllowedOrigins {
		if _, ok := normalOrigin(o); !ok && o != "*" {
			return &ConfigError{"http.allowed_origins", o, "want an origin as browsers send it: scheme://host[:port] with no path, \"null\", or \"*\""}
		}
	}
	return nil
}

// splitHost splits a Host header (or an allowed_hosts entry) into its lower-case host, without
// brackets, and its port ("" when none).
func splitHost(s string) (host, port string) {
	if h, p, err := net.SplitHostPort(s); err == nil {
		return strings.ToLower(h), p
	}
	return strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")), ""
}

// validHostPort reports whether s is a host with an optional numeric port.
func validHostPort(s string) bool {
	h, p := splitHost(s)
	if h == "" || strings.ContainsAny(h, "[]@?#") {
		return false
	}
	for _, c := range p {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// normalOrigin lower-cases an origin's scheme and host, or says it is not an origin.
func normalOrigin(o string) (string, bool) {
	if o == "null" {
		return o, true
	}
	u, err := url.Parse(o)
	if err != nil || u.Scheme == "" || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", false
	}
	return strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Host), true
}

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

// guard wraps h with what every request to one of the node's HTTP servers (listening at addr)
// goes through before any work is done: deadlines for its body and for each write of its
// answer, a Host that names this node (against DNS rebinding), an Origin, if any, that the
// config allows (against web pages: CORS, answering allowed preflights), and JSON for a POST.
func (n *Node) guard(addr net.Addr, h http.Handler) http.Handler {
	hosts, origins := newHostPolicy(addr, n.cfg.HTTP.AllowedHosts), newOriginPolicy(n.cfg.HTTP.AllowedOrigins)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		dw := n.bound(w, r)
		w = dw
		defer dw.finish()
		if !hosts.allows(r.Host) {
			apiError(w, http.StatusForbidden, "invalid_request_error", "host_not_allowed", "", fmt.Sprintf(
				"Host %q does not name this node: call it as %s or localhost:%s (a web page reaching the node under a name of its own is refused, against DNS rebinding); to use another name, add it to [http] allowed_hosts",
				r.Host, hosts.example, hosts.port))
			return
		}
		origin := r.Header.Get("Origin")
		site := r.Header.Get("Sec-Fetch-Site")
		if origin != "" || site == "cross-site" || site == "same-site" {
			if !origins.allows(origin) {
				apiError(w, http.StatusForbidden, "invalid_request_error", "origin_not_allowed", "", fmt.Sprintf(
					"requests from web pages are refused: Origin %q is not in [http] allowed_origins (add it there to let that site's pages call this node, and spend its money)", origin))
				return
			}
			if corsHeaders(w, r, origin) {
				return // a preflight, answered
			}
		}
		if r.Method == http.MethodPost {
			if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
				apiError(w, http.StatusUnsupportedMediaType, "invalid_request_error", "unsupported_media_type", "", fmt.Sprintf(
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

// authorize lets a request in with the bearer API key or the local token, when an API key is
// configured; without one, only the endpoints wrapped in needSecret ask for either.
func (n *Node) authorize(next http.Handler) http.Handler {
	if n.cfg.APIKey == "" {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !n.hasSecret(r) {
			apiError(w, http.StatusUnauthorized, "invalid_request_error", "invalid_api_key", "", "missing or wrong API key: send Authorization: Bearer <key>, the api_key in this node's config (or its local token, in the file local-token in its data dir)")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// needSecret guards an endpoint that moves or shows money: it wants the API key or the local
// token even when no API key is configured, so that no other local program or web page can
// call it.
func (n *Node) needSecret(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if n.cfg.APIKey == "" && n.cfg.HTTP.LocalToken == "" {
			apiError(w, http.StatusForbidden, "invalid_request_error", "token_required", "",
				"channel and wallet commands are off: this node has neither an api_key nor a local token (cocoon-node run makes one in its data dir; set api_key otherwise)")
			return
		}
		if !n.hasSecret(r) {
			apiError(w, http.StatusUnauthorized, "invalid_request_error", "token_required", "",
				"channel and wallet commands need this node's local token or its api_key, as Authorization: Bearer <token>: the node keeps the token in the file local-token in its data dir, where 'cocoon-node channels|wallet --node URL --data-dir DIR' finds it")
			return
		}
		next(w, r)
	}
}

// hasSecret reports whether r carries the API key or the local token as its bearer token.
func (n *Node) hasSecret(r *http.Request) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return false
	}
	match := func(want string) bool {
		return want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
	}
	return match(n.cfg.APIKey) || match(n.cfg.HTTP.LocalToken)
}

// deadlineWriter moves the connection's write deadline on before each write, so one slow
// reader is dropped after WriteTimeout without bounding how long a streamed answer lasts.
type deadlineWriter struct {
	http.ResponseWriter
	rc *http.ResponseController
	d  time.Duration
}

func (w *deadlineWriter) extend() { _ = w.rc.SetWriteDeadline(time.Now().Add(w.d)) }

// WriteHeader sends the status line and headers.
func (w *deadlineWriter) WriteHeader(code int) { w.extend(); w.ResponseWriter.WriteHeader(code) }

// Write writes part of the body.
func (w *deadlineWriter) Write(b []byte) (int, error) {
	w.extend()
	return w.ResponseWriter.Write(b)
}

// Flush sends what is buffered.
func (w *deadlineWriter) Flush() { w.extend(); _ = w.rc.Flush() }

// Unwrap lets http.ResponseController reach the server's writer.
func (w *deadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// finish gives the server's last write of the answer, after the handler, its deadline.
func (w *deadlineWriter) finish() { w.extend() }

// bound sets the request's deadlines: its body must arrive within BodyTimeout, and each write
// of the answer must finish within WriteTimeout. Once the body has arrived whole, the server
// lifts the read deadline itself (to notice a client hanging up while the answer streams).
func (n *Node) bound(w http.ResponseWriter, r *http.Request) *deadlineWriter {
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{}) // none while the answer is awaited: only writes are bounded
	if r.Body != nil && r.Body != http.NoBody {
		_ = rc.SetReadDeadline(time.Now().Add(n.cfg.HTTP.BodyTimeout))
	}
	return &deadlineWriter{ResponseWriter: w, rc: rc, d: n.cfg.HTTP.WriteTimeout}
}
