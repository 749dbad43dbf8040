package ton

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"math/big"
	"testing"

	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tlb"
	"github.com/xssnick/tonutils-go/tvm"
	"github.com/xssnick/tonutils-go/tvm/cell"
	"github.com/xssnick/tonutils-go/tvm/vm"
)

const (
	nano       = uint64(1_000_000_000)
	excessFee  = nano / 100 // 0.01 TON for the gas of close and finish
	deposit    = 5 * nano   // A's deposit
	quarantine = 6 * 3600
	condWindow = 60
	startTime  = uint32(1_700_000_000)
)

func testKey(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

func testAddr(b byte) *address.Address {
	return address.NewAddress(0, 0, bytes.Repeat([]byte{b}, 32))
}

// chain runs the real contract code in tonutils' TVM, keeping its storage and balance.
type chain struct {
	t       testing.TB
	vm      *tvm.TVM
	cfg     *tvm.PreparedBlockchainConfig
	addr    *address.Address
	code    *cell.Cell
	data    *cell.Cell
	balance uint64
	now     uint32
}

func newChain(t testing.TB, p Params) *chain {
	t.Helper()
	versionCell, err := tlb.ToCell(&tlb.GlobalVersion{Version: uint32(vm.MaxSupportedGlobalVersion)})
	if err != nil {
		t.Fatal(err)
	}
	dict := cell.NewDict(32)
	if err := dict.SetIntKey(big.NewInt(int64(tlb.ConfigParamGlobalVersion)),
		cell.BeginCell().MustStoreRef(versionCell).EndCell()); err != nil {
		t.Fatal(err)
	}
	cfg, err := tvm.PrepareBlockchainConfig(dict.AsCell())
	if err != nil {
		t.Fatal(err)
	}
	si, err := p.StateInit()
	if err != nil {
		t.Fatal(err)
	}
	addr, err := p.Address()
	if err != nil {
		t.Fatal(err)
	}
	return &chain{t: t, vm: tvm.NewTVM(), cfg: cfg, addr: addr, code: si.Code, data: si.Data, now: startTime}
}

func (c *chain) msgConfig() tvm.MessageEmulationConfig {
	return tvm.MessageEmulationConfig{
		Address: c.addr, Now: c.now, Balance: new(big.Int).SetUint64(c.balance), Config: c.cfg,
	}
}

// internal delivers an internal message carrying value; the storage advances only on success.
func (c *chain) internal(body *cell.Cell, value uint64) *tvm.MessageExecutionResult {
	c.t.Helper()
	c.balance += value // the incoming value is part of the balance the contract sees
	cfg := c.msgConfig()
	cfg.Gas = vm.NewGas(vm.GasConfig{Max: 1_000_000, Limit: 1_000_000})
	res, err := c.vm.EmulateInternalMessage(c.code, c.data, body, value, cfg)
	if err != nil {
		c.t.Fatalf("emulate internal: %v", err)
	}
	c.apply(res)
	return res
}

// external delivers an external message: the contract pays its own gas after accept_message.
func (c *chain) external(body *cell.Cell) *tvm.MessageExecutionResult {
	c.t.Helper()
	res, err := c.vm.EmulateExternalMessage(c.code, c.data, &tlb.ExternalMessage{DstAddr: c.addr, Body: body}, c.msgConfig())
	if err != nil {
		c.t.Fatalf("emulate external: %v", err)
	}
	c.apply(res)
	return res
}

func (c *chain) apply(res *tvm.MessageExecutionResult) {
	if ok(res) {
		c.data = res.Data
		for _, p := range payouts(c.t, res.Actions) {
			if p.mode&128 != 0 {
				c.balance = 0
			} else {
				c.balance -= p.amount
			}
		}
	}
}

func (c *chain) storage() Storage {
	c.t.Helper()
	s, err := ParseStorage(c.data)
	if err != nil {
		c.t.Fatalf("parse storage: %v", err)
	}
	return s
}

func ok(res *tvm.MessageExecutionResult) bool {
	return (res.ExitCode == 0 || res.ExitCode == 1) && res.Committed && res.Accepted
}

type payout struct {
	mode      uint8
	dest      *address.Address
	amount    uint64
	op        uint64
	channelID []byte
}

// payouts parses the out-action list (oldest first) into the channel_closed messages it sends.
func payouts(t testing.TB, actions *cell.Cell) []payout {
	t.Helper()
	var out []payout
	for actions != nil && actions.BitsSize() > 0 {
		s := actions.MustBeginParse()
		prev, err := s.LoadRefCell()
		if err != nil {
			t.Fatal(err)
		}
		if tag := s.MustLoadUInt(32); tag != 0x0ec3c86d {
			t.Fatalf("unexpected out action %x", tag)
		}
		p := payout{mode: uint8(s.MustLoadUInt(8))}
		m := s.MustLoadRef()
		if m.MustLoadUInt(1) != 0 { // int_msg_info$0
			t.Fatal("payout is not an internal message")
		}
		m.MustLoadUInt(3) // ihr_disabled bounce bounced
		if _, err := m.LoadAddr(); err != nil {
			t.Fatal(err)
		}
		if p.dest, err = m.LoadAddr(); err != nil {
			t.Fatal(err)
		}
		p.amount = m.MustLoadCoins()
		m.MustLoadUInt(1 + 4 + 4 + 64 + 32 + 1 + 1) // no extra, fees, lt, at, no init, inline body
		p.op = m.MustLoadUInt(32)
		p.channelID = m.MustLoadSlice(128)
		out = append([]payout{p}, out...)
		actions = prev
	}
	return out
}

type parties struct {
	keyA, keyB ed25519.PrivateKey
	params     Params
}

func newParties(fine uint64) parties {
	keyA, keyB := testKey(1), testKey(2)
	var id ChannelID
	copy(id[:], "cocoon-chan-0001")
	return parties{keyA: keyA, keyB: keyB, params: Params{
		KeyA:      keyA.Public().(ed25519.PublicKey),
		KeyB:      keyB.Public().(ed25519.PublicKey),
		ChannelID: id,
		Closing:   ClosingConfig{QuarantineDuration: quarantine, MisbehaviorFine: fine, ConditionalCloseDuration: condWindow},
		Payments:  PaymentConfig{ExcessFee: excessFee, DestA: testAddr(0xA), DestB: testAddr(0xB)},
	}}
}

// open deploys and inits the channel with A's deposit, as the payer's wallet would: one internal
// message with value deposit + fees.
func open(t *testing.T, p parties) *chain {
	t.Helper()
	c := newChain(t, p.params)
	res := c.internal(InitChannelBody(true, p.keyA, p.params.ChannelID, deposit, 0), deposit+excessFee+nano/20)
	if !ok(res) {
		t.Fatalf("init_channel: exit %d", res.ExitCode)
	}
	t.Logf("init_channel: exit %d, gas %d", res.ExitCode, res.GasUsed)
	return c
}

func TestCodeHashPinned(t *testing.T) {
	if got := hex.EncodeToString(Code().Hash()); got != CodeHashHex {
		t.Fatalf("code hash %s, pinned %s", got, CodeHashHex)
	}
	if !bytes.Equal(CodeHash(), Code().Hash()) {
		t.Fatal("CodeHash differs from Code().Hash()")
	}
}

func TestStorageRoundTripAndAddress(t *testing.T) {
	p := newParties(0).params
	data, err := InitialStorage(p)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ParseStorage(data)
	if err != nil {
		t.Fatal(err)
	}
	if s.Inited || s.BalanceA != 0 || !s.Matches(p) {
		t.Fatalf("initial storage reads back wrong: %+v", s)
	}
	again, err := s.Cell()
	if err != nil || !bytes.Equal(again.Hash(), data.Hash()) {
		t.Fatalf("storage does not round-trip: %v", err)
	}
	addr, err := p.Address()
	if err != nil {
		t.Fatal(err)
	}
	si, _ := p.StateInit()
	siCell, _ := tlb.ToCell(si)
	if !bytes.Equal(addr.Data(), siCell.Hash()) || addr.Workchain() != 0 {
		t.Fatal("address is not hash(StateInit)")
	}
	bad := p
	bad.KeyA = bad.KeyA[:5]
	if _, err := InitialStorage(bad); err == nil {
		t.Fatal("short key accepted")
	}
}

func TestContractOpen(t *testing.T) {
	p := newParties(0)
	// A forged init (signed by B's key but claiming A) is refused and changes nothing.
	c := newChain(t, p.params)
	res := c.internal(InitChannelBody(true, p.keyB, p.params.ChannelID, deposit, 0), deposit+nano)
	if ok(res) || res.ExitCode != 101 {
		t.Fatalf("forged init_channel: exit %d, want 101", res.ExitCode)
	}
	if c.storage().Inited {
		t.Fatal("forged init changed the storage")
	}
	// Too little value for the balances plus excess_fee.
	c = newChain(t, p.params)
	if res := c.internal(InitChannelBody(true, p.keyA, p.params.ChannelID, deposit, 0), deposit); res.ExitCode != 102 {
		t.Fatalf("underfunded init_channel: exit %d, want 102", res.ExitCode)
	}

	c = open(t, p)
	s := c.storage()
	if !s.Inited || s.BalanceA != deposit || s.BalanceB != 0 || !s.Matches(p.params) || s.Quarantine != nil {
		t.Fatalf("storage after init: %+v", s)
	}
	// Already inited: a second init is refused (100).
	if res := c.internal(InitChannelBody(false, p.keyB, p.params.ChannelID, deposit, 0), nano); res.ExitCode != 100 {
		t.Fatalf("second init_channel: exit %d, want 100", res.ExitCode)
	}
}

// meter runs n "requests" on a channel: the payer signs a voucher per request for its tokens,
// each voucher crosses the wire encoding, and the payee accepts it. It returns the total metered.
func meter(t *testing.T, p parties, payee *Payee, n int) (total uint64, all []Voucher, payer *Payer) {
	t.Helper()
	payer, err := NewPayer(PayerConfig{ChannelID: p.params.ChannelID, Key: p.keyA, Limit: deposit})
	if err != nil {
		t.Fatal(err)
	}
	const pricePerToken = 1_234 // nanoTON
	for i := 0; i < n; i++ {
		cost := uint64(17+i*13%97) * pricePerToken
		total += cost
		v, err := payer.Pay(cost)
		if err != nil {
			t.Fatal(err)
		}
		wire, _ := v.MarshalBinary()
		got, err := DecodeVoucher(wire)
		if err != nil {
			t.Fatal(err)
		}
		if err := payee.Accept(got); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		all = append(all, got)
	}
	if payee.Sent() != total || payer.Sent() != total {
		t.Fatalf("metered %d, payee has %d, payer %d", total, payee.Sent(), payer.Sent())
	}
	return total, all, payer
}

func newPayee(t *testing.T, p parties) *Payee {
	t.Helper()
	payee, err := NewPayee(PayeeConfig{ChannelID: p.params.ChannelID, PayerKey: p.params.KeyA, Limit: deposit})
	if err != nil {
		t.Fatal(err)
	}
	return payee
}

func TestContractCooperativeClosePaysMeteredUsage(t *testing.T) {
	p := newParties(0)
	c := open(t, p)
	payee := newPayee(t, p)
	total, _, payer := meter(t, p, payee, 100)

	cl, err := payee.CooperativeClose(deposit, 0, 1)
	if err != nil || cl.SeqnoA != 101 || cl.BalanceB != total || cl.BalanceA != deposit-total {
		t.Fatalf("close proposal %+v %v", cl, err)
	}
	// The payer checks the proposal against its own record and co-signs.
	if err := payer.CheckClose(cl, deposit, 0); err != nil {
		t.Fatal(err)
	}
	sigA, sigB := cl.Sign(p.keyA), cl.Sign(p.keyB)
	if !cl.Verify(p.params.KeyA, sigA) || !cl.Verify(p.params.KeyB, sigB) {
		t.Fatal("close signatures do not verify locally")
	}

	// A forged B signature is refused by the contract, which then does not accept the message.
	forged, _ := cl.Body(sigA, cl.Sign(testKey(9)))
	if res := c.external(forged); ok(res) || res.ExitCode != 101 {
		t.Fatalf("forged cooperative_close: exit %d accepted %v, want 101", res.ExitCode, res.Accepted)
	}

	body, err := cl.Body(sigA, sigB)
	if err != nil {
		t.Fatal(err)
	}
	res := c.external(body)
	if !ok(res) {
		t.Fatalf("cooperative_close: exit %d accepted %v", res.ExitCode, res.Accepted)
	}
	t.Logf("cooperative_close (external): exit %d, gas %d", res.ExitCode, res.GasUsed)
	pays := payouts(t, res.Actions)
	if len(pays) != 2 {
		t.Fatalf("%d payouts, want 2", len(pays))
	}
	b, a := pays[0], pays[1]
	if !b.dest.Equals(p.params.Payments.DestB) || b.amount != total || b.mode != 2 {
		t.Fatalf("payout to B: %+v, want %d nanoTON to dest_B with mode 2", b, total)
	}
	if !a.dest.Equals(p.params.Payments.DestA) || a.amount != deposit-total || a.mode != 130 {
		t.Fatalf("payout to A: %+v, want %d nanoTON (and the rest) to dest_A with mode 130", a, deposit-total)
	}
	for _, x := range pays {
		if x.op != OpChannelClosed || !bytes.Equal(x.channelID, p.params.ChannelID[:]) {
			t.Fatalf("payout body op %x id %x", x.op, x.channelID)
		}
	}
	s := c.storage()
	if s.Inited || s.BalanceA != 0 || s.CommittedSeqnoA != 101 || s.CommittedSeqnoB != 1 {
		t.Fatalf("storage after close: %+v", s)
	}
	// The same close cannot be replayed: the seqnos are committed (108).
	if res := c.external(body); ok(res) || res.ExitCode != 108 {
		t.Fatalf("replayed cooperative_close: exit %d, want 108", res.ExitCode)
	}

	// Top-up by re-init on the same address; the last voucher of the old session is dead both on
	// chain (its seqno is below the committed one: 105) and for a payee resumed from the chain.
	if res := c.internal(InitChannelBody(true, p.keyA, p.params.ChannelID, deposit, 0), deposit+excessFee+nano/20); !ok(res) {
		t.Fatalf("re-init: exit %d", res.ExitCode)
	}
	last, _ := payee.Latest()
	schB := SignSemiChannel(p.keyB, SemiChannel{ChannelID: p.params.ChannelID, Data: SemiChannelBody{Seqno: 1}})
	res = c.internal(StartUncooperativeCloseBody(false, p.keyB, p.params.ChannelID, last.Signed(p.params.ChannelID), schB), nano/20)
	if ok(res) || res.ExitCode != 105 {
		t.Fatalf("old-session voucher after re-init: exit %d, want 105", res.ExitCode)
	}
	fresh, _ := NewPayee(PayeeConfig{ChannelID: p.params.ChannelID, PayerKey: p.params.KeyA, Limit: deposit,
		CommittedSeqno: uint64(c.storage().CommittedSeqnoA)})
	if err := fresh.Accept(last); !errors.Is(err, ErrReplayed) {
		t.Fatalf("payee took an old-session voucher: %v", err)
	}
}

func TestContractRejectsForgedVoucher(t *testing.T) {
	p := newParties(0)
	c := open(t, p)
	payee := newPayee(t, p)
	forged := SignVoucher(testKey(9), p.params.ChannelID, 1, nano)
	if err := payee.Accept(forged); err == nil {
		t.Fatal("Accept took a forged voucher")
	}
	schB := SignSemiChannel(p.keyB, SemiChannel{ChannelID: p.params.ChannelID})
	res := c.internal(StartUncooperativeCloseBody(false, p.keyB, p.params.ChannelID, forged.Signed(p.params.ChannelID), schB), nano/20)
	if ok(res) || res.ExitCode != 101 {
		t.Fatalf("start with forged voucher: exit %d, want 101", res.ExitCode)
	}
	// A genuine voucher for another channel id is refused as well (wrong signature for this id).
	var other ChannelID
	other[0] = 1
	wrongID := SignVoucher(p.keyA, other, 1, nano)
	if err := payee.Accept(wrongID); err == nil {
		t.Fatal("Accept took a voucher for another channel")
	}
	res = c.internal(StartUncooperativeCloseBody(false, p.keyB, p.params.ChannelID, wrongID.Signed(p.params.ChannelID), schB), nano/20)
	if ok(res) {
		t.Fatalf("start with another channel's voucher accepted: exit %d", res.ExitCode)
	}
	if c.storage().Quarantine != nil {
		t.Fatal("refused start changed the storage")
	}
}

func TestContractUncooperativeCloseByPayee(t *testing.T) {
	p := newParties(0)
	c := open(t, p)
	payee := newPayee(t, p)
	total, _, _ := meter(t, p, payee, 20)
	latest, _ := payee.Latest()

	// The payee needs only its latest voucher and its own (empty) semichannel.
	schB := SignSemiChannel(p.keyB, SemiChannel{ChannelID: p.params.ChannelID})
	res := c.internal(StartUncooperativeCloseBody(false, p.keyB, p.params.ChannelID, latest.Signed(p.params.ChannelID), schB), nano/20)
	if !ok(res) {
		t.Fatalf("start_uncooperative_close: exit %d", res.ExitCode)
	}
	t.Logf("start_uncooperative_close (internal): exit %d, gas %d", res.ExitCode, res.GasUsed)
	q := c.storage().Quarantine
	if q == nil || q.StateA.Sent != total || q.StateA.Seqno != latest.Seqno || q.StateCommitedByA || q.QuarantineStarts != c.now {
		t.Fatalf("quarantine %+v", q)
	}

	c.now += quarantine + condWindow // not yet strictly after
	if res := c.external(FinishUncooperativeCloseBody()); ok(res) || res.ExitCode != 113 {
		t.Fatalf("early finish: exit %d, want 113", res.ExitCode)
	}
	c.now++
	res = c.external(FinishUncooperativeCloseBody())
	if !ok(res) {
		t.Fatalf("finish_uncooperative_close: exit %d", res.ExitCode)
	}
	t.Logf("finish_uncooperative_close (external): exit %d, gas %d", res.ExitCode, res.GasUsed)
	pays := payouts(t, res.Actions)
	if len(pays) != 2 || pays[0].amount != total || !pays[0].dest.Equals(p.params.Payments.DestB) ||
		pays[1].amount != deposit-total || !pays[1].dest.Equals(p.params.Payments.DestA) {
		t.Fatalf("finish payouts %+v, want %d to B and %d to A", pays, total, deposit-total)
	}
	if s := c.storage(); s.Inited || s.CommittedSeqnoA != uint32(latest.Seqno+1) {
		t.Fatalf("storage after finish: %+v", s)
	}
}

func TestContractChallengeBeatsOlderState(t *testing.T) {
	p := newParties(0)
	c := open(t, p)
	payee := newPayee(t, p)
	total, all, _ := meter(t, p, payee, 10)
	old, latest := all[2], all[len(all)-1]
	// B's static semichannel, given to A at open so that either side can start a close.
	schB := SignSemiChannel(p.keyB, SemiChannel{ChannelID: p.params.ChannelID})

	// The payer cheats: it starts a close with an old voucher of its own.
	res := c.internal(StartUncooperativeCloseBody(true, p.keyA, p.params.ChannelID, old.Signed(p.params.ChannelID), schB), nano/20)
	if !ok(res) {
		t.Fatalf("start by A: exit %d", res.ExitCode)
	}
	if q := c.storage().Quarantine; q == nil || q.StateA.Sent != old.Sent || !q.StateCommitedByA {
		t.Fatalf("quarantine %+v", q)
	}
	// A second start while quarantined is refused (106).
	if res := c.internal(StartUncooperativeCloseBody(false, p.keyB, p.params.ChannelID, latest.Signed(p.params.ChannelID), schB), nano/20); res.ExitCode != 106 {
		t.Fatalf("second start: exit %d, want 106", res.ExitCode)
	}
	// The initiator cannot challenge its own close (109).
	if res := c.internal(ChallengeBody(true, p.keyA, p.params.ChannelID, latest.Signed(p.params.ChannelID), schB), nano/20); res.ExitCode != 109 {
		t.Fatalf("challenge by initiator: exit %d, want 109", res.ExitCode)
	}

	c.now += quarantine / 2
	res = c.internal(ChallengeBody(false, p.keyB, p.params.ChannelID, latest.Signed(p.params.ChannelID), schB), nano/20)
	if !ok(res) {
		t.Fatalf("challenge_quarantined_state: exit %d", res.ExitCode)
	}
	t.Logf("challenge_quarantined_state (internal): exit %d, gas %d", res.ExitCode, res.GasUsed)
	q := c.storage().Quarantine
	if q == nil || q.StateA.Sent != total || q.StateA.Seqno != latest.Seqno || !q.StateChallenged {
		t.Fatalf("quarantine after challenge %+v", q)
	}
	// Only one challenge (115).
	if res := c.internal(ChallengeBody(false, p.keyB, p.params.ChannelID, latest.Signed(p.params.ChannelID), schB), nano/20); res.ExitCode != 115 {
		t.Fatalf("second challenge: exit %d, want 115", res.ExitCode)
	}

	c.now = startTime + quarantine + condWindow + 1
	res = c.external(FinishUncooperativeCloseBody())
	if !ok(res) {
		t.Fatalf("finish: exit %d", res.ExitCode)
	}
	pays := payouts(t, res.Actions)
	if len(pays) != 2 || pays[0].amount != total || pays[1].amount != deposit-total {
		t.Fatalf("finish payouts %+v, want %d to B", pays, total)
	}
}

func TestContractChallengeTooLate(t *testing.T) {
	p := newParties(0)
	c := open(t, p)
	payee := newPayee(t, p)
	_, all, _ := meter(t, p, payee, 3)
	schB := SignSemiChannel(p.keyB, SemiChannel{ChannelID: p.params.ChannelID})
	if res := c.internal(StartUncooperativeCloseBody(true, p.keyA, p.params.ChannelID, all[0].Signed(p.params.ChannelID), schB), nano/20); !ok(res) {
		t.Fatalf("start: exit %d", res.ExitCode)
	}
	c.now += quarantine
	if res := c.internal(ChallengeBody(false, p.keyB, p.params.ChannelID, all[2].Signed(p.params.ChannelID), schB), nano/20); res.ExitCode != 111 {
		t.Fatalf("late challenge: exit %d, want 111", res.ExitCode)
	}
}
