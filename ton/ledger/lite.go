package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/liteclient"
	"github.com/xssnick/tonutils-go/tlb"
	tonapi "github.com/xssnick/tonutils-go/ton"
	"github.com/xssnick/tonutils-go/ton/wallet"
	"github.com/xssnick/tonutils-go/tvm/cell"

	"github.com/cocoon-mesh/cocoon/ton"
)

// What Lite has been run against (see lite_test.go): the external message it builds for the
// node's wallet is executed offline in tonutils-go's TVM with the real V5R1 wallet code, and the
// internal message that wallet sends is executed with the real channel code (ton.Code); the
// liteserver itself is an in-memory fake. Nothing in this file has been run against a live
// liteserver or a real TON network: not NewLite's adapter over ton.APIClientWrapped, not
// DialLite or LoadGlobalConfig, not the shape of real transactions, fees or bounces, not the
// liteserver's error text that rejected external messages are parsed from, and not Highload V3.

// DefaultLiteConfirmTimeout bounds how long a Lite operation waits for its transactions.
const DefaultLiteConfirmTimeout = 3 * time.Minute

// DefaultLitePollInterval is how often Lite looks for the channel's transaction after its wallet's.
const DefaultLitePollInterval = 2 * time.Second

// LiteOptions configure a Lite ledger; the zero value uses the defaults.
type LiteOptions struct {
	ConfirmTimeout time.Duration // per operation, from sending to the channel's transaction; 0 means DefaultLiteConfirmTimeout
	PollInterval   time.Duration // between looks for the channel's transaction; 0 means DefaultLitePollInterval
}

// liteAPI is the part of a tonutils-go liteserver client that Lite uses; GetAccount and
// GetBlockHeader must wait until the given master block is available (NewLite's adapter does).
type liteAPI interface {
	CurrentMasterchainInfo(ctx context.Context) (*tonapi.BlockIDExt, error)
	GetAccount(ctx context.Context, block *tonapi.BlockIDExt, addr *address.Address) (*tlb.Account, error)
	GetBlockHeader(ctx context.Context, block *tonapi.BlockIDExt) (*tlb.BlockHeader, error)
	SendExternalMessageWaitTransaction(ctx context.Context, msg *tlb.ExternalMessage) (*tlb.Transaction, *tonapi.BlockIDExt, []byte, error)
	FindLastTransactionByInMsgHashAfterTime(ctx context.Context, addr *address.Address, msgHash []byte, after time.Time) (*tlb.Transaction, error)
}

// liteWrapped adapts ton.APIClientWrapped: reads wait for the master block they name.
type liteWrapped struct{ tonapi.APIClientWrapped }

func (a liteWrapped) GetAccount(ctx context.Context, block *tonapi.BlockIDExt, addr *address.Address) (*tlb.Account, error) {
	return a.WaitForBlock(block.SeqNo).GetAccount(ctx, block, addr)
}

func (a liteWrapped) GetBlockHeader(ctx context.Context, block *tonapi.BlockIDExt) (*tlb.BlockHeader, error) {
	return a.WaitForBlock(block.SeqNo).GetBlockHeader(ctx, block)
}

// Lite is the Ledger on real TON through liteservers; untested against a live network (only offline, with a fake liteserver).
//
// Internal messages (open, start, challenge) go out through the node's wallet, one wallet
// transaction each, and Lite then waits for the channel's transaction that received them;
// cooperative close and finish go to the channel as external messages paid from its balance.
// Receipts describe the channel's transaction: ExitCode and GasUsed from its compute phase, Fee
// its total fees (not the wallet's), and Payouts its internal out-messages, whose Mode is always
// 0 because a transaction does not record send modes. A channel transaction whose compute phase
// failed is an *ExitError with Accepted set; a refused external message is one with Accepted
// unset when the liteserver's error names an exit code. A transaction that is not seen before
// the timeout is an error, though it may still land later: the caller must re-read the channel.
type Lite struct {
	api     liteAPI
	wallet  *wallet.Wallet
	timeout time.Duration
	poll    time.Duration
}

var _ Ledger = (*Lite)(nil)

