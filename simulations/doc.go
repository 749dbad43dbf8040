// Package simulations runs the real network, hundreds or thousands of nodes in one process, in
// virtual time, under the churn and the attacks a scenario file describes, and measures it.
//
// Every participant is a real node (node.New: its roles, protocols, routing, sealing, receipts
// and payments) on a real libp2p host whose QUIC runs over go-libp2p's simulated network
// (github.com/marcopolo/simnet, the links of x/simlibp2p) with the scenario's latency and
// bandwidth between regions; in-memory datastores, one embedded ledger (the real channel
// contract in a TVM), the simulated TEE, and simulated GPUs (backend.SimGPU) for workers. A
// run happens inside a testing/synctest bubble, so time is virtual: it moves whenever every
// goroutine of the run waits, and ten minutes of a network pass in seconds to minutes.
// Adversaries are modes of the node's own code (node.Faults) or of its GPU.
//
// The parts, in the order a run uses them:
//
//   - scenario.go: the scenario file (TOML, scenarios/*.toml; keys in scenarios/README.md).
//   - plan.go, traffic.go: the timeline drawn from the seed before anything starts (who is
//     where and misbehaves, who joins, leaves or crashes when, every request).
//   - net.go, members.go: the simulated internet and the nodes on it.
//   - run.go, events.go: the run, its events, and what the nodes' tracers (node.Tracer) say.
//   - measure.go, scalars.go: samples and headline figures (package report writes them).
//
// A run is a test, since synctest runs only under go test:
//
//	go test ./simulations -run TestScenario -timeout 0 -args -scenario scenarios/steady.toml -seeds 5
//
// and a sweep runs many as separate processes (sweep.sh, cmd/sweep). RESULTS.md holds the
// baseline runs and the scale table.
// Package scaled (cmd/scaled) models reputation and routing alone at 100,000 workers, without nodes.
package simulations
