package channel

import (
	"time"

	"github.com/cocoon-mesh/cocoon/ton"
)

// Event is what Step takes: something the node observed, or was asked. Each is a struct of
// this package; which role takes which is said on each.
type Event interface{ event() }

// OpenRequested (payer, Opening) locks Deposit in a new channel: the record, with the
// payee's signature over its empty semichannel, is stored before the deployment goes out, so
// the payer can close alone whatever happens next. The caller chose the channel id (New) and
// the deposit (node's depositFor), and asked the payee for PayeeSemi (FrameChannelNew).
type OpenRequested struct {
	Deposit   uint64
	PayeeSemi []byte
}

// ResumeRequested (payer, Open and not in use) makes a stored channel usable again: it is
// checked on chain, then announced to the payee with the newest voucher.
type ResumeRequested struct{}

// Announced (payee) is the payer's FrameChannelOpen: it opened the channel, or resumes it
// after a restart, presenting its newest voucher (nil: none). Chain is the contract as read,
// needed only for a channel this side has no record of (state Opening). KeyA is the key the
// payer's connection authenticated.
type Announced struct {
	KeyA    []byte
	Chain   ton.Storage
	Voucher []byte
}

// Replied (payer) is the payee's FrameChannelState answering To (an Announce, a Pay or a
// Settle on the channel stream), or the payer's answering a payee's AskClose or AskSettle: the newest
// voucher the other side holds (nil: none) and the payee's signature over its empty
// semichannel.
type Replied struct {
	To        Kind
	Voucher   []byte
	PayeeSemi []byte
}

// VoucherReceived (payee) is a voucher from the payer, on an answer's stream (FramePay) or,
// with OnChannel, on the channel stream, where a voucher already held is confirmed rather
// than refused and the answer is a State message.
type VoucherReceived struct {
	Voucher   []byte
	OnChannel bool
}

// Settled (payee) is the payer's word that Voucher (nil: none yet) pays everything it
// received (FrameSettled): on an answer's stream in answer to a bill, or with OnChannel after
// it refused value. What the payee counts beyond it is written off, within bounds.
type Settled struct {
	Voucher   []byte
	OnChannel bool
}

// CloseProposed (payee) is the payer's cooperative close with its signature; Chain is the
// contract as read (it must be open, and the close must pay exactly the newest voucher held).
type CloseProposed struct {
	Close     ton.CooperativeClose
	Signature []byte
	Chain     ton.Storage
}

// CloseSigned (payer) is the payee's answer to our Propose: the close and its signature.
type CloseSigned struct {
	Close     ton.CooperativeClose
	Signature []byte
}

// AnswerBegan starts an answer on the channel. A payer counts it (a close waits for it to
// end) and may find its deposit low (Effects.Replace) or spent (NoteSpent: the answer must
// go elsewhere). A payee records Window, the answer's credit window in nanoTON, which bounds
// what it writes off on the payer's word.
type AnswerBegan struct{ Window uint64 }

// AnswerEnded (payer) ends an answer counted by AnswerBegan; what it left unpaid is settled
// FlushAfter later, unless answers are under way then: the last of them to end settles.
type AnswerEnded struct{}

// Received (payer) is value received on an answer: when a voucher is due (the unpaid part
// reached Every, a quarter of the payee's window at the answer's price), one is signed and
// goes on Stream, the answer's stream (opaque to this package). Final is the answer's end:
// no voucher then, it is settled FlushAfter later.
type Received struct {
	Value, Every uint64
	Stream       any
	Final        bool
}

// Delivered (payee) reserves Cost on the payer's credit before the item that costs it goes
// out; it fails (ton.ErrCreditExhausted) when the payer would owe more than Window.
type Delivered struct{ Cost, Window uint64 }

// Refused takes back Value: a payee's, that the payer never took (it refused it, or the
// stream broke before it went out); a payer's, that it refused (the next settle says so).
type Refused struct{ Value uint64 }

// Billed (payer) is the payee's bill on an answer's Stream: everything received is paid at
// once, as a Settle (the payer's word that it received no more).
type Billed struct{ Stream any }

// SettleAsked (payer) is the payee's AskSettle (FrameBill on the channel stream): it counts
// value owed that we may never have received. The next settle, once no answer is under way,
// goes as settled, so that the payee writes off what never reached us.
type SettleAsked struct{}

// ChainObserved is the contract as read on chain: Found false when no account is there
// (yet). LedgerNow is the ledger's time, against which a quarantine is measured. It answers
// an Observe action, or comes from the watch (node's watchChannels, every WatchEvery).
type ChainObserved struct {
	Found     bool
	Storage   ton.Storage
	LedgerNow time.Time
}

// CloseRequested starts closing the channel in Mode. Asked: the counterparty asked for it
// (a payee's AskClose to its payer, always Together), and is answered when it ends.
type CloseRequested struct {
	Mode  CloseMode
	Asked bool
}

// Rotate (payer) moves payments to a new channel: this one takes no new answers, is marked
// closing, and closes (Either) once the answers under way ended, within ReplacedDrain.
type Rotate struct{}

// Tick passes time: a pending settle is sent once FlushAfter passed, a drain that outlived
// its bound gives up. The caller ticks at Deadline, or often.
type Tick struct{}

// PersistFailed reports that the last Step's writes did not all become durable; nothing
// after them was carried out. The channel returns to its durable state.
type PersistFailed struct{ Err error }

// SendFailed reports that Msg did not go out, or that the peer answered a request with an
// error or an answer this package refused.
type SendFailed struct {
	Msg Message
	Err error
}

// ChainDone reports that Action landed on chain.
type ChainDone struct{ Action Action }

// ChainFailed reports that Action failed; Unconfirmed (ledger.ErrUnconfirmed) that it may
// still land.
type ChainFailed struct {
	Action      Action
	Err         error
	Unconfirmed bool
}

func (OpenRequested) event()   {}
func (ResumeRequested) event() {}
func (Announced) event()       {}
func (Replied) event()         {}
func (VoucherReceived) event() {}
func (Settled) event()         {}
func (SettleAsked) event()     {}
func (CloseProposed) event()   {}
func (CloseSigned) event()     {}
func (AnswerBegan) event()     {}
func (AnswerEnded) event()     {}
func (Received) event()        {}
func (Delivered) event()       {}
func (Refused) event()         {}
func (Billed) event()          {}
func (ChainObserved) event()   {}
func (CloseRequested) event()  {}
func (Rotate) event()          {}
func (Tick) event()            {}
func (PersistFailed) event()   {}
func (SendFailed) event()      {}
func (ChainDone) event()       {}
func (ChainFailed) event()     {}
