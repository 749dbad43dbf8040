package ton

import (
	"crypto/ed25519"
	"errors"
	"fmt"
)

// Reasons a voucher or a payment is refused; errors returned by Accept and Pay wrap one of them.
var (
	ErrBadSignature = errors.New("ton: voucher signature is not the payer's for this channel")
	ErrReplayed     = errors.New("ton: voucher seqno is not above the latest accepted")
	ErrDecreasing   = errors.New("ton: voucher sent is below the latest accepted")
	ErrOverDeposit  = errors.New("ton: voucher sent exceeds the payer's deposit")
	ErrSeqnoLimit   = errors.New("ton: voucher seqno is past the contract's uint32 limit; rotate the channel id")
)

// PayeeConfig is what a payee knows of a channel before any voucher.
type PayeeConfig struct {
	ChannelID ChannelID
	PayerKey  ed25519.PublicKey
	// Limit is the most the payer can owe: its deposit (balance_A read on chain after init)
	// minus any misbehavior fine; vouchers above it could not be paid out (pitfall 2).
	Limit uint64
	// CommittedSeqno is the payer's committed seqno on chain (commited_seqno_A): the contract
	// refuses older states, so vouchers must have at least this seqno.
	CommittedSeqno uint64
}

// Payee is the receiving side of one channel: it keeps the highest valid voucher. It is a pure
// state machine (no I/O, no clock); persisting Latest durably is the caller's job.
type Payee struct {
	cfg    PayeeConfig
	latest Voucher
	has    bool
}

// NewPayee returns a payee with no voucher yet. To resume, Accept the persisted latest voucher.
func NewPayee(cfg PayeeConfig) (*Payee, error) {
	if len(cfg.PayerKey) != ed25519.PublicKeySize {
		return nil, errors.New("ton: payer key must be a 32-byte ed25519 public key")
	}
	cfg.PayerKey = append(ed25519.PublicKey(nil), cfg.PayerKey...)
	return &Payee{cfg: cfg}, nil
}

// Latest returns the highest accepted voucher, and false if none was accepted yet.
func (p *Payee) Latest() (Voucher, bool) { return p.latest, p.has }

// Sent returns the cumulative amount the payee can enforce on chain (0 before any voucher).
func (p *Payee) Sent() uint64 { return p.latest.Sent }

// Accept validates v and makes it the latest; on any error the state is unchanged. The
// signature is checked first, so a voucher of another channel (ErrBadSignature) is told apart
// from an old one of this channel (ErrReplayed, ErrDecreasing).
func (p *Payee) Accept(v Voucher) error {
	switch {
	case v.Seqno > MaxVoucherSeqno:
		return fmt.Errorf("%w: seqno %d", ErrSeqnoLimit, v.Seqno)
	case !v.Verify(p.cfg.PayerKey, p.cfg.ChannelID):
		return fmt.Errorf("%w: seqno %d", ErrBadSignature, v.Seqno)
	case p.has && v.Seqno <= p.latest.Seqno:
		return fmt.Errorf("%w: seqno %d, latest %d", ErrReplayed, v.Seqno, p.latest.Seqno)
	case !p.has && v.Seqno < p.cfg.CommittedSeqno:
		return fmt.Errorf("%w: seqno %d, committed on chain %d", ErrReplayed, v.Seqno, p.cfg.CommittedSeqno)
	case v.Sent < p.latest.Sent:
		return fmt.Errorf("%w: sent %d, latest %d", ErrDecreasing, v.Sent, p.latest.Sent)
	case v.Sent > p.cfg.Limit:
		return fmt.Errorf("%w: sent %d, limit %d", ErrOverDeposit, v.Sent, p.cfg.Limit)
	}
	p.latest, p.has = v, true
	return nil
}

// CooperativeClose proposes the close that pays the payee balanceB+sent and the payer the rest
// of balanceA (the balances set at init). SeqnoA is the latest voucher's seqno + 1, so that
// voucher cannot be replayed after a re-init (pitfall 3); seqnoB must be above anything the
// payee ever signed and above its committed seqno.
func (p *Payee) CooperativeClose(balanceA, balanceB, seqnoB uint64) (CooperativeClose, error) {
	sent := p.latest.Sent
	if sent > balanceA {
		return CooperativeClose{}, fmt.Errorf("%w: sent %d, balance_A %d", ErrOverDeposit, sent, balanceA)
	}
	seqnoA := p.cfg.CommittedSeqno + 1 // committed seqnos must strictly increase
	if p.has {
		seqnoA = p.latest.Seqno + 1
	}
	return CooperativeClose{
		ChannelID: p.cfg.ChannelID,
		BalanceA:  balanceA - sent,
		BalanceB:  balanceB + sent,
		SeqnoA:    seqnoA,
		SeqnoB:    seqnoB,
	}, nil
}

// PayerConfig is what a payer resumes from: its durable (seqno, sent) record.
type PayerConfig struct {
	ChannelID ChannelID
	Key       ed25519.PrivateKey
	Limit     uint64 // the deposit minus any fine: the most it will ever sign for
	Seqno     uint64 // the last seqno signed (or committed_seqno_A - 1 on a fresh deposit)
	Sent      uint64 // the cumulative sent of that last voucher
}

