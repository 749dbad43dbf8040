// Command cocoon-node is the one binary of Cocoon mesh: it runs a client, proxy or worker node
// (run), a whole local network (dev), benchmarks (bench), writes a default config (init), and
// serves the echo test backend (echo-backend).
//
// It stays thin: main calls Main.Run, each subcommand is a file that parses flags and a config
// file into a node.Config, p2phost.Config and a backend, and hands them to the node package.
package main
