package channel

import "fmt"

// State is where a channel is in its life, as this side sees it. The durable record's
// chanstore.State (open, closing, closed) is coarser: Opening and Open store as open, every
// state from Draining to Challenging as closing.
type State uint8

// The channel states, named after what node does in them.
const (
	// Opening: a payer's new channel whose record is stored and whose deployment or greeting
	// of the payee is under way, or a stored one being checked on chain before it is paid on
	// again; a payee's channel before the payer announced it.
	Opening State = iota
	// Open: in use. A payer signs vouchers on it (once greeted, see InUse), a payee serves
	// against them.
	Open
	// Draining: a payer stopped taking answers on the channel (it is being replaced or
	// closed) and waits for those under way to end before it closes.
	Draining
	// ClosingCoop: a cooperative close is under way: the payer settles what is left,
	// proposes the close and submits it once the payee co-signed; a payee asked its payer to
	// close, or co-signed a close its payer is to submit.
	ClosingCoop
	// ClosingSolo: this side started an uncooperative close, which pays out after the
	// quarantine.
	ClosingSolo
	// Quarantine: the contract holds a started uncooperative close; it is finished once the
	// quarantine and the conditionals' window are over.
	Quarantine
	// Challenging: a payee challenged the older state its payer closed with.
	Challenging
	// Closing: the record is closing and no close is under way here: a close that stalled
	// (a crash, an absent counterparty) or a channel cut short; the watch resumes it.
	Closing
	// Closed: the contract paid both sides out, or a new channel's deployment failed.
	Closed
)

var stateNames = [...]string{"opening", "open", "draining", "closing-coop", "closing-solo",
	"quarantine", "challenging", "closing", "closed"}

// String returns the state's name, as the scripts print it.
func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// CloseMode says whether a close may go ahead without the counterparty.
type CloseMode uint8

// The close modes, as node's closeTogether, closeEither and closeAlone.
const (
	Together CloseMode = iota // cooperative only: fail if the counterparty does not co-sign
	Either                    // cooperative, else alone
	Alone                     // uncooperative at once
)

// String returns "together", "either" or "alone".
func (m CloseMode) String() string {
	switch m {
	case Together:
		return "together"
	case Either:
		return "either"
	case Alone:
		return "alone"
	}
	return fmt.Sprintf("mode(%d)", uint8(m))
}

// phase is what a close attempt waits for.
type phase uint8

const (
	phDrain   phase = iota // the answers under way to end
	phObserve              // the contract, as read on chain
	phSettle               // the payee's answer to the settling voucher
	phSigned               // the payee's countersignature over the proposed close
	phCoop                 // the cooperative close to land on chain
	phAsk                  // payee: the payer's answer to the request to close together
	phRefresh              // payee: the contract, read after the payer closed
	phSolo                 // the uncooperative close to land on chain
)

var phaseNames = [...]string{"drain", "observe", "settle", "countersign", "coop-close", "ask",
	"refresh", "solo-close"}

func (p phase) String() string {
	if int(p) < len(phaseNames) {
		return phaseNames[p]
	}
	return fmt.Sprintf("phase(%d)", uint8(p))
}
