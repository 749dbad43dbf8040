// Package api serves a node's HTTP faces. Serve starts, for a started node, the servers its
// Config asks for: a client's API at APIAddr (the OpenAI face, package openai, and the operator
// endpoints, package admin, behind the API key) and, on any role, the operator endpoints alone
// at AdminAddr. Every server sits behind package httpguard (Host and Origin checks, deadlines,
// the API key and local token, a cap on connections). The node itself serves no HTTP; the
// caller's loop (cmd/cocoon-node run, node/localnet) is:
//
//	n, err := node.New(cfg, deps) // checks the [http] settings and the addresses too
//	err = n.Start()
//	srv, err := api.Serve(n, log) // an address that cannot be bound: a *node.ConfigError
//	// srv.APIAddr(), srv.AdminAddr(): where they listen (the ready file)
//	srv.Close() // channel commands under way end; answers under way get two seconds
//	n.Close()
//
// A face for another API (Anthropic Messages, Ollama) is a package beside openai of the same
// shape: built from the node, it adds its routes to a mux and serves over the node's exported
// API (node.Infer, node.Prices, node.RequestID); clientHandler mounts it.
package api
