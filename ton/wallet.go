package ton

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/ipfs/go-datastore"
	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/ton/wallet"
)

// walletKeyKey is where a node keeps its TON wallet key in its datastore. It is a key of its
// own, not the node's libp2p identity: a leaked peer key must not also empty the wallet.
var walletKeyKey = datastore.NewKey("/cocoon/ton/wallet-key")

// LoadOrCreateWalletKey returns the node's TON wallet key, creating and storing a fresh ed25519
// key on first use.
func LoadOrCreateWalletKey(ctx context.Context, ds datastore.Datastore) (ed25519.PrivateKey, error) {
	raw, err := ds.Get(ctx, walletKeyKey)
	switch {
	case err == nil:
		if len(raw) != ed25519.SeedSize {
			return nil, fmt.Errorf("ton: the wallet key in the datastore is corrupt (%d bytes)", len(raw))
		}
		return ed25519.NewKeyFromSeed(raw), nil
	case !errors.Is(err, datastore.ErrNotFound):
		return nil, fmt.Errorf("ton: read wallet key: %w", err)
	}
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		return nil, err
	}
	if err := ds.Put(ctx, walletKeyKey, key.Seed()); err != nil {
		return nil, fmt.Errorf("ton: store wallet key: %w", err)
	}
	return key, nil
}

// WalletAddress is the address of the V5R1 wallet (the current standard wallet, default
// subwallet, basechain) that pub controls on mainnet, or on testnet.
func WalletAddress(pub ed25519.PublicKey, testnet bool) (*address.Address, error) {
	id := int32(wallet.MainnetGlobalID)
	if testnet {
		id = wallet.TestnetGlobalID
	}
	return wallet.AddressFromPubKey(pub, wallet.ConfigV5R1Final{NetworkGlobalID: id}, wallet.DefaultSubwallet)
}
