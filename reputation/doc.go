// Package reputation is what a node has seen of each peer, as a score: a pure core in the
// style of routing and ton/channel. Events go in (Book.Record), scores come out (Book.Score),
// time is passed in and decay is computed from the time elapsed; no goroutines, no I/O, no
// clock, no global state. The caller guards a Book with its own mutex.
//
// The score is a beta reputation: (good + 1) / (good + bad + 2), so a peer never seen scores
// one half. Good is the paid, receipted volume the peer served (each answer weighs its payment
// over Config.FullAnswer, at most one), decaying with Config.GoodHalfLife and capped at
// Config.GoodCap, so that trust grows only with paid work and no volume buys a clean slate.
// Bad is the sum of each fault's weight (Config.Weights), decaying with Config.BadHalfLife,
// longer than the good one: negative evidence sticks.
//
// A failed audit is proof, not a fault among others: the peer answered a canary otherwise
// than the pinned model does. It bans the peer for Config.BanFor (score 0), and with it the
// physical platform the peer is bound to (Book.Bind, from the PPID in its TDX quote), which
// also holds at most Config.PerPlatform identities: a fresh identity on a banned machine buys
// no clean slate. The operator's own lists (Config.Pin, Config.Ban) win over all evidence.
package reputation
