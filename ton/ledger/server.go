package ledger

// The ledger server: an Embedded ledger behind JSON-over-HTTP, so that the nodes of a
// development network (separate OS processes) share one ledger. It moves DEVELOPMENT MONEY
// ONLY: /v1/fund is a faucet that mints nanoTON for anyone who can reach the server, so it
// belongs on loopback or a private test network, never on a public address.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tlb"
	"github.com/xssnick/tonutils-go/tvm/cell"
)

// MaxRequestBytes bounds the body of a request the ledger server reads.
const MaxRequestBytes = 256 << 10

// Endpoints of the ledger server; every one takes a JSON object by POST and answers JSON.
const (
	PathOpenChannel              = "/v1/open-channel"
	PathChannel                  = "/v1/channel"
	PathBalance                  = "/v1/balance"
	PathCooperativeClose         = "/v1/cooperative-close"
	PathStartUncooperativeClose  = "/v1/start-uncooperative-close"
	PathChallenge                = "/v1/challenge"
	PathFinishUncooperativeClose = "/v1/finish-uncooperative-close"
	PathNow                      = "/v1/now"
	PathFund                     = "/v1/fund"
	PathMessages                 = "/v1/messages"
)

// Error kinds of the server's error answers; the client maps them back to the package's errors.
const (
	kindBadRequest        = "bad_request"    // the request itself is malformed
	kindTooLarge          = "too_large"      // the body exceeds MaxRequestBytes
	kindBadMethod         = "bad_method"     // not POST
	kindBadMediaType      = "bad_media"      // not application/json
	kindNoEndpoint        = "no_endpoint"    // no such path
	kindRefused           = "refused"        // ErrRefused, with exit_code for an *ExitError
	kindNotFound          = "not_found"      // ErrNotFound
	kindNotChannel        = "not_channel"    // ErrNotChannel
	kindBadStateInit      = "bad_state_init" // ErrBadStateInit
	kindInsufficientFunds = "insufficient_funds"
	kindNotWallet         = "not_wallet"
	kindBadAddress        = "bad_address"
	kindWrongOp           = "wrong_op"
	kindActions           = "actions"
	kindCorrupt           = "corrupt"
	kindCanceled          = "canceled"
	kindInternal          = "internal"
)

// Wire forms. Addresses are raw "workchain:hex" strings, cells and StateInits base64 BOCs,
// nanoTON amounts decimal strings.
type (
	openChannelRequest struct {
		From      string `json:"from"`
		Channel   string `json:"channel"`
		StateInit string `json:"state_init"`
		Body      string `json:"body"`
		Value     uint64 `json:"value,string"`
	}
	channelRequest struct {
		Channel string `json:"channel"`
	}
	balanceRequest struct {
		Address string `json:"address"`
	}
	externalRequest struct {
		Channel string `json:"channel"`
		Body    string `json:"body"`
	}
	walletRequest struct {
		From    string `json:"from"`
		Channel string `json:"channel"`
		Body    string `json:"body"`
		Value   uint64 `json:"value,string"`
	}
	fundRequest struct {
		Address string `json:"address"`
		Amount  uint64 `json:"amount,string"`
	}
	emptyRequest struct{}

	receiptJSON struct {
		ExitCode int64        `json:"exit_code"`
		GasUsed  int64        `json:"gas_used"`
		Fee      uint64       `json:"fee,string"`
		Payouts  []payoutJSON `json:"payouts,omitempty"`
	}
	payoutJSON struct {
		To     string `json:"to"`
		Amount uint64 `json:"amount,string"`
		Mode   uint8  `json:"mode"`
	}
	channelResponse struct {
		Address string `json:"address"`
		Storage string `json:"storage"` // the contract's data cell
		Balance uint64 `json:"balance,string"`
	}
	balanceResponse struct {
		Balance uint64 `json:"balance,string"`
	}
	nowResponse struct {
		Now time.Time `json:"now"`
	}
	messagesResponse struct {
		Messages uint64 `json:"messages,string"`
	}
	emptyResponse struct{}

	errorResponse struct {
		Error    string       `json:"error"`
		Kind     string       `json:"kind"`
		Op       string       `json:"op,omitempty"`        // refusals: the operation
		ExitCode *int64       `json:"exit_code,omitempty"` // refusals: the contract's exit code
		Accepted bool         `json:"accepted,omitempty"`  // refusals: accept_message was called
		Receipt  *receiptJSON `json:"receipt,omitempty"`   // what the TVM metered, if it ran
	}
)

