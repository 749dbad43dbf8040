// Package ton is the money side of cocoon: prices and payment channels on TON.
//
// Channels use the classic async payment-channel contract of ton-blockchain/payment-channels
// (its compiled code is embedded, see Code and CodeHashHex), with our own TL-B types written from
// the FunC parser as shared/PAYMENTS.md records them. That contract was chosen because a
// payment needs only the payer's signature on its own semichannel (seqno+1, higher cumulative
// sent), so a voucher is small and cheap to check; the payee can close alone with just the
// channel parameters and its latest voucher, in two messages; and it needs no dictionaries,
// Merkle proofs or global registries (unlike the v4 contract).
//
// The channel logic (Payer, Payee, Credit) is a pure state machine: no goroutines, no network,
// no clock. A payer signs each voucher with Payer.Pay (or PayTo) and a payee checks it with
// Payee.Accept; Credit bounds what a payee lets out ahead of payment. The lifecycle around
// them (open, rotate, close together or alone, challenge, finish, write off) is package
// ton/channel's stepped core, which node drives; ton/ledger moves the money, ton/chanstore
// keeps each channel's newest state durably.
//
// Every message this package builds is executed against the real contract code in tonutils-go's
// TVM by the tests.
package ton
