// Package p2phost builds the libp2p host a Cocoon mesh node runs on: its identity
// (LoadOrCreateIdentity keeps the key in the node's datastore), transports (TCP first, then
// QUIC), security (Noise, with a group-commit writer under yamux that sends the frames written
// meanwhile in one message: batchwrite.go), resource limits that log what they refuse, and a
// connection manager. A node takes the host it is given (node.Deps.Host) and never closes it:
// the host outlives the node, and belongs to whoever built it (cmd/cocoon-node, localnet, a test).
//
//	key, _ := p2phost.LoadOrCreateIdentity(ctx, ds)
//	h, _ := p2phost.New(p2phost.DefaultConfig(), key, log)
//	defer h.Close()
//	n, _ := node.New(cfg, node.Deps{Host: h, ...})
package p2phost
