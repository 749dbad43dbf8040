package chanstore

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/cocoon-mesh/cocoon/internal/fields"
	"github.com/cocoon-mesh/cocoon/ton"
	"github.com/xssnick/tonutils-go/address"
)

// ErrCorrupt is wrapped by every error about record bytes that do not decode.
var ErrCorrupt = errors.New("chanstore: corrupt record")

// Role says which side of a channel a record is for.
type Role uint8

// The two roles; a node may hold a record of each for the same channel id.
const (
	Payer Role = 1 // side A: signs vouchers
	Payee Role = 2 // side B: accepts vouchers and can close alone
)

// String returns "payer" or "payee".
func (r Role) String() string {
	switch r {
	case Payer:
		return "payer"
	case Payee:
		return "payee"
	}
	return fmt.Sprintf("role(%d)", uint8(r))
}

// recordVersion opens every encoded record so the layout can change without guessing. Version 1
// records (before State and PayeeSemi) still decode, as open channels without a payee semichannel.
const recordVersion = 2

// State is where a channel is in its life. It only moves forward: Put refuses to go back.
type State uint8

// The channel states.
const (
	Open    State = 0 // in use: the payer signs vouchers on it, the payee serves against them
	Closing State = 1 // no new traffic; a close was signed or started and is not yet confirmed on chain
	Closed  State = 2 // the contract paid both sides out; the record stays as history
)

