package httpguard

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// Config guards a node's HTTP servers (a client's API, any node's admin endpoints) from web
// pages in the operator's browser and from slow or idle clients: the config file's [http]
// section, which node.Config holds as its HTTP field. Zero fields take the values of
// DefaultConfig.
type Config struct {
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
	// require one of the two even when the API key is empty; with neither set they are refused.
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

// DefaultConfig is what node.DefaultConfig guards its HTTP servers with.
func DefaultConfig() Config {
	// 512 connections stay well below the descriptors a process gets (Go raises the soft
	// limit to the hard one at start, ulimit -Hn: 20000 where this was measured; on macOS
	// to kern.maxfilesperproc), leaving the rest to libp2p.
	return Config{MaxConns: 512, BodyTimeout: 30 * time.Second, WriteTimeout: time.Minute, IdleTimeout: time.Minute}
}

// minTokenLen is the shortest local token accepted.
const minTokenLen = 16

// FieldError names the [http] setting that is wrong (node.New reports it as a ConfigError).
type FieldError struct {
	Field string // as in the config file: "http.max_conns"
	Value any
	Why   string
}

// Error names the field, its value and the rule it breaks.
func (e *FieldError) Error() string {
	return fmt.Sprintf("httpguard: config %s = %v: %s", e.Field, e.Value, e.Why)
}

// Fill takes zero fields from d.
func (c *Config) Fill(d Config) {
	fill(&c.MaxConns, d.MaxConns)
	fill(&c.BodyTimeout, d.BodyTimeout)
	fill(&c.WriteTimeout, d.WriteTimeout)
	fill(&c.IdleTimeout, d.IdleTimeout)
}

func fill[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}

// Validate checks the settings; the error is a *FieldError naming the config file's field.
func (c *Config) Validate() error {
	switch {
	case c.MaxConns < 1 || c.MaxConns > 1<<20:
		return &FieldError{"http.max_conns", c.MaxConns, "want 1..1048576, well below the process's file descriptor limit"}
	case c.BodyTimeout < 0:
		return &FieldError{"http.body_timeout", c.BodyTimeout, "want a positive duration"}
	case c.WriteTimeout < 0:
		return &FieldError{"http.write_timeout", c.WriteTimeout, "want a positive duration"}
	case c.IdleTimeout < 0:
		return &FieldError{"http.idle_timeout", c.IdleTimeout, "want a positive duration"}
	case c.LocalToken != "" && len(c.LocalToken) < minTokenLen:
		return &FieldError{"http.local_token", "(hidden)", fmt.Sprintf("want at least %d characters", minTokenLen)}
	}
	for _, h := range c.AllowedHosts {
		if h != "*" && (h == "" || strings.ContainsAny(h, "/ \t") || !validHostPort(h)) {
			return &FieldError{"http.allowed_hosts", h, "want a host name or IP, optionally with :port (no scheme, no path), or \"*\""}
		}
	}
	for _, o := range c.AllowedOrigins {
		if _, ok := normalOrigin(o); !ok && o != "*" {
			return &FieldError{"http.allowed_origins", o, "want an origin as browsers send it: scheme://host[:port] with no path, \"null\", or \"*\""}
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
