package ton

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tlb"
	"github.com/xssnick/tonutils-go/tvm/cell"
)

// CodeHashHex is the representation hash of the embedded contract code; a channel whose on-chain
// code hash differs is not one of ours.
const CodeHashHex = "41f5b77f02d4a96eb465197215ed00923720a6c731fa32934f9c0e80ffb85589"

// Opcodes of the contract's messages: crc32 of the FunC "..."c strings (see PAYMENTS.md).
const (
	OpTopUpBalance              = 0x67c7d281
	OpInitChannel               = 0x0e0620c2
	OpCooperativeClose          = 0x5577587e
	OpCooperativeCommit         = 0x79a126ef
	OpStartUncooperativeClose   = 0x1f151acf
	OpChallengeQuarantinedState = 0x088eaa32
	OpSettleConditionals        = 0x66f6f069
	OpFinishUncooperativeClose  = 0x25432a91
	OpChannelClosed             = 0xdddc88ba
)

// Tags that open each signed part, so that a signature for one purpose is useless for another.
const (
	TagInit                    = 0x696e6974
	TagCooperativeClose        = 0x436c6f73
	TagCooperativeCommit       = 0x43436d74
	TagStartUncooperativeClose = 0x556e436c
	TagChallengeState          = 0x43686751
	TagSettleConditionals      = 0x436c436e
	TagSemiChannelState        = 0x43685374
)

// ErrMalformed is wrapped by every error about bytes or cells that do not parse.
var ErrMalformed = errors.New("ton: malformed")

// Code returns the contract's code cell, parsed from the embedded BOC on each call (cells are
// cheap to parse and this keeps the package free of mutable globals).
func Code() *cell.Cell {
	boc, err := hex.DecodeString(codeBOCHex)
	if err != nil {
		panic("ton: embedded contract code is not hex: " + err.Error())
	}
	c, err := cell.FromBOC(boc)
	if err != nil {
		panic("ton: embedded contract code does not parse: " + err.Error())
	}
	return c
}

// CodeHash returns the representation hash of Code.
func CodeHash() []byte {
	h, _ := hex.DecodeString(CodeHashHex)
	return h
}

// ChannelID is the contract's 128-bit channel id; every signed part carries it.
type ChannelID [16]byte

// ClosingConfig is conf#_ quarantin_duration:uint32 misbehavior_fine:Coins
// conditional_close_duration:uint32.
type ClosingConfig struct {
	QuarantineDuration       uint32 // seconds during which a started close can be challenged
	MisbehaviorFine          uint64 // nanoTON; keep 0 (PAYMENTS.md: a fine can only brick a close)
	ConditionalCloseDuration uint32 // seconds after the quarantine for settling conditionals
}

// Cell serialises the config.
func (c ClosingConfig) Cell() *cell.Cell {
	return cell.BeginCell().
		MustStoreUInt(uint64(c.QuarantineDuration), 32).
		MustStoreCoins(c.MisbehaviorFine).
		MustStoreUInt(uint64(c.ConditionalCloseDuration), 32).
		EndCell()
}

// PaymentConfig is payment_conf#_ excess_fee:Coins dest_A:MsgAddress dest_B:MsgAddress.
type PaymentConfig struct {
	ExcessFee uint64 // nanoTON kept back at init for the gas of cooperative close and finish
	DestA     *address.Address
	DestB     *address.Address
}

// Cell serialises the config.
func (p PaymentConfig) Cell() *cell.Cell {
	return cell.BeginCell().
		MustStoreCoins(p.ExcessFee).
		MustStoreAddr(p.DestA).
		MustStoreAddr(p.DestB).
		EndCell()
}

// SemiChannelBody is sc_body#_ seqno:uint64 sent:Coins conditionals:(HashmapE 32 ...), with the
// conditionals always empty: our design never uses them.
type SemiChannelBody struct {
	Seqno uint64
	Sent  uint64 // cumulative nanoTON sent by this side
}

func (b SemiChannelBody) store(bl *cell.Builder) {
	bl.MustStoreUInt(b.Seqno, 64).MustStoreCoins(b.Sent).MustStoreBoolBit(false) // empty dict
}