// NewLite returns a Lite over api that sends internal messages from w; untested against a live network.
//
// w is the node's wallet (for instance wallet.ConfigV5R1Final or wallet.ConfigHighloadV3); it
// must be able to build messages: created with wallet.WithAPI, or given its own seqno fetcher.
// Pass a retrying client (api.WithRetryTimeout, as DialLite returns): Lite reads through a pool of liteservers.
func NewLite(api tonapi.APIClientWrapped, w *wallet.Wallet, opts LiteOptions) (*Lite, error) {
	if api == nil {
		return nil, errors.New("ledger: lite: a liteserver API is required")
	}
	return newLite(liteWrapped{api}, w, opts)
}

func newLite(api liteAPI, w *wallet.Wallet, opts LiteOptions) (*Lite, error) {
	if w == nil {
		return nil, errors.New("ledger: lite: a wallet is required")
	}
	if opts.ConfirmTimeout <= 0 {
		opts.ConfirmTimeout = DefaultLiteConfirmTimeout
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultLitePollInterval
	}
	return &Lite{api: api, wallet: w, timeout: opts.ConfirmTimeout, poll: opts.PollInterval}, nil
}

// LoadGlobalConfig reads a liteserver global config from an http(s) URL or a file path; untested against a live network.
func LoadGlobalConfig(ctx context.Context, source string) (*liteclient.GlobalConfig, error) {
	var (
		cfg *liteclient.GlobalConfig
		err error
	)
	if strings.HasPrefix(source, "https://") || strings.HasPrefix(source, "http://") {
		cfg, err = liteclient.GetConfigFromUrl(ctx, source)
	} else {
		cfg, err = liteclient.GetConfigFromFile(source)
	}
	if err != nil {
		return nil, fmt.Errorf("ledger: load global config %s: %w", source, err)
	}
	if len(cfg.Liteservers) == 0 {
		return nil, fmt.Errorf("ledger: load global config %s: no liteservers", source)
	}
	return cfg, nil
}

// DialLite connects a pool to cfg's liteservers and returns an API client (3 retries, 10 s each) trusting cfg's init block; never run (no network in tests).
func DialLite(ctx context.Context, cfg *liteclient.GlobalConfig) (tonapi.APIClientWrapped, error) {
	if cfg == nil {
		return nil, errors.New("ledger: dial liteservers: no config")
	}
	pool := liteclient.NewConnectionPool()
	if err := pool.AddConnectionsFromConfig(ctx, cfg); err != nil {
		return nil, fmt.Errorf("ledger: dial liteservers: %w", err)
	}
	client := tonapi.NewAPIClient(pool, tonapi.ProofCheckPolicyFast)
	client.SetTrustedBlockFromConfig(cfg)
	return client.WithRetryTimeout(3, 10*time.Second), nil
}

// Now returns the generation time of the latest masterchain block.
func (l *Lite) Now(ctx context.Context) (time.Time, error) {
	master, err := l.api.CurrentMasterchainInfo(ctx)
	if err != nil {
		return time.Time{}, fmt.Errorf("ledger: now: %w", err)
	}
	h, err := l.api.GetBlockHeader(ctx, master)
	if err != nil {
		return time.Time{}, fmt.Errorf("ledger: now: block header: %w", err)
	}
	return time.Unix(int64(h.GenUtime), 0), nil
}

// account reads addr at the latest masterchain block.
func (l *Lite) account(ctx context.Context, addr *address.Address) (*tlb.Account, error) {
	if _, err := keyOf(addr); err != nil {
		return nil, err
	}
	master, err := l.api.CurrentMasterchainInfo(ctx)
	if err != nil {
		return nil, err
	}
	acc, err := l.api.GetAccount(ctx, master, addr)
	if err != nil {
		return nil, err
	}
	if acc == nil {
		return nil, errors.New("no account state returned")
	}
	return acc, nil
}

// liteBalance is an existing account's balance in nanoTON.
func liteBalance(acc *tlb.Account) (uint64, error) {
	if !acc.IsActive || acc.State == nil {
		return 0, nil
	}
	b := acc.State.Balance.Nano()
	if b.Sign() < 0 || !b.IsUint64() {
		return 0, fmt.Errorf("balance %s out of range", b)
	}
	return b.Uint64(), nil
}

// Balance reads addr's balance at the latest masterchain block, 0 if no account exists there.
func (l *Lite) Balance(ctx context.Context, addr *address.Address) (uint64, error) {
	acc, err := l.account(ctx, addr)
	if err != nil {
		return 0, fmt.Errorf("ledger: balance of %s: %w", addr, err)
	}
	b, err := liteBalance(acc)
	if err != nil {
		return 0, fmt.Errorf("ledger: balance of %s: %w", addr, err)
	}
	return b, nil
}