// server serves one Embedded ledger.
type server struct {
	l *Embedded
}

// NewServer serves l over JSON-over-HTTP POST endpoints (the Path constants), for Remote.
// Requests are untrusted: bodies are bounded by MaxRequestBytes and decoded strictly. It
// serves development money: PathFund mints nanoTON for any caller.
func NewServer(l *Embedded) http.Handler {
	s := &server{l: l}
	mux := http.NewServeMux()
	mux.Handle(PathOpenChannel, endpoint(s.openChannel))
	mux.Handle(PathChannel, endpoint(s.channel))
	mux.Handle(PathBalance, endpoint(s.balance))
	mux.Handle(PathCooperativeClose, endpoint(s.cooperativeClose))
	mux.Handle(PathStartUncooperativeClose, endpoint(s.startUncooperativeClose))
	mux.Handle(PathChallenge, endpoint(s.challenge))
	mux.Handle(PathFinishUncooperativeClose, endpoint(s.finishUncooperativeClose))
	mux.Handle(PathNow, endpoint(s.now))
	mux.Handle(PathFund, endpoint(s.fund))
	mux.Handle(PathMessages, endpoint(s.messages))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, errorResponse{Error: "no such endpoint: " + r.URL.Path, Kind: kindNoEndpoint})
	})
	return mux
}

func (s *server) openChannel(ctx context.Context, req *openChannelRequest) (any, error) {
	from, err := parseAddress("from", req.From)
	if err != nil {
		return nil, err
	}
	ch, err := parseAddress("channel", req.Channel)
	if err != nil {
		return nil, err
	}
	init, err := parseStateInit("state_init", req.StateInit)
	if err != nil {
		return nil, err
	}
	body, err := parseCell("body", req.Body)
	if err != nil {
		return nil, err
	}
	return receiptResult(s.l.OpenChannel(ctx, from, ch, init, body, req.Value))
}

func (s *server) channel(ctx context.Context, req *channelRequest) (any, error) {
	ch, err := parseAddress("channel", req.Channel)
	if err != nil {
		return nil, err
	}
	st, err := s.l.Channel(ctx, ch)
	if err != nil {
		return nil, err
	}
	data, err := st.Storage.Cell()
	if err != nil {
		return nil, fmt.Errorf("ledger: channel %s: storage: %w", ch, err)
	}
	return channelResponse{Address: st.Address.StringRaw(), Storage: encodeCell(data), Balance: st.Balance}, nil
}

func (s *server) balance(ctx context.Context, req *balanceRequest) (any, error) {
	a, err := parseAddress("address", req.Address)
	if err != nil {
		return nil, err
	}
	b, err := s.l.Balance(ctx, a)
	if err != nil {
		return nil, err
	}
	return balanceResponse{Balance: b}, nil
}

func (s *server) cooperativeClose(ctx context.Context, req *externalRequest) (any, error) {
	ch, err := parseAddress("channel", req.Channel)
	if err != nil {
		return nil, err
	}
	body, err := parseCell("body", req.Body)
	if err != nil {
		return nil, err
	}
	return receiptResult(s.l.CooperativeClose(ctx, ch, body))
}

// walletMessage parses the request of an internal message from a wallet.
func walletMessage(req *walletRequest) (from, ch *address.Address, body *cell.Cell, err error) {
	if from, err = parseAddress("from", req.From); err != nil {
		return nil, nil, nil, err
	}
	if ch, err = parseAddress("channel", req.Channel); err != nil {
		return nil, nil, nil, err
	}
	if body, err = parseCell("body", req.Body); err != nil {
		return nil, nil, nil, err
	}
	return from, ch, body, nil
}

func (s *server) startUncooperativeClose(ctx context.Context, req *walletRequest) (any, error) {
	from, ch, body, err := walletMessage(req)
	if err != nil {
		return nil, err
	}
	return receiptResult(s.l.StartUncooperativeClose(ctx, from, ch, body, req.Value))
}

