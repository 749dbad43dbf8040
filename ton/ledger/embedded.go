package ledger

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/big"
	"sync"
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tlb"
	"github.com/xssnick/tonutils-go/tvm"
	"github.com/xssnick/tonutils-go/tvm/cell"
	"github.com/xssnick/tonutils-go/tvm/vm"

	"github.com/cocoon-mesh/cocoon/ton"
)

// DefaultGasPrice is the basechain gas price in nanoTON per gas unit.
const DefaultGasPrice = 400

// MaxGas is the most gas one message may use, as on basechain.
const MaxGas = 1_000_000

// Options configure an Embedded ledger.
type Options struct {
	Now      func() time.Time // the ledger's clock; nil means time.Now
	GasPrice uint64           // nanoTON per gas unit; 0 means DefaultGasPrice
}

// Embedded is a Ledger that runs the real contract code in tonutils-go's TVM and keeps its
// accounts in a datastore. It is safe for concurrent use: one mutex guards all its state, and
// it starts no goroutines.
type Embedded struct {
	store    datastore.Batching
	now      func() time.Time
	gasPrice uint64
	codeHash []byte
	cfg      *tvm.PreparedBlockchainConfig

	mu       sync.Mutex
	vm       *tvm.TVM
	accounts map[accountKey]*account
	messages uint64
}

var _ Ledger = (*Embedded)(nil)

// NewEmbedded loads the accounts persisted in store; a corrupt record is an error.
func NewEmbedded(ctx context.Context, store datastore.Batching, opts Options) (*Embedded, error) {
	if store == nil {
		return nil, fmt.Errorf("ledger: a datastore is required")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.GasPrice == 0 {
		opts.GasPrice = DefaultGasPrice
	}
	cfg, err := blockchainConfig()
	if err != nil {
		return nil, err
	}
	e := &Embedded{
		store: store, now: opts.Now, gasPrice: opts.GasPrice, codeHash: ton.CodeHash(), cfg: cfg,
		vm: tvm.NewTVM(), accounts: make(map[accountKey]*account),
	}
	res, err := store.Query(ctx, query.Query{Prefix: keyPrefix})
	if err != nil {
		return nil, fmt.Errorf("ledger: load accounts: %w", err)
	}
	entries, err := res.Rest()
	if err != nil {
		return nil, fmt.Errorf("ledger: load accounts: %w", err)
	}
	for _, en := range entries {
		a, err := decodeAccount(en.Value)
		if err != nil {
			return nil, fmt.Errorf("ledger: account %s: %w", en.Key, err)
		}
		if a.key.dsKey().String() != en.Key {
			return nil, fmt.Errorf("%w: record for %x stored under %s", ErrCorrupt, a.key[:], en.Key)
		}
		e.accounts[a.key] = a
	}
	return e, nil
}

// blockchainConfig prepares the minimal config the TVM needs: the global version.
func blockchainConfig() (*tvm.PreparedBlockchainConfig, error) {
	versionCell, err := tlb.ToCell(&tlb.GlobalVersion{Version: uint32(vm.MaxSupportedGlobalVersion)})
	if err != nil {
		return nil, fmt.Errorf("ledger: config: %w", err)
	}
	dict := cell.NewDict(32)
	if err := dict.SetIntKey(big.NewInt(int64(tlb.ConfigParamGlobalVersion)),
		cell.BeginCell().MustStoreRef(versionCell).EndCell()); err != nil {
		return nil, fmt.Errorf("ledger: config: %w", err)
	}
	cfg, err := tvm.PrepareBlockchainConfig(dict.AsCell())
	if err != nil {
		return nil, fmt.Errorf("ledger: config: %w", err)
	}
	return cfg, nil
}

// Now returns the ledger's clock.
func (e *Embedded) Now(ctx context.Context) (time.Time, error) {
	if err := ctx.Err(); err != nil {
		return time.Time{}, err
	}
	return e.now(), nil
}

// Messages returns how many messages the ledger executed in the TVM since it was created,
// accepted or refused: the on-chain operations a real chain would have seen.
func (e *Embedded) Messages() uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.messages
}

