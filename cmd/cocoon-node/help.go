package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime/debug"
	"strings"
)

// command is a subcommand as help describes it.
type command struct {
	name     string
	synopsis string // what follows the name on the usage line
	summary  string // what it does, a few lines
}

// commands are the subcommands, in the order help lists them.
var commands = []command{
	{"dev", "[flags]", "Starts a whole local network in this process: proxies, workers and a client, each its own\n" +
		"libp2p peer on loopback, paying each other on an embedded development ledger (NOT real TON)."},
	{"run", "[--config FILE] [flags]", "Runs one node: a client, a proxy or a worker, as the config file or --role says.\n" +
		"Flags override the file; the file overrides the defaults. 'cocoon-node init' writes a file."},
	{"init", "[--role ROLE] [--out FILE]", "Writes a commented default config file for a client, proxy or worker."},
	{"bench", "[flags]", "Measures the mesh path against a direct call to the backend and two plain HTTP hops."},
	{"status", "[--node URL]", "Prints a running node's status for humans: its peers, workers, channels, and the peers it\n" +
		"refuses and why (the same as GET /cocoon/v1/status, which is JSON)."},
	{"reputation", "[--node URL]", "Lists a running proxy's scores of its workers (lowest first), the evidence behind each,\n" +
		"its audits and the reputation reports it judged (from GET /cocoon/v1/status)."},
	{"verify-receipt", "FILE", "Checks an answer's receipt offline: the worker's signature and the proxy's countersignature.\n" +
		"FILE holds the X-Cocoon-Receipt header or the cocoon_receipt field; '-' reads standard input."},
	{"verify-evidence", "[--reference embedded|URL] FILE", "Re-checks a failed audit's evidence record offline: the proxy's and the worker's signatures,\n" +
		"that the record's key opens the request and answer, and the answer against a run of the model.\n" +
		"Exits 0 if the worker's answer matches after all, 3 if the evidence holds."},
	{"echo-backend", "[--listen ADDR]", "Serves the echo test backend: it repeats prompts word by word and is not a model."},
	{"ledger", "--data-dir DIR [--listen ADDR]", "Serves a development network's shared ledger (NOT real TON; its faucet mints money for\n" +
		"any caller) for the nodes of a development network."},
	{"wallet", "address|balance [flags]", "The node's TON wallet (its key lives in the node's datastore) and its balance, from the\n" +
		"running node at --node URL or from the stopped node's datastore."},
	{"channels", "list|open|topup|close [PEER] [flags]", "The node's payment channels: list them (deposit, paid, state, seqno), or open, top up\n" +
		"(move to a new deposit) or close the channel with PEER on the running node at --node URL."},
	{"id", "[--data-dir DIR] [--create]", "Prints the peer ID of the node whose data directory is DIR, from its datastore (the node\n" +
		"must be stopped; --create makes the identity first), to name its multiaddr .../p2p/ID before it runs."},
	{"version", "", "Prints the module version and the VCS revision this binary was built from."},
	{"help", "[COMMAND]", "Prints this text, or a command's usage and flags with their defaults."},
}

// lookup is the command called name.
func lookup(name string) (command, bool) {
	for _, c := range commands {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

// flagSet makes subcommand name's flag set: -h prints its usage line, summary and flags with
// their defaults, to m.Stderr (to m.Stdout under 'cocoon-node help NAME', see Run).
func (m *Main) flagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	fs.Usage = func() { commandUsage(fs.Output(), name, fs) }
	return fs
}

// commandUsage writes name's usage line and summary, then fs's flags if it has any.
func commandUsage(w io.Writer, name string, fs *flag.FlagSet) {
	c, _ := lookup(strings.Fields(name)[0]) // "wallet balance": wallet's usage, as the flags are alike
	fmt.Fprintf(w, "Usage: %s\n\n%s\n", strings.TrimSpace("cocoon-node "+c.name+" "+c.synopsis), c.summary)
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		fmt.Fprintf(w, "\nFlags:\n")
		fs.PrintDefaults()
	}
}

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool {
	return arg == "-h" || arg == "--help" || arg == "-help" || arg == "help"
}

// help runs 'cocoon-node help [COMMAND]'.
func (m *Main) help(args []string) error {
	if len(args) == 0 {
		fmt.Fprint(m.Stdout, usage)
		return nil
	}
	c, ok := lookup(args[0])
	if !ok {
		return usageError(fmt.Sprintf("help %q: no such command; 'cocoon-node help' lists them", args[0]))
	}
	if c.name == "help" || c.name == "version" { // no flags
		commandUsage(m.Stdout, c.name, flag.NewFlagSet(c.name, flag.ContinueOnError))
		return nil
	}
	help := *m // the command's -h, to standard output
	help.Stderr = m.Stdout
	err := help.Run(context.Background(), []string{c.name, "-h"})
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

// buildVersion says which build this binary is: the module's version ("(devel)" when built
// in a checkout) and the VCS revision, its time, and "+dirty" for a modified tree.
func buildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "cocoon-node (no build information)"
	}
	s := map[string]string{}
	for _, kv := range bi.Settings {
		s[kv.Key] = kv.Value
	}
	v := "cocoon-node " + bi.Main.Version // a pseudo-version naming the revision, built in a checkout
	if rev := s["vcs.revision"]; rev != "" {
		v += ", revision " + rev
		if s["vcs.modified"] == "true" {
			v += " with local changes"
		}
		if t := s["vcs.time"]; t != "" {
			v += " (" + t + ")"
		}
	} else {
		v += " (no VCS revision: built outside a checkout, or with -buildvcs=false)"
	}
	return v + ", " + bi.GoVersion
}
