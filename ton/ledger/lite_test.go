package ledger

// What runs against real code here: the wallet v5r1 code that tonutils-go ships
// (wallet.GetStateInit) and the channel contract (ton.Code) both execute in tonutils-go's TVM,
// on the exact external message Lite builds and the exact internal message that wallet code
// emits. What is faked: the liteserver (liteFake below), which stands in for block reads,
// message delivery, transaction records, fees (gas × 400 only) and the wording of a refused
// external message. Nothing here touches a live liteserver or network.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tlb"
	tonapi "github.com/xssnick/tonutils-go/ton"
	"github.com/xssnick/tonutils-go/ton/wallet"
	"github.com/xssnick/tonutils-go/tvm"
	"github.com/xssnick/tonutils-go/tvm/cell"
	"github.com/xssnick/tonutils-go/tvm/vm"

	"github.com/cocoon-mesh/cocoon/ton"
)

type liteFakeAccount struct {
	balance    uint64
	code, data *cell.Cell
}

// liteFake is an in-memory liteserver that executes messages in the TVM with the accounts' real code.
type liteFake struct {
	mu       sync.Mutex
	now      uint32
	cfg      *tvm.PreparedBlockchainConfig
	vm       *tvm.TVM
	accounts map[accountKey]*liteFakeAccount
	txs      map[accountKey][]*tlb.Transaction
	lt       uint64
	misses   int // lookups of a received message that answer "not found" first

	walletOut   []*tlb.InternalMessage // the last wallet transaction's out-messages
	walletModes []uint8
}

func newLiteFake(t *testing.T) *liteFake {
	t.Helper()
	cfg, err := blockchainConfig()
	if err != nil {
		t.Fatal(err)
	}
	return &liteFake{
		now: uint32(time.Now().Unix()), cfg: cfg, vm: tvm.NewTVM(),
		accounts: map[accountKey]*liteFakeAccount{}, txs: map[accountKey][]*tlb.Transaction{},
	}
}

func (f *liteFake) CurrentMasterchainInfo(ctx context.Context) (*tonapi.BlockIDExt, error) {
	return &tonapi.BlockIDExt{Workchain: -1, Shard: -1 << 63, SeqNo: 1}, ctx.Err()
}

func (f *liteFake) GetBlockHeader(ctx context.Context, _ *tonapi.BlockIDExt) (*tlb.BlockHeader, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	h := &tlb.BlockHeader{}
	h.GenUtime = f.now // a promoted field of an unexported embedded struct
	return h, ctx.Err()
}

func (f *liteFake) GetAccount(ctx context.Context, _ *tonapi.BlockIDExt, addr *address.Address) (*tlb.Account, error) {
	k, err := keyOf(addr)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	a := f.accounts[k]
	if a == nil {
		return &tlb.Account{}, ctx.Err()
	}
	status := tlb.AccountStatus(tlb.AccountStatusUninit)
	if a.code != nil {
		status = tlb.AccountStatusActive
	}
	return &tlb.Account{
		IsActive: true, Code: a.code, Data: a.data,
		State: &tlb.AccountState{IsValid: true, Address: addr, AccountStorage: tlb.AccountStorage{
			Status: status, Balance: tlb.FromNanoTONU(a.balance),
		}},
	}, ctx.Err()
}