// Cell serialises the body on its own (as counterparty_data).
func (b SemiChannelBody) Cell() *cell.Cell {
	bl := cell.BeginCell()
	b.store(bl)
	return bl.EndCell()
}

// SemiChannel is semichannel_state#43685374 channel_id:uint128 data:SemiChannelBody
// counterparty_data:(Maybe ^SemiChannelBody).
type SemiChannel struct {
	ChannelID    ChannelID
	Data         SemiChannelBody
	Counterparty *SemiChannelBody // nil: absent, as our vouchers have it
}

// Cell serialises the semichannel: exactly the cell whose hash its owner signs.
func (s SemiChannel) Cell() *cell.Cell {
	bl := cell.BeginCell().MustStoreUInt(TagSemiChannelState, 32).MustStoreSlice(s.ChannelID[:], 128)
	s.Data.store(bl)
	if s.Counterparty != nil {
		bl.MustStoreMaybeRef(s.Counterparty.Cell())
	} else {
		bl.MustStoreBoolBit(false)
	}
	return bl.EndCell()
}

// SignedSemiChannel is signed_schs#_ signature:bits512 state:SemiChannel.
type SignedSemiChannel struct {
	Signature [64]byte
	State     SemiChannel
}

// SignSemiChannel signs s with key, as the contract checks it: over the hash of s's cell.
func SignSemiChannel(key ed25519.PrivateKey, s SemiChannel) SignedSemiChannel {
	out := SignedSemiChannel{State: s}
	copy(out.Signature[:], s.Cell().Sign(key))
	return out
}

// Cell serialises the signature followed by the semichannel's bits and refs.
func (s SignedSemiChannel) Cell() *cell.Cell {
	return cell.BeginCell().MustStoreSlice(s.Signature[:], 512).
		MustStoreBuilder(s.State.Cell().ToBuilder()).EndCell()
}

// QuarantinedState is the state under dispute, as the contract stores it.
type QuarantinedState struct {
	StateA, StateB   SemiChannelBody
	QuarantineStarts uint32
	StateCommitedByA bool
	StateChallenged  bool
	HasConditionals  bool // a side's conditionals dict is non-empty (never in our channels)
}

// Storage is channel_state#_, the contract's persistent data.
type Storage struct {
	Inited          bool
	BalanceA        uint64
	BalanceB        uint64
	KeyA, KeyB      ed25519.PublicKey
	ChannelID       ChannelID
	Closing         ClosingConfig
	CommittedSeqnoA uint32
	CommittedSeqnoB uint32
	Quarantine      *QuarantinedState
	Payments        PaymentConfig
}

// Params are what both parties agree on before opening: they fix the channel's address.
type Params struct {
	KeyA, KeyB ed25519.PublicKey // A pays B in our one-way channels
	ChannelID  ChannelID
	Closing    ClosingConfig
	Payments   PaymentConfig
}

func (p Params) check() error {
	if len(p.KeyA) != ed25519.PublicKeySize || len(p.KeyB) != ed25519.PublicKeySize {
		return errors.New("ton: channel keys must be 32-byte ed25519 public keys")
	}
	if p.Payments.DestA == nil || p.Payments.DestB == nil {
		return errors.New("ton: channel payout addresses dest_A and dest_B are required")
	}
	return nil
}

// InitialStorage builds the un-inited storage for p: zero balances and committed seqnos.
func InitialStorage(p Params) (*cell.Cell, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	return Storage{
		KeyA: p.KeyA, KeyB: p.KeyB, ChannelID: p.ChannelID, Closing: p.Closing, Payments: p.Payments,
	}.Cell()
}

// StateInit returns the channel's StateInit: the embedded code and p's initial storage.
func (p Params) StateInit() (*tlb.StateInit, error) {
	data, err := InitialStorage(p)
	if err != nil {
		return nil, err
	}
	return &tlb.StateInit{Code: Code(), Data: data}, nil
}