// Fund credits amount nanoTON to addr out of nowhere (a faucet for dev and tests), creating a
// plain wallet if no account exists there.
func (e *Embedded) Fund(ctx context.Context, addr *address.Address, amount uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	k, err := keyOf(addr)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	tx := e.begin()
	if err := tx.credit(k, amount); err != nil {
		return err
	}
	return e.commit(ctx, tx)
}

// Balance returns addr's balance in nanoTON, 0 if no account exists there.
func (e *Embedded) Balance(ctx context.Context, addr *address.Address) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	k, err := keyOf(addr)
	if err != nil {
		return 0, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if a := e.accounts[k]; a != nil {
		return a.balance, nil
	}
	return 0, nil
}

// Channel returns the channel contract's parsed storage and balance.
func (e *Embedded) Channel(ctx context.Context, channel *address.Address) (ChannelState, error) {
	if err := ctx.Err(); err != nil {
		return ChannelState{}, err
	}
	k, err := keyOf(channel)
	if err != nil {
		return ChannelState{}, err
	}
	e.mu.Lock()
	a := e.accounts[k]
	var bal uint64
	var data *cell.Cell
	if a != nil {
		bal, data = a.balance, a.data
	}
	e.mu.Unlock()
	switch {
	case a == nil:
		return ChannelState{}, fmt.Errorf("%w: %s", ErrNotFound, channel)
	case !a.isContract() || !bytes.Equal(a.code.Hash(), e.codeHash):
		return ChannelState{}, fmt.Errorf("%w: %s", ErrNotChannel, channel)
	}
	s, err := ton.ParseStorage(data)
	if err != nil {
		return ChannelState{}, fmt.Errorf("ledger: channel %s: %w", channel, err)
	}
	return ChannelState{Address: k.address(), Storage: s, Balance: bal}, nil
}

// OpenChannel delivers init from the payer's wallet with an init_channel body and value: it
// deploys the contract if the address holds none yet (keeping any balance already there), then
// runs the message. init must carry the contract's code and hash to channel.
func (e *Embedded) OpenChannel(ctx context.Context, from, channel *address.Address, init *tlb.StateInit, body *cell.Cell, value uint64) (Receipt, error) {
	if from == nil {
		return Receipt{}, errNoSender
	}
	if err := checkStateInit(init, channel); err != nil {
		return Receipt{}, err
	}
	return e.deliver(ctx, message{
		op: "init channel", wantOp: ton.OpInitChannel, from: from, to: channel, init: init, body: body, value: value,
	})
}

// CooperativeClose delivers a cooperative_close body as an external message; the contract pays
// the gas from its balance before paying out.
func (e *Embedded) CooperativeClose(ctx context.Context, channel *address.Address, body *cell.Cell) (Receipt, error) {
	return e.deliver(ctx, message{op: "cooperative close", wantOp: ton.OpCooperativeClose, to: channel, body: body})
}

// checkStateInit refuses a StateInit that is not the channel contract's or does not hash to
// the channel's address: a node opens only the contract it checked, at the address it agreed.
func checkStateInit(init *tlb.StateInit, channel *address.Address) error {
	if init == nil || init.Code == nil || init.Data == nil {
		return fmt.Errorf("%w: code and data are required", ErrBadStateInit)
	}
	if !bytes.Equal(init.Code.Hash(), ton.CodeHash()) {
		return fmt.Errorf("%w: code hash %x", ErrBadStateInit, init.Code.Hash())
	}
	siCell, err := tlb.ToCell(init)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadStateInit, err)
	}
	if channel == nil || channel.Workchain() != 0 || !bytes.Equal(siCell.Hash(), channel.Data()) {
		return fmt.Errorf("%w: it hashes to 0:%x, not %s", ErrBadStateInit, siCell.Hash(), channel)
	}
	return nil
}