// Channel reads the channel at the latest masterchain block, checking its code is the contract's.
func (l *Lite) Channel(ctx context.Context, channel *address.Address) (ChannelState, error) {
	acc, err := l.account(ctx, channel)
	if err != nil {
		return ChannelState{}, fmt.Errorf("ledger: channel %s: %w", channel, err)
	}
	switch {
	case !acc.IsActive || acc.State == nil:
		return ChannelState{}, fmt.Errorf("%w: %s", ErrNotFound, channel)
	case acc.State.Status != tlb.AccountStatusActive || acc.Code == nil || !bytes.Equal(acc.Code.Hash(), ton.CodeHash()):
		return ChannelState{}, fmt.Errorf("%w: %s", ErrNotChannel, channel)
	}
	s, err := ton.ParseStorage(acc.Data)
	if err != nil {
		return ChannelState{}, fmt.Errorf("ledger: channel %s: %w", channel, err)
	}
	bal, err := liteBalance(acc)
	if err != nil {
		return ChannelState{}, fmt.Errorf("ledger: channel %s: %w", channel, err)
	}
	k, _ := keyOf(channel)
	return ChannelState{Address: k.address(), Storage: s, Balance: bal}, nil
}

// OpenChannel sends init and body with value from the node's wallet, after checking that init
// carries the contract's code and hashes to channel.
func (l *Lite) OpenChannel(ctx context.Context, from, channel *address.Address, init *tlb.StateInit, body *cell.Cell, value uint64) (Receipt, error) {
	if err := checkStateInit(init, channel); err != nil {
		return Receipt{}, err
	}
	return l.internal(ctx, "init channel", ton.OpInitChannel, from, channel, init, body, value)
}

// StartUncooperativeClose sends a start_uncooperative_close body with value from the node's wallet.
func (l *Lite) StartUncooperativeClose(ctx context.Context, from, channel *address.Address, body *cell.Cell, value uint64) (Receipt, error) {
	return l.internal(ctx, "start uncooperative close", ton.OpStartUncooperativeClose, from, channel, nil, body, value)
}

// Challenge sends a challenge_quarantined_state body with value from the node's wallet.
func (l *Lite) Challenge(ctx context.Context, from, channel *address.Address, body *cell.Cell, value uint64) (Receipt, error) {
	return l.internal(ctx, "challenge", ton.OpChallengeQuarantinedState, from, channel, nil, body, value)
}

// CooperativeClose sends a cooperative_close body to the channel as an external message.
func (l *Lite) CooperativeClose(ctx context.Context, channel *address.Address, body *cell.Cell) (Receipt, error) {
	return l.external(ctx, "cooperative close", ton.OpCooperativeClose, channel, body)
}

// FinishUncooperativeClose sends finish_uncooperative_close to the channel as an external message.
func (l *Lite) FinishUncooperativeClose(ctx context.Context, channel *address.Address) (Receipt, error) {
	return l.external(ctx, "finish uncooperative close", ton.OpFinishUncooperativeClose, channel, ton.FinishUncooperativeCloseBody())
}

// liteCheckOp refuses a body that does not start with op want.
func liteCheckOp(body *cell.Cell, op string, want uint64) error {
	if body == nil {
		return fmt.Errorf("%w: no body", ErrWrongOp)
	}
	bs, err := body.BeginParse()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrWrongOp, err)
	}
	if got, err := bs.LoadUInt(32); err != nil || got != want {
		return fmt.Errorf("%w: want %s (op %#x)", ErrWrongOp, op, want)
	}
	return nil
}

// liteWalletMessage is the internal message the node's wallet sends to channel: bounceable, its
// fees paid by the wallet on top of value (+1), and +2 because wallet v5 accepts nothing else
// from an external message (an unaffordable message is then skipped, not failed).
func liteWalletMessage(channel *address.Address, init *tlb.StateInit, body *cell.Cell, value uint64) *wallet.Message {
	return &wallet.Message{
		Mode: wallet.PayGasSeparately + wallet.IgnoreErrors,
		InternalMessage: &tlb.InternalMessage{
			IHRDisabled: true,
			Bounce:      true,
			DstAddr:     channel,
			Amount:      tlb.FromNanoTONU(value),
			StateInit:   init,
			Body:        body,
		},
	}
}

