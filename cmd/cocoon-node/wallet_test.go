package main

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xssnick/tonutils-go/address"
)

// The node's wallet: its address is stable across runs of the command (the key lives in the
// data dir), differs between mainnet and testnet, and its balance is read from a development
// ledger process.
func TestWalletCommand(t *testing.T) {
	dir := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(binaryPath, append([]string{"wallet"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("wallet %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	// A directory with no node in it (a typo) shows no address, and is left as it was.
	typo := filepath.Join(dir, "typo")
	out, err := exec.Command(binaryPath, "wallet", "address", "--data-dir", typo).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "holds no node") || !strings.Contains(string(out), "--create") {
		t.Fatalf("wallet address in an empty directory: %v %s", err, out)
	}
	if _, err := os.Stat(typo); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the mistyped directory was made: %v", err)
	}
	addr := run("address", "--data-dir", dir, "--create")
	if again := run("address", "--data-dir", dir); again != addr {
		t.Fatalf("address changed between runs: %s, then %s", addr, again)
	}
	if test := run("address", "--data-dir", dir, "--testnet"); test == addr {
		t.Fatal("testnet address equals mainnet's")
	}
	a, err := address.ParseAddr(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}

	lp, l := startLedger(t, "ledger-wallet", t.TempDir())
	if err := l.Fund(context.Background(), a, 1_500_000_000); err != nil { // the faucet
		t.Fatal(err)
	}
	if got := run("balance", "--data-dir", dir, "--ledger", lp.url); !strings.Contains(got, "1500000000 nanoTON (1.500000000 TON)") {
		t.Fatalf("balance: %q", got)
	}
	// host:port is taken, as --node takes it.
	if got := run("balance", "--data-dir", dir, "--ledger", strings.TrimPrefix(lp.url, "http://")); !strings.Contains(got, "1500000000 nanoTON") {
		t.Fatalf("balance with --ledger host:port: %q", got)
	}
	out, err = exec.Command(binaryPath, "wallet", "balance", "--data-dir", dir).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "exactly one of --ledger") {
		t.Fatalf("balance without a ledger: %v %s", err, out)
	}
}