// errNoSender refuses an internal message without its sending wallet, which would otherwise be
// delivered as an external one.
var errNoSender = fmt.Errorf("%w: an internal message needs the sending wallet", ErrBadAddress)

// StartUncooperativeClose delivers a start_uncooperative_close body from the wallet from.
func (e *Embedded) StartUncooperativeClose(ctx context.Context, from, channel *address.Address, body *cell.Cell, value uint64) (Receipt, error) {
	if from == nil {
		return Receipt{}, errNoSender
	}
	return e.deliver(ctx, message{
		op: "start uncooperative close", wantOp: ton.OpStartUncooperativeClose, from: from, to: channel, body: body, value: value,
	})
}

// Challenge delivers a challenge_quarantined_state body from the wallet from.
func (e *Embedded) Challenge(ctx context.Context, from, channel *address.Address, body *cell.Cell, value uint64) (Receipt, error) {
	if from == nil {
		return Receipt{}, errNoSender
	}
	return e.deliver(ctx, message{
		op: "challenge", wantOp: ton.OpChallengeQuarantinedState, from: from, to: channel, body: body, value: value,
	})
}

// FinishUncooperativeClose delivers finish_uncooperative_close as an external message.
func (e *Embedded) FinishUncooperativeClose(ctx context.Context, channel *address.Address) (Receipt, error) {
	return e.deliver(ctx, message{
		op: "finish uncooperative close", wantOp: ton.OpFinishUncooperativeClose, to: channel,
		body: ton.FinishUncooperativeCloseBody(),
	})
}

// message is one message to deliver: internal from a wallet when from is set, else external.
type message struct {
	op       string
	wantOp   uint64
	from, to *address.Address
	init     *tlb.StateInit // deploys the contract when the address has none
	body     *cell.Cell
	value    uint64
}