// Payer is the paying side of one channel: the single sequencer of its vouchers. A pure state
// machine; the caller must make (Seqno, Sent) durable before sending a voucher it returns.
type Payer struct {
	cfg    PayerConfig
	closed bool // a cooperative close was proposed: no voucher may follow it
}

// ErrClosed is returned by Pay and PayTo once the payer proposed a cooperative close: a voucher
// signed after it could be replayed on the channel's next init (pitfall 3).
var ErrClosed = errors.New("ton: the payer proposed a close on this channel; it signs no more vouchers")

// CooperativeClose proposes the close that pays the payee balanceB plus everything signed for
// and returns the rest of balanceA to the payer (the balances set at init); seqnoB must be above
// the payee's committed seqno. From then on the payer signs no more vouchers.
func (p *Payer) CooperativeClose(balanceA, balanceB, seqnoB uint64) (CooperativeClose, error) {
	if p.cfg.Sent > balanceA {
		return CooperativeClose{}, fmt.Errorf("%w: sent %d, balance_A %d", ErrOverDeposit, p.cfg.Sent, balanceA)
	}
	p.closed = true
	return CooperativeClose{
		ChannelID: p.cfg.ChannelID,
		BalanceA:  balanceA - p.cfg.Sent,
		BalanceB:  balanceB + p.cfg.Sent,
		SeqnoA:    p.cfg.Seqno + 1,
		SeqnoB:    seqnoB,
	}, nil
}

// NewPayer returns a payer resuming after cfg.Seqno and cfg.Sent.
func NewPayer(cfg PayerConfig) (*Payer, error) {
	if len(cfg.Key) != ed25519.PrivateKeySize {
		return nil, errors.New("ton: payer key must be a 64-byte ed25519 private key")
	}
	if cfg.Sent > cfg.Limit {
		return nil, fmt.Errorf("%w: resumed sent %d, limit %d", ErrOverDeposit, cfg.Sent, cfg.Limit)
	}
	return &Payer{cfg: cfg}, nil
}

// Seqno returns the last seqno signed.
func (p *Payer) Seqno() uint64 { return p.cfg.Seqno }

// Sent returns the cumulative amount signed so far.
func (p *Payer) Sent() uint64 { return p.cfg.Sent }

// Pay signs the next voucher, adding amount nanoTON to the cumulative sent.
func (p *Payer) Pay(amount uint64) (Voucher, error) {
	if amount > p.cfg.Limit-p.cfg.Sent {
		return Voucher{}, fmt.Errorf("%w: sent %d + %d, limit %d", ErrOverDeposit, p.cfg.Sent, amount, p.cfg.Limit)
	}
	return p.PayTo(p.cfg.Sent + amount)
}

// PayTo signs the next voucher with cumulative sent; it must not decrease nor exceed the limit.
func (p *Payer) PayTo(sent uint64) (Voucher, error) {
	switch {
	case p.closed:
		return Voucher{}, ErrClosed
	case sent < p.cfg.Sent:
		return Voucher{}, fmt.Errorf("%w: sent %d, already signed %d", ErrDecreasing, sent, p.cfg.Sent)
	case sent > p.cfg.Limit:
		return Voucher{}, fmt.Errorf("%w: sent %d, limit %d", ErrOverDeposit, sent, p.cfg.Limit)
	case p.cfg.Seqno >= MaxVoucherSeqno:
		return Voucher{}, fmt.Errorf("%w: last seqno %d", ErrSeqnoLimit, p.cfg.Seqno)
	}
	v := SignVoucher(p.cfg.Key, p.cfg.ChannelID, p.cfg.Seqno+1, sent)
	p.cfg.Seqno, p.cfg.Sent = v.Seqno, v.Sent
	return v, nil
}

// ErrBadClose is wrapped by CheckClose's refusals.
var ErrBadClose = errors.New("ton: cooperative close does not match the payer's record")

// CheckClose reports whether the payer may co-sign c: same channel, payouts that move exactly
// what it signed for from balanceA to balanceB (the balances set at init), and SeqnoA above
// every voucher it signed, so none of them can be replayed after a re-init (pitfall 3).
func (p *Payer) CheckClose(c CooperativeClose, balanceA, balanceB uint64) error {
	sent := p.cfg.Sent
	switch {
	case c.ChannelID != p.cfg.ChannelID:
		return fmt.Errorf("%w: channel id", ErrBadClose)
	case sent > balanceA || c.BalanceA != balanceA-sent || c.BalanceB != balanceB+sent:
		return fmt.Errorf("%w: balances %d/%d, want %d/%d", ErrBadClose, c.BalanceA, c.BalanceB, balanceA-sent, balanceB+sent)
	case c.SeqnoA <= p.cfg.Seqno:
		return fmt.Errorf("%w: seqno_A %d, last signed %d", ErrBadClose, c.SeqnoA, p.cfg.Seqno)
	}
	return nil
}
