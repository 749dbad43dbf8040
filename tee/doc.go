// Package tee is attestation: what a node proves about the machine it runs on, and how a peer
// checks that proof.
//
// A Provider produces Evidence over 64 bytes of report data: a real Intel TDX quote
// (NewTDXProvider) or, on machines without TDX, simulated evidence (NewSimulated) that every
// verifier refuses unless it was built with Policy.AllowSimulated. The report data binds the
// evidence to a peer: ReportData hashes a domain tag, the peer's libp2p public key and the HPKE
// key that prompts are sealed to, so a quote cannot be replayed by another peer.
//
// A Verifier checks evidence: the TDX quote's signatures and certificate chain up to Intel's
// root, the TCB level from Intel's collateral (fetched through a Collateral cache that persists
// in the datastore and works offline while it is valid), then the Policy: report-data binding,
// allowed measurements, minimum TCB status, no debug TDs. Every rejection names its reason.
//
// Claims.Platform names the physical machine behind verified evidence: for TDX "ppid:" and
// the hex PPID (Intel's platform ID) from the SGX extensions of the quote's PCK leaf
// certificate, which Intel's chain vouches for; a quote whose certificate has none is refused
// (ErrNoPPID). Simulated evidence says "simulated:" and a value the simulated TEE chose
// (SimulatedPlatform), which nothing vouches for. It lets a caller cap how many identities
// one machine may run, and make a ban stick to the machine rather than to a key it can replace.
//
// Sealing (Seal, Open) encrypts a request to an attested worker's HPKE key with the hybrid
// post-quantum KEM ML-KEM-768+X25519, and derives the key the worker's answer comes back under.
// Receipts are the signed record of one answer: the worker signs it (Receipt.SignWorker), the
// proxy countersigns it (Receipt.Countersign), and anyone checks both offline (Receipt.Verify).
//
// The policy checks are pure: no goroutines, no network, time passed in. Fetching collateral
// and reading /dev/tdx_guest are the package's only I/O.
package tee