// deliver runs msg in the TVM against the target's code at the ledger's clock and, when the
// contract accepted it, applies the new data, the fees and the payouts in one datastore batch.
func (e *Embedded) deliver(ctx context.Context, msg message) (Receipt, error) {
	if err := ctx.Err(); err != nil {
		return Receipt{}, err
	}
	toKey, fromKey, unix, err := e.address(msg)
	if err != nil {
		return Receipt{}, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	tx := e.begin()
	target, err := e.target(tx, msg, toKey, fromKey)
	if err != nil {
		return Receipt{}, err
	}
	balance := target.balance
	if msg.from != nil {
		if balance > math.MaxUint64-msg.value {
			return Receipt{}, fmt.Errorf("%w: balance overflow", ErrActions)
		}
		balance += msg.value // the incoming value is part of the balance the contract sees
	}
	res, err := e.emulate(msg, target, toKey, balance, unix)
	if err != nil {
		return Receipt{}, err
	}
	e.messages++
	rcpt := Receipt{ExitCode: res.ExitCode, GasUsed: res.GasUsed}
	if (res.ExitCode != 0 && res.ExitCode != 1) || !res.Committed || !res.Accepted {
		return rcpt, &ExitError{Op: msg.op, ExitCode: res.ExitCode, Accepted: res.Accepted}
	}
	if balance, err = e.chargeFee(tx, msg, fromKey, balance, res, &rcpt); err != nil {
		return rcpt, err
	}
	// The TVM's cells carry the run's load trace: keep a detached copy, which concurrent
	// readers (Channel) and later runs can parse without touching that trace.
	data, err := cell.FromBOC(res.Data.ToBOC())
	if err != nil {
		return rcpt, fmt.Errorf("ledger: %s: the contract's new data: %w", msg.op, err)
	}
	c := tx.put(target)
	c.data, c.balance = data, balance
	if rcpt.Payouts, err = tx.applyActions(c, res.Actions); err != nil {
		return rcpt, fmt.Errorf("ledger: %s: %w", msg.op, err)
	}
	if err := e.commit(ctx, tx); err != nil {
		return rcpt, err
	}
	return rcpt, nil
}

// address checks msg's op and reads its accounts (fromKey is zero for an external message)
// and the chain time it runs at.
func (e *Embedded) address(msg message) (toKey, fromKey accountKey, unix int64, err error) {
	if msg.body == nil {
		return toKey, fromKey, 0, fmt.Errorf("%w: no body", ErrWrongOp)
	}
	bs, err := msg.body.BeginParse()
	if err != nil {
		return toKey, fromKey, 0, fmt.Errorf("%w: %v", ErrWrongOp, err)
	}
	if op, err := bs.LoadUInt(32); err != nil || op != msg.wantOp {
		return toKey, fromKey, 0, fmt.Errorf("%w: want %s (op %#x)", ErrWrongOp, msg.op, msg.wantOp)
	}
	if toKey, err = keyOf(msg.to); err != nil {
		return toKey, fromKey, 0, err
	}
	if msg.from != nil {
		if fromKey, err = keyOf(msg.from); err != nil {
			return toKey, fromKey, 0, err
		}
	}
	unix = e.now().Unix()
	if unix < 0 || unix > math.MaxUint32 {
		return toKey, fromKey, 0, fmt.Errorf("ledger: clock %d is outside the chain's uint32 seconds", unix)
	}
	return toKey, fromKey, unix, nil
}

// target is the channel contract msg runs on (deployed by it, when it carries the init), once
// an internal message's sender is known to be a wallet that holds its value.
func (e *Embedded) target(tx *txn, msg message, toKey, fromKey accountKey) (*account, error) {
	if msg.from != nil {
		w := tx.get(fromKey)
		switch {
		case w == nil:
			return nil, fmt.Errorf("%w: sender %s has no account", ErrInsufficientFunds, msg.from)
		case w.isContract():
			return nil, fmt.Errorf("%w: %s", ErrNotWallet, msg.from)
		case w.balance < msg.value:
			return nil, fmt.Errorf("%w: %s holds %d, value %d", ErrInsufficientFunds, msg.from, w.balance, msg.value)
		}
	}
	target := tx.get(toKey)
	switch {
	case msg.init != nil && (target == nil || !target.isContract()):
		deployed := &account{key: toKey, code: msg.init.Code, data: msg.init.Data}
		if target != nil {
			deployed.balance = target.balance
		}
		return deployed, nil
	case target == nil:
		return nil, fmt.Errorf("%w: %s", ErrNotFound, msg.to)
	case !target.isContract() || !bytes.Equal(target.code.Hash(), e.codeHash):
		return nil, fmt.Errorf("%w: %s", ErrNotChannel, msg.to)
	}
	return target, nil
}

// emulate runs msg on target's code in the TVM, at chain time unix, the contract holding
// balance; an internal message buys its gas with its value.
func (e *Embedded) emulate(msg message, target *account, toKey accountKey, balance uint64, unix int64) (*tvm.MessageExecutionResult, error) {
	cfg := tvm.MessageEmulationConfig{
		Address: toKey.address(), Now: uint32(unix), Balance: new(big.Int).SetUint64(balance), Config: e.cfg,
	}
	var res *tvm.MessageExecutionResult
	var err error
	if msg.from != nil {
		limit := int64(MaxGas)
		if bought := msg.value / e.gasPrice; bought < MaxGas {
			limit = int64(bought)
		}
		cfg.Gas = vm.NewGas(vm.GasConfig{Max: limit, Limit: limit})
		res, err = e.vm.EmulateInternalMessage(target.code, target.data, msg.body, msg.value, cfg)
	} else {
		res, err = e.vm.EmulateExternalMessage(target.code, target.data,
			&tlb.ExternalMessage{DstAddr: cfg.Address, Body: msg.body}, cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("ledger: %s: emulate: %w", msg.op, err)
	}
	return res, nil
}

// chargeFee sets rcpt's fee for the gas res used and takes it: from an internal message's
// sender (with the value it sent), or from the contract's balance for an external one, which
// it returns as left.
func (e *Embedded) chargeFee(tx *txn, msg message, fromKey accountKey, balance uint64, res *tvm.MessageExecutionResult, rcpt *Receipt) (uint64, error) {
	gas := uint64(max(res.GasUsed, 0))
	if gas > math.MaxUint64/e.gasPrice {
		return balance, fmt.Errorf("%w: fee overflow", ErrActions)
	}
	rcpt.Fee = gas * e.gasPrice
	if msg.from == nil {
		rcpt.Fee = min(rcpt.Fee, balance) // the contract pays what it has
		return balance - rcpt.Fee, nil
	}
	w := tx.put(tx.get(fromKey))
	if w.balance < msg.value || w.balance-msg.value < rcpt.Fee {
		return balance, fmt.Errorf("%w: %s holds %d, value %d + fee %d", ErrInsufficientFunds, msg.from, w.balance, msg.value, rcpt.Fee)
	}
	w.balance -= msg.value + rcpt.Fee
	return balance, nil
}

// txn collects the accounts one message changes, as copies, until commit.
type txn struct {
	base    map[accountKey]*account
	changed map[accountKey]*account
}

func (e *Embedded) begin() *txn {
	return &txn{base: e.accounts, changed: make(map[accountKey]*account)}
}

// get returns the account as this transaction sees it, nil if none; do not modify it.
func (t *txn) get(k accountKey) *account {
	if a := t.changed[k]; a != nil {
		return a
	}
	return t.base[k]
}

// put makes a a changed account of t, copying it the first time, and returns the copy to modify.
func (t *txn) put(a *account) *account {
	if c := t.changed[a.key]; c != nil {
		return c
	}
	c := *a
	t.changed[a.key] = &c
	return &c
}

// credit adds amount to k's balance, creating a plain wallet if no account exists there.
func (t *txn) credit(k accountKey, amount uint64) error {
	a := t.get(k)
	if a == nil {
		a = &account{key: k}
	}
	a = t.put(a)
	if a.balance > math.MaxUint64-amount {
		return fmt.Errorf("%w: balance overflow at %x", ErrActions, k[:])
	}
	a.balance += amount
	return nil
}

// applyActions pays the contract's send_msg actions in order from c's balance: +128 carries
// all the remaining balance, +2 skips a message the balance cannot pay, anything else failing
// fails the whole message.
func (t *txn) applyActions(c *account, actions *cell.Cell) ([]Payout, error) {
	sends, err := parseActions(actions)
	if err != nil {
		return nil, err
	}
	var out []Payout
	for _, s := range sends {
		dk, err := keyOf(s.dest)
		if err != nil {
			return nil, fmt.Errorf("%w: payout destination: %v", ErrActions, err)
		}
		amount := s.amount
		if s.mode&modeCarryAllBalance != 0 {
			amount = c.balance
		}
		if amount > c.balance {
			if s.mode&modeIgnoreErrors != 0 {
				continue
			}
			return nil, fmt.Errorf("%w: payout %d exceeds balance %d", ErrActions, amount, c.balance)
		}
		c.balance -= amount
		if err := t.credit(dk, amount); err != nil {
			return nil, err
		}
		c = t.get(c.key) // credit may have paid the contract itself
		out = append(out, Payout{To: dk.address(), Amount: amount, Mode: s.mode})
	}
	return out, nil
}

// commit writes t's accounts in one batch and, only once it is durable, makes them current.
func (e *Embedded) commit(ctx context.Context, t *txn) error {
	b, err := e.store.Batch(ctx)
	if err != nil {
		return fmt.Errorf("ledger: batch: %w", err)
	}
	for k, a := range t.changed {
		if err := b.Put(ctx, k.dsKey(), encodeAccount(a)); err != nil {
			return fmt.Errorf("ledger: write account: %w", err)
		}
	}
	if err := b.Commit(ctx); err != nil {
		return fmt.Errorf("ledger: commit: %w", err)
	}
	for k, a := range t.changed {
		e.accounts[k] = a
	}
	return nil
}