// String returns "open", "closing" or "closed".
func (s State) String() string {
	switch s {
	case Open:
		return "open"
	case Closing:
		return "closing"
	case Closed:
		return "closed"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// maxAddrLen bounds a destination address string (a user-friendly address is 48 characters).
const maxAddrLen = 64

// Record is everything one side needs to resume a channel and, for a payee, to close it alone:
// the channel parameters, what is known of it on chain, and the newest voucher.
type Record struct {
	ChannelID ton.ChannelID
	Role      Role
	KeyA      ed25519.PublicKey // the payer's key: it signs the vouchers
	KeyB      ed25519.PublicKey // the payee's key
	Closing   ton.ClosingConfig
	ExcessFee uint64 // payment config excess_fee, nanoTON
	DestA     string // payment config dest_A, user-friendly form (address.Address.String)
	DestB     string // payment config dest_B, user-friendly form

	Limit          uint64 // the deposit minus any fine: the most the payer can owe
	CommittedSeqno uint64 // the payer's committed seqno on chain (commited_seqno_A), a uint32

	// Voucher is the newest voucher when HasVoucher: for a payee the highest accepted; for a
	// payer the highest it has signed, whose seqno it must never reuse and whose sent it must
	// never go below. Without one it is the zero Voucher.
	Voucher    ton.Voucher
	HasVoucher bool

	State State
	// PayeeSemi is, on a payer's record, the payee's signature over its own empty semichannel
	// (seqno 0, sent 0): with it the payer can close alone if the payee vanishes (zero: none).
	PayeeSemi [64]byte

	Updates uint64    // set by Store.Put: how many Puts stored this (channel, role), this one included
	Updated time.Time // set by Store.Put: when, to the millisecond (zero if never stored)
}

// NewRecord returns the record of a channel with parameters p before any voucher.
func NewRecord(role Role, p ton.Params, limit, committedSeqno uint64) (Record, error) {
	if p.Payments.DestA == nil || p.Payments.DestB == nil {
		return Record{}, errors.New("chanstore: dest_A and dest_B are required")
	}
	r := Record{
		ChannelID:      p.ChannelID,
		Role:           role,
		KeyA:           append(ed25519.PublicKey(nil), p.KeyA...),
		KeyB:           append(ed25519.PublicKey(nil), p.KeyB...),
		Closing:        p.Closing,
		ExcessFee:      p.Payments.ExcessFee,
		DestA:          p.Payments.DestA.String(),
		DestB:          p.Payments.DestB.String(),
		Limit:          limit,
		CommittedSeqno: committedSeqno,
	}
	return r, r.check()
}

// Params rebuilds the channel parameters, which fix the channel's address.
func (r Record) Params() (ton.Params, error) {
	a, errA := parseDest(r.DestA)
	b, errB := parseDest(r.DestB)
	if err := errors.Join(errA, errB); err != nil {
		return ton.Params{}, err
	}
	return ton.Params{
		KeyA:      append(ed25519.PublicKey(nil), r.KeyA...),
		KeyB:      append(ed25519.PublicKey(nil), r.KeyB...),
		ChannelID: r.ChannelID,
		Closing:   r.Closing,
		Payments:  ton.PaymentConfig{ExcessFee: r.ExcessFee, DestA: a, DestB: b},
	}, nil
}

// Address is the channel contract's address, which its parameters fix.
func (r Record) Address() (*address.Address, error) {
	p, err := r.Params()
	if err != nil {
		return nil, err
	}
	return p.Address()
}

// VerifyVoucher reports whether v carries the payer's (KeyA) signature on this channel.
func (r Record) VerifyVoucher(v ton.Voucher) bool { return v.Verify(r.KeyA, r.ChannelID) }

// parseDest accepts only a canonical user-friendly standard address.
func parseDest(s string) (*address.Address, error) {
	a, err := address.ParseAddr(s)
	if err != nil || a.String() != s {
		return nil, fmt.Errorf("chanstore: destination %q is not a canonical user-friendly address", s)
	}
	return a, nil
}

// check reports what makes r unstorable: the invariants DecodeRecord enforces.
func (r Record) check() error {
	switch {
	case r.Role != Payer && r.Role != Payee:
		return fmt.Errorf("chanstore: unknown role %d", r.Role)
	case len(r.KeyA) != ed25519.PublicKeySize || len(r.KeyB) != ed25519.PublicKeySize:
		return errors.New("chanstore: keys must be 32-byte ed25519 public keys")
	case r.CommittedSeqno > math.MaxUint32:
		return fmt.Errorf("chanstore: committed seqno %d is not a uint32", r.CommittedSeqno)
	case r.HasVoucher && r.Voucher.Seqno > ton.MaxVoucherSeqno:
		return fmt.Errorf("chanstore: voucher seqno %d is past the limit", r.Voucher.Seqno)
	case !r.HasVoucher && r.Voucher != (ton.Voucher{}):
		return errors.New("chanstore: a record without a voucher must hold the zero voucher")
	case r.State > Closed:
		return fmt.Errorf("chanstore: unknown channel state %d", r.State)
	case !r.Updated.IsZero() && r.Updated.UnixMilli() <= 0:
		return errors.New("chanstore: update time before 1970")
	}
	if _, err := parseDest(r.DestA); err != nil {
		return err
	}
	_, err := parseDest(r.DestB)
	return err
}

// AppendBinary appends the canonical encoding: version, role, channel id, keys, closing and
// payment configs, limit, committed seqno, the voucher if any, update counter and time, state
// and payee semichannel signature.
func (r Record) AppendBinary(b []byte) ([]byte, error) {
	if err := r.check(); err != nil {
		return b, err
	}
	e := fields.Enc{B: b}
	e.Fixed([]byte{recordVersion, byte(r.Role)})
	e.Fixed(r.ChannelID[:])
	e.Fixed(r.KeyA)
	e.Fixed(r.KeyB)
	e.Uvarint(uint64(r.Closing.QuarantineDuration))
	e.Uvarint(r.Closing.MisbehaviorFine)
	e.Uvarint(uint64(r.Closing.ConditionalCloseDuration))
	e.Uvarint(r.ExcessFee)
	e.Str(r.DestA)
	e.Str(r.DestB)
	e.Uvarint(r.Limit)
	e.Uvarint(r.CommittedSeqno)
	e.Bool(r.HasVoucher)
	if r.HasVoucher {
		vb, _ := r.Voucher.MarshalBinary() // never fails
		e.Bytes(vb)
	}
	e.Uvarint(r.Updates)
	var ms uint64
	if !r.Updated.IsZero() {
		ms = uint64(r.Updated.UnixMilli())
	}
	e.Uvarint(ms)
	e.Fixed([]byte{byte(r.State)})
	e.Fixed(r.PayeeSemi[:])
	return e.B, nil
}

// MarshalBinary returns the canonical encoding.
func (r Record) MarshalBinary() ([]byte, error) { return r.AppendBinary(make([]byte, 0, 256)) }

// DecodeRecord parses the canonical encoding strictly: unknown versions or roles, short or
// overlong fields, out-of-range values, non-canonical addresses and trailing bytes are errors
// wrapping ErrCorrupt. It never panics, whatever the bytes. It does not check the signature.
func DecodeRecord(b []byte) (Record, error) {
	d := fields.Dec{B: b, Bad: ErrCorrupt}
	var r Record
	var version byte
	if hdr := d.Fixed("record header", 2); d.Err == nil {
		if version = hdr[0]; version != 1 && version != recordVersion {
			d.Fail("record version")
		}
		r.Role = Role(hdr[1])
	}
	copy(r.ChannelID[:], d.Fixed("channel id", len(r.ChannelID)))
	r.KeyA = append(ed25519.PublicKey(nil), d.Fixed("key A", ed25519.PublicKeySize)...)
	r.KeyB = append(ed25519.PublicKey(nil), d.Fixed("key B", ed25519.PublicKeySize)...)
	r.Closing.QuarantineDuration = uint32(d.Bounded("quarantine duration", math.MaxUint32))
	r.Closing.MisbehaviorFine = d.Uvarint("misbehavior fine")
	r.Closing.ConditionalCloseDuration = uint32(d.Bounded("conditional close duration", math.MaxUint32))
	r.ExcessFee = d.Uvarint("excess fee")
	r.DestA = d.Str("dest A", maxAddrLen)
	r.DestB = d.Str("dest B", maxAddrLen)
	r.Limit = d.Uvarint("limit")
	r.CommittedSeqno = d.Bounded("committed seqno", math.MaxUint32)
	if r.HasVoucher = d.Bool("has voucher"); r.HasVoucher {
		vb := d.Bytes("voucher", ton.MaxVoucherSize)
		if d.Err == nil {
			v, err := ton.DecodeVoucher(vb)
			if err != nil {
				d.Fail("voucher")
			}
			r.Voucher = v
		}
	}
	r.Updates = d.Uvarint("update counter")
	if ms := d.Bounded("update time", math.MaxInt64); ms != 0 {
		r.Updated = time.UnixMilli(int64(ms)).UTC()
	}
	if version >= 2 {
		if st := d.Fixed("state", 1); d.Err == nil {
			r.State = State(st[0])
		}
		copy(r.PayeeSemi[:], d.Fixed("payee semichannel signature", len(r.PayeeSemi)))
	}
	if err := d.Done(); err != nil {
		return Record{}, err
	}
	if err := r.check(); err != nil {
		return Record{}, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return r, nil
}
