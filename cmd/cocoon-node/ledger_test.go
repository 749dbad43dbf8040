package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xssnick/tonutils-go/address"

	"github.com/cocoon-mesh/cocoon/ton"
	"github.com/cocoon-mesh/cocoon/ton/ledger"
)

// startLedger runs `cocoon-node ledger` on dir and returns the process and a client for it.
func startLedger(t *testing.T, name, dir string) (*proc, *ledger.Remote) {
	t.Helper()
	readyFile := filepath.Join(t.TempDir(), name+".ready")
	p := start(t, name, "ledger", "--listen", "127.0.0.1:0", "--data-dir", dir, "--ready-file", readyFile)
	b, err := os.ReadFile(readyFile)
	if err != nil {
		t.Fatal(err)
	}
	var r ledgerReady
	if err := json.Unmarshal(b, &r); err != nil || !strings.HasPrefix(r.URL, "http://127.0.0.1:") {
		t.Fatalf("ready file %q: %v", b, err)
	}
	p.url = r.URL
	return p, ledger.NewRemote(r.URL, nil)
}

// TestLedgerSurvivesKill opens a channel through the ledger process, kills it as a crash
// would, restarts it on the same data dir and finds the channel and balances unchanged.
func TestLedgerSurvivesKill(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	p, l := startLedger(t, "ledger1", dir)

	nano := uint64(1_000_000_000)
	keyA := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, ed25519.SeedSize))
	keyB := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{2}, ed25519.SeedSize))
	walletA := address.NewAddress(0, 0, bytes.Repeat([]byte{0xA}, 32))
	walletB := address.NewAddress(0, 0, bytes.Repeat([]byte{0xB}, 32))
	var id ton.ChannelID
	copy(id[:], "cmd-ledger-chan1")
	params := ton.Params{
		KeyA: keyA.Public().(ed25519.PublicKey), KeyB: keyB.Public().(ed25519.PublicKey), ChannelID: id,
		Closing:  ton.ClosingConfig{QuarantineDuration: 3600, ConditionalCloseDuration: 60},
		Payments: ton.PaymentConfig{ExcessFee: nano / 100, DestA: walletA, DestB: walletB},
	}
	channel, err := params.Address()
	if err != nil {
		t.Fatal(err)
	}
	si, err := params.StateInit()
	if err != nil {
		t.Fatal(err)
	}

	if err := l.Fund(ctx, walletA, 10*nano); err != nil {
		t.Fatal(err)
	}
	deposit, value := 5*nano, 5*nano+nano/100+nano/20
	r, err := l.OpenChannel(ctx, walletA, channel, si, ton.InitChannelBody(true, keyA, id, deposit, 0), value)
	if err != nil {
		t.Fatal(err)
	}
	st, err := l.Channel(ctx, channel)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Storage.Inited || st.Storage.BalanceA != deposit || !st.Storage.Matches(params) || st.Balance != value {
		t.Fatalf("channel after open: %+v", st)
	}
	balA, err := l.Balance(ctx, walletA)
	if err != nil || balA != 10*nano-value-r.Fee {
		t.Fatalf("payer's balance %d (%v), want %d", balA, err, 10*nano-value-r.Fee)
	}
	if !strings.Contains(p.logs.String(), "embedded development ledger (NOT real TON) at http://") {
		t.Fatalf("no announcement on stdout:\n%s", p.logs.String())
	}

	p.kill() // kill -9: no shutdown, no flush
	if _, err := l.Balance(ctx, walletA); err == nil {
		t.Fatal("the killed ledger still answers")
	}
	_, l = startLedger(t, "ledger2", dir)
	st2, err := l.Channel(ctx, channel)
	if err != nil {
		t.Fatal(err)
	}
	data1, _ := st.Storage.Cell()
	data2, _ := st2.Storage.Cell()
	if st2.Balance != st.Balance || !bytes.Equal(data1.Hash(), data2.Hash()) || !st2.Address.Equals(channel) {
		t.Fatalf("channel after restart: %+v, before: %+v", st2, st)
	}
	if got, err := l.Balance(ctx, walletA); err != nil || got != balA {
		t.Fatalf("payer's balance after restart %d (%v), want %d", got, err, balA)
	}
	// The restarted ledger still runs the contract: a second init is refused with exit 100.
	_, err = l.OpenChannel(ctx, walletA, channel, si, ton.InitChannelBody(true, keyA, id, deposit, 0), nano)
	var ee *ledger.ExitError
	if !errors.As(err, &ee) || ee.ExitCode != 100 || !errors.Is(err, ledger.ErrRefused) {
		t.Fatalf("second init after restart: %v, want exit 100", err)
	}
}

func TestLedgerNeedsDataDir(t *testing.T) {
	var out, errOut bytes.Buffer
	m := &Main{Stdout: &out, Stderr: &errOut}
	err := m.Run(context.Background(), []string{"ledger", "--listen", "127.0.0.1:0"})
	if _, ok := err.(usageError); !ok {
		t.Fatalf("no --data-dir: %v, want a usage error", err)
	}
}