func (f *liteFake) SendExternalMessageWaitTransaction(ctx context.Context, ext *tlb.ExternalMessage) (*tlb.Transaction, *tonapi.BlockIDExt, []byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, nil, err
	}
	k, err := keyOf(ext.DstAddr)
	if err != nil {
		return nil, nil, nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	a := f.accounts[k]
	if a == nil {
		a = &liteFakeAccount{}
	}
	code, data := a.code, a.data
	if code == nil && ext.StateInit != nil {
		code, data = ext.StateInit.Code, ext.StateInit.Data
	}
	if code == nil {
		return nil, nil, nil, fmt.Errorf("fake: no code at %s", ext.DstAddr)
	}
	res, err := f.vm.EmulateExternalMessage(code, data, ext, tvm.MessageEmulationConfig{
		Address: k.address(), Now: f.now, Balance: new(big.Int).SetUint64(a.balance), Config: f.cfg,
	})
	if err != nil {
		return nil, nil, nil, err
	}
	if !res.Accepted {
		// The wording of a C++ liteserver refusing an external message (not checked against one).
		return nil, nil, nil, fmt.Errorf("lite server error, code 0: cannot apply external message to current state : "+
			"External message was not accepted\nCannot run message on account: inbound external message rejected by "+
			"transaction 00:\nexitcode=%d, steps=1, gas_used=0", res.ExitCode)
	}
	f.accounts[k] = a
	fee := uint64(res.GasUsed) * DefaultGasPrice
	a.balance -= min(fee, a.balance)
	success := res.ExitCode == 0 || res.ExitCode == 1
	if success && res.Committed {
		a.code, a.data = code, res.Data
	}
	var outs []*tlb.InternalMessage
	if success {
		if outs, err = f.applyActions(k, a, res.Actions, true); err != nil {
			return nil, nil, nil, err
		}
	}
	tx := f.record(k, &tlb.Message{MsgType: tlb.MsgTypeExternalIn, Msg: ext}, res.ExitCode, res.GasUsed, success, outs, fee)
	for _, m := range outs {
		if err := f.deliver(m); err != nil {
			return nil, nil, nil, err
		}
	}
	return tx, &tonapi.BlockIDExt{SeqNo: 1}, ext.Body.Hash(), nil
}

// applyActions sends a's send_msg actions, oldest first, skipping (mode +2) what a cannot pay.
func (f *liteFake) applyActions(k accountKey, a *liteFakeAccount, list *cell.Cell, isWallet bool) ([]*tlb.InternalMessage, error) {
	type action struct {
		mode uint8
		msg  *tlb.InternalMessage
	}
	var acts []action
	for list != nil && list.RefsNum() > 0 {
		s, err := list.BeginParse()
		if err != nil {
			return nil, err
		}
		prev, err := s.LoadRefCell()
		if err != nil {
			return nil, err
		}
		if tag, err := s.LoadUInt(32); err != nil || tag != actionSendMsg {
			return nil, fmt.Errorf("fake: action %#x (%v)", tag, err)
		}
		mode, err := s.LoadUInt(8)
		if err != nil {
			return nil, err
		}
		mc, err := s.LoadRef()
		if err != nil {
			return nil, err
		}
		var im tlb.InternalMessage
		if err := tlb.LoadFromCell(&im, mc); err != nil {
			return nil, err
		}
		acts = append([]action{{uint8(mode), &im}}, acts...)
		list = prev
	}
	if isWallet {
		f.walletOut, f.walletModes = nil, nil
	}
	var out []*tlb.InternalMessage
	for _, act := range acts {
		if isWallet {
			f.walletOut = append(f.walletOut, act.msg)
			f.walletModes = append(f.walletModes, act.mode)
		}
		amount := act.msg.Amount.Nano().Uint64()
		if act.mode&modeCarryAllBalance != 0 {
			amount = a.balance
		}
		if amount > a.balance {
			continue
		}
		a.balance -= amount
		f.lt++
		act.msg.SrcAddr, act.msg.Amount, act.msg.CreatedLT, act.msg.CreatedAt = k.address(), tlb.FromNanoTONU(amount), f.lt, f.now
		out = append(out, act.msg)
	}
	return out, nil
}

