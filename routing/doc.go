// Package routing is the proxy's choice of worker: given what the proxy
// knows about the workers (their latest capacity adverts, how many requests
// it has in flight to each, how fast and how reliably they answered), it
// decides which worker should run the next inference request.
//
// The package is a pure core in the style of etcd's raft: it starts no
// goroutines, does no I/O, never reads the clock and keeps no global
// state. The caller steps it and passes the time in, which keeps every
// decision reproducible in tests. A [Table] is not safe for concurrent use;
// the caller guards it with its own mutex. A typical proxy loop is:
//
//   - on every capacity advert from a worker: [Table.Upsert];
//   - on connection loss: [Table.Remove];
//   - on a ticker (say every TTL/3): [Table.Expire];
//   - per client request: [Table.Pick], then [Table.Begin] just before
//     sending to Decision.Worker and [Table.End] when the answer (or the
//     failure) comes back; on failure retry with the failed worker added to
//     Request.Exclude, or walk Decision.Fallbacks.
//
// # The rule
//
// Candidates are the workers with an offer matching the requested model
// (the full ID "name@revision:hash", its "name@revision" prefix, or its
// "name" prefix) that the request does not exclude. Those above the price
// cap, ejected, unhealthy, or already running MaxActive requests are not
// eligible. Among the eligible, workers that failed recently (a decayed
// failure count of at least one half) rank after all others. Then the worker
// with the lowest load wins, where load is the number of requests running on
// it times its time-decayed average latency: an estimate of how long a new
// request would queue behind the ones already there. Ties are broken by
// lower average latency, then fewer recent failures, then lower price, then
// round robin (least recently picked, then lowest peer ID), so idle equal
// workers share the traffic. The other eligible workers, in the same order,
// are the fallbacks.
//
// # Reputation
//
// A request may carry each worker's reputation (Request.Trust, a score in [0, 1] such as
// package reputation's). Then a worker below Config.MinTrust is not eligible; load is divided
// by trust, so a trusted worker takes a little more queue before a doubtful one is preferred;
// among otherwise tied workers the higher trust tier (trust rounded down to a tenth) ranks
// first, so honest workers of one tier still share by round robin; and one pick in every
// 1/Config.Explore goes to the least recently picked eligible worker that is not failing,
// so newcomers and workers that recovered earn the evidence their reputation needs.
// Decision.Reason says when reputation decided, and how many it excluded. A request may also
// say which workers are on probation (Request.Probation: new identities): while any candidate
// is not, one on probation takes at most Config.ProbationActive requests at once.
//
// Failures never count as latency: a worker that fails at once must not look
// fast. Config.EjectAfter failures in a row eject a worker for Config.EjectFor,
// doubled on each ejection until it succeeds again (at most Config.EjectMax);
// back from one, its next failure ejects it again. A worker never measured is
// assumed as fast as the fastest measured candidate, so a newcomer gets its
// share of traffic to be measured (COCOON's rule starves it: an unmeasured
// worker there loses every tie to measured ones).
package routing