// Address returns the basechain address of the channel fixed by p.
func (p Params) Address() (*address.Address, error) {
	si, err := p.StateInit()
	if err != nil {
		return nil, err
	}
	return si.CalcAddress(0), nil
}

// Cell serialises the storage.
func (s Storage) Cell() (*cell.Cell, error) {
	if len(s.KeyA) != ed25519.PublicKeySize || len(s.KeyB) != ed25519.PublicKeySize {
		return nil, errors.New("ton: storage keys must be 32-byte ed25519 public keys")
	}
	bl := cell.BeginCell().
		MustStoreBoolBit(s.Inited).
		MustStoreCoins(s.BalanceA).
		MustStoreCoins(s.BalanceB).
		MustStoreSlice(s.KeyA, 256).
		MustStoreSlice(s.KeyB, 256).
		MustStoreSlice(s.ChannelID[:], 128).
		MustStoreRef(s.Closing.Cell()).
		MustStoreUInt(uint64(s.CommittedSeqnoA), 32).
		MustStoreUInt(uint64(s.CommittedSeqnoB), 32)
	switch q := s.Quarantine; {
	case q != nil && q.HasConditionals:
		return nil, errors.New("ton: cannot serialise a quarantine with conditionals")
	case q != nil:
		qb := cell.BeginCell()
		q.StateA.store(qb)
		q.StateB.store(qb)
		qb.MustStoreUInt(uint64(q.QuarantineStarts), 32).MustStoreBoolBit(q.StateCommitedByA).
			MustStoreBoolBit(q.StateChallenged)
		bl.MustStoreMaybeRef(qb.EndCell())
	default:
		bl.MustStoreBoolBit(false)
	}
	bl.MustStoreRef(s.Payments.Cell())
	return bl.EndCell(), nil
}

// reader wraps a slice with a sticky error, so a parser reads every field and checks once.
type reader struct {
	s   *cell.Slice
	err error
}

func (r *reader) fail(what string, err error) {
	if r.err == nil && err != nil {
		r.err = fmt.Errorf("%w: %s: %v", ErrMalformed, what, err)
	}
}

func (r *reader) uint(what string, bits uint) uint64 {
	if r.err != nil {
		return 0
	}
	v, err := r.s.LoadUInt(bits)
	r.fail(what, err)
	return v
}

func (r *reader) bool(what string) bool { return r.uint(what, 1) == 1 }

func (r *reader) coins(what string) uint64 {
	if r.err != nil {
		return 0
	}
	v, err := r.s.LoadCoins()
	r.fail(what, err)
	return v
}

func (r *reader) bits(what string, n uint) []byte {
	if r.err != nil {
		return make([]byte, (n+7)/8)
	}
	v, err := r.s.LoadSlice(n)
	r.fail(what, err)
	if v == nil {
		v = make([]byte, (n+7)/8)
	}
	return v
}

func (r *reader) ref(what string) *reader {
	if r.err != nil {
		return &reader{err: r.err}
	}
	s, err := r.s.LoadRef()
	r.fail(what, err)
	return &reader{s: s, err: r.err}
}

func (r *reader) addr(what string) *address.Address {
	if r.err != nil {
		return nil
	}
	a, err := r.s.LoadAddr()
	r.fail(what, err)
	return a
}

// body reads a SemiChannelBody and reports whether its conditionals dict is non-empty.
func (r *reader) body(what string) (SemiChannelBody, bool) {
	b := SemiChannelBody{Seqno: r.uint(what+" seqno", 64), Sent: r.coins(what + " sent")}
	hasDict := r.bool(what + " conditionals")
	if hasDict && r.err == nil {
		_, err := r.s.LoadRef()
		r.fail(what+" conditionals", err)
	}
	return b, hasDict
}

