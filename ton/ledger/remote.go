package ledger

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tlb"
	"github.com/xssnick/tonutils-go/tvm/cell"

	"github.com/cocoon-mesh/cocoon/ton"
)

// maxResponseBytes bounds an answer the client reads from a ledger server.
const maxResponseBytes = 1 << 20

// Remote is a Ledger served by a ledger server (NewServer) over HTTP: the one development
// ledger that the separate processes of a development network share. It is safe for
// concurrent use.
type Remote struct {
	base   string
	client *http.Client
}

var _ Ledger = (*Remote)(nil)

// NewRemote talks to the ledger server at baseURL (such as "http://127.0.0.1:10050"); a nil
// client means a fresh one with a 30-second timeout.
func NewRemote(baseURL string, client *http.Client) *Remote {
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	return &Remote{base: strings.TrimRight(baseURL, "/"), client: client}
}

// remoteError is an error of a Remote call: it names the operation and unwraps to the
// package's error the server reported (an *ExitError for a refusal), if any.
type remoteError struct {
	op  string
	msg string
	err error
}

func (e *remoteError) Error() string { return "ledger: remote " + e.op + ": " + e.msg }

func (e *remoteError) Unwrap() error { return e.err }

// fail wraps a local or transport error with the operation.
func fail(op string, err error) error {
	return &remoteError{op: op, msg: err.Error(), err: err}
}

// OpenChannel sends the channel's StateInit and init_channel body from the payer's wallet.
func (r *Remote) OpenChannel(ctx context.Context, from, channel *address.Address, init *tlb.StateInit, body *cell.Cell, value uint64) (Receipt, error) {
	const op = "open channel"
	if err := needAddrs(op, from, channel); err != nil {
		return Receipt{}, err
	}
	si := ""
	if init != nil {
		c, err := tlb.ToCell(init)
		if err != nil {
			return Receipt{}, fail(op, fmt.Errorf("%w: %v", ErrBadStateInit, err))
		}
		si = encodeCell(c)
	}
	return r.receipt(ctx, op, PathOpenChannel, openChannelRequest{
		From: from.StringRaw(), Channel: channel.StringRaw(), StateInit: si, Body: encodeCell(body), Value: value,
	})
}

// Channel reads a channel's parsed storage and balance.
func (r *Remote) Channel(ctx context.Context, channel *address.Address) (ChannelState, error) {
	const op = "channel"
	if err := needAddrs(op, channel); err != nil {
		return ChannelState{}, err
	}
	var resp channelResponse
	if err := r.call(ctx, op, PathChannel, channelRequest{Channel: channel.StringRaw()}, &resp, nil); err != nil {
		return ChannelState{}, err
	}
	a, err := address.ParseRawAddr(resp.Address)
	if err != nil {
		return ChannelState{}, fail(op, fmt.Errorf("server's address %q: %w", resp.Address, err))
	}
	data, err := parseCell("storage", resp.Storage)
	if err == nil && data == nil {
		err = errors.New("no storage")
	}
	if err != nil {
		return ChannelState{}, fail(op, fmt.Errorf("server's answer: %w", err))
	}
	s, err := ton.ParseStorage(data)
	if err != nil {
		return ChannelState{}, fail(op, err)
	}
	return ChannelState{Address: a, Storage: s, Balance: resp.Balance}, nil
}

// Balance reads an account's balance in nanoTON (0 for an account that does not exist).
func (r *Remote) Balance(ctx context.Context, addr *address.Address) (uint64, error) {
	const op = "balance"
	if err := needAddrs(op, addr); err != nil {
		return 0, err
	}
	var resp balanceResponse
	if err := r.call(ctx, op, PathBalance, balanceRequest{Address: addr.StringRaw()}, &resp, nil); err != nil {
		return 0, err
	}
	return resp.Balance, nil
}

// CooperativeClose sends a cooperative_close body as an external message.
func (r *Remote) CooperativeClose(ctx context.Context, channel *address.Address, body *cell.Cell) (Receipt, error) {
	const op = "cooperative close"
	if err := needAddrs(op, channel); err != nil {
		return Receipt{}, err
	}
	return r.receipt(ctx, op, PathCooperativeClose, externalRequest{Channel: channel.StringRaw(), Body: encodeCell(body)})
}

// StartUncooperativeClose sends a start_uncooperative_close body from a wallet, with value.
func (r *Remote) StartUncooperativeClose(ctx context.Context, from, channel *address.Address, body *cell.Cell, value uint64) (Receipt, error) {
	return r.walletMessage(ctx, "start uncooperative close", PathStartUncooperativeClose, from, channel, body, value)
}

// Challenge sends a challenge_quarantined_state body from a wallet, with value.
func (r *Remote) Challenge(ctx context.Context, from, channel *address.Address, body *cell.Cell, value uint64) (Receipt, error) {
	return r.walletMessage(ctx, "challenge", PathChallenge, from, channel, body, value)
}

func (r *Remote) walletMessage(ctx context.Context, op, path string, from, channel *address.Address, body *cell.Cell, value uint64) (Receipt, error) {
	if err := needAddrs(op, from, channel); err != nil {
		return Receipt{}, err
	}
	return r.receipt(ctx, op, path, walletRequest{
		From: from.StringRaw(), Channel: channel.StringRaw(), Body: encodeCell(body), Value: value,
	})
}

