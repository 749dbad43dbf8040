package chanstore

import (
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/cocoon-mesh/cocoon/ton"
	leveldb "github.com/ipfs/go-ds-leveldb"
	"github.com/xssnick/tonutils-go/address"
)

// keyPair returns a deterministic ed25519 key derived from seed.
func keyPair(seed byte) ed25519.PrivateKey {
	var s [ed25519.SeedSize]byte
	s[0] = seed
	return ed25519.NewKeyFromSeed(s[:])
}

// testParams returns channel parameters for channel number n.
func testParams(n uint32) ton.Params {
	var id ton.ChannelID
	id[0], id[1], id[2], id[3] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
	id[15] = 0xcc
	da, db := make([]byte, 32), make([]byte, 32)
	da[0], db[0] = 0xaa, 0xbb
	return ton.Params{
		KeyA:      keyPair(1).Public().(ed25519.PublicKey),
		KeyB:      keyPair(2).Public().(ed25519.PublicKey),
		ChannelID: id,
		Closing:   ton.ClosingConfig{QuarantineDuration: 3600, ConditionalCloseDuration: 60},
		Payments: ton.PaymentConfig{
			ExcessFee: 50_000_000,
			DestA:     address.NewAddress(0x11, 0, da),
			DestB:     address.NewAddress(0x51, 0, db),
		},
	}
}

// testRecord returns a record of channel n, with a voucher signed by the payer key if seqno > 0.
func testRecord(t testing.TB, n uint32, role Role, seqno, sent uint64) Record {
	t.Helper()
	r, err := NewRecord(role, testParams(n), 10_000_000_000, 1)
	if err != nil {
		t.Fatal(err)
	}
	if seqno > 0 {
		r.Voucher = ton.SignVoucher(keyPair(1), r.ChannelID, seqno, sent)
		r.HasVoucher = true
	}
	return r
}

// openLevel opens (or reopens) an on-disk go-ds-leveldb datastore in dir.
func openLevel(t testing.TB, dir string) *leveldb.Datastore {
	t.Helper()
	d, err := leveldb.NewDatastore(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// sameState reports whether a and b agree on everything but the store-set Updates and Updated.
func sameState(a, b Record) bool {
	a.Updates, a.Updated, b.Updates, b.Updated = 0, time.Time{}, 0, time.Time{}
	x, errX := a.MarshalBinary()
	y, errY := b.MarshalBinary()
	return errX == nil && errY == nil && string(x) == string(y)
}