func (s *server) challenge(ctx context.Context, req *walletRequest) (any, error) {
	from, ch, body, err := walletMessage(req)
	if err != nil {
		return nil, err
	}
	return receiptResult(s.l.Challenge(ctx, from, ch, body, req.Value))
}

func (s *server) finishUncooperativeClose(ctx context.Context, req *channelRequest) (any, error) {
	ch, err := parseAddress("channel", req.Channel)
	if err != nil {
		return nil, err
	}
	return receiptResult(s.l.FinishUncooperativeClose(ctx, ch))
}

func (s *server) now(ctx context.Context, _ *emptyRequest) (any, error) {
	t, err := s.l.Now(ctx)
	if err != nil {
		return nil, err
	}
	return nowResponse{Now: t}, nil
}

func (s *server) fund(ctx context.Context, req *fundRequest) (any, error) {
	a, err := parseAddress("address", req.Address)
	if err != nil {
		return nil, err
	}
	if err := s.l.Fund(ctx, a, req.Amount); err != nil {
		return nil, err
	}
	return emptyResponse{}, nil
}

func (s *server) messages(_ context.Context, _ *emptyRequest) (any, error) {
	return messagesResponse{Messages: s.l.Messages()}, nil
}

// receiptResult is a receipt-returning method's answer: on an error, the receipt travels with
// it when the TVM ran (a refusal's exit code and gas).
func receiptResult(r Receipt, err error) (any, error) {
	if err != nil {
		if r.GasUsed != 0 || r.ExitCode != 0 {
			rj := toReceiptJSON(r)
			return &rj, err
		}
		return nil, err
	}
	return toReceiptJSON(r), nil
}

func toReceiptJSON(r Receipt) receiptJSON {
	out := receiptJSON{ExitCode: r.ExitCode, GasUsed: r.GasUsed, Fee: r.Fee}
	for _, p := range r.Payouts {
		out.Payouts = append(out.Payouts, payoutJSON{To: p.To.StringRaw(), Amount: p.Amount, Mode: p.Mode})
	}
	return out
}

// requestError is a malformed request: answered 400 with kind bad_request.
type requestError struct{ msg string }

func (e *requestError) Error() string { return "ledger server: bad request: " + e.msg }

func badRequest(format string, args ...any) error {
	return &requestError{msg: fmt.Sprintf(format, args...)}
}

// endpoint adapts a method to HTTP: POST with a JSON object of type Req, strictly decoded, and
// a JSON answer (errors as errorResponse).
func endpoint[Req any](fn func(context.Context, *Req) (any, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			writeJSON(w, http.StatusMethodNotAllowed, errorResponse{Error: "use POST", Kind: kindBadMethod})
			return
		}
		// Requiring JSON keeps a browser from posting here cross-origin without a preflight.
		if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
			writeJSON(w, http.StatusUnsupportedMediaType, errorResponse{Error: "Content-Type must be application/json", Kind: kindBadMediaType})
			return
		}
		var req Req
		if err := decodeRequest(w, r, &req); err != nil {
			if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
				writeJSON(w, http.StatusRequestEntityTooLarge, errorResponse{
					Error: fmt.Sprintf("request body over %d bytes", MaxRequestBytes), Kind: kindTooLarge})
				return
			}
			writeJSON(w, http.StatusBadRequest, errorResponse{Error: err.Error(), Kind: kindBadRequest})
			return
		}
		resp, err := fn(r.Context(), &req)
		if err != nil {
			writeError(w, err, resp)
			return
		}
		writeJSON(w, http.StatusOK, resp)
	})
}

// decodeRequest reads at most MaxRequestBytes and decodes exactly one JSON object with no
// unknown fields and nothing after it.
func decodeRequest(w http.ResponseWriter, r *http.Request, v any) error {
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, MaxRequestBytes)); err != nil {
		return err
	}
	b := bytes.TrimSpace(buf.Bytes())
	if len(b) == 0 || b[0] != '{' {
		return badRequest("the body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("%v", err)
	}
	if dec.InputOffset() != int64(len(b)) { // b is trimmed: anything left is not space
		return badRequest("data after the JSON object")
	}
	return nil
}

