package ledger

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tvm/cell"

	"github.com/cocoon-mesh/cocoon/ton"
)

// rworld is a world whose ledger is reached only through a Remote talking to a server over
// the world's Embedded ledger (on-disk leveldb, injected clock).
type rworld struct {
	*world
	srv *httptest.Server
	r   *Remote
}

func newRemoteWorld(t *testing.T) *rworld {
	t.Helper()
	w := newWorld(t)
	srv := httptest.NewServer(NewServer(w.l))
	t.Cleanup(srv.Close) // runs before the world's store is closed
	return &rworld{world: w, srv: srv, r: NewRemote(srv.URL+"/", srv.Client())}
}

func (w *rworld) fund(a *address.Address, amount uint64) {
	w.t.Helper()
	if err := w.r.Fund(context.Background(), a, amount); err != nil {
		w.t.Fatal(err)
	}
	w.fundedAmount += amount
}

func (w *rworld) balance(a *address.Address) uint64 {
	w.t.Helper()
	b, err := w.r.Balance(context.Background(), a)
	if err != nil {
		w.t.Fatal(err)
	}
	return b
}

func (w *rworld) state() ChannelState {
	w.t.Helper()
	s, err := w.r.Channel(context.Background(), w.channel)
	if err != nil {
		w.t.Fatal(err)
	}
	return s
}

func (w *rworld) messages() uint64 {
	w.t.Helper()
	n, err := w.r.Messages(context.Background())
	if err != nil {
		w.t.Fatal(err)
	}
	return n
}

func (w *rworld) conserved() {
	w.t.Helper()
	sum := w.balance(w.walletA) + w.balance(w.walletB) + w.balance(w.channel)
	if sum+w.fees != w.fundedAmount {
		w.t.Fatalf("balances %d + fees %d != funded %d", sum, w.fees, w.fundedAmount)
	}
}

// snapshot is every balance and the channel's data hash, read through the Remote.
func (w *rworld) snapshot() [4]string {
	w.t.Helper()
	s := w.state()
	data, err := s.Storage.Cell()
	if err != nil {
		w.t.Fatal(err)
	}
	return [4]string{string(data.Hash()), string(appendU(nil, w.balance(w.walletA))),
		string(appendU(nil, w.balance(w.walletB))), string(appendU(nil, s.Balance))}
}

func (w *rworld) open() Receipt {
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
	r := w.ok("open")(w.r.OpenChannel(context.Background(), w.walletA, w.channel, si, body, openValue))
	s := w.state()
	if !s.Storage.Inited || s.Storage.BalanceA != deposit || !s.Storage.Matches(w.params) || s.Balance != openValue || !s.Address.Equals(w.channel) {
		w.t.Fatalf("channel after open: %+v", s)
	}
	if got, want := w.balance(w.walletA), before-openValue-r.Fee; got != want {
		w.t.Fatalf("payer after open: %d, want %d", got, want)
	}
	return r
}

