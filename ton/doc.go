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
// The channel logic (Payer, Payee) is a pure state machine: no goroutines, no network, no clock.
// Every message this package builds is executed against the real contract code in tonutils-go's
// TVM by the tests.
package ton
