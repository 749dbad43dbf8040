// Package scaled is a scaled model of reputation and routing at internet scale: 100,000
// workers and 20 proxies for 24 virtual hours in minutes, where package simulations runs real
// nodes on a simulated network and stops at about a thousand.
//
// It is a pure discrete-event model: one priority queue of events in virtual time (from
// Epoch), one seeded math/rand/v2 source (Config.Seed; a second one, from the same seed, only
// samples scores for measurement), no goroutines, no network, no libp2p host. What it steps
// are the real cores: each proxy has its own routing.Table and reputation.Book, and the model
// calls them as node's proxy does (Upsert on each advert, Expire on a ticker, Pick with the
// book's Score as Trust, Begin, End, Record) and never re-implements their logic.
//
// The workers are synthetic. Peer IDs are strings ("w0000042"): peer.ID is a string type and
// the cores only compare and hash them, so no key is generated. Each worker serves one of
// Config.Models models, advertises Config.MaxActive slots every Config.AdvertEvery to
// Config.Reach random proxies (one by default: each of 20 proxies then knows about 5,000 of
// the 100,000, since Pick's cost is linear in the table's size, see RESULTS.md), has a median
// service time (log-normal across workers) and a platform ID, one per worker but for the
// Sybil group. Behaviours (fractions by flag): honest; always wrong (served and paid, caught
// only by an audit); staller (stops mid-answer: Stalled, not retried); capacity liar
// (answers busy whenever routed: CapacityLie, retried); covert flash (honest until
// Config.FlashAfter, then always wrong); churn (honest, online and offline spells; an attempt
// on a worker that left fails early, one it was answering fails mid-stream); and Config.Sybils
// always-wrong identities on one platform that advertise to every proxy. A proxy admits a
// worker on its advert only once Book.Bind accepts it (at most PerPlatform per platform, none
// on a banned one) and unbinds it when Expire drops it.
//
// Requests arrive as a Poisson process (Config.Rate) at a random proxy, for a random model. A
// share Config.AuditRate of them are the proxy's canaries (audits): indistinguishable to the
// worker, they prove a wrong answer (AuditFailed, which bans the worker and its platform) or
// a right one (AuditPassed), and are not counted as client requests. An answer ends with
// End(ok) and the evidence of its outcome (Served with a full answer's payment, whether right
// or wrong, when not audited). A failure before the answer started fails over as node's proxy
// does: a new Pick excluding the workers tried, up to Config.MaxAttempts attempts.
//
// # CSV
//
// One row per virtual minute (minute m covers [m, m+1) minutes), counting client requests
// only unless said otherwise:
//
//   - minute: the minute's index, from 0.
//   - requests: client requests that arrived.
//   - served_right, served_wrong: answers delivered right, and wrong (undetected wrong answers
//     a client got).
//   - failed: requests that ended without an answer (every attempt failed, an answer stopped
//     mid-stream, or no eligible worker); no_worker: those of them for which Pick found none,
//     at the first attempt or at a failover.
//   - audits: canaries sent (requests of their own, not in requests); audits_failed: wrong
//     answers they caught.
//   - att_CLASS: attempts sent to workers of each class (honest, wrong, staller, liar, flash,
//     churn, sybil), failovers included.
//   - srv_CLASS: answers delivered by workers of each class.
//   - honest_p10: the 10th percentile of the scores of right-answering workers (honest and
//     churn) at the proxies holding evidence of them, Config.Samples sampled per proxy at the
//     end of the minute; empty when none.
//   - honest_zero_sampled: how many of that sample score zero (banned); must be 0.
//
// The command (simulations/cmd/scaled) writes the CSV and prints Summary.
package scaled