// ParseStorage reads the contract's storage cell.
func ParseStorage(c *cell.Cell) (Storage, error) {
	if c == nil {
		return Storage{}, fmt.Errorf("%w: no storage cell", ErrMalformed)
	}
	r := &reader{s: c.MustBeginParse()}
	var s Storage
	s.Inited = r.bool("inited")
	s.BalanceA = r.coins("balance_A")
	s.BalanceB = r.coins("balance_B")
	s.KeyA = ed25519.PublicKey(r.bits("key_A", 256))
	s.KeyB = ed25519.PublicKey(r.bits("key_B", 256))
	copy(s.ChannelID[:], r.bits("channel_id", 128))
	conf := r.ref("config")
	s.Closing = ClosingConfig{
		QuarantineDuration:       uint32(conf.uint("quarantin_duration", 32)),
		MisbehaviorFine:          conf.coins("misbehavior_fine"),
		ConditionalCloseDuration: uint32(conf.uint("conditional_close_duration", 32)),
	}
	r.fail("config", conf.err)
	s.CommittedSeqnoA = uint32(r.uint("commited_seqno_A", 32))
	s.CommittedSeqnoB = uint32(r.uint("commited_seqno_B", 32))
	if r.bool("quarantin") {
		q := r.ref("quarantin")
		var qs QuarantinedState
		var condA, condB bool
		qs.StateA, condA = q.body("state_A")
		qs.StateB, condB = q.body("state_B")
		qs.HasConditionals = condA || condB
		qs.QuarantineStarts = uint32(q.uint("quarantine_starts", 32))
		qs.StateCommitedByA = q.bool("state_commited_by_A")
		// settle_conditionals rewrites the quarantine without the challenged bit.
		if q.err == nil && q.s.BitsLeft() > 0 {
			qs.StateChallenged = q.bool("state_challenged")
		}
		r.fail("quarantin", q.err)
		s.Quarantine = &qs
	}
	pay := r.ref("payments")
	s.Payments = PaymentConfig{
		ExcessFee: pay.coins("excess_fee"), DestA: pay.addr("dest_A"), DestB: pay.addr("dest_B"),
	}
	r.fail("payments", pay.err)
	if r.err != nil {
		return Storage{}, r.err
	}
	return s, nil
}

// Matches reports whether the storage was built from p (keys, id, configs), ignoring the
// balances, seqnos and quarantine that change over the channel's life.
func (s Storage) Matches(p Params) bool {
	return Params{KeyA: s.KeyA, KeyB: s.KeyB, ChannelID: s.ChannelID, Closing: s.Closing, Payments: s.Payments}.Equal(p)
}

// Equal reports whether p and q are the same parameters (so the same channel address); both
// must have their payout addresses.
func (p Params) Equal(q Params) bool {
	if p.Payments.DestA == nil || p.Payments.DestB == nil || q.Payments.DestA == nil || q.Payments.DestB == nil {
		return false
	}
	return bytes.Equal(p.KeyA, q.KeyA) && bytes.Equal(p.KeyB, q.KeyB) && p.ChannelID == q.ChannelID &&
		p.Closing == q.Closing && p.Payments.ExcessFee == q.Payments.ExcessFee &&
		p.Payments.DestA.Equals(q.Payments.DestA) && p.Payments.DestB.Equals(q.Payments.DestB)
}

// signedBody builds op, the flag bit, the 512-bit signature over signed, then signed's bits and
// refs: the layout of init_channel, start_uncooperative_close and challenge_quarantined_state.
func signedBody(op uint64, flag bool, key ed25519.PrivateKey, signed *cell.Cell) *cell.Cell {
	return cell.BeginCell().MustStoreUInt(op, 32).MustStoreBoolBit(flag).
		MustStoreSlice(signed.Sign(key), 512).MustStoreBuilder(signed.ToBuilder()).EndCell()
}

// TopUpBody is top_up_balance add_A:Coins add_B:Coins; it works only while un-inited.
func TopUpBody(addA, addB uint64) *cell.Cell {
	return cell.BeginCell().MustStoreUInt(OpTopUpBalance, 32).MustStoreCoins(addA).MustStoreCoins(addB).EndCell()
}

// InitChannelBody is init_channel, signed by A (isA) or B with key: it sets the balances and
// marks the channel inited. The message must carry more than balanceA+balanceB+excess_fee.
func InitChannelBody(isA bool, key ed25519.PrivateKey, id ChannelID, balanceA, balanceB uint64) *cell.Cell {
	signed := cell.BeginCell().MustStoreUInt(TagInit, 32).MustStoreSlice(id[:], 128).
		MustStoreCoins(balanceA).MustStoreCoins(balanceB).EndCell()
	return signedBody(OpInitChannel, isA, key, signed)
}