func TestRemoteCooperativeClosePaysMeteredAmount(t *testing.T) {
	ctx := context.Background()
	w := newRemoteWorld(t)
	w.open()
	if n := w.messages(); n != 1 {
		t.Fatalf("%d messages after open, want 1", n)
	}
	payee := w.payee()
	_, payer := w.meter(payee, 200)
	total := payee.Sent()

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
	r := w.ok("cooperative close")(w.r.CooperativeClose(ctx, w.channel, body))
	if got := w.balance(w.walletB); got != total {
		t.Fatalf("payee received %d, metered %d", got, total)
	}
	if got, want := w.balance(w.walletA), before+openValue-r.Fee-total; got != want {
		t.Fatalf("payer has %d, want %d", got, want)
	}
	if len(r.Payouts) != 2 || r.Payouts[0].Mode != 2 || r.Payouts[1].Mode != 130 ||
		!r.Payouts[0].To.Equals(w.walletB) || !r.Payouts[1].To.Equals(w.walletA) || r.Payouts[0].Amount != total {
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

	// Replaying the close is refused (108) and changes nothing; the refusal's receipt comes back.
	rr, err := w.r.CooperativeClose(ctx, w.channel, body)
	var ee *ExitError
	if !errors.As(err, &ee) || ee.ExitCode != 108 || !errors.Is(err, ErrRefused) || ee.Op != "cooperative close" {
		t.Fatalf("replayed close: %v, want exit 108", err)
	}
	if rr.ExitCode != 108 || !strings.Contains(err.Error(), "cooperative close") {
		t.Fatalf("replayed close: receipt %+v, error %q", rr, err)
	}
	w.conserved()
}

func TestRemoteForgedCloseRefused(t *testing.T) {
	ctx := context.Background()
	w := newRemoteWorld(t)
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
	_, err = w.r.CooperativeClose(ctx, w.channel, forgedClose)
	var ee *ExitError
	if !errors.As(err, &ee) || ee.ExitCode != 101 || !errors.Is(err, ErrRefused) {
		t.Fatalf("forged cooperative close: %v, want exit 101", err)
	}
	t.Logf("forged cooperative close: %v", err)

	forgedVoucher := ton.SignVoucher(forger, w.params.ChannelID, 99, nano)
	start := ton.StartUncooperativeCloseBody(false, w.keyB, w.params.ChannelID, forgedVoucher.Signed(w.params.ChannelID), w.payeeSemi())
	if _, err := w.r.StartUncooperativeClose(ctx, w.walletB, w.channel, start, disputeVal); exitCode(err) != 101 {
		t.Fatalf("start with forged voucher: %v, want exit 101", err)
	}
	if after := w.snapshot(); after != before {
		t.Fatal("a refused message changed the ledger")
	}
	if got := w.messages(); got != msgs+2 {
		t.Fatalf("%d messages executed, want %d", got, msgs+2)
	}
	w.conserved()
}

func TestRemoteUncooperativeClose(t *testing.T) {
	ctx := context.Background()
	w := newRemoteWorld(t)
	w.open()
	payee := w.payee()
	w.meter(payee, 50)
	total := payee.Sent()
	latest, _ := payee.Latest()
	w.fund(w.walletB, nano)

	body := ton.StartUncooperativeCloseBody(false, w.keyB, w.params.ChannelID, latest.Signed(w.params.ChannelID), w.payeeSemi())
	start := w.ok("start uncooperative close")(w.r.StartUncooperativeClose(ctx, w.walletB, w.channel, body, disputeVal))
	q := w.state().Storage.Quarantine
	if q == nil || q.StateA.Sent != total || q.StateCommitedByA {
		t.Fatalf("quarantine %+v", q)
	}

	// The server's clock is the test's: finishing at exactly start + q + c is too early (113).
	w.clock.advance((quarantine + condWindow) * time.Second)
	if now, err := w.r.Now(ctx); err != nil || !now.Equal(w.clock.now()) {
		t.Fatalf("Now: %v %v, want %v", now, err, w.clock.now())
	}
	_, err := w.r.FinishUncooperativeClose(ctx, w.channel)
	if exitCode(err) != 113 || !errors.Is(err, ErrRefused) {
		t.Fatalf("early finish: %v, want exit 113", err)
	}
	w.clock.advance(time.Second)
	before := w.balance(w.walletA)
	fin := w.ok("finish uncooperative close")(w.r.FinishUncooperativeClose(ctx, w.channel))
	if got, want := w.balance(w.walletB), nano-disputeVal-start.Fee+total; got != want {
		t.Fatalf("payee has %d, want %d", got, want)
	}
	if got, want := w.balance(w.walletA), before+openValue+disputeVal-fin.Fee-total; got != want {
		t.Fatalf("payer has %d, want %d", got, want)
	}
	if s := w.state(); s.Balance != 0 || s.Storage.Inited || s.Storage.CommittedSeqnoA != uint32(latest.Seqno+1) {
		t.Fatalf("channel after finish: %+v", s)
	}
	w.conserved()
}

func TestRemoteChallenge(t *testing.T) {
	ctx := context.Background()
	w := newRemoteWorld(t)
	w.open()
	payee := w.payee()
	all, _ := w.meter(payee, 10)
	old, latest := all[2], all[len(all)-1]
	w.fund(w.walletB, nano)

	start := ton.StartUncooperativeCloseBody(true, w.keyA, w.params.ChannelID, old.Signed(w.params.ChannelID), w.payeeSemi())
	w.ok("start by payer")(w.r.StartUncooperativeClose(ctx, w.walletA, w.channel, start, disputeVal))
	w.clock.advance(quarantine / 2 * time.Second)
	ch := ton.ChallengeBody(false, w.keyB, w.params.ChannelID, latest.Signed(w.params.ChannelID), w.payeeSemi())
	w.ok("challenge")(w.r.Challenge(ctx, w.walletB, w.channel, ch, disputeVal))
	if q := w.state().Storage.Quarantine; q == nil || q.StateA.Sent != latest.Sent || !q.StateChallenged {
		t.Fatalf("quarantine after challenge %+v", q)
	}
	if _, err := w.r.Challenge(ctx, w.walletB, w.channel, ch, disputeVal); exitCode(err) != 115 {
		t.Fatalf("second challenge: %v, want exit 115", err)
	}
	w.conserved()
}

// TestRemoteErrors checks that every error kind comes back as the package's error, named by
// the operation.
func TestRemoteErrors(t *testing.T) {
	ctx := context.Background()
	w := newRemoteWorld(t)
	w.fund(w.walletA, funded)
	si, _ := w.params.StateInit()
	body := ton.InitChannelBody(true, w.keyA, w.params.ChannelID, deposit, 0)
	other := w.params
	other.ChannelID[0] ^= 1
	otherSI, _ := other.StateInit()
	fake := *si
	fake.Code = cell.BeginCell().MustStoreUInt(0xdead, 16).EndCell()

	cases := []struct {
		name string
		err  error
		want error
		op   string
	}{
		{"mismatched StateInit", second(w.r.OpenChannel(ctx, w.walletA, w.channel, otherSI, body, openValue)), ErrBadStateInit, "open channel"},
		{"foreign code", second(w.r.OpenChannel(ctx, w.walletA, fake.CalcAddress(0), &fake, body, openValue)), ErrBadStateInit, "open channel"},
		{"no StateInit", second(w.r.OpenChannel(ctx, w.walletA, w.channel, nil, body, openValue)), ErrBadStateInit, "open channel"},
		{"overdrawn", second(w.r.OpenChannel(ctx, w.walletA, w.channel, si, body, funded+1)), ErrInsufficientFunds, "open channel"},
		{"wrong op", second(w.r.OpenChannel(ctx, w.walletA, w.channel, si, ton.FinishUncooperativeCloseBody(), openValue)), ErrWrongOp, "open channel"},
		{"no body", second(w.r.CooperativeClose(ctx, w.channel, nil)), ErrWrongOp, "cooperative close"},
		{"nil address", second(w.r.Balance(ctx, nil)), ErrBadAddress, "balance"},
		{"no channel", second(w.r.Channel(ctx, w.channel)), ErrNotFound, "channel"},
		{"finish on nothing", second(w.r.FinishUncooperativeClose(ctx, w.walletB)), ErrNotFound, "finish uncooperative close"},
		{"finish on a wallet", second(w.r.FinishUncooperativeClose(ctx, w.walletA)), ErrNotChannel, "finish uncooperative close"},
	}
	for _, c := range cases {
		if !errors.Is(c.err, c.want) || !strings.Contains(c.err.Error(), "remote "+c.op+":") {
			t.Errorf("%s: %v, want %v from %q", c.name, c.err, c.want, c.op)
		}
	}
	forged := ton.InitChannelBody(true, w.keyB, w.params.ChannelID, deposit, 0)
	if _, err := w.r.OpenChannel(ctx, w.walletA, w.channel, si, forged, openValue); exitCode(err) != 101 {
		t.Fatalf("forged init: %v, want exit 101", err)
	}
	w.open()
	if _, err := w.r.Challenge(ctx, w.channel, w.channel, ton.ChallengeBody(false, w.keyB, w.params.ChannelID,
		w.payeeSemi(), w.payeeSemi()), disputeVal); !errors.Is(err, ErrNotWallet) {
		t.Fatalf("challenge from a contract: %v", err)
	}
	if _, err := w.r.OpenChannel(ctx, w.walletA, w.channel, si, body, nano); exitCode(err) != 100 {
		t.Fatalf("second init: %v, want exit 100", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := w.r.Balance(cctx, w.walletA); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled context: %v", err)
	}
	w.conserved()

	// A server that is gone, and one that answers something other than the ledger's JSON.
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	if _, err := NewRemote(dead.URL, nil).Now(ctx); err == nil || !strings.Contains(err.Error(), "remote now:") {
		t.Fatalf("dead server: %v", err)
	}
	junk := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		http.Error(rw, "bad gateway", http.StatusBadGateway)
	}))
	defer junk.Close()
	if err := NewRemote(junk.URL, junk.Client()).Fund(ctx, w.walletA, 1); err == nil ||
		!strings.Contains(err.Error(), "remote fund:") || !strings.Contains(err.Error(), "502") {
		t.Fatalf("junk server: %v", err)
	}
}

func second[T any](_ T, err error) error { return err }
