package channel

import (
	"fmt"

	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tlb"
	"github.com/xssnick/tonutils-go/tvm/cell"

	"github.com/cocoon-mesh/cocoon/ton"
	"github.com/cocoon-mesh/cocoon/ton/chanstore"
)

// Effects is the work a Step leaves to its caller, in the order it must be carried out:
// every Persist durable (chanstore.Store.Put or Delete) before any Send goes out, and the
// Sends before the Chain actions. A failed Persist stops the batch: the caller then steps
// PersistFailed and carries out nothing else.
type Effects struct {
	Persist []Write
	Send    []Message
	Chain   []Action
	// Replace (payer) asks the caller to open a new channel to the payee, once Persist is
	// durable: this one is being closed because its deposit runs low (or Rotate).
	Replace bool
	// Notes say what happened, for the node's logs and for a caller awaiting an outcome.
	Notes []Note
}

// Empty reports whether e asks nothing of the caller.
func (e Effects) Empty() bool {
	return len(e.Persist) == 0 && len(e.Send) == 0 && len(e.Chain) == 0 && !e.Replace && len(e.Notes) == 0
}

// Write is one durable change: Record to Put, or, with Delete, its (channel, role) to delete.
type Write struct {
	Record chanstore.Record
	Delete bool
}

// Kind names a message type.
type Kind uint8

// The message kinds, with the node frames they stand for.
const (
	KindPay         Kind = iota + 1 // FramePay
	KindSettle                      // FrameSettled
	KindAnnounce                    // FrameChannelOpen
	KindPropose                     // FrameChannelClose with the payer's signature
	KindAskClose                    // FrameChannelClose without one
	KindView                        // FrameChannelState
	KindCountersign                 // FrameChannelClose answering a proposal
	KindRefusal                     // FrameError answering the peer's request
	KindAskSettle                   // FrameBill on the channel stream
)

var kindNames = [...]string{"", "pay", "settle", "announce", "propose", "ask-close", "view", "countersign", "refusal", "ask-settle"}

