package httpguard

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Limits of the HTTP servers that need no setting.
const (
	headerTimeout  = 10 * time.Second // for a request's headers to arrive
	maxHeaderBytes = 64 << 10
	shutdownWait   = 2 * time.Second // for answers under way when the server closes
)

// Server is one HTTP server of a node, behind its guard and connection cap.
type Server struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{} // closed when Serve has returned
}

// Serve serves h on ln, as what (for logs), behind the guard (Wrap) and the connection cap,
// until Close.
func (g *Guard) Serve(what string, ln net.Listener, h http.Handler, log *slog.Logger) *Server {
	log = log.With("server", what)
	capped := newConnCap(ln, g.cfg.MaxConns, log)
	s := &Server{ln: ln, done: make(chan struct{}), srv: &http.Server{
		Handler:           g.Wrap(ln.Addr(), h),
		ReadHeaderTimeout: headerTimeout,
		IdleTimeout:       g.cfg.IdleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ConnState:         capped.track,
	}}
	if a, ok := ln.Addr().(*net.TCPAddr); ok && !a.IP.IsLoopback() && len(g.cfg.AllowedHosts) == 0 {
		log.Warn("HTTP server listens beyond loopback: requests naming this machine otherwise than by the listen address are refused; list the names callers use in [http] allowed_hosts",
			"addr", ln.Addr().String())
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(capped); err != nil && err != http.ErrServerClosed {
			log.Error(what+" server stopped", "err", err)
		}
	}()
	return s
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops accepting connections and waits, for a little while, for answers under way. It
// returns once the server's own goroutine has ended.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownWait)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	<-s.done
	return err
}
