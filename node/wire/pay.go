package wire

import (
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"math"

	"github.com/cocoon-mesh/cocoon/internal/fields"
	"github.com/cocoon-mesh/cocoon/ton"
)

// Quote is what one answer is billed at: per-token prices and a coefficient in per mille. A
// worker quotes its own prices; a proxy quotes the worker's with its commission added.
type Quote struct {
	Prices      ton.Prices
	Coefficient uint32
}

// MaxCoefficient bounds a quoted or advertised coefficient (1000 = list price).
const MaxCoefficient = 1 << 20

// Effective is the quote's price of one completion token, rounded up: what caps compare with.
func (q Quote) Effective() uint64 {
	v, err := q.Prices.Cost(ton.Usage{Completion: 1}, q.Coefficient)
	if err != nil {
		return math.MaxUint64
	}
	return v
}

// AppendQuote encodes q.
func AppendQuote(b []byte, q *Quote) []byte {
	e := fields.Enc{B: b}
	e.Uvarint(q.Prices.Prompt)
	e.Uvarint(q.Prices.Cached)
	e.Uvarint(q.Prices.Completion)
	e.Uvarint(q.Prices.Reasoning)
	e.Uvarint(uint64(q.Coefficient))
	return e.B
}

// DecodeQuote decodes a Quote payload.
func DecodeQuote(p []byte) (Quote, error) {
	d := fields.Dec{B: p, Bad: ErrMalformed}
	var q Quote
	q.Prices.Prompt = d.Uvarint("prompt price")
	q.Prices.Cached = d.Uvarint("cached price")
	q.Prices.Completion = d.Uvarint("completion price")
	q.Prices.Reasoning = d.Uvarint("reasoning price")
	q.Coefficient = uint32(d.Bounded("coefficient", MaxCoefficient))
	return q, d.Done()
}

// AppendBill encodes a bill: what the payee counts as owed on the channel.
func AppendBill(b []byte, owed uint64) []byte { return binary.AppendUvarint(b, owed) }

// DecodeBill decodes a bill payload.
func DecodeBill(p []byte) (uint64, error) {
	d := fields.Dec{B: p, Bad: ErrMalformed}
	owed := d.Uvarint("owed")
	return owed, d.Done()
}

// MaxWalletLen bounds a wallet address on the wire (a user-friendly address is 48 characters).
const MaxWalletLen = 64

// Terms are what a payee asks of a channel paying it: the parameters that, with the payer's
// choices, fix the channel contract's address, and how it bills.
type Terms struct {
	Wallet       string // dest_B: the payee's wallet, user-friendly form
	Quarantine   uint32 // closing config quarantine duration, seconds
	CondClose    uint32 // closing config conditional close duration, seconds
	ExcessFee    uint64 // payment config excess_fee, nanoTON
	Commission   uint32 // a proxy's commission on workers' prices, per mille (0 for a worker)
	WindowTokens uint32 // the credit window, in completion tokens at each answer's price
}

// AppendTerms encodes t.
func AppendTerms(b []byte, t *Terms) []byte {
	e := fields.Enc{B: b}
	e.Str(t.Wallet)
	e.Uvarint(uint64(t.Quarantine))
	e.Uvarint(uint64(t.CondClose))
	e.Uvarint(t.ExcessFee)
	e.Uvarint(uint64(t.Commission))
	e.Uvarint(uint64(t.WindowTokens))
	return e.B
}

// DecodeTerms decodes a Terms payload.
func DecodeTerms(p []byte) (Terms, error) {
	d := fields.Dec{B: p, Bad: ErrMalformed}
	var t Terms
	t.Wallet = d.Str("wallet", MaxWalletLen)
	t.Quarantine = uint32(d.Bounded("quarantine", math.MaxUint32))
	t.CondClose = uint32(d.Bounded("conditional close", math.MaxUint32))
	t.ExcessFee = d.Uvarint("excess fee")
	t.Commission = uint32(d.Bounded("commission", MaxCoefficient))
	t.WindowTokens = uint32(d.Bounded("window tokens", math.MaxUint32))
	return t, d.Done()
}

// ChannelOpen tells a payee about a channel its payer opened on chain (or resumes after a
// restart): the payer's choices that, with the payee's terms, fix the contract's address, and
// the newest voucher the payer signed, if any, so the higher state wins on both sides.
type ChannelOpen struct {
	ChannelID ton.ChannelID
	Wallet    string // dest_A: the payer's wallet, user-friendly form
	Terms     Terms  // the terms the channel was opened under
	Voucher   []byte // the payer's latest voucher (ton.Voucher's encoding), or empty
}

// AppendChannelOpen encodes o.
func AppendChannelOpen(b []byte, o *ChannelOpen) []byte {
	e := fields.Enc{B: b}
	e.Fixed(o.ChannelID[:])
	e.Str(o.Wallet)
	e.Bytes(AppendTerms(nil, &o.Terms))
	e.Bytes(o.Voucher)
	return e.B
}

