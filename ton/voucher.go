package ton

import (
	"crypto/ed25519"
	"math"

	"github.com/cocoon-mesh/cocoon/internal/fields"
)

// voucherVersion opens every encoded voucher so the layout can change without guessing.
const voucherVersion = 1

// MaxVoucherSeqno is the highest usable seqno: finish stores seqno+1 as a uint32 committed seqno
// (a higher one fails with exit 5), so rotate the channel id well before it.
const MaxVoucherSeqno = math.MaxUint32 - 1

// MaxVoucherSize bounds an encoded voucher: version, two uvarints, signature.
const MaxVoucherSize = 1 + 2*10 + ed25519.SignatureSize

// Voucher is a payment: the payer's own semichannel with seqno and cumulative sent, conditionals
// empty and counterparty_data absent, signed by the payer. The channel id is not carried: the
// payee rebuilds the signed cell from the id it knows, so a voucher for another channel fails.
type Voucher struct {
	Seqno     uint64
	Sent      uint64 // cumulative nanoTON paid on this channel so far
	Signature [64]byte
}

// SemiChannel is the state the voucher's signature covers on channel id.
func (v Voucher) SemiChannel(id ChannelID) SemiChannel {
	return SemiChannel{ChannelID: id, Data: SemiChannelBody{Seqno: v.Seqno, Sent: v.Sent}}
}

// Signed is the voucher as the contract takes it in start_uncooperative_close and challenge.
func (v Voucher) Signed(id ChannelID) SignedSemiChannel {
	return SignedSemiChannel{Signature: v.Signature, State: v.SemiChannel(id)}
}

// SignVoucher signs (seqno, sent) on channel id with the payer's key.
func SignVoucher(key ed25519.PrivateKey, id ChannelID, seqno, sent uint64) Voucher {
	v := Voucher{Seqno: seqno, Sent: sent}
	copy(v.Signature[:], v.SemiChannel(id).Cell().Sign(key))
	return v
}

// Verify reports whether the signature is pub's over this voucher on channel id.
func (v Voucher) Verify(pub ed25519.PublicKey, id ChannelID) bool {
	if len(pub) != ed25519.PublicKeySize {
		return false
	}
	return v.SemiChannel(id).Cell().Verify(pub, v.Signature[:])
}

// AppendBinary appends the wire encoding: version byte, uvarint seqno, uvarint sent, signature.
func (v Voucher) AppendBinary(b []byte) ([]byte, error) {
	e := fields.Enc{B: b}
	e.Fixed([]byte{voucherVersion})
	e.Uvarint(v.Seqno)
	e.Uvarint(v.Sent)
	e.Fixed(v.Signature[:])
	return e.B, nil
}

// MarshalBinary returns the wire encoding.
func (v Voucher) MarshalBinary() ([]byte, error) {
	return v.AppendBinary(make([]byte, 0, MaxVoucherSize))
}

// DecodeVoucher parses the wire encoding, refusing unknown versions, overlong varints, seqnos
// above MaxVoucherSeqno, short signatures and trailing bytes. It does not check the signature.
func DecodeVoucher(b []byte) (Voucher, error) {
	d := fields.Dec{B: b, Bad: ErrMalformed}
	if ver := d.Fixed("voucher version", 1); d.Err == nil && ver[0] != voucherVersion {
		d.Fail("voucher version")
	}
	v := Voucher{Seqno: d.Bounded("voucher seqno", MaxVoucherSeqno), Sent: d.Uvarint("voucher sent")}
	copy(v.Signature[:], d.Fixed("voucher signature", ed25519.SignatureSize))
	if err := d.Done(); err != nil {
		return Voucher{}, err
	}
	return v, nil
}
