package ledger

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipfs/go-datastore"
	leveldb "github.com/ipfs/go-ds-leveldb"
	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tvm/cell"

	"github.com/cocoon-mesh/cocoon/ton"
)

const (
	nano       = uint64(1_000_000_000)
	excessFee  = nano / 100 // reserved at init for the gas of close and finish
	deposit    = 5 * nano
	openValue  = deposit + excessFee + nano/20
	disputeVal = nano / 20 // value attached to start and challenge
	quarantine = 6 * 3600
	condWindow = 60
	funded     = 10 * nano
)

// clock is the ledger's injected time; tests move it.
type clock struct{ unix atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.unix.Store(1_700_000_000)
	return c
}

func (c *clock) now() time.Time          { return time.Unix(c.unix.Load(), 0) }
func (c *clock) advance(d time.Duration) { c.unix.Add(int64(d / time.Second)) }

func testKey(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

func testAddr(b byte) *address.Address {
	return address.NewAddress(0, 0, bytes.Repeat([]byte{b}, 32))
}

// world is one channel between a payer wallet (A) and a payee wallet (B) on an Embedded
// ledger over an on-disk leveldb.
// testLedger is what the tests drive: the Embedded ledger itself, or a Remote in front of it.
type testLedger interface {
	Ledger
	Fund(ctx context.Context, addr *address.Address, amount uint64) error
}

type world struct {
	t            *testing.T
	dir          string
	store        *leveldb.Datastore
	clock        *clock
	l            *Embedded
	ld           testLedger       // the ledger under test: l, or a Remote over srv
	srv          *httptest.Server // serving l, when the tests go through a Remote
	keyA, keyB   ed25519.PrivateKey
	walletA      *address.Address
	walletB      *address.Address
	params       ton.Params
	channel      *address.Address
	fees         uint64 // every fee charged, for the conservation check
	fundedAmount uint64
}

func newWorld(t *testing.T) *world {
	t.Helper()
	keyA, keyB := testKey(1), testKey(2)
	var id ton.ChannelID
	copy(id[:], "ledger-chan-0001")
	w := &world{
		t: t, dir: t.TempDir(), clock: newClock(), keyA: keyA, keyB: keyB,
		walletA: testAddr(0xA), walletB: testAddr(0xB),
	}
	w.params = ton.Params{
		KeyA:      keyA.Public().(ed25519.PublicKey),
		KeyB:      keyB.Public().(ed25519.PublicKey),
		ChannelID: id,
		Closing:   ton.ClosingConfig{QuarantineDuration: quarantine, ConditionalCloseDuration: condWindow},
		Payments:  ton.PaymentConfig{ExcessFee: excessFee, DestA: w.walletA, DestB: w.walletB},
	}
	var err error
	if w.channel, err = w.params.Address(); err != nil {
		t.Fatal(err)
	}
	w.reopen()
	t.Cleanup(func() {
		if w.srv != nil {
			w.srv.Close()
		}
		w.store.Close()
	})
	return w
}

// newRemoteWorld is a world whose ledger is reached only through a Remote talking to a server
// over its Embedded ledger.
func newRemoteWorld(t *testing.T) *world {
	t.Helper()
	w := newWorld(t)
	w.serve()
	return w
}

// serve puts the ledger behind a server and makes w.ld a Remote to it.
func (w *world) serve() {
	if w.srv != nil {
		w.srv.Close()
	}
	w.srv = httptest.NewServer(NewServer(w.l))
	w.ld = NewRemote(w.srv.URL+"/", w.srv.Client())
}

// eachLedger runs test on the Embedded ledger directly and through a Remote.
func eachLedger(t *testing.T, test func(t *testing.T, w *world)) {
	t.Run("embedded", func(t *testing.T) { test(t, newWorld(t)) })
	t.Run("remote", func(t *testing.T) { test(t, newRemoteWorld(t)) })
}

// messages is how many messages the ledger has executed.
func (w *world) messages() uint64 {
	w.t.Helper()
	if r, ok := w.ld.(*Remote); ok {
		n, err := r.Messages(context.Background())
		if err != nil {
			w.t.Fatal(err)
		}
		return n
	}
	return w.l.Messages()
}

// reopen closes the datastore (if open) and opens the ledger afresh from disk, as after a restart.
func (w *world) reopen() {
	w.t.Helper()
	if w.store != nil {
		if err := w.store.Close(); err != nil {
			w.t.Fatal(err)
		}
	}
	var err error
	if w.store, err = leveldb.NewDatastore(w.dir, nil); err != nil {
		w.t.Fatal(err)
	}
	if w.l, err = NewEmbedded(context.Background(), w.store, Options{Now: w.clock.now}); err != nil {
		w.t.Fatal(err)
	}
	w.ld = w.l
	if w.srv != nil {
		w.serve()
	}
}

func (w *world) fund(a *address.Address, amount uint64) {
	w.t.Helper()
	if err := w.ld.Fund(context.Background(), a, amount); err != nil {
		w.t.Fatal(err)
	}
	w.fundedAmount += amount
}

func (w *world) balance(a *address.Address) uint64 {
	w.t.Helper()
	b, err := w.ld.Balance(context.Background(), a)
	if err != nil {
		w.t.Fatal(err)
	}
	return b
}

func (w *world) state() ChannelState {
	w.t.Helper()
	s, err := w.ld.Channel(context.Background(), w.channel)
	if err != nil {
		w.t.Fatal(err)
	}
	return s
}

// ok checks a receipt, records its fee and checks the fee is what the package doc says.
func (w *world) ok(what string) func(Receipt, error) Receipt {
	return func(r Receipt, err error) Receipt {
		w.t.Helper()
		return w.check(what, r, err)
	}
}

func (w *world) check(what string, r Receipt, err error) Receipt {
	w.t.Helper()
	if err != nil {
		w.t.Fatalf("%s: %v", what, err)
	}
	if r.GasUsed <= 0 || r.Fee != uint64(r.GasUsed)*DefaultGasPrice {
		w.t.Fatalf("%s: gas %d, fee %d", what, r.GasUsed, r.Fee)
	}
	w.t.Logf("%s: exit %d, gas %d, fee %d nanoTON", what, r.ExitCode, r.GasUsed, r.Fee)
	w.fees += r.Fee
	return r
}

// conserved checks that no nanoTON was created or lost: funded = balances + fees.
func (w *world) conserved() {
	w.t.Helper()
	sum := w.balance(w.walletA) + w.balance(w.walletB) + w.balance(w.channel)
	if sum+w.fees != w.fundedAmount {
		w.t.Fatalf("balances %d + fees %d != funded %d", sum, w.fees, w.fundedAmount)
	}
}

func (w *world) open() Receipt {
	w.t.Helper()
	if w.balance(w.walletA) == 0 {
		w.fund(w.walletA, funded)
	}
	before := w.balance(w.walletA)
	si, err := w.params.StateInit()
	if err != nil {
		w.t.Fatal(err)
	}
	body := ton.InitChannelBody(true, w.keyA, w.params.ChannelID, deposit, 0)
	r := w.ok("open")(w.ld.OpenChannel(context.Background(), w.walletA, w.channel, si, body, openValue))
	s := w.state()
	if !s.Storage.Inited || s.Storage.BalanceA != deposit || !s.Storage.Matches(w.params) || s.Balance != openValue || !s.Address.Equals(w.channel) {
		w.t.Fatalf("channel after open: %+v", s)
	}
	if got, want := w.balance(w.walletA), before-openValue-r.Fee; got != want {
		w.t.Fatalf("payer after open: %d, want %d", got, want)
	}
	return r
}

func (w *world) payee() *ton.Payee {
	w.t.Helper()
	p, err := ton.NewPayee(ton.PayeeConfig{ChannelID: w.params.ChannelID, PayerKey: w.params.KeyA, Limit: deposit})
	if err != nil {
		w.t.Fatal(err)
	}
	return p
}

// meter runs n requests off chain: the payer signs a voucher per request, it crosses the wire
// encoding and the payee accepts it. It returns every voucher and the payer.
func (w *world) meter(payee *ton.Payee, n int) ([]ton.Voucher, *ton.Payer) {
	w.t.Helper()
	payer, err := ton.NewPayer(ton.PayerConfig{ChannelID: w.params.ChannelID, Key: w.keyA, Limit: deposit})
	if err != nil {
		w.t.Fatal(err)
	}
	var all []ton.Voucher
	for i := range n {
		v, err := payer.Pay(uint64(17+i*13%97) * 1_234)
		if err != nil {
			w.t.Fatal(err)
		}
		wire, _ := v.MarshalBinary()
		got, err := ton.DecodeVoucher(wire)
		if err != nil {
			w.t.Fatal(err)
		}
		if err := payee.Accept(got); err != nil {
			w.t.Fatal(err)
		}
		all = append(all, got)
	}
	return all, payer
}

// payeeSemi is B's own static semichannel, which B signs to start or challenge a close.
func (w *world) payeeSemi() ton.SignedSemiChannel {
	return ton.SignSemiChannel(w.keyB, ton.SemiChannel{ChannelID: w.params.ChannelID})
}

func TestCooperativeClosePaysMeteredAmount(t *testing.T) {
	eachLedger(t, testCooperativeClosePaysMeteredAmount)
}

func testCooperativeClosePaysMeteredAmount(t *testing.T, w *world) {
	ctx := context.Background()
	w.open()
	if n := w.messages(); n != 1 {
		t.Fatalf("%d messages after open, want 1", n)
	}
	payee := w.payee()
	_, payer := w.meter(payee, 200)
	total := payee.Sent()
	if n := w.messages(); n != 1 {
		t.Fatalf("%d messages after 200 off-chain requests, want still 1", n)
	}

	cl, err := payee.CooperativeClose(deposit, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := payer.CheckClose(cl, deposit, 0); err != nil {
		t.Fatal(err)
	}
	body, err := cl.Body(cl.Sign(w.keyA), cl.Sign(w.keyB))
	if err != nil {
		t.Fatal(err)
	}
	before := w.balance(w.walletA)
	r := w.ok("cooperative close")(w.ld.CooperativeClose(ctx, w.channel, body))
	if got := w.balance(w.walletB); got != total {
		t.Fatalf("payee received %d, metered %d", got, total)
	}
	// The payer gets the rest of the contract's money: its value at open less the metered
	// amount and the close's gas, which the contract paid from its balance.
	if got, want := w.balance(w.walletA), before+openValue-r.Fee-total; got != want {
		t.Fatalf("payer has %d, want %d", got, want)
	}
	if len(r.Payouts) != 2 || r.Payouts[0].Mode != 2 || r.Payouts[1].Mode != 130 ||
		!r.Payouts[0].To.Equals(w.walletB) || !r.Payouts[1].To.Equals(w.walletA) {
		t.Fatalf("payouts %+v", r.Payouts)
	}
	s := w.state()
	if s.Balance != 0 || s.Storage.Inited || s.Storage.CommittedSeqnoA != uint32(cl.SeqnoA) {
		t.Fatalf("channel after close: %+v", s)
	}
	w.conserved()
	if n := w.messages(); n != 2 {
		t.Fatalf("%d messages, want 2", n)
	}

	// Replaying the close is refused (108: seqnos committed) and changes nothing.
	_, err = w.ld.CooperativeClose(ctx, w.channel, body)
	var ee *ExitError
	if !errors.As(err, &ee) || ee.ExitCode != 108 || !errors.Is(err, ErrRefused) {
		t.Fatalf("replayed close: %v, want exit 108", err)
	}
	w.conserved()
}

func TestUncooperativeCloseAfterRestart(t *testing.T) {
	eachLedger(t, testUncooperativeCloseAfterRestart)
}

func testUncooperativeCloseAfterRestart(t *testing.T, w *world) {
	ctx := context.Background()
	w.open()
	payee := w.payee()
	w.meter(payee, 50)
	total := payee.Sent()
	// The payee persists its latest voucher (its record; the params are fixed by its config).
	latest, _ := payee.Latest()
	wire, _ := latest.MarshalBinary()
	if err := w.store.Put(ctx, datastore.NewKey("/payee/latest"), wire); err != nil {
		t.Fatal(err)
	}
	w.fund(w.walletB, nano)

	// The payer vanishes; the payee's process restarts and so does the ledger.
	w.reopen()
	raw, err := w.store.Get(ctx, datastore.NewKey("/payee/latest"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := ton.DecodeVoucher(raw)
	if err != nil {
		t.Fatal(err)
	}
	if s := w.state(); !s.Storage.Inited || s.Balance != openValue {
		t.Fatalf("channel after restart: %+v", s)
	}
	body := ton.StartUncooperativeCloseBody(false, w.keyB, w.params.ChannelID, v.Signed(w.params.ChannelID), w.payeeSemi())
	start := w.ok("start uncooperative close")(w.ld.StartUncooperativeClose(ctx, w.walletB, w.channel, body, disputeVal))
	q := w.state().Storage.Quarantine
	if q == nil || q.StateA.Sent != total || q.StateCommitedByA {
		t.Fatalf("quarantine %+v", q)
	}

	// Finishing at exactly start + q + c is too early (113); one second later works.
	w.clock.advance((quarantine + condWindow) * time.Second)
	_, err = w.ld.FinishUncooperativeClose(ctx, w.channel)
	var ee *ExitError
	if !errors.As(err, &ee) || ee.ExitCode != 113 {
		t.Fatalf("early finish: %v, want exit 113", err)
	}
	w.clock.advance(time.Second)
	before := w.balance(w.walletA)
	fin := w.ok("finish uncooperative close")(w.ld.FinishUncooperativeClose(ctx, w.channel))
	if got, want := w.balance(w.walletB), nano-disputeVal-start.Fee+total; got != want {
		t.Fatalf("payee has %d, want %d (got exactly the metered %d)", got, want, total)
	}
	// The payer gets everything else the contract held, including the dispute value.
	if got, want := w.balance(w.walletA), before+openValue+disputeVal-fin.Fee-total; got != want {
		t.Fatalf("payer has %d, want %d", got, want)
	}
	if s := w.state(); s.Balance != 0 || s.Storage.Inited || s.Storage.CommittedSeqnoA != uint32(v.Seqno+1) {
		t.Fatalf("channel after finish: %+v", s)
	}
	w.conserved()
}

func TestChallengeBeatsOlderState(t *testing.T) { eachLedger(t, testChallengeBeatsOlderState) }

func testChallengeBeatsOlderState(t *testing.T, w *world) {
	ctx := context.Background()
	w.open()
	payee := w.payee()
	all, _ := w.meter(payee, 10)
	old, latest := all[2], all[len(all)-1]
	w.fund(w.walletB, nano)

	// The payer cheats: it starts a close with an old voucher of its own.
	start := ton.StartUncooperativeCloseBody(true, w.keyA, w.params.ChannelID, old.Signed(w.params.ChannelID), w.payeeSemi())
	w.ok("start by payer")(w.ld.StartUncooperativeClose(ctx, w.walletA, w.channel, start, disputeVal))
	if q := w.state().Storage.Quarantine; q == nil || q.StateA.Sent != old.Sent || !q.StateCommitedByA {
		t.Fatalf("quarantine %+v", q)
	}

	w.clock.advance(quarantine / 2 * time.Second)
	ch := ton.ChallengeBody(false, w.keyB, w.params.ChannelID, latest.Signed(w.params.ChannelID), w.payeeSemi())
	rc := w.ok("challenge")(w.ld.Challenge(ctx, w.walletB, w.channel, ch, disputeVal))
	if q := w.state().Storage.Quarantine; q == nil || q.StateA.Sent != latest.Sent || !q.StateChallenged {
		t.Fatalf("quarantine after challenge %+v", q)
	}
	// Only one challenge (115), and nothing changes.
	bal := w.balance(w.walletB)
	if _, err := w.ld.Challenge(ctx, w.walletB, w.channel, ch, disputeVal); exitCode(err) != 115 {
		t.Fatalf("second challenge: %v, want exit 115", err)
	}
	if w.balance(w.walletB) != bal {
		t.Fatal("refused challenge charged the wallet")
	}

	w.clock.advance((quarantine/2 + condWindow + 1) * time.Second)
	beforeA := w.balance(w.walletA)
	fin := w.ok("finish")(w.ld.FinishUncooperativeClose(ctx, w.channel))
	if got, want := w.balance(w.walletB), nano-disputeVal-rc.Fee+latest.Sent; got != want {
		t.Fatalf("payee has %d, want %d: the newer state (sent %d, not %d) must win", got, want, latest.Sent, old.Sent)
	}
	if got, want := w.balance(w.walletA), beforeA+openValue+2*disputeVal-fin.Fee-latest.Sent; got != want {
		t.Fatalf("payer has %d, want %d", got, want)
	}
	w.conserved()
}

func exitCode(err error) int64 {
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode
	}
	return -1000
}

// snapshot is every balance and the channel's data hash, to prove a refusal changed nothing.
func (w *world) snapshot() [4]string {
	w.t.Helper()
	s := w.state()
	data, err := s.Storage.Cell()
	if err != nil {
		w.t.Fatal(err)
	}
	return [4]string{
		string(data.Hash()),
		string(appendU(nil, w.balance(w.walletA))),
		string(appendU(nil, w.balance(w.walletB))),
		string(appendU(nil, s.Balance)),
	}
}

func appendU(b []byte, v uint64) []byte {
	for range 8 {
		b = append(b, byte(v))
		v >>= 8
	}
	return b
}

func TestForgedSignaturesRefused(t *testing.T) { eachLedger(t, testForgedSignaturesRefused) }

func testForgedSignaturesRefused(t *testing.T, w *world) {
	ctx := context.Background()
	w.open()
	payee := w.payee()
	w.meter(payee, 5)
	w.fund(w.walletB, nano)
	forger := testKey(9)
	before := w.snapshot()
	msgs := w.messages()

	cl, err := payee.CooperativeClose(deposit, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	forgedClose, _ := cl.Body(cl.Sign(w.keyA), cl.Sign(forger))
	_, err = w.ld.CooperativeClose(ctx, w.channel, forgedClose)
	if exitCode(err) != 101 || !errors.Is(err, ErrRefused) {
		t.Fatalf("forged cooperative close: %v, want exit 101", err)
	}
	t.Logf("forged cooperative close: %v", err)

	forgedVoucher := ton.SignVoucher(forger, w.params.ChannelID, 99, nano)
	start := ton.StartUncooperativeCloseBody(false, w.keyB, w.params.ChannelID, forgedVoucher.Signed(w.params.ChannelID), w.payeeSemi())
	if _, err := w.ld.StartUncooperativeClose(ctx, w.walletB, w.channel, start, disputeVal); exitCode(err) != 101 {
		t.Fatalf("start with forged voucher: %v, want exit 101", err)
	}
	// A genuine voucher in a start signed by someone other than the party it claims to be.
	latest, _ := payee.Latest()
	start = ton.StartUncooperativeCloseBody(false, forger, w.params.ChannelID, latest.Signed(w.params.ChannelID), w.payeeSemi())
	if _, err := w.ld.StartUncooperativeClose(ctx, w.walletB, w.channel, start, disputeVal); exitCode(err) != 101 {
		t.Fatalf("start signed by a stranger: %v, want exit 101", err)
	}
	if after := w.snapshot(); after != before {
		t.Fatal("a refused message changed the ledger")
	}
	if got := w.messages(); got != msgs+3 {
		t.Fatalf("%d messages executed, want %d", got, msgs+3)
	}
	w.conserved()
}

func TestOpenRefusals(t *testing.T) { eachLedger(t, testOpenRefusals) }

func testOpenRefusals(t *testing.T, w *world) {
	ctx := context.Background()
	w.fund(w.walletA, funded)
	si, _ := w.params.StateInit()
	body := ton.InitChannelBody(true, w.keyA, w.params.ChannelID, deposit, 0)

	// A StateInit that does not hash to the address.
	other := w.params
	other.ChannelID[0] ^= 1
	otherSI, _ := other.StateInit()
	if _, err := w.ld.OpenChannel(ctx, w.walletA, w.channel, otherSI, body, openValue); !errors.Is(err, ErrBadStateInit) {
		t.Fatalf("mismatched StateInit: %v", err)
	}
	// Code other than the contract's, even at its own address.
	fake := *si
	fake.Code = cell.BeginCell().MustStoreUInt(0xdead, 16).EndCell()
	if _, err := w.ld.OpenChannel(ctx, w.walletA, fake.CalcAddress(0), &fake, body, openValue); !errors.Is(err, ErrBadStateInit) {
		t.Fatalf("foreign code: %v", err)
	}
	// Not enough money.
	if _, err := w.ld.OpenChannel(ctx, w.walletA, w.channel, si, body, funded+1); !errors.Is(err, ErrInsufficientFunds) {
		t.Fatalf("overdrawn open: %v", err)
	}
	// A forged init (B's key claiming to be A) is refused by the contract: exit 101.
	forged := ton.InitChannelBody(true, w.keyB, w.params.ChannelID, deposit, 0)
	if _, err := w.ld.OpenChannel(ctx, w.walletA, w.channel, si, forged, openValue); exitCode(err) != 101 {
		t.Fatalf("forged init: %v, want exit 101", err)
	}
	// The wrong operation for the method.
	if _, err := w.ld.OpenChannel(ctx, w.walletA, w.channel, si, ton.FinishUncooperativeCloseBody(), openValue); !errors.Is(err, ErrWrongOp) {
		t.Fatalf("wrong op: %v", err)
	}
	if _, err := w.ld.Channel(ctx, w.channel); !errors.Is(err, ErrNotFound) {
		t.Fatalf("refused opens deployed something: %v", err)
	}
	if w.balance(w.walletA) != funded {
		t.Fatal("refused opens charged the payer")
	}
	// Messages to a plain wallet or to nothing are refused before the TVM.
	if _, err := w.ld.FinishUncooperativeClose(ctx, w.walletB); !errors.Is(err, ErrNotFound) {
		t.Fatalf("finish on nothing: %v", err)
	}
	if _, err := w.ld.FinishUncooperativeClose(ctx, w.walletA); !errors.Is(err, ErrNotChannel) {
		t.Fatalf("finish on a wallet: %v", err)
	}
	w.open()
	// A channel cannot send internal messages; an inited channel refuses a second init (100).
	if _, err := w.ld.Challenge(ctx, w.channel, w.channel, ton.ChallengeBody(false, w.keyB, w.params.ChannelID,
		w.payeeSemi(), w.payeeSemi()), disputeVal); !errors.Is(err, ErrNotWallet) {
		t.Fatalf("challenge from a contract: %v", err)
	}
	if _, err := w.ld.OpenChannel(ctx, w.walletA, w.channel, si, body, nano); exitCode(err) != 100 {
		t.Fatalf("second init: %v, want exit 100", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := w.ld.Balance(cctx, w.walletA); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled context: %v", err)
	}
	if now, err := w.ld.Now(ctx); err != nil || !now.Equal(w.clock.now()) {
		t.Fatalf("Now: %v %v", now, err)
	}
	w.conserved()
}

// Internal messages need their sending wallet: without one they are refused, not delivered as
// external messages.
func TestInternalMessagesNeedASender(t *testing.T) { eachLedger(t, testInternalMessagesNeedASender) }

func testInternalMessagesNeedASender(t *testing.T, w *world) {
	ctx := context.Background()
	for name, err := range map[string]error{
		"start": func() error {
			_, err := w.ld.StartUncooperativeClose(ctx, nil, w.channel, ton.FinishUncooperativeCloseBody(), 1)
			return err
		}(),
		"challenge": func() error {
			_, err := w.ld.Challenge(ctx, nil, w.channel, ton.FinishUncooperativeCloseBody(), 1)
			return err
		}(),
	} {
		if !errors.Is(err, ErrBadAddress) {
			t.Errorf("%s without a sender: %v", name, err)
		}
	}
}