// DecodeChannelOpen decodes a ChannelOpen payload; the voucher's own encoding is checked too.
func DecodeChannelOpen(p []byte) (ChannelOpen, error) {
	d := fields.Dec{B: p, Bad: ErrMalformed}
	var o ChannelOpen
	copy(o.ChannelID[:], d.Fixed("channel id", len(o.ChannelID)))
	o.Wallet = d.Str("wallet", MaxWalletLen)
	terms := d.Bytes("terms", 256)
	o.Voucher = d.Bytes("voucher", ton.MaxVoucherSize)
	if err := d.Done(); err != nil {
		return ChannelOpen{}, err
	}
	var err error
	if o.Terms, err = DecodeTerms(terms); err != nil {
		return ChannelOpen{}, err
	}
	if err := checkVoucher(o.Voucher); err != nil {
		return ChannelOpen{}, err
	}
	return o, nil
}

// AppendChannelNew encodes the request a payer sends before it deploys channel id: the payee
// answers with a ChannelState holding only its signature over its empty semichannel, so that
// no deposit is ever locked in a channel its payer cannot close alone.
func AppendChannelNew(b []byte, id ton.ChannelID) []byte { return append(b, id[:]...) }

// DecodeChannelNew decodes a channel-new payload: exactly a channel id.
func DecodeChannelNew(p []byte) (ton.ChannelID, error) {
	d := fields.Dec{B: p, Bad: ErrMalformed}
	var id ton.ChannelID
	copy(id[:], d.Fixed("channel id", len(id)))
	return id, d.Done()
}

// ChannelState is a payee's answer on the channel stream: the channel's limit (the deposit
// read on chain), the newest voucher it accepted, if any, and its signature over its own empty
// semichannel, which lets the payer close alone if the payee vanishes.
type ChannelState struct {
	Limit     uint64
	Voucher   []byte
	PayeeSemi []byte // 64 bytes, or empty
}

// AppendChannelState encodes s.
func AppendChannelState(b []byte, s *ChannelState) []byte {
	e := fields.Enc{B: b}
	e.Uvarint(s.Limit)
	e.Bytes(s.Voucher)
	e.Bytes(s.PayeeSemi)
	return e.B
}

// DecodeChannelState decodes a ChannelState payload; the voucher's own encoding is checked too.
func DecodeChannelState(p []byte) (ChannelState, error) {
	d := fields.Dec{B: p, Bad: ErrMalformed}
	var s ChannelState
	s.Limit = d.Uvarint("limit")
	s.Voucher = d.Bytes("voucher", ton.MaxVoucherSize)
	s.PayeeSemi = d.Bytes("payee semichannel signature", ed25519.SignatureSize)
	if err := d.Done(); err != nil {
		return ChannelState{}, err
	}
	if err := checkSignature("payee semichannel signature", s.PayeeSemi); err != nil {
		return ChannelState{}, err
	}
	if err := checkVoucher(s.Voucher); err != nil {
		return ChannelState{}, err
	}
	return s, nil
}

// ChannelClose is one side's signature over a cooperative close of a channel. Sent by the
// payer with its signature, it proposes the close; the payee answers with the same close and
// its own. Sent by the payee with no signature, it asks the payer to close.
type ChannelClose struct {
	Close     ton.CooperativeClose
	Signature []byte // 64 bytes, or empty in a request to close
}

// AppendChannelClose encodes c.
func AppendChannelClose(b []byte, c *ChannelClose) []byte {
	e := fields.Enc{B: b}
	e.Fixed(c.Close.ChannelID[:])
	e.Uvarint(c.Close.BalanceA)
	e.Uvarint(c.Close.BalanceB)
	e.Uvarint(c.Close.SeqnoA)
	e.Uvarint(c.Close.SeqnoB)
	e.Bytes(c.Signature)
	return e.B
}

// DecodeChannelClose decodes a ChannelClose payload. Seqnos must fit the contract's uint32.
func DecodeChannelClose(p []byte) (ChannelClose, error) {
	d := fields.Dec{B: p, Bad: ErrMalformed}
	var c ChannelClose
	copy(c.Close.ChannelID[:], d.Fixed("channel id", len(c.Close.ChannelID)))
	c.Close.BalanceA = d.Uvarint("balance A")
	c.Close.BalanceB = d.Uvarint("balance B")
	c.Close.SeqnoA = d.Bounded("seqno A", math.MaxUint32)
	c.Close.SeqnoB = d.Bounded("seqno B", math.MaxUint32)
	c.Signature = d.Bytes("signature", ed25519.SignatureSize)
	if err := d.Done(); err != nil {
		return ChannelClose{}, err
	}
	if err := checkSignature("signature", c.Signature); err != nil {
		return ChannelClose{}, err
	}
	return c, nil
}

// checkSignature refuses an optional ed25519 signature field that is neither empty nor 64 bytes.
func checkSignature(what string, b []byte) error {
	if n := len(b); n != 0 && n != ed25519.SignatureSize {
		return fmt.Errorf("%w: %s of %d bytes", ErrMalformed, what, n)
	}
	return nil
}

// checkVoucher refuses an optional voucher field whose encoding does not decode.
func checkVoucher(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	if _, err := ton.DecodeVoucher(b); err != nil {
		return fmt.Errorf("%w: voucher: %v", ErrMalformed, err)
	}
	return nil
}
