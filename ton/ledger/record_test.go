package ledger

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"testing"

	leveldb "github.com/ipfs/go-ds-leveldb"
	"github.com/xssnick/tonutils-go/tvm/cell"

	"github.com/cocoon-mesh/cocoon/ton"
)

func sampleAccounts(t testing.TB) []*account {
	t.Helper()
	si, err := newParamsForRecord().StateInit()
	if err != nil {
		t.Fatal(err)
	}
	k, err := keyOf(si.CalcAddress(0))
	if err != nil {
		t.Fatal(err)
	}
	wk, _ := keyOf(testAddr(0xA))
	return []*account{
		{key: wk, balance: 12_345_678_901},
		{key: k, balance: 5_060_000_000, code: si.Code, data: si.Data},
	}
}

func newParamsForRecord() ton.Params {
	return ton.Params{
		KeyA: testKey(1).Public().(ed25519.PublicKey), KeyB: testKey(2).Public().(ed25519.PublicKey),
		Payments: ton.PaymentConfig{ExcessFee: excessFee, DestA: testAddr(0xA), DestB: testAddr(0xB)},
	}
}

func TestAccountRecordRoundTrip(t *testing.T) {
	for _, a := range sampleAccounts(t) {
		rec := encodeAccount(a)
		got, err := decodeAccount(rec)
		if err != nil {
			t.Fatal(err)
		}
		if got.key != a.key || got.balance != a.balance || got.isContract() != a.isContract() {
			t.Fatalf("round trip: %+v, want %+v", got, a)
		}
		if a.isContract() && (!bytes.Equal(got.code.Hash(), a.code.Hash()) || !bytes.Equal(got.data.Hash(), a.data.Hash())) {
			t.Fatal("round trip changed code or data")
		}
		// Every truncation and every trailing byte is refused.
		for i := range len(rec) {
			if _, err := decodeAccount(rec[:i]); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("truncated to %d: %v", i, err)
			}
		}
		if _, err := decodeAccount(append(bytes.Clone(rec), 0)); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("trailing byte: %v", err)
		}
	}
	rec := encodeAccount(sampleAccounts(t)[0])
	for name, mutate := range map[string]func([]byte){
		"version": func(b []byte) { b[0] = 2 },
		"kind":    func(b []byte) { b[1] = 3 },
	} {
		b := bytes.Clone(rec)
		mutate(b)
		if _, err := decodeAccount(b); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%s: %v", name, err)
		}
	}
}

func TestCorruptRecordFailsLoad(t *testing.T) {
	ctx := context.Background()
	store := tempStore(t)
	a := sampleAccounts(t)[1]
	rec := encodeAccount(a)
	rec[len(rec)-3] ^= 0xff // inside the data BOC
	if err := store.Put(ctx, a.key.dsKey(), rec); err != nil {
		t.Fatal(err)
	}
	if _, err := NewEmbedded(ctx, store, Options{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("corrupt record: %v, want ErrCorrupt", err)
	}
	// A valid record under another account's key is refused too.
	other := sampleAccounts(t)[0]
	if err := store.Put(ctx, a.key.dsKey(), encodeAccount(other)); err != nil {
		t.Fatal(err)
	}
	if _, err := NewEmbedded(ctx, store, Options{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("misfiled record: %v, want ErrCorrupt", err)
	}
}

func FuzzDecodeAccount(f *testing.F) {
	for _, a := range sampleAccounts(f) {
		f.Add(encodeAccount(a))
	}
	f.Add([]byte{recordVersion, kindContract})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := decodeAccount(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if again := encodeAccount(a); !bytes.Equal(again, b) {
			t.Fatalf("accepted a non-canonical record: %x re-encodes as %x", b, again)
		}
	})
}

func TestForeignCodeRefused(t *testing.T) {
	ctx := context.Background()
	store := tempStore(t)
	a := sampleAccounts(t)[1]
	a.code = cell.BeginCell().MustStoreUInt(0xdead, 16).EndCell() // persisted by someone else
	if err := store.Put(ctx, a.key.dsKey(), encodeAccount(a)); err != nil {
		t.Fatal(err)
	}
	l, err := NewEmbedded(ctx, store, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.FinishUncooperativeClose(ctx, a.key.address()); !errors.Is(err, ErrNotChannel) {
		t.Fatalf("finish on foreign code: %v", err)
	}
	if _, err := l.Channel(ctx, a.key.address()); !errors.Is(err, ErrNotChannel) {
		t.Fatalf("channel with foreign code: %v", err)
	}
	if l.Messages() != 0 {
		t.Fatal("a refused message reached the TVM")
	}
}

// tempStore is an empty on-disk datastore, closed when the test ends.
func tempStore(t *testing.T) *leveldb.Datastore {
	t.Helper()
	store, err := leveldb.NewDatastore(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return store
}
