package ledger

import (
	"bytes"
	"encoding/hex"
	"fmt"

	"github.com/ipfs/go-datastore"
	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tvm/cell"

	"github.com/cocoon-mesh/cocoon/internal/fields"
)

// recordVersion opens every account record so the layout can change without guessing.
const recordVersion = 1

// Kinds of account record.
const (
	kindWallet   = 1 // a balance, no code
	kindContract = 2 // code, data and a balance
)

// maxBOC bounds a stored code or data BOC; the channel's cells are a few hundred bytes.
const maxBOC = 64 << 10

// keyPrefix is the datastore namespace of account records.
const keyPrefix = "/ledger/accounts"

// accountKey is a standard address: the workchain byte then the 32-byte account id.
type accountKey [33]byte

func keyOf(a *address.Address) (accountKey, error) {
	var k accountKey
	if a == nil || a.Type() != address.StdAddress || len(a.Data()) != 32 || a.Workchain() < -128 || a.Workchain() > 127 {
		return k, fmt.Errorf("%w: %v", ErrBadAddress, a)
	}
	k[0] = byte(int8(a.Workchain()))
	copy(k[1:], a.Data())
	return k, nil
}

func (k accountKey) address() *address.Address {
	return address.NewAddress(0, k[0], append([]byte(nil), k[1:]...))
}

func (k accountKey) dsKey() datastore.Key {
	return datastore.NewKey(keyPrefix + "/" + hex.EncodeToString(k[:]))
}

// account is one ledger account: a plain wallet when code is nil.
type account struct {
	key     accountKey
	balance uint64
	code    *cell.Cell
	data    *cell.Cell
}

func (a *account) isContract() bool { return a.code != nil }

// encodeAccount is the record: version, kind, the 33-byte key, uvarint balance and, for a
// contract, the length-prefixed BOCs of code and data.
func encodeAccount(a *account) []byte {
	e := fields.Enc{B: make([]byte, 0, 64)}
	kind := byte(kindWallet)
	if a.isContract() {
		kind = kindContract
	}
	e.Fixed([]byte{recordVersion, kind})
	e.Fixed(a.key[:])
	e.Uvarint(a.balance)
	if a.isContract() {
		e.Bytes(a.code.ToBOC())
		e.Bytes(a.data.ToBOC())
	}
	return e.B
}

// decodeAccount parses a record strictly: known version and kind, BOCs that parse and
// re-serialise to the same bytes, no trailing bytes. It never panics.
func decodeAccount(b []byte) (acc *account, err error) {
	defer func() {
		if r := recover(); r != nil { // the BOC parser is third-party code: contain it
			acc, err = nil, fmt.Errorf("%w: %v", ErrCorrupt, r)
		}
	}()
	d := fields.Dec{B: b, Bad: ErrCorrupt}
	head := d.Fixed("record header", 2)
	if d.Err == nil && head[0] != recordVersion {
		d.Fail("record version")
	}
	if d.Err == nil && head[1] != kindWallet && head[1] != kindContract {
		d.Fail("account kind")
	}
	a := &account{}
	copy(a.key[:], d.Fixed("account address", len(a.key)))
	a.balance = d.Uvarint("balance")
	if d.Err == nil && head[1] == kindContract {
		a.code = decodeBOC(&d, "code")
		a.data = decodeBOC(&d, "data")
	}
	if err := d.Done(); err != nil {
		return nil, err
	}
	return a, nil
}

func decodeBOC(d *fields.Dec, what string) *cell.Cell {
	raw := d.Bytes(what, maxBOC)
	if d.Err != nil {
		return nil
	}
	c, err := cell.FromBOC(raw)
	if err != nil || !bytes.Equal(c.ToBOC(), raw) {
		d.Fail(what)
		return nil
	}
	return c
}