// FinishUncooperativeClose sends finish_uncooperative_close as an external message.
func (r *Remote) FinishUncooperativeClose(ctx context.Context, channel *address.Address) (Receipt, error) {
	const op = "finish uncooperative close"
	if err := needAddrs(op, channel); err != nil {
		return Receipt{}, err
	}
	return r.receipt(ctx, op, PathFinishUncooperativeClose, channelRequest{Channel: channel.StringRaw()})
}

// Now returns the ledger server's current time.
func (r *Remote) Now(ctx context.Context) (time.Time, error) {
	var resp nowResponse
	if err := r.call(ctx, "now", PathNow, emptyRequest{}, &resp, nil); err != nil {
		return time.Time{}, err
	}
	return resp.Now, nil
}

// Fund credits amount nanoTON of development money to addr (the server's faucet).
func (r *Remote) Fund(ctx context.Context, addr *address.Address, amount uint64) error {
	const op = "fund"
	if err := needAddrs(op, addr); err != nil {
		return err
	}
	return r.call(ctx, op, PathFund, fundRequest{Address: addr.StringRaw(), Amount: amount}, &emptyResponse{}, nil)
}

// Messages returns how many messages the server's ledger executed since it started.
func (r *Remote) Messages(ctx context.Context) (uint64, error) {
	var resp messagesResponse
	if err := r.call(ctx, "messages", PathMessages, emptyRequest{}, &resp, nil); err != nil {
		return 0, err
	}
	return resp.Messages, nil
}

// needAddrs refuses a nil or non-standard address before anything is sent.
func needAddrs(op string, addrs ...*address.Address) error {
	for _, a := range addrs {
		if a == nil || a.Type() != address.StdAddress || len(a.Data()) != 32 {
			return fail(op, fmt.Errorf("%w: %v", ErrBadAddress, a))
		}
	}
	return nil
}

// receipt calls a receipt-returning endpoint; a refusal's receipt comes back with its error.
func (r *Remote) receipt(ctx context.Context, op, path string, req any) (Receipt, error) {
	var resp receiptJSON
	var onErr *receiptJSON
	if err := r.call(ctx, op, path, req, &resp, &onErr); err != nil {
		if onErr != nil {
			rc, perr := fromReceiptJSON(*onErr)
			if perr == nil {
				return rc, err
			}
		}
		return Receipt{}, err
	}
	rc, err := fromReceiptJSON(resp)
	if err != nil {
		return Receipt{}, fail(op, err)
	}
	return rc, nil
}

func fromReceiptJSON(rj receiptJSON) (Receipt, error) {
	rc := Receipt{ExitCode: rj.ExitCode, GasUsed: rj.GasUsed, Fee: rj.Fee}
	for _, p := range rj.Payouts {
		to, err := address.ParseRawAddr(p.To)
		if err != nil {
			return Receipt{}, fmt.Errorf("server's payout address %q: %w", p.To, err)
		}
		rc.Payouts = append(rc.Payouts, Payout{To: to, Amount: p.Amount, Mode: p.Mode})
	}
	return rc, nil
}

// call posts req as JSON to path and decodes a 200 answer into resp; an error answer becomes
// a remoteError that unwraps to the package's error, and its receipt, if any, goes to rcpt.
func (r *Remote) call(ctx context.Context, op, path string, req, resp any, rcpt **receiptJSON) error {
	body, err := json.Marshal(req)
	if err != nil {
		return fail(op, err)
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, r.base+path, bytes.NewReader(body))
	if err != nil {
		return fail(op, err)
	}
	hr.Header.Set("Content-Type", "application/json")
	res, err := r.client.Do(hr)
	if err != nil {
		if oe, ok := errors.AsType[*net.OpError](err); !ok || oe.Op != "dial" {
			err = fmt.Errorf("%w: %w", ErrUnconfirmed, err) // the request may have reached the ledger
		}
		return fail(op, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, maxResponseBytes+1))
	if err != nil {
		return fail(op, fmt.Errorf("%w: read answer: %w", ErrUnconfirmed, err))
	}
	if len(raw) > maxResponseBytes {
		return fail(op, fmt.Errorf("answer over %d bytes", maxResponseBytes))
	}
	if res.StatusCode != http.StatusOK {
		var e errorResponse
		if err := json.Unmarshal(raw, &e); err != nil || e.Kind == "" {
			return &remoteError{op: op, msg: fmt.Sprintf("server answered %s: %.200q", res.Status, raw)}
		}
		if rcpt != nil {
			*rcpt = e.Receipt
		}
		return &remoteError{op: op, msg: e.Error, err: errorOf(e)}
	}
	if err := json.Unmarshal(raw, resp); err != nil {
		return fail(op, fmt.Errorf("server's answer: %w", err))
	}
	return nil
}

// errorOf rebuilds the package's error from a server's error answer; nil if there is none.
func errorOf(e errorResponse) error {
	switch e.Kind {
	case kindRefused:
		if e.ExitCode != nil {
			return &ExitError{Op: e.Op, ExitCode: *e.ExitCode, Accepted: e.Accepted}
		}
		return ErrRefused
	case kindNotFound:
		return ErrNotFound
	case kindNotChannel:
		return ErrNotChannel
	case kindBadStateInit:
		return ErrBadStateInit
	case kindInsufficientFunds:
		return ErrInsufficientFunds
	case kindNotWallet:
		return ErrNotWallet
	case kindBadAddress:
		return ErrBadAddress
	case kindWrongOp:
		return ErrWrongOp
	case kindActions:
		return ErrActions
	case kindCorrupt:
		return ErrCorrupt
	}
	return nil
}
