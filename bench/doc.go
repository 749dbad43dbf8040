// Package bench measures the overhead the Cocoon mesh adds to an inference request.
//
// A request through the mesh travels HTTP client -> client node's OpenAI API -> libp2p stream
// -> proxy node -> libp2p stream -> worker node -> HTTP to the model backend, and back the
// same way. To see what that path costs, one run of the bench starts, in one process and on
// real loopback sockets:
//
//   - mesh: a local network (package node/localnet: proxies, workers and a client, each its
//     own libp2p host) whose workers use the echo test backend with no token delay;
//   - direct: the same echo backend on its own port, called directly;
//   - http2hop: two plain net/http/httputil.ReverseProxy hops in front of that same direct
//     backend, the yardstick for "a request that crosses two intermediaries".
//
// A closed-loop load generator drives each target at several concurrencies, streaming and
// not, and verifies every answer (status 200, the echoed prompt, a final "data: [DONE]" for
// streams). For each scenario it reports requests per second, latency p50/p99, time to first
// token p50/p99 (streams; the whole latency otherwise), the process CPU spent per request,
// and failures. Scenarios of one (stream, concurrency) pair run back to back, mesh first,
// so the three targets meet the same machine state; the report then compares the mesh with
// the baselines and marks the project's targets as PASS or MISS.
//
// The echo backend is a test fixture that repeats the prompt word by word; it is not a
// language model, so the numbers measure the transport path only, never generation.
//
// MeasureIdleProxy measures the resident memory of an idle proxy, run as its own OS process
// (the real cocoon-node binary), with a given number of connected workers.
//
// cmd/cocoon-node's bench subcommand is a thin flag parser over this package.
package bench