// classify gives an error's status and kind.
func classify(err error) (int, string) {
	var ee *ExitError
	var re *requestError
	switch {
	case errors.As(err, &re):
		return http.StatusBadRequest, kindBadRequest
	case errors.As(err, &ee), errors.Is(err, ErrRefused):
		return http.StatusUnprocessableEntity, kindRefused
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound, kindNotFound
	case errors.Is(err, ErrNotChannel):
		return http.StatusConflict, kindNotChannel
	case errors.Is(err, ErrBadStateInit):
		return http.StatusUnprocessableEntity, kindBadStateInit
	case errors.Is(err, ErrInsufficientFunds):
		return http.StatusConflict, kindInsufficientFunds
	case errors.Is(err, ErrNotWallet):
		return http.StatusConflict, kindNotWallet
	case errors.Is(err, ErrBadAddress):
		return http.StatusBadRequest, kindBadAddress
	case errors.Is(err, ErrWrongOp):
		return http.StatusUnprocessableEntity, kindWrongOp
	case errors.Is(err, ErrActions):
		return http.StatusUnprocessableEntity, kindActions
	case errors.Is(err, ErrCorrupt):
		return http.StatusInternalServerError, kindCorrupt
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, kindCanceled
	}
	return http.StatusInternalServerError, kindInternal
}

func writeError(w http.ResponseWriter, err error, resp any) {
	status, kind := classify(err)
	e := errorResponse{Error: err.Error(), Kind: kind}
	var ee *ExitError
	if errors.As(err, &ee) {
		code := ee.ExitCode
		e.Op, e.ExitCode, e.Accepted = ee.Op, &code, ee.Accepted
	}
	if rj, ok := resp.(*receiptJSON); ok {
		e.Receipt = rj
	}
	writeJSON(w, status, e)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client may be gone; nothing to do about it
}

// parseAddress reads a standard address, raw ("0:hex") or user-friendly; it is required.
func parseAddress(field, s string) (a *address.Address, err error) {
	if s == "" {
		return nil, badRequest("%s: missing", field)
	}
	defer func() { // third-party parsing of untrusted input: contain it
		if r := recover(); r != nil {
			a, err = nil, badRequest("%s: %v", field, r)
		}
	}()
	if strings.Contains(s, ":") {
		a, err = address.ParseRawAddr(s)
	} else {
		a, err = address.ParseAddr(s)
	}
	if err != nil {
		return nil, badRequest("%s: %v", field, err)
	}
	if a.Type() != address.StdAddress || len(a.Data()) != 32 {
		return nil, badRequest("%s: not a standard address", field)
	}
	return a, nil
}

// parseCell reads a base64 BOC with one root; an empty string is no cell (nil).
func parseCell(field, s string) (c *cell.Cell, err error) {
	if s == "" {
		return nil, nil
	}
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, badRequest("%s: base64: %v", field, err)
	}
	defer func() { // the BOC parser is third-party code: contain it
		if r := recover(); r != nil {
			c, err = nil, badRequest("%s: BOC: %v", field, r)
		}
	}()
	if c, err = cell.FromBOC(raw); err != nil {
		return nil, badRequest("%s: BOC: %v", field, err)
	}
	return c, nil
}

// parseStateInit reads a StateInit from a base64 BOC; an empty string is none (nil).
func parseStateInit(field, s string) (si *tlb.StateInit, err error) {
	c, err := parseCell(field, s)
	if err != nil || c == nil {
		return nil, err
	}
	defer func() {
		if r := recover(); r != nil {
			si, err = nil, badRequest("%s: StateInit: %v", field, r)
		}
	}()
	sl, err := c.BeginParse()
	if err != nil {
		return nil, badRequest("%s: StateInit: %v", field, err)
	}
	si = new(tlb.StateInit)
	if err := tlb.LoadFromCell(si, sl); err != nil {
		return nil, badRequest("%s: StateInit: %v", field, err)
	}
	return si, nil
}

func encodeCell(c *cell.Cell) string {
	if c == nil {
		return ""
	}
	return base64.StdEncoding.EncodeToString(c.ToBOC())
}
