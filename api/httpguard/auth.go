package httpguard

import (
	"crypto/subtle"
	"net/http"
	"strings"
)

// Authorize lets a request in with the bearer API key or the local token, when an API key is
// configured; without one, only the endpoints wrapped in NeedSecret ask for either.
func (g *Guard) Authorize(next http.Handler) http.Handler {
	if g.apiKey == "" {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !g.hasSecret(r) {
			WriteError(w, http.StatusUnauthorized, "invalid_api_key", "", "missing or wrong API key: send Authorization: Bearer <key>, the api_key in this node's config (or its local token, in the file local-token in its data dir)")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// NeedSecret guards an endpoint that moves or shows money: it wants the API key or the local
// token even when no API key is configured, so that no other local program or web page can
// call it.
func (g *Guard) NeedSecret(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if g.apiKey == "" && g.cfg.LocalToken == "" {
			WriteError(w, http.StatusForbidden, "token_required", "",
				"channel and wallet commands are off: this node has neither an api_key nor a local token (cocoon-node run makes one in its data dir; set api_key otherwise)")
			return
		}
		if !g.hasSecret(r) {
			WriteError(w, http.StatusUnauthorized, "token_required", "",
				"channel and wallet commands need this node's local token or its api_key, as Authorization: Bearer <token>: the node keeps the token in the file local-token in its data dir, where 'cocoon-node channels|wallet --node URL --data-dir DIR' finds it")
			return
		}
		next(w, r)
	}
}

// hasSecret reports whether r carries the API key or the local token as its bearer token.
func (g *Guard) hasSecret(r *http.Request) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return false
	}
	match := func(want string) bool {
		return want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
	}
	return match(g.apiKey) || match(g.cfg.LocalToken)
}