// String returns the kind's name.
func (k Kind) String() string {
	if int(k) < len(kindNames) && k > 0 {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Message is a frame to send to the counterparty. A message with a nil Stream field, or none,
// goes on the channel stream: a request (Pay, Settle, Announce, Propose, AskClose, AskSettle, whose answer
// the caller steps as Replied, CloseSigned or SendFailed) or the answer to the peer's request
// (View, Countersign, Refusal).
type Message interface{ Kind() Kind }

// Pay is a voucher: on Stream, the answer's stream it was earned on, or (nil) a request on
// the channel stream.
type Pay struct {
	Voucher ton.Voucher
	Stream  any
}

// Settle is a voucher (nil: none yet) that pays everything received: on Stream, answering a
// bill, or (nil) on the channel stream after a refusal.
type Settle struct {
	Voucher *ton.Voucher
	Stream  any
}

// Announce tells the payee about the channel, with the newest voucher (nil: none); the
// caller adds its wallet and the payee's terms.
type Announce struct{ Voucher *ton.Voucher }

// Propose is the payer's cooperative close and its signature.
type Propose struct {
	Close     ton.CooperativeClose
	Signature []byte
}

// AskClose is a payee's request that its payer close the channel together.
type AskClose struct{ ChannelID ton.ChannelID }

// AskSettle is a payee's request that its payer settle the channel: the payee still counts
// value owed a while after its last delivery, which the payer may never have received (an
// answer's stream broke under it). The payer answers with a settle once its answers ended.
type AskSettle struct{ ChannelID ton.ChannelID }

// View is the answer to the peer's request (FrameChannelState): the channel as this side
// holds it. A payee adds its signature over its empty semichannel, so the payer can close
// alone.
type View struct {
	Limit     uint64
	Voucher   *ton.Voucher
	PayeeSemi []byte
}

// Countersign is the payee's signature over the close its payer proposed.
type Countersign struct {
	Close     ton.CooperativeClose
	Signature []byte
}

// Refusal answers the peer's request with an error (a close it asked for failed).
type Refusal struct{ Err error }

// Kind returns KindPay.
func (Pay) Kind() Kind { return KindPay }

// Kind returns KindSettle.
func (Settle) Kind() Kind { return KindSettle }

// Kind returns KindAnnounce.
func (Announce) Kind() Kind { return KindAnnounce }

// Kind returns KindPropose.
func (Propose) Kind() Kind { return KindPropose }

// Kind returns KindAskClose.
func (AskClose) Kind() Kind { return KindAskClose }

// Kind returns KindView.
func (View) Kind() Kind { return KindView }

// Kind returns KindCountersign.
func (Countersign) Kind() Kind { return KindCountersign }

// Kind returns KindRefusal.
func (Refusal) Kind() Kind { return KindRefusal }

// Kind returns KindAskSettle.
func (AskSettle) Kind() Kind { return KindAskSettle }

// Action is something to do on chain: a message for the channel's contract, or a read of it.
// Its outcome is stepped as ChainDone or ChainFailed (a read's as ChainObserved).
type Action interface{ Name() string }

// Observe reads the contract (and the ledger's time) and steps ChainObserved: Found false
// when there is no contract; ChainFailed when the read itself failed.
type Observe struct{ Address *address.Address }

// Deploy sends, from the payer's wallet, the contract's StateInit with init_channel: Value
// is Deposit, the excess fee and the open fee.
type Deploy struct {
	Address        *address.Address
	Init           *tlb.StateInit
	Body           *cell.Cell
	Deposit, Value uint64
}

// CoopClose submits the cooperative close both sides signed (an external message).
type CoopClose struct {
	Address *address.Address
	Close   ton.CooperativeClose
	Body    *cell.Cell
}

// StartSolo starts an uncooperative close from this side's wallet with the newest state it
// holds: the payer's semichannel paying Sent. Value pays the gas.
type StartSolo struct {
	Address *address.Address
	ByA     bool
	Sent    uint64
	Body    *cell.Cell
	Value   uint64
}

// Challenge (payee) replaces the older state its payer closed with (paying Theirs) by the
// newest voucher (paying Sent).
type Challenge struct {
	Address     *address.Address
	Sent, Their uint64
	Body        *cell.Cell
	Value       uint64
}

// Finish ends an uncooperative close once its quarantine is over (an external message);
// Paid is what the quarantined state pays the payee.
type Finish struct {
	Address *address.Address
	Paid    uint64
}

// Name returns "observe".
func (Observe) Name() string { return "observe" }

// Name returns "deploy".
func (Deploy) Name() string { return "deploy" }

// Name returns "coop-close".
func (CoopClose) Name() string { return "coop-close" }

// Name returns "start-solo".
func (StartSolo) Name() string { return "start-solo" }

// Name returns "challenge".
func (Challenge) Name() string { return "challenge" }

// Name returns "finish".
func (Finish) Name() string { return "finish" }

// Note says what a Step did, for logs and for a caller waiting on an outcome.
type Note struct {
	What   NoteKind
	Amount uint64 // nanoTON, where the kind says
	Err    error  // why, for the failures
}

// String is the note as the scripts print it.
func (n Note) String() string {
	s := n.What.String()
	if n.Amount > 0 {
		s += fmt.Sprintf(" %d", n.Amount)
	}
	if n.Err != nil {
		s += ": " + n.Err.Error()
	}
	return s
}

// NoteKind names what a note reports.
type NoteKind uint8

// The notes, each with the node log line it stands for.
const (
	NoteOpened           NoteKind = iota + 1 // paying on channel / opened by payer (Amount: deposit)
	NoteOpenFailed                           // the deployment failed; the record is kept if it may land
	NoteCutShort                             // a stored channel is not on chain: its opening was cut short
	NoteResumedAbove                         // resumed above the payee's newer voucher (Amount: its sent)
	NoteSpent                                // the deposit is spent: the answer was not counted
	NotePayFailed                            // a voucher could not be signed
	NoteVoucherRefused                       // a voucher presented on announcement does not check
	NoteWrittenOff                           // value the payer never received, written off (Amount)
	NoteDisputed                             // the payer disputes more than is taken on trust (Amount: owed)
	NoteCosigned                             // co-signed the payer's close (Amount: paid)
	NoteClosing                              // started closing (the reason is the event)
	NotePeerClosingAlone                     // the other side started closing alone
	NoteSoloStarted                          // started closing alone (Amount: paid)
	NoteChallenged                           // challenged an older state (Amount: our sent)
	NoteCloseFailed                          // the close failed; the watch resumes it
	NoteClosed                               // the contract paid out (Amount: paid)
	NoteIdle                                 // closing an idle channel
	NoteStalled                              // resuming a stalled close
	NoteSettleFailed                         // a settle on the channel stream failed
)

var noteNames = [...]string{"", "opened", "open-failed", "cut-short", "resumed-above", "spent",
	"pay-failed", "voucher-refused", "written-off", "disputed", "cosigned", "closing",
	"peer-closing-alone", "solo-started", "challenged", "close-failed", "closed", "idle", "stalled",
	"settle-failed"}

// String returns the note kind's name.
func (k NoteKind) String() string {
	if int(k) < len(noteNames) && k > 0 {
		return noteNames[k]
	}
	return fmt.Sprintf("note(%d)", uint8(k))
}