// CooperativeClose is the part of cooperative_close both parties sign: the final balances paid
// out and seqnos that must exceed the committed ones.
type CooperativeClose struct {
	ChannelID          ChannelID
	BalanceA, BalanceB uint64 // paid to dest_A (the rest of the contract's money) and dest_B
	SeqnoA, SeqnoB     uint64 // become the committed seqnos; use last voucher + 1 (pitfall 3)
}

// SignedCell is the cell whose hash both signatures cover.
func (c CooperativeClose) SignedCell() *cell.Cell {
	return cell.BeginCell().MustStoreUInt(TagCooperativeClose, 32).MustStoreSlice(c.ChannelID[:], 128).
		MustStoreCoins(c.BalanceA).MustStoreCoins(c.BalanceB).
		MustStoreUInt(c.SeqnoA, 64).MustStoreUInt(c.SeqnoB, 64).EndCell()
}

// Sign returns key's signature over the close.
func (c CooperativeClose) Sign(key ed25519.PrivateKey) []byte { return c.SignedCell().Sign(key) }

// Verify reports whether sig is pub's signature over the close.
func (c CooperativeClose) Verify(pub ed25519.PublicKey, sig []byte) bool {
	return len(pub) == ed25519.PublicKeySize && c.SignedCell().Verify(pub, sig)
}

// Body assembles the message from both signatures; send it as an external message (the
// contract pays its gas from excess_fee) or internal.
func (c CooperativeClose) Body(sigA, sigB []byte) (*cell.Cell, error) {
	if len(sigA) != ed25519.SignatureSize || len(sigB) != ed25519.SignatureSize {
		return nil, errors.New("ton: cooperative close needs two 64-byte signatures")
	}
	return cell.BeginCell().MustStoreUInt(OpCooperativeClose, 32).
		MustStoreRef(cell.BeginCell().MustStoreSlice(sigA, 512).EndCell()).
		MustStoreRef(cell.BeginCell().MustStoreSlice(sigB, 512).EndCell()).
		MustStoreBuilder(c.SignedCell().ToBuilder()).EndCell(), nil
}

// disputeBody builds the common shape of start_uncooperative_close and
// challenge_quarantined_state: signer's flag and signature over tag, id and both semichannels.
func disputeBody(op, tag uint64, byA bool, key ed25519.PrivateKey, id ChannelID, a, b SignedSemiChannel) *cell.Cell {
	signed := cell.BeginCell().MustStoreUInt(tag, 32).MustStoreSlice(id[:], 128).
		MustStoreRef(a.Cell()).MustStoreRef(b.Cell()).EndCell()
	return signedBody(op, byA, key, signed)
}

// StartUncooperativeCloseBody is start_uncooperative_close, signed by A (byA) or B with key;
// it quarantines both semichannels. Send it as an internal message from a funded wallet.
func StartUncooperativeCloseBody(byA bool, key ed25519.PrivateKey, id ChannelID, a, b SignedSemiChannel) *cell.Cell {
	return disputeBody(OpStartUncooperativeClose, TagStartUncooperativeClose, byA, key, id, a, b)
}

// ChallengeBody is challenge_quarantined_state by the party that did not start the close; it
// replaces the initiator's quarantined semichannel with a newer one. Internal message only.
func ChallengeBody(byA bool, key ed25519.PrivateKey, id ChannelID, a, b SignedSemiChannel) *cell.Cell {
	return disputeBody(OpChallengeQuarantinedState, TagChallengeState, byA, key, id, a, b)
}

// FinishUncooperativeCloseBody is finish_uncooperative_close: anyone may send it once the
// quarantine and conditional windows are over; it pays both sides out.
func FinishUncooperativeCloseBody() *cell.Cell {
	return cell.BeginCell().MustStoreUInt(OpFinishUncooperativeClose, 32).EndCell()
}