// walletExternal builds the signed external message that makes the node's wallet send msg,
// with the wallet's StateInit when the wallet is not deployed yet. It refuses a wallet whose
// balance cannot cover value.
func (l *Lite) walletExternal(ctx context.Context, msg *wallet.Message, value uint64) (*tlb.ExternalMessage, error) {
	acc, err := l.account(ctx, l.wallet.WalletAddress())
	if err != nil {
		return nil, fmt.Errorf("wallet account: %w", err)
	}
	bal, err := liteBalance(acc)
	if err != nil {
		return nil, fmt.Errorf("wallet account: %w", err)
	}
	if bal < value {
		return nil, fmt.Errorf("%w: wallet %s holds %d, value %d", ErrInsufficientFunds, l.wallet.WalletAddress(), bal, value)
	}
	deployed := acc.IsActive && acc.State != nil && acc.State.Status == tlb.AccountStatusActive
	ext, err := l.wallet.PrepareExternalMessageForMany(ctx, !deployed, []*wallet.Message{msg})
	if err != nil {
		return nil, fmt.Errorf("wallet message: %w", err)
	}
	return ext, nil
}

// internal sends body (with init, if any) and value from the node's wallet to channel, and
// waits for the channel's transaction that received it.
func (l *Lite) internal(ctx context.Context, op string, want uint64, from, channel *address.Address, init *tlb.StateInit, body *cell.Cell, value uint64) (Receipt, error) {
	if from == nil {
		return Receipt{}, errNoSender
	}
	if err := liteCheckOp(body, op, want); err != nil {
		return Receipt{}, err
	}
	fk, err := keyOf(from)
	if err != nil {
		return Receipt{}, err
	}
	if wk, _ := keyOf(l.wallet.WalletAddress()); fk != wk {
		return Receipt{}, fmt.Errorf("%w: %s is not this ledger's wallet %s", ErrNotWallet, from, l.wallet.WalletAddress())
	}
	if _, err := keyOf(channel); err != nil {
		return Receipt{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()

	ext, err := l.walletExternal(ctx, liteWalletMessage(channel, init, body, value), value)
	if err != nil {
		return Receipt{}, fmt.Errorf("ledger: %s: %w", op, err)
	}
	wtx, _, _, err := l.api.SendExternalMessageWaitTransaction(ctx, ext)
	if err != nil {
		return Receipt{}, fmt.Errorf("ledger: %s: %w: wallet transaction: %w", op, ErrUnconfirmed, err)
	}
	hash, err := liteSentTo(wtx, channel)
	if err != nil {
		return Receipt{}, fmt.Errorf("ledger: %s: wallet transaction: %w", op, err)
	}
	tx, err := l.awaitReceived(ctx, channel, hash, time.Unix(int64(wtx.Now), 0))
	if err != nil {
		return Receipt{}, fmt.Errorf("ledger: %s: %w: %w", op, ErrUnconfirmed, err)
	}
	return liteReceipt(op, tx)
}

// liteSentTo returns the hash of the internal message the wallet's transaction sent to dest.
func liteSentTo(wtx *tlb.Transaction, dest *address.Address) ([]byte, error) {
	if wtx == nil {
		return nil, errors.New("no transaction")
	}
	if d, ok := liteAs[tlb.TransactionDescriptionOrdinary](wtx.Description); ok {
		if vmPhase, ok := liteAs[tlb.ComputePhaseVM](d.ComputePhase.Phase); ok && !vmPhase.Success {
			return nil, fmt.Errorf("the wallet failed with exit code %d", vmPhase.Details.ExitCode)
		}
	}
	var out []tlb.Message
	if wtx.IO.Out != nil {
		var err error
		if out, err = wtx.IO.Out.ToSlice(); err != nil {
			return nil, err
		}
	}
	for _, m := range out {
		im, ok := m.Msg.(*tlb.InternalMessage)
		if !ok || im.DstAddr == nil || !im.DstAddr.Equals(dest) {
			continue
		}
		c, err := tlb.ToCell(im)
		if err != nil {
			return nil, err
		}
		return c.Hash(), nil
	}
	return nil, fmt.Errorf("%w: the wallet sent no message to %s (skipped, as with too small a balance)", ErrInsufficientFunds, dest)
}

// awaitReceived polls channel's transactions, no older than after, for the one whose
// incoming message hashes to hash, until ctx ends.
func (l *Lite) awaitReceived(ctx context.Context, channel *address.Address, hash []byte, after time.Time) (*tlb.Transaction, error) {
	var last error
	for {
		tx, err := l.api.FindLastTransactionByInMsgHashAfterTime(ctx, channel, hash, after)
		if err == nil && tx != nil {
			return tx, nil
		}
		last = err
		t := time.NewTimer(l.poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("the channel's transaction was not seen in time (it may still come; last lookup: %v): %w", last, ctx.Err())
		case <-t.C:
		}
	}
}

// external sends body to channel as an external message and waits for its transaction.
func (l *Lite) external(ctx context.Context, op string, want uint64, channel *address.Address, body *cell.Cell) (Receipt, error) {
	if err := liteCheckOp(body, op, want); err != nil {
		return Receipt{}, err
	}
	if _, err := keyOf(channel); err != nil {
		return Receipt{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	tx, _, _, err := l.api.SendExternalMessageWaitTransaction(ctx, &tlb.ExternalMessage{DstAddr: channel, Body: body})
	if err != nil {
		if code, ok := liteRejectedExit(err); ok {
			return Receipt{ExitCode: code}, &ExitError{Op: op, ExitCode: code}
		}
		return Receipt{}, fmt.Errorf("ledger: %s: %w", op, err)
	}
	return liteReceipt(op, tx)
}

// liteExitRe finds the exit code in a liteserver's refusal of an external message, as the C++
// node words it ("... rejected by transaction ...: exitcode=35, steps=...").
var liteExitRe = regexp.MustCompile(`exitcode=(-?\d+)`)

// liteRejectedExit extracts the exit code from a liteserver's refusal of an external message.
func liteRejectedExit(err error) (int64, bool) {
	m := liteExitRe.FindStringSubmatch(err.Error())
	if m == nil {
		return 0, false
	}
	code, perr := strconv.ParseInt(m[1], 10, 32)
	return code, perr == nil
}

// liteAs reads a tlb union member that tonutils-go hands over either as T or as *T.
func liteAs[T any](v any) (T, bool) {
	switch v := v.(type) {
	case T:
		return v, true
	case *T:
		if v != nil {
			return *v, true
		}
	}
	var zero T
	return zero, false
}

// liteReceipt describes the channel's transaction, or the refusal it records.
func liteReceipt(op string, tx *tlb.Transaction) (Receipt, error) {
	d, ok := liteAs[tlb.TransactionDescriptionOrdinary](tx.Description)
	if !ok {
		return Receipt{}, fmt.Errorf("ledger: %s: not an ordinary transaction (%T)", op, tx.Description)
	}
	var rcpt Receipt
	if fee := tx.TotalFees.Coins.Nano(); fee.IsUint64() {
		rcpt.Fee = fee.Uint64()
	}
	vmPhase, ok := liteAs[tlb.ComputePhaseVM](d.ComputePhase.Phase)
	if !ok {
		return rcpt, fmt.Errorf("%w: %s: the compute phase was skipped (%v)", ErrRefused, op, d.ComputePhase.Phase)
	}
	rcpt.ExitCode = int64(vmPhase.Details.ExitCode)
	if g := vmPhase.Details.GasUsed; g != nil && g.IsInt64() {
		rcpt.GasUsed = g.Int64()
	}
	if !vmPhase.Success || (rcpt.ExitCode != 0 && rcpt.ExitCode != 1) {
		return rcpt, &ExitError{Op: op, ExitCode: rcpt.ExitCode, Accepted: true}
	}
	if d.Aborted || d.ActionPhase == nil || !d.ActionPhase.Success {
		code := int32(0)
		if d.ActionPhase != nil {
			code = d.ActionPhase.ResultCode
		}
		return rcpt, fmt.Errorf("%w: %s: the action phase failed (result code %d)", ErrActions, op, code)
	}
	if tx.IO.Out != nil {
		out, err := tx.IO.Out.ToSlice()
		if err != nil {
			return rcpt, fmt.Errorf("ledger: %s: out-messages: %w", op, err)
		}
		for _, m := range out {
			im, ok := m.Msg.(*tlb.InternalMessage)
			if !ok {
				continue
			}
			p := Payout{To: im.DstAddr}
			if a := im.Amount.Nano(); a.IsUint64() {
				p.Amount = a.Uint64()
			}
			rcpt.Payouts = append(rcpt.Payouts, p)
		}
	}
	return rcpt, nil
}
