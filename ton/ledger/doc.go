// Package ledger is where channel money lives: the accounts that hold the payment channels'
// deposits and the wallets they pay out to, behind one small Ledger interface that a node uses
// to open, inspect and close channels.
//
// Two ledgers implement it: Lite, real TON through liteservers and the node's wallet (V5R1 or
// Highload V3; its messages are checked offline against the real wallet and channel code, but
// it has never run against a live network), and Embedded, for development, tests and
// simulations. Embedded runs the real contract code
// (ton.Code) in tonutils-go's pure-Go TVM at an injected clock and keeps every account in a
// go-datastore, so development money follows the real contract's rules: its signatures,
// seqnos, quarantine windows and payouts, and its exit codes when it refuses.
//
// What Embedded simplifies compared with real TON:
//   - Gas: a message costs gas_used × GasPrice nanoTON (400 by default, the basechain price).
//     Internal messages are paid by the sending wallet on top of the value, so the contract
//     receives exactly the value; external messages are paid from the contract's balance
//     before its payouts, as the contract's excess_fee expects. An internal message's gas limit
//     is min(1,000,000, value / GasPrice), as if the value bought the gas. There are no
//     storage, forwarding, import or action fees.
//   - Refusals: a message the contract refuses (exit code other than 0 or 1, or an external
//     message it did not accept) changes nothing and costs nothing; real TON would charge gas
//     for an accepted message and bounce an internal message's value minus fees.
//   - Messages: only plain wallets send internal messages, and the contract sees a fixed sender
//     address (the emulator's; the contract never reads it). Out-messages are not executed at
//     their destination: their value is credited to the destination account (a new plain
//     wallet if none exists), their body ignored, and nothing bounces.
//   - Actions: only send_msg with modes 0, 1, 2, 128 and their sums (the contract uses 2 and
//     130) are applied; +1 changes nothing since there are no forwarding fees, +2 skips a
//     message the balance cannot pay, +128 carries the whole remaining balance. Any other
//     action or mode fails the message with ErrActions and changes nothing.
//   - Fund credits an account out of nowhere (a faucet), without running any code.
//   - Time is the injected clock's, in whole seconds, with no blocks or logical time.
//   - The counter of executed messages (Messages) lives in memory only.
//
// Nodes of a development network that run as separate processes share one Embedded through
// `cocoon-node ledger`, which serves it with NewServer (JSON over HTTP, bodies of at most
// MaxRequestBytes, decoded strictly); Remote is the Ledger a node uses against it. Anyone who
// can reach that server can mint development money with Fund: it listens on loopback.
package ledger
