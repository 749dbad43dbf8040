package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"

	leveldb "github.com/ipfs/go-ds-leveldb"

	"github.com/cocoon-mesh/cocoon/node"
	"github.com/cocoon-mesh/cocoon/ton"
	"github.com/cocoon-mesh/cocoon/ton/ledger"
)

// wallet runs `cocoon-node wallet address|balance`: the node's TON wallet, whose key lives in
// the node's datastore (made on first use, apart from its libp2p identity).
func (m *Main) wallet(ctx context.Context, args []string) error {
	name, cmd := "wallet", "balance" // -h: the flags of both, which are the same
	switch {
	case len(args) > 0 && (args[0] == "address" || args[0] == "balance"):
		cmd = args[0]
		name += " " + cmd
	case len(args) == 0 || !isHelp(args[0]):
		return usageError("usage: cocoon-node wallet address|balance [flags] ('cocoon-node help wallet' for the flags)")
	default:
		args = []string{cmd, "-h"}
	}
	fs := m.flagSet(name)
	nodeURL := fs.String("node", "", "ask the running node at this URL (a client's API, a proxy's or worker's admin address) for its wallet, on its ledger")
	apiKey := fs.String("api-key", "", "with --node: the node's api_key or local token (default $COCOON_API_KEY, else the token in --data-dir)")
	dataDir := fs.String("data-dir", "", "the node's data directory (default ~/.cocoon): without --node the node must not be running; with it, its local token is read there")
	testnet := fs.Bool("testnet", false, "the testnet wallet address instead of mainnet's")
	create := fs.Bool("create", false, "without --node: make the node's data directory and wallet if --data-dir holds none yet (to fund a node before its first run)")
	ledgerURL := fs.String("ledger", "", "balance: a development ledger's URL (cocoon-node ledger)")
	tonConfig := fs.String("ton-config", "", "balance: a TON liteserver global config, as a URL or a file (real TON)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError(fmt.Sprintf("unexpected argument %q", fs.Arg(0)))
	}
	if *nodeURL != "" {
		if *testnet || *ledgerURL != "" || *tonConfig != "" {
			return usageError("wallet: --node asks the running node, which knows its network and ledger: drop --testnet, --ledger and --ton-config")
		}
		c, err := newNodeClient(*nodeURL, *apiKey, *dataDir)
		if err != nil {
			return err
		}
		var ws node.WalletStatus
		if err := c.call(ctx, http.MethodGet, "/cocoon/v1/wallet", &ws); err != nil {
			return err
		}
		if cmd == "address" {
			fmt.Fprintln(m.Stdout, ws.Address)
		} else {
			fmt.Fprintf(m.Stdout, "%s %d nanoTON (%s TON)\n", ws.Address, ws.Balance, formatTON(ws.Balance))
		}
		return nil
	}
	key, err := loadWalletKey(ctx, *dataDir, *create)
	if err != nil {
		return err
	}
	addr, err := ton.WalletAddress(key.Public().(ed25519.PublicKey), *testnet)
	if err != nil {
		return err
	}
	if cmd == "address" {
		fmt.Fprintln(m.Stdout, addr.String())
		return nil
	}

	var l ledger.Ledger
	switch {
	case (*ledgerURL == "") == (*tonConfig == ""):
		return usageError("wallet balance: give exactly one of --ledger URL (development) or --ton-config URL|FILE (real TON)")
	case *ledgerURL != "":
		u, err := devLedgerURL(*ledgerURL)
		if err != nil {
			return err
		}
		l = ledger.NewRemote(u, nil)
	default:
		if l, err = dialTON(ctx, *tonConfig, key, *testnet); err != nil {
			return err
		}
	}
	bal, err := l.Balance(ctx, addr)
	if err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "%s %s nanoTON (%s TON)\n", addr.String(), fmt.Sprint(bal), formatTON(bal))
	return nil
}

// loadWalletKey opens the node's datastore just long enough to read (or make) its wallet key.
func loadWalletKey(ctx context.Context, dataDir string, create bool) (ed25519.PrivateKey, error) {
	ds, err := openNodeStore(dataDir, create)
	if err != nil {
		return nil, err
	}
	defer ds.Close()
	return ton.LoadOrCreateWalletKey(ctx, ds)
}

// openNodeStore opens the datastore of the stopped node whose data directory is dataDir
// (default ~/.cocoon). A directory that holds no node's datastore is refused unless create is
// set: a mistyped --data-dir would otherwise make a new identity or wallet there, and a user
// would fund or bootstrap from the wrong one.
func openNodeStore(dataDir string, create bool) (*leveldb.Datastore, error) {
	dataDir, err := dataDirOr(dataDir)
	if err != nil {
		return nil, err
	}
	store := filepath.Join(dataDir, "datastore")
	if _, err := os.Stat(store); errors.Is(err, fs.ErrNotExist) && !create {
		return nil, fmt.Errorf("%s holds no node (no %s): check --data-dir, or pass --create to make one there before the node first runs", dataDir, store)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	ds, err := leveldb.NewDatastore(store, nil)
	if err != nil {
		return nil, fmt.Errorf("open datastore in %s: %w (stop the node using this data dir first)", dataDir, err)
	}
	return ds, nil
}

// formatTON writes nanoTON as TON with nine decimals.
func formatTON(nano uint64) string { return fmt.Sprintf("%d.%09d", nano/1e9, nano%1e9) }
