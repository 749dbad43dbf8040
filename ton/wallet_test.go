package ton

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"testing"

	"github.com/ipfs/go-datastore"
	leveldb "github.com/ipfs/go-ds-leveldb"
	"github.com/xssnick/tonutils-go/tlb"
	"github.com/xssnick/tonutils-go/ton/wallet"
)

func TestWalletKeyPersistsAndAddress(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	ds, err := leveldb.NewDatastore(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	k1, err := LoadOrCreateWalletKey(ctx, ds)
	if err != nil {
		t.Fatal(err)
	}
	ds.Close()
	ds, _ = leveldb.NewDatastore(dir, nil) // as a restarted node
	defer ds.Close()
	k2, err := LoadOrCreateWalletKey(ctx, ds)
	if err != nil || !bytes.Equal(k1, k2) {
		t.Fatalf("the wallet key changed across a restart: %v", err)
	}

	pub := k1.Public().(ed25519.PublicKey)
	main, err := WalletAddress(pub, false)
	if err != nil {
		t.Fatal(err)
	}
	test, _ := WalletAddress(pub, true)
	if main.Equals(test) {
		t.Fatal("mainnet and testnet wallets share an address")
	}
	// The address is the hash of the real V5R1 wallet's StateInit for this key.
	si, err := wallet.GetStateInit(pub, wallet.ConfigV5R1Final{NetworkGlobalID: wallet.MainnetGlobalID}, wallet.DefaultSubwallet)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tlb.ToCell(si)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(c.Hash(), main.Data()) || main.Workchain() != 0 {
		t.Fatalf("address %s is not the StateInit's hash %x", main, c.Hash())
	}

	if err := ds.Put(ctx, walletKeyKey, []byte("short")); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateWalletKey(ctx, ds); err == nil {
		t.Fatal("a corrupt wallet key was accepted")
	}
	if _, err := LoadOrCreateWalletKey(ctx, datastore.NewMapDatastore()); err != nil {
		t.Fatal(err)
	}
}