// deliver runs an internal message at its destination: with its code (or StateInit) if any, else a credit.
func (f *liteFake) deliver(m *tlb.InternalMessage) error {
	k, err := keyOf(m.DstAddr)
	if err != nil {
		return err
	}
	a := f.accounts[k]
	if a == nil {
		a = &liteFakeAccount{}
		f.accounts[k] = a
	}
	amount := m.Amount.Nano().Uint64()
	if a.code == nil && m.StateInit != nil {
		a.code, a.data = m.StateInit.Code, m.StateInit.Data
	}
	if a.code == nil {
		a.balance += amount
		return nil
	}
	limit := int64(min(amount/DefaultGasPrice, MaxGas))
	res, err := f.vm.EmulateInternalMessage(a.code, a.data, m.Body, amount, tvm.MessageEmulationConfig{
		Address: k.address(), Now: f.now, Balance: new(big.Int).SetUint64(a.balance + amount), Config: f.cfg,
		Gas: vm.NewGas(vm.GasConfig{Max: limit, Limit: limit}),
	})
	if err != nil {
		return err
	}
	fee := uint64(max(res.GasUsed, 0)) * DefaultGasPrice
	success := (res.ExitCode == 0 || res.ExitCode == 1) && res.Committed
	var outs []*tlb.InternalMessage
	if success {
		a.data = res.Data
		a.balance += amount - min(fee, amount)
		if outs, err = f.applyActions(k, a, res.Actions, false); err != nil {
			return err
		}
	} else {
		a.balance += amount - min(fee, amount) // no bounce in the fake
	}
	f.record(k, &tlb.Message{MsgType: tlb.MsgTypeInternal, Msg: m}, res.ExitCode, res.GasUsed, success, outs, fee)
	for _, o := range outs {
		ok, _ := keyOf(o.DstAddr)
		if d := f.accounts[ok]; d == nil || d.code == nil {
			if d == nil {
				f.accounts[ok] = &liteFakeAccount{}
			}
			f.accounts[ok].balance += o.Amount.Nano().Uint64()
		}
	}
	return nil
}

func (f *liteFake) record(k accountKey, in *tlb.Message, exit, gas int64, success bool, outs []*tlb.InternalMessage, fee uint64) *tlb.Transaction {
	f.lt++
	tx := &tlb.Transaction{
		AccountAddr: append([]byte(nil), k[1:]...), LT: f.lt, Now: f.now, OutMsgCount: uint16(len(outs)),
		TotalFees: tlb.CurrencyCollection{Coins: tlb.FromNanoTONU(fee)},
		Description: tlb.TransactionDescriptionOrdinary{
			ComputePhase: tlb.ComputePhase{Phase: tlb.ComputePhaseVM{Success: success, Details: tlb.ComputePhaseVMDetails{
				GasUsed: big.NewInt(gas), ExitCode: int32(exit),
			}}},
			ActionPhase: &tlb.ActionPhase{Success: success},
		},
	}
	tx.IO.In = in
	if len(outs) > 0 {
		d := cell.NewDict(15)
		for i, m := range outs {
			c, err := tlb.ToCell(m)
			if err != nil {
				panic(err)
			}
			if err := d.SetIntKey(big.NewInt(int64(i)), cell.BeginCell().MustStoreRef(c).EndCell()); err != nil {
				panic(err)
			}
		}
		tx.IO.Out = &tlb.MessagesList{List: d}
	}
	f.txs[k] = append(f.txs[k], tx)
	return tx
}

func (f *liteFake) FindLastTransactionByInMsgHashAfterTime(ctx context.Context, addr *address.Address, hash []byte, after time.Time) (*tlb.Transaction, error) {
	k, err := keyOf(addr)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.misses > 0 {
		f.misses--
		return nil, tonapi.ErrTxWasNotFound
	}
	txs := f.txs[k]
	for i := len(txs) - 1; i >= 0; i-- {
		tx := txs[i]
		if int64(tx.Now) < after.Unix() {
			break
		}
		if tx.IO.In == nil || tx.IO.In.MsgType != tlb.MsgTypeInternal {
			continue
		}
		c, err := tlb.ToCell(tx.IO.In.Msg)
		if err != nil {
			return nil, err
		}
		if bytes.Equal(c.Hash(), hash) {
			return tx, nil
		}
	}
	return nil, tonapi.ErrTxWasNotFound
}

