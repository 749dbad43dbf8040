package main

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"strings"

	"github.com/ipfs/go-datastore"
	"github.com/xssnick/tonutils-go/ton/wallet"

	"github.com/cocoon-mesh/cocoon/node"
	"github.com/cocoon-mesh/cocoon/ton"
	"github.com/cocoon-mesh/cocoon/ton/chanstore"
	"github.com/cocoon-mesh/cocoon/ton/ledger"
)

// devLedgerURL reads a development ledger's address as --node reads a node's (httpAddr).
func devLedgerURL(raw string) (string, error) {
	u, ok := httpAddr(raw)
	if !ok || u.RawQuery != "" || u.Fragment != "" {
		return "", usageError(fmt.Sprintf("--ledger %q: want a development ledger's address, e.g. 127.0.0.1:10050 or http://127.0.0.1:10050 (cocoon-node ledger prints it)", raw))
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// attachLedger turns payments on when a ledger is configured: the node's wallet (its key kept
// in the datastore), its channel store, and the ledger, a development one or real TON.
func (m *Main) attachLedger(ctx context.Context, s settings, ds datastore.Batching, deps *node.Deps, log *slog.Logger) error {
	if s.pay.ledgerURL == "" && s.pay.tonConfig == "" {
		log.Info("payments off: no ledger configured (--ledger or --ton-config)")
		return nil
	}
	key, err := ton.LoadOrCreateWalletKey(ctx, ds)
	if err != nil {
		return err
	}
	testnet := s.node.Payments.Testnet
	if deps.Wallet, err = ton.WalletAddress(key.Public().(ed25519.PublicKey), testnet); err != nil {
		return err
	}
	deps.Channels = chanstore.New(ds)
	if s.pay.ledgerURL != "" {
		r := ledger.NewRemote(s.pay.ledgerURL, nil)
		if s.pay.devFund != 0 {
			if err := r.Fund(ctx, deps.Wallet, s.pay.devFund); err != nil {
				return fmt.Errorf("development ledger faucet: %w", err)
			}
		}
		deps.Ledger = r
		log.Warn("payments over a DEVELOPMENT ledger (not real TON)", "ledger", s.pay.ledgerURL, "wallet", deps.Wallet.String())
		return nil
	}
	if deps.Ledger, err = dialTON(ctx, s.pay.tonConfig, key, testnet); err != nil {
		return err
	}
	log.Info("payments over TON", "wallet", deps.Wallet.String(), "testnet", testnet)
	return nil
}

// dialTON connects to real TON through the liteservers of a global config (URL or file), with
// the V5R1 wallet of key.
func dialTON(ctx context.Context, globalConfig string, key ed25519.PrivateKey, testnet bool) (ledger.Ledger, error) {
	cfg, err := ledger.LoadGlobalConfig(ctx, globalConfig)
	if err != nil {
		return nil, err
	}
	api, err := ledger.DialLite(ctx, cfg)
	if err != nil {
		return nil, err
	}
	id := int32(wallet.MainnetGlobalID)
	if testnet {
		id = wallet.TestnetGlobalID
	}
	w, err := wallet.FromPrivateKey(api, key, wallet.ConfigV5R1Final{NetworkGlobalID: id})
	if err != nil {
		return nil, err
	}
	return ledger.NewLite(api, w, ledger.LiteOptions{})
}
