package admin

import (
	"cmp"
	"context"
	_ "embed"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cocoon-mesh/cocoon/api/httpguard"
	"github.com/cocoon-mesh/cocoon/node"
	"github.com/cocoon-mesh/cocoon/node/wire"
)

// adminTimeout bounds one channel command: a close may wait on the ledger, and for a
// quarantine to start when the peer does not answer.
const adminTimeout = 2 * time.Minute

// ChannelList is the answer of GET /cocoon/v1/channels and of POST .../close.
type ChannelList struct {
	Channels []node.ChannelStatus `json:"channels"`
}

// Endpoints serves the operator endpoints of one node: its status and its payment channels.
type Endpoints struct {
	n     *node.Node
	guard *httpguard.Guard
	ctx   context.Context // ends the commands under way when the servers close
}

// New returns n's operator endpoints behind guard; the channel commands they run end with ctx
// (the servers' life), not only with their caller, so a closing node is not held up.
func New(ctx context.Context, n *node.Node, guard *httpguard.Guard) *Endpoints {
	return &Endpoints{n: n, guard: guard, ctx: ctx}
}

// channelOp is one operator command on the channels with a peer; it returns the JSON answer.
type channelOp func(ctx context.Context, p peer.ID) (any, error)

// Routes adds the operator endpoints to mux, the same on every role.
func (e *Endpoints) Routes(mux *http.ServeMux) {
	n, secret := e.n, e.guard.NeedSecret
	mux.HandleFunc("GET /cocoon/v1/status", func(w http.ResponseWriter, r *http.Request) { httpguard.WriteJSON(w, http.StatusOK, n.Status()) })
	// What moves or shows money wants the API key or the local token, even with no API key.
	mux.HandleFunc("GET /cocoon/v1/channels", secret(e.handleChannels))
	mux.HandleFunc("GET /cocoon/v1/wallet", secret(e.handleWallet))
	mux.HandleFunc("POST /cocoon/v1/channels/{peer}/open", secret(func(w http.ResponseWriter, r *http.Request) { e.channelCommand(w, r, one(n.OpenChannel)) }))
	mux.HandleFunc("POST /cocoon/v1/channels/{peer}/topup", secret(func(w http.ResponseWriter, r *http.Request) { e.channelCommand(w, r, one(n.TopUpChannel)) }))
	mux.HandleFunc("POST /cocoon/v1/channels/{peer}/close", secret(e.handleCloseCommand))
	e.probes(mux, "/cocoon")
	mux.HandleFunc("GET /cocoon/{$}", servePage)
}

// statusPage is the status page: one self-contained HTML file (no CDN: nodes run on machines
// without internet) that reads GET /cocoon/v1/status every two seconds.
//
//go:embed status.html
var statusPage []byte

func servePage(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(statusPage)
}

// probes adds the metrics and the health probes under prefix: a client's API serves them
// under /cocoon (behind its API key), a node's admin address at the root too.
func (e *Endpoints) probes(mux *http.ServeMux, prefix string) {
	mux.Handle("GET "+prefix+"/metrics", promhttp.HandlerFor(e.n.Metrics(), promhttp.HandlerOpts{}))
	mux.HandleFunc("GET "+prefix+"/healthz", func(w http.ResponseWriter, _ *http.Request) {
		httpguard.WriteJSON(w, http.StatusOK, map[string]string{"status": "alive"})
	})
	mux.HandleFunc("GET "+prefix+"/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if why := notReady(e.n); why != "" {
			httpguard.WriteError(w, http.StatusServiceUnavailable, "not_ready", "", why)
			return
		}
		httpguard.WriteJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
}

// notReady says why n cannot do its job yet ("" when it can): a client needs a proxy and a
// model to send requests to, a proxy a worker it may route to, a worker a proxy and a backend
// that answers.
func notReady(n *node.Node) string {
	st := n.Status()
	switch st.Role {
	case node.RoleClient:
		if len(st.Proxies) == 0 {
			return "not connected to any proxy yet (check --bootstrap, or wait for discovery)"
		}
		if len(n.Models()) == 0 {
			return "no worker known yet: no model to serve (GET /v1/models lists them once one is)"
		}
	case node.RoleProxy:
		for _, w := range st.Workers {
			if w.Healthy && w.EjectedUntil == nil {
				return ""
			}
		}
		return fmt.Sprintf("no worker to route to: %d in the table, none healthy and not ejected; %d refused (see GET /cocoon/v1/status)", len(st.Workers), len(st.Refused))
	case node.RoleWorker:
		if len(st.Proxies) == 0 {
			return "not connected to any proxy yet (check --bootstrap, or wait for discovery)"
		}
		if st.Healthy != nil && !*st.Healthy {
			return "the model backend does not answer its health check"
		}
	}
	return ""
}

