package node

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// adminTimeout bounds one channel command: a close may wait on the ledger, and for a
// quarantine to start when the peer does not answer.
const adminTimeout = 2 * time.Minute

// ChannelList is the answer of GET /cocoon/v1/channels and of POST .../close.
type ChannelList struct {
	Channels []ChannelStatus `json:"channels"`
}

// channelOp is one operator command on the channels with a peer; it returns the JSON answer.
type channelOp func(ctx context.Context, p peer.ID) (any, error)

// routeAdmin adds the operator endpoints, the same on every role: the node's status and its
// payment channels.
func (n *Node) routeAdmin(mux *http.ServeMux) {
	mux.HandleFunc("GET /cocoon/v1/status", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, n.Status()) })
	// What moves or shows money wants the API key or the local token, even with no API key.
	mux.HandleFunc("GET /cocoon/v1/channels", n.needSecret(n.handleChannels))
	mux.HandleFunc("GET /cocoon/v1/wallet", n.needSecret(n.handleWallet))
	mux.HandleFunc("POST /cocoon/v1/channels/{peer}/open", n.needSecret(func(w http.ResponseWriter, r *http.Request) { n.channelCommand(w, r, one(n.OpenChannel)) }))
	mux.HandleFunc("POST /cocoon/v1/channels/{peer}/topup", n.needSecret(func(w http.ResponseWriter, r *http.Request) { n.channelCommand(w, r, one(n.TopUpChannel)) }))
	mux.HandleFunc("POST /cocoon/v1/channels/{peer}/close", n.needSecret(n.handleCloseCommand))
}

// adminHandler serves the operator endpoints alone, at a proxy's or worker's AdminAddr.
func (n *Node) adminHandler() http.Handler {
	mux := http.NewServeMux()
	n.routeAdmin(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		apiError(w, http.StatusNotFound, "invalid_request_error", "not_found", "", fmt.Sprintf("no route for %s %s: this address serves GET /cocoon/v1/status, GET /cocoon/v1/channels, GET /cocoon/v1/wallet and POST /cocoon/v1/channels/{peer}/open|topup|close", r.Method, r.URL.Path))
	})
	return n.authorize(mux)
}

func (n *Node) handleChannels(w http.ResponseWriter, _ *http.Request) {
	if n.payments == nil {
		paymentsOff(w)
		return
	}
	writeJSON(w, http.StatusOK, channelList(n.Channels()))
}

// channelList sorts channels into a list's body, for output that does not shift between calls.
func channelList(chans []ChannelStatus) ChannelList {
	if chans == nil {
		chans = []ChannelStatus{} // an empty list, not null, for scripts
	}
	slices.SortFunc(chans, func(a, b ChannelStatus) int {
		return cmp.Or(cmp.Compare(a.Role, b.Role), cmp.Compare(a.Peer, b.Peer), cmp.Compare(a.ChannelID, b.ChannelID))
	})
	return ChannelList{Channels: chans}
}

// one makes a command on one channel a channelOp: its answer is that channel.
func one(f func(context.Context, peer.ID) (ChannelStatus, error)) channelOp {
	return func(ctx context.Context, p peer.ID) (any, error) { return f(ctx, p) }
}

func (n *Node) handleCloseCommand(w http.ResponseWriter, r *http.Request) {
	force := false
	if v := r.URL.Query().Get("force"); v != "" {
		var err error
		if force, err = strconv.ParseBool(v); err != nil {
			badRequest("force", fmt.Sprintf("force=%q: want true or false", v)).write(w)
			return
		}
	}
	n.channelCommand(w, r, func(ctx context.Context, p peer.ID) (any, error) {
		closed, err := n.CloseChannel(ctx, p, force)
		return channelList(closed), err
	})
}

// channelCommand runs op on the channels with the request's peer and answers with op's result.
// The command ends with the node, not only with the caller, so a closing node is not held up.
func (n *Node) channelCommand(w http.ResponseWriter, r *http.Request, op channelOp) {
	s := r.PathValue("peer")
	p, err := peer.Decode(s)
	if err != nil {
		badRequest("peer", fmt.Sprintf("%q is not a peer ID: %v", s, err)).write(w)
		return
	}
	if p == n.h.ID() {
		badRequest("peer", "that is this node's own peer ID: name the peer at the other end of the channel").write(w)
		return
	}
	if n.payments == nil {
		paymentsOff(w)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), adminTimeout)
	defer cancel()
	defer context.AfterFunc(n.ctx, cancel)()
	st, err := op(ctx, p)
	if err != nil {
		writeWireError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// WalletStatus is the node's TON wallet, as GET /cocoon/v1/wallet shows it.
type WalletStatus struct {
	Address string `json:"address"`
	Balance uint64 `json:"balance"` // nanoTON, as the node's ledger reads it now
}

// Wallet reads the balance of the node's wallet on its ledger.
func (n *Node) Wallet(ctx context.Context) (WalletStatus, error) {
	if n.payments == nil {
		return WalletStatus{}, errors.New("payments are off: the node has no wallet in use")
	}
	bal, err := n.payments.ledger.Balance(ctx, n.payments.wallet)
	if err != nil {
		return WalletStatus{}, err
	}
	return WalletStatus{Address: n.payments.wallet.String(), Balance: bal}, nil
}

func (n *Node) handleWallet(w http.ResponseWriter, r *http.Request) {
	if n.payments == nil {
		paymentsOff(w)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), adminTimeout)
	defer cancel()
	ws, err := n.Wallet(ctx)
	if err != nil {
		apiError(w, http.StatusBadGateway, errorType(http.StatusBadGateway), "ledger", "", "reading the wallet's balance on the ledger: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, ws)
}

// paymentsOff answers a channel request on a node that has no ledger.
func paymentsOff(w http.ResponseWriter) {
	apiError(w, http.StatusConflict, "invalid_request_error", "payments_off", "",
		"payments are off on this node: it has no channels (start it with --ledger or --ton-config to pay and be paid)")
}

// startAdmin serves the operator endpoints on AdminAddr, if set.
func (n *Node) startAdmin() error {
	if n.cfg.AdminAddr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", n.cfg.AdminAddr)
	if err != nil {
		return &ConfigError{"admin_addr", n.cfg.AdminAddr, "cannot listen: " + err.Error()}
	}
	n.adminLn = ln
	n.admin = n.serveHTTP("admin", ln, n.adminHandler())
	if a, ok := ln.Addr().(*net.TCPAddr); n.cfg.APIKey == "" && (!ok || !a.IP.IsLoopback()) {
		n.log.Warn("admin endpoints listen beyond loopback with no api_key: only the local token guards this node's channel commands", "addr", ln.Addr().String())
	}
	n.log.Info("admin endpoints listening", "url", "http://"+ln.Addr().String()+"/cocoon/v1")
	return nil
}

// AdminAddr is the address the admin endpoints listen on ("" when AdminAddr is unset).
func (n *Node) AdminAddr() string {
	if n.adminLn == nil {
		return ""
	}
	return n.adminLn.Addr().String()
}
