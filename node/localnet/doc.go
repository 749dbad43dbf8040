// Package localnet starts a complete Cocoon mesh on one machine: proxies, workers and a
// client, each its own libp2p host on real loopback sockets, in one process. `cocoon-node dev`,
// `cocoon-node bench` and the node tests use it.
//
// Until the embedded model lands, workers without a backend URL use the echo test backend
// (package backend/echo), which repeats the prompt and is labelled everywhere as a test
// fixture, never as a language model.
package localnet