// Handler serves the operator endpoints alone, as at a node's AdminAddr, behind the API key.
func (e *Endpoints) Handler() http.Handler {
	mux := http.NewServeMux()
	e.Routes(mux)
	e.probes(mux, "")
	mux.HandleFunc("GET /{$}", servePage)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		httpguard.WriteError(w, http.StatusNotFound, "not_found", "", fmt.Sprintf("no route for %s %s: this address serves GET / (the status page), GET /metrics, /healthz, /readyz, GET /cocoon/v1/status, GET /cocoon/v1/channels, GET /cocoon/v1/wallet and POST /cocoon/v1/channels/{peer}/open|topup|close", r.Method, r.URL.Path))
	})
	return e.guard.Authorize(mux)
}

func (e *Endpoints) handleChannels(w http.ResponseWriter, _ *http.Request) {
	if !e.n.PaymentsOn() {
		paymentsOff(w)
		return
	}
	httpguard.WriteJSON(w, http.StatusOK, channelList(e.n.Channels()))
}

// channelList sorts channels into a list's body, for output that does not shift between calls.
func channelList(chans []node.ChannelStatus) ChannelList {
	if chans == nil {
		chans = []node.ChannelStatus{} // an empty list, not null, for scripts
	}
	slices.SortFunc(chans, func(a, b node.ChannelStatus) int {
		return cmp.Or(cmp.Compare(a.Role, b.Role), cmp.Compare(a.Peer, b.Peer), cmp.Compare(a.ChannelID, b.ChannelID))
	})
	return ChannelList{Channels: chans}
}

// one makes a command on one channel a channelOp: its answer is that channel.
func one(f func(context.Context, peer.ID) (node.ChannelStatus, error)) channelOp {
	return func(ctx context.Context, p peer.ID) (any, error) { return f(ctx, p) }
}

func (e *Endpoints) handleCloseCommand(w http.ResponseWriter, r *http.Request) {
	force := false
	if v := r.URL.Query().Get("force"); v != "" {
		var err error
		if force, err = strconv.ParseBool(v); err != nil {
			httpguard.WriteError(w, http.StatusBadRequest, wire.CodeBadRequest.String(), "force", fmt.Sprintf("force=%q: want true or false", v))
			return
		}
	}
	e.channelCommand(w, r, func(ctx context.Context, p peer.ID) (any, error) {
		closed, err := e.n.CloseChannel(ctx, p, force)
		return channelList(closed), err
	})
}

// channelCommand runs op on the channels with the request's peer and answers with op's result.
// The command ends with the servers, not only with the caller, so a closing node is not held up.
func (e *Endpoints) channelCommand(w http.ResponseWriter, r *http.Request, op channelOp) {
	s := r.PathValue("peer")
	p, err := peer.Decode(s)
	if err != nil {
		httpguard.WriteError(w, http.StatusBadRequest, wire.CodeBadRequest.String(), "peer", fmt.Sprintf("%q is not a peer ID: %v", s, err))
		return
	}
	if p == e.n.ID() {
		httpguard.WriteError(w, http.StatusBadRequest, wire.CodeBadRequest.String(), "peer", "that is this node's own peer ID: name the peer at the other end of the channel")
		return
	}
	if !e.n.PaymentsOn() {
		paymentsOff(w)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), adminTimeout)
	defer cancel()
	defer context.AfterFunc(e.ctx, cancel)()
	st, err := op(ctx, p)
	if err != nil {
		httpguard.WriteWireError(w, node.AsWireError(err))
		return
	}
	httpguard.WriteJSON(w, http.StatusOK, st)
}

func (e *Endpoints) handleWallet(w http.ResponseWriter, r *http.Request) {
	if !e.n.PaymentsOn() {
		paymentsOff(w)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), adminTimeout)
	defer cancel()
	ws, err := e.n.Wallet(ctx)
	if err != nil {
		httpguard.WriteError(w, http.StatusBadGateway, "ledger", "", "reading the wallet's balance on the ledger: "+err.Error())
		return
	}
	httpguard.WriteJSON(w, http.StatusOK, ws)
}

// paymentsOff answers a channel request on a node that has no ledger.
func paymentsOff(w http.ResponseWriter) {
	httpguard.WriteError(w, http.StatusConflict, "payments_off", "",
		"payments are off on this node: it has no channels (start it with --ledger or --ton-config to pay and be paid)")
}