// liteWorld is a Lite whose wallet is a real v5r1 wallet, over a liteFake.
type liteWorld struct {
	fake    *liteFake
	l       *Lite
	w       *wallet.Wallet
	keyA    ed25519.PrivateKey
	keyB    ed25519.PrivateKey
	params  ton.Params
	channel *address.Address
	init    *tlb.StateInit
}

const liteWalletFunds = 10_000_000_000

func newLiteWorld(t *testing.T, deployed bool) *liteWorld {
	t.Helper()
	lw := &liteWorld{fake: newLiteFake(t), keyA: testKey(1), keyB: testKey(2)}
	cfg := wallet.ConfigV5R1Final{NetworkGlobalID: wallet.TestnetGlobalID}
	var err error
	if lw.w, err = wallet.FromPrivateKeyWithOptions(lw.keyA, cfg); err != nil {
		t.Fatal(err)
	}
	// No network: the seqno comes from the fake's wallet data instead of a get-method call.
	lw.w.GetSpec().(*wallet.SpecV5R1Final).SetSeqnoFetcher(func(context.Context, uint32) (uint32, error) {
		lw.fake.mu.Lock()
		defer lw.fake.mu.Unlock()
		k, _ := keyOf(lw.w.WalletAddress())
		a := lw.fake.accounts[k]
		if a == nil || a.data == nil {
			return 0, nil
		}
		s, err := a.data.BeginParse()
		if err != nil {
			return 0, err
		}
		if _, err := s.LoadUInt(1); err != nil { // is_signature_allowed
			return 0, err
		}
		seq, err := s.LoadUInt(32)
		return uint32(seq), err
	})
	wk, _ := keyOf(lw.w.WalletAddress())
	acc := &liteFakeAccount{balance: liteWalletFunds}
	if deployed {
		si, err := wallet.GetStateInit(lw.keyA.Public().(ed25519.PublicKey), cfg, 0)
		if err != nil {
			t.Fatal(err)
		}
		acc.code, acc.data = si.Code, si.Data
	}
	lw.fake.accounts[wk] = acc
	var id ton.ChannelID
	copy(id[:], "lite-channel-001")
	lw.params = ton.Params{
		KeyA: lw.keyA.Public().(ed25519.PublicKey), KeyB: lw.keyB.Public().(ed25519.PublicKey), ChannelID: id,
		Closing:  ton.ClosingConfig{QuarantineDuration: quarantine, ConditionalCloseDuration: condWindow},
		Payments: ton.PaymentConfig{ExcessFee: excessFee, DestA: lw.w.WalletAddress(), DestB: testAddr(0xB)},
	}
	if lw.init, err = lw.params.StateInit(); err != nil {
		t.Fatal(err)
	}
	if lw.channel, err = lw.params.Address(); err != nil {
		t.Fatal(err)
	}
	if lw.l, err = newLite(lw.fake, lw.w, LiteOptions{ConfirmTimeout: 5 * time.Second, PollInterval: time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	return lw
}

const (
	liteDeposit   = 2_000_000_000
	liteOpenValue = liteDeposit + excessFee + nano/20 // init_channel needs more than deposit + excess_fee
)

func (lw *liteWorld) open(t *testing.T) Receipt {
	t.Helper()
	body := ton.InitChannelBody(true, lw.keyA, lw.params.ChannelID, liteDeposit, 0)
	r, err := lw.l.OpenChannel(context.Background(), lw.w.WalletAddress(), lw.channel, lw.init, body, liteOpenValue)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestLiteOpenChannelRunsRealWalletAndContract(t *testing.T) {
	for _, deployed := range []bool{true, false} {
		t.Run(fmt.Sprintf("wallet deployed=%v", deployed), func(t *testing.T) {
			lw := newLiteWorld(t, deployed)
			lw.fake.misses = 3 // the channel's transaction shows up only on the fourth look
			r := lw.open(t)
			if r.ExitCode != 0 || r.GasUsed <= 0 || r.Fee == 0 || len(r.Payouts) != 0 {
				t.Fatalf("receipt %+v", r)
			}

			// The real v5r1 code accepted the external message and emitted exactly one action.
			if len(lw.fake.walletOut) != 1 {
				t.Fatalf("wallet emitted %d messages, want 1", len(lw.fake.walletOut))
			}
			m := lw.fake.walletOut[0]
			if lw.fake.walletModes[0] != wallet.PayGasSeparately+wallet.IgnoreErrors {
				t.Errorf("send mode %d", lw.fake.walletModes[0])
			}
			if !m.DstAddr.Equals(lw.channel) || !m.Bounce || m.Amount.Nano().Uint64() != liteOpenValue {
				t.Errorf("wallet message to %s bounce=%v value %s", m.DstAddr, m.Bounce, m.Amount.Nano())
			}
			wantSI, _ := tlb.ToCell(lw.init)
			gotSI, err := tlb.ToCell(m.StateInit)
			if err != nil || !bytes.Equal(gotSI.Hash(), wantSI.Hash()) {
				t.Errorf("wallet message StateInit differs (%v)", err)
			}
			wantBody := ton.InitChannelBody(true, lw.keyA, lw.params.ChannelID, liteDeposit, 0)
			if !bytes.Equal(m.Body.Hash(), wantBody.Hash()) {
				t.Error("wallet message body is not our init_channel")
			}

			// The real channel code ran init_channel; Channel reads it back.
			st, err := lw.l.Channel(context.Background(), lw.channel)
			if err != nil {
				t.Fatal(err)
			}
			if !st.Storage.Inited || st.Storage.BalanceA != liteDeposit || !st.Storage.Matches(lw.params) {
				t.Fatalf("storage %+v", st.Storage)
			}
			if st.Balance != liteOpenValue-r.Fee {
				t.Errorf("channel balance %d, want %d", st.Balance, liteOpenValue-r.Fee)
			}
			wb, err := lw.l.Balance(context.Background(), lw.w.WalletAddress())
			if err != nil || wb >= liteWalletFunds-liteDeposit-excessFee {
				t.Errorf("wallet balance %d (%v)", wb, err)
			}
			now, err := lw.l.Now(context.Background())
			if err != nil || now.Unix() != int64(lw.fake.now) {
				t.Errorf("now %v (%v)", now, err)
			}

			// A second open is a second wallet message (seqno 1), refused by the inited contract.
			body := ton.InitChannelBody(true, lw.keyA, lw.params.ChannelID, liteDeposit, 0)
			_, err = lw.l.OpenChannel(context.Background(), lw.w.WalletAddress(), lw.channel, lw.init, body, liteDeposit)
			var ee *ExitError
			if !errors.As(err, &ee) || !ee.Accepted || ee.ExitCode < 2 || !errors.Is(err, ErrRefused) {
				t.Fatalf("reopen: %v", err)
			}
		})
	}
}

func TestLiteExternalMessagesRefusedByRealContract(t *testing.T) {
	lw := newLiteWorld(t, true)
	lw.open(t)
	cc := ton.CooperativeClose{ChannelID: lw.params.ChannelID, BalanceA: liteDeposit, SeqnoA: 1, SeqnoB: 1}
	forged := make([]byte, ed25519.SignatureSize)
	body, err := cc.Body(cc.Sign(lw.keyA), forged)
	if err != nil {
		t.Fatal(err)
	}
	_, err = lw.l.CooperativeClose(context.Background(), lw.channel, body)
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Accepted || ee.ExitCode < 2 || ee.Op != "cooperative close" {
		t.Fatalf("forged cooperative close: %v", err)
	}
	_, err = lw.l.FinishUncooperativeClose(context.Background(), lw.channel)
	if !errors.As(err, &ee) || ee.Accepted || ee.Op != "finish uncooperative close" {
		t.Fatalf("finish without a quarantine: %v", err)
	}

	body, err = cc.Body(cc.Sign(lw.keyA), cc.Sign(lw.keyB))
	if err != nil {
		t.Fatal(err)
	}
	r, err := lw.l.CooperativeClose(context.Background(), lw.channel, body)
	if err != nil {
		t.Fatal(err)
	}
	var toA uint64
	for _, p := range r.Payouts {
		if p.To.Equals(lw.w.WalletAddress()) {
			toA += p.Amount
		}
	}
	if toA < liteDeposit {
		t.Fatalf("payouts %+v: %d to dest_A", r.Payouts, toA)
	}
	st, err := lw.l.Channel(context.Background(), lw.channel)
	if err != nil || st.Storage.Inited {
		t.Fatalf("after close: %+v %v", st.Storage, err)
	}
}

func TestLiteRefusesBeforeSending(t *testing.T) {
	lw := newLiteWorld(t, true)
	ctx := context.Background()
	body := ton.InitChannelBody(true, lw.keyA, lw.params.ChannelID, liteDeposit, 0)
	other, err := (ton.Params{KeyA: lw.params.KeyB, KeyB: lw.params.KeyA, Payments: lw.params.Payments}).StateInit()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		err  error
		want error
	}{
		{"not our wallet", second(lw.l.OpenChannel(ctx, testAddr(9), lw.channel, lw.init, body, liteDeposit)), ErrNotWallet},
		{"no sender", second(lw.l.Challenge(ctx, nil, lw.channel, body, 1)), ErrBadAddress},
		{"wrong op", second(lw.l.StartUncooperativeClose(ctx, lw.w.WalletAddress(), lw.channel, body, 1)), ErrWrongOp},
		{"other StateInit", second(lw.l.OpenChannel(ctx, lw.w.WalletAddress(), lw.channel, other, body, liteDeposit)), ErrBadStateInit},
		{"too poor", second(lw.l.OpenChannel(ctx, lw.w.WalletAddress(), lw.channel, lw.init, body, liteWalletFunds+1)), ErrInsufficientFunds},
		{"wrong external op", second(lw.l.CooperativeClose(ctx, lw.channel, body)), ErrWrongOp},
	}
	for _, c := range cases {
		if !errors.Is(c.err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, c.err, c.want)
		}
	}
	if lw.fake.lt != 0 {
		t.Errorf("something was sent (lt %d)", lw.fake.lt)
	}
	if _, err := lw.l.Channel(ctx, lw.channel); !errors.Is(err, ErrNotFound) {
		t.Errorf("channel before open: %v", err)
	}
	if _, err := lw.l.Channel(ctx, lw.w.WalletAddress()); !errors.Is(err, ErrNotChannel) {
		t.Errorf("wallet as channel: %v", err)
	}
	if b, err := lw.l.Balance(ctx, testAddr(0x77)); err != nil || b != 0 {
		t.Errorf("balance of nothing: %d %v", b, err)
	}
}

func TestLiteWaitIsBounded(t *testing.T) {
	lw := newLiteWorld(t, true)
	lw.fake.misses = 1 << 30
	lw.l.timeout = 50 * time.Millisecond
	body := ton.InitChannelBody(true, lw.keyA, lw.params.ChannelID, liteDeposit, 0)
	_, err := lw.l.OpenChannel(context.Background(), lw.w.WalletAddress(), lw.channel, lw.init, body, liteOpenValue)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want a deadline error, got %v", err)
	}
}

func TestLiteRejectedExit(t *testing.T) {
	for msg, want := range map[string]int64{
		"rejected by transaction AB:\nexitcode=33, steps=1": 33,
		"exitcode=-14, steps=0":                             -14,
	} {
		if got, ok := liteRejectedExit(errors.New(msg)); !ok || got != want {
			t.Errorf("%q: %d %v", msg, got, ok)
		}
	}
	if _, ok := liteRejectedExit(errors.New("timeout")); ok {
		t.Error("no exit code in a timeout")
	}
}
