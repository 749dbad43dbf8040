// Package audit is what a canary proves: an evidence record of one audited answer, which any
// node holding the pinned model can check offline, and the comparison of a worker's answer
// with the reference answer of that model.
//
// A proxy sends a worker canaries it cannot tell from client traffic (node's audit.go): sealed,
// paid, sized like the requests it relays. Each canary is sealed in a session of its own, whose
// key the record discloses (tee.Session.Disclose), so the record alone opens what the worker
// was sent and what it answered: the request as the worker received it, the answer's chunks as
// the worker sent them, and the worker's signed receipt over both hashes. The auditing proxy
// signs the whole record: it stands behind the accusation, and a false one is provably its own.
//
// Checking a record (Record.Open, then Compare against a reference run of the same model,
// which Verify does both of) needs no trust in the proxy: the receipt's signature binds the
// worker to the hashes, the hashes to the bytes in the record, and the worker's own answer
// chunks, which only its session key opens, bind the disclosed key to the worker's session.
//
// Decoding is deterministic (greedy, or seeded with the seed in the request), so the embedded
// engine, the echo backend and the simulated GPU answer bit for bit alike: an exact match is
// required (Threshold 1). For an external GPU server a token-agreement threshold (Token-DiFR
// style) may be set: the share of answer positions, counted in whitespace-separated words, on
// which the two agree. Words stand in for tokens because an auditor need not hold the
// server's tokenizer; say so when quoting a threshold.
package audit
