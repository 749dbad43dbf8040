// Package localnet starts a complete Cocoon mesh on one machine: proxies, workers and a
// client, each its own libp2p host on real loopback sockets and its own on-disk datastore, in
// one process, paying each other over the embedded development ledger. `cocoon-node dev`,
// `cocoon-node bench` and the node tests use it.
//
// Workers run the backend Options name: NewBackend (cmd/cocoon-node dev passes the embedded
// model), an OpenAI-compatible server at BackendURL, or, when neither is given, the echo test
// backend (package backend/echo), which repeats the prompt and is labelled everywhere as a
// test fixture, never as a language model. The caller's loop:
//
//	nw, err := localnet.Start(ctx, localnet.Options{Proxies: 2, Workers: 2})
//	defer nw.Close()           // every node, host, face and backend it started
//	url := nw.ClientURL()      // the client's OpenAI API, ".../v1"
//	held, why := localnet.Agreed(nw.Client.Channels(), nw.Proxies[0].Channels()) // books agree?
//	nw.AddWorker(ctx, faults)  // more nodes join the running network
package localnet
