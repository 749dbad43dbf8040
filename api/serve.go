package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"

	"github.com/cocoon-mesh/cocoon/api/admin"
	"github.com/cocoon-mesh/cocoon/api/httpguard"
	"github.com/cocoon-mesh/cocoon/api/openai"
	"github.com/cocoon-mesh/cocoon/node"
)

// Servers are the HTTP servers of one node: a client's API (the OpenAI face and the operator
// endpoints, at Config.APIAddr) and the operator endpoints alone at Config.AdminAddr, if set.
type Servers struct {
	api, admin *httpguard.Server // nil: not served
	cancel     context.CancelFunc
}

// Serve starts the HTTP servers of n, a started node, as its Config says: a client's API at
// APIAddr, and on every role the operator endpoints at AdminAddr if it is set. An address that
// cannot be bound is a *node.ConfigError naming its field. log gets the servers' messages.
func Serve(n *node.Node, log *slog.Logger) (_ *Servers, err error) {
	cfg := n.Config()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("role", string(cfg.Role), "peer", n.ID().String())
	guard := httpguard.New(cfg.HTTP, cfg.APIKey)
	ctx, cancel := context.WithCancel(context.Background())
	s := &Servers{cancel: cancel}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	ops := admin.New(ctx, n, guard)
	if cfg.AdminAddr != "" {
		ln, err := listen("admin_addr", cfg.AdminAddr)
		if err != nil {
			return nil, err
		}
		s.admin = guard.Serve("admin", ln, ops.Handler(), log)
		if a, ok := ln.Addr().(*net.TCPAddr); cfg.APIKey == "" && (!ok || !a.IP.IsLoopback()) {
			log.Warn("admin endpoints listen beyond loopback with no api_key: only the local token guards this node's channel commands", "addr", ln.Addr().String())
		}
		log.Info("admin endpoints listening", "url", "http://"+ln.Addr().String()+"/cocoon/v1")
	}
	if cfg.Role == node.RoleClient {
		ln, err := listen("api_addr", cfg.APIAddr)
		if err != nil {
			return nil, err
		}
		s.api = guard.Serve("API", ln, clientHandler(n, guard, ops), log)
		log.Info("client API listening", "url", "http://"+ln.Addr().String()+"/v1")
	}
	return s, nil
}

// listen binds addr, the value of the config field named field.
func listen(field, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, &node.ConfigError{Field: field, Value: addr, Why: "cannot listen: " + err.Error()}
	}
	return ln, nil
}

// clientHandler serves a client's API: the OpenAI face and the operator endpoints, behind the
// API key.
func clientHandler(n *node.Node, guard *httpguard.Guard, ops *admin.Endpoints) http.Handler {
	mux := http.NewServeMux()
	openai.New(n).Routes(mux)
	ops.Routes(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		httpguard.WriteError(w, http.StatusNotFound, "not_found", "", fmt.Sprintf("no route for %s %s: this node serves /v1/models, /v1/chat/completions and /v1/completions, and its status and channels under /cocoon/v1/", r.Method, r.URL.Path))
	})
	return guard.Authorize(mux)
}

// APIAddr is the address the client API listens on ("" when not served, or s is nil).
func (s *Servers) APIAddr() string {
	if s == nil || s.api == nil {
		return ""
	}
	return s.api.Addr()
}

// AdminAddr is the address the admin endpoints listen on ("" when AdminAddr is unset).
func (s *Servers) AdminAddr() string {
	if s == nil || s.admin == nil {
		return ""
	}
	return s.admin.Addr()
}

// Close ends the channel commands under way, then stops the servers, waiting a little while
// for answers under way. Close them before the node.
func (s *Servers) Close() error {
	s.cancel()
	var errs []error
	for _, srv := range []*httpguard.Server{s.api, s.admin} {
		if srv != nil {
			errs = append(errs, srv.Close())
		}
	}
	return errors.Join(errs...)
}
