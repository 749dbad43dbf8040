package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tlb"
	"github.com/xssnick/tonutils-go/tvm/cell"

	"github.com/cocoon-mesh/cocoon/ton"
)

// Ledger is what a node needs from the chain that holds its channels' money.
type Ledger interface {
	// OpenChannel sends, from the payer's wallet, the channel's StateInit and an init_channel
	// body with value = deposit + fees; init must hash to channel and carry the contract's code.
	OpenChannel(ctx context.Context, from, channel *address.Address, init *tlb.StateInit, body *cell.Cell, value uint64) (Receipt, error)
	// Channel reads a channel's parsed storage and balance.
	Channel(ctx context.Context, channel *address.Address) (ChannelState, error)
	// Balance reads an account's balance in nanoTON (0 for an account that does not exist).
	Balance(ctx context.Context, addr *address.Address) (uint64, error)
	// CooperativeClose sends a cooperative_close body carrying both signatures as an external message.
	CooperativeClose(ctx context.Context, channel *address.Address, body *cell.Cell) (Receipt, error)
	// StartUncooperativeClose sends a start_uncooperative_close body from a wallet, with value.
	StartUncooperativeClose(ctx context.Context, from, channel *address.Address, body *cell.Cell, value uint64) (Receipt, error)
	// Challenge sends a challenge_quarantined_state body from a wallet, with value.
	Challenge(ctx context.Context, from, channel *address.Address, body *cell.Cell, value uint64) (Receipt, error)
	// FinishUncooperativeClose sends finish_uncooperative_close as an external message.
	FinishUncooperativeClose(ctx context.Context, channel *address.Address) (Receipt, error)
	// Now returns the ledger's current time, against which quarantine windows are measured.
	Now(ctx context.Context) (time.Time, error)
}

// ChannelState is a channel contract as the ledger holds it.
type ChannelState struct {
	Address *address.Address
	Storage ton.Storage
	Balance uint64 // nanoTON held by the contract account
}

// Receipt describes a message the contract accepted.
type Receipt struct {
	ExitCode int64    // the contract's exit code: 0 or 1
	GasUsed  int64    // compute gas the TVM metered
	Fee      uint64   // nanoTON charged for the gas (see the package doc)
	Payouts  []Payout // the out-messages applied, oldest first
}

// Payout is one value-carrying out-message the contract sent.
type Payout struct {
	To     *address.Address
	Amount uint64 // nanoTON credited to To
	Mode   uint8  // the send mode the contract used
}

// Errors returned by ledgers; they are wrapped with details.
var (
	ErrRefused           = errors.New("ledger: the contract refused the message")
	ErrNotFound          = errors.New("ledger: no account at this address")
	ErrNotChannel        = errors.New("ledger: the account's code is not the payment-channel contract")
	ErrBadStateInit      = errors.New("ledger: the StateInit does not match the channel address or contract code")
	ErrInsufficientFunds = errors.New("ledger: the wallet cannot pay the value and fees")
	ErrNotWallet         = errors.New("ledger: the sender is not a plain wallet")
	ErrBadAddress        = errors.New("ledger: not a standard address")
	ErrWrongOp           = errors.New("ledger: the message body is not the operation asked for")
	ErrActions           = errors.New("ledger: the contract's out-actions could not be applied")
	ErrCorrupt           = errors.New("ledger: corrupt account record")
	// ErrUnconfirmed means the message may have gone out and may still land: a caller must
	// not forget what it sent (a channel's deposit, say) on this error.
	ErrUnconfirmed = errors.New("ledger: the message may have been sent; its outcome is not known")
)

// ExitError reports that the contract refused a message, with its exit code.
type ExitError struct {
	Op       string // the operation, such as "cooperative close"
	ExitCode int64  // the contract's exit code (or 0/1 for an external message it did not accept)
	Accepted bool   // whether the contract called accept_message (external messages)
}

// Error names the operation and the contract's exit code.
func (e *ExitError) Error() string {
	if e.ExitCode == 0 || e.ExitCode == 1 {
		return fmt.Sprintf("ledger: contract did not accept %s (exit code %d)", e.Op, e.ExitCode)
	}
	return fmt.Sprintf("ledger: contract refused %s: exit code %d", e.Op, e.ExitCode)
}

// Unwrap makes errors.Is(err, ErrRefused) true.
func (e *ExitError) Unwrap() error { return ErrRefused }
