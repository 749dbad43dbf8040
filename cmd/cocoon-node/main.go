package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m := &Main{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}
	err := m.Run(ctx, os.Args[1:])
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case ctx.Err() != nil && errors.Is(err, context.Canceled): // Ctrl-C before the command was up
		fmt.Fprintln(os.Stderr, "cocoon-node: stopped")
		os.Exit(130)
	case errors.As(err, new(usageError)):
		if err.Error() != "" { // empty: the usage was printed already
			fmt.Fprintln(os.Stderr, "cocoon-node:", err)
			fmt.Fprintln(os.Stderr, "Run 'cocoon-node help' for usage.")
		}
		os.Exit(2)
	case errors.Is(err, errWrongAnswer):
		fmt.Fprintln(os.Stderr, "cocoon-node:", err)
		os.Exit(3)
	default:
		fmt.Fprintln(os.Stderr, "cocoon-node:", err)
		os.Exit(1)
	}
}

// Main runs subcommands; its fields let tests capture output.
type Main struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
}

// usageError is a mistake in the command line.
type usageError string

func (e usageError) Error() string { return string(e) }

// Run dispatches to a subcommand; no subcommand means run.
func (m *Main) Run(ctx context.Context, args []string) error {
	if len(args) == 0 { // not a node on every interface by surprise: say what there is
		fmt.Fprint(m.Stderr, usage)
		return usageError("")
	}
	cmd, named := "run", false
	switch {
	case args[0] == "--version" || args[0] == "-version":
		cmd = "version"
	case args[0] != "" && args[0][0] != '-':
		cmd, args, named = args[0], args[1:], true
	}
	if !named && len(args) > 0 && isHelp(args[0]) {
		fmt.Fprint(m.Stdout, usage) // the program's help; 'help run' or 'run -h' gives run's flags
		return nil
	}
	switch cmd {
	case "run":
		return m.runNode(ctx, args)
	case "init":
		return m.initConfig(args)
	case "dev":
		return m.dev(ctx, args)
	case "bench":
		return m.bench(ctx, args)
	case "echo-backend":
		return m.echoBackend(ctx, args)
	case "ledger":
		return m.ledgerServer(ctx, args)
	case "wallet":
		return m.wallet(ctx, args)
	case "channels":
		return m.channels(ctx, args)
	case "verify-receipt":
		return m.verifyReceipt(args)
	case "verify-evidence":
		return m.verifyEvidence(ctx, args)
	case "id":
		return m.id(ctx, args)
	case "status":
		return m.status(ctx, args)
	case "reputation":
		return m.reputation(ctx, args)
	case "version":
		fmt.Fprintln(m.Stdout, buildVersion())
		return nil
	case "help":
		return m.help(args)
	}
	return usageError(fmt.Sprintf("unknown command %q", cmd))
}

const usage = `cocoon-node: a node of Cocoon mesh, the peer-to-peer network for confidential AI inference.

Usage:
  cocoon-node dev              start a whole local network (2 proxies, 2 workers, 1 client)
  cocoon-node [run] [flags]    run one node (client, proxy or worker)
  cocoon-node init [flags]     write a commented default config file
  cocoon-node bench [flags]    measure the mesh path against a direct call and two HTTP hops
  cocoon-node verify-receipt FILE
                               check an answer's receipt offline (worker and proxy signatures)
  cocoon-node verify-evidence FILE
                               re-check a failed audit's evidence offline against the model
  cocoon-node echo-backend     serve the echo test backend (repeats prompts; not a model)
  cocoon-node ledger [flags]   serve a development network's shared ledger (NOT real TON)
  cocoon-node wallet address|balance [--node URL]
                               the node's TON wallet (key in its datastore) and its balance
                               (from the running node at URL, or the stopped node's datastore)
  cocoon-node channels list [--node URL]
                               the node's payment channels: deposit, paid, state, seqno (from
                               the running node at URL, or the stopped node's datastore)
  cocoon-node channels open|topup|close PEER --node URL
                               open, top up (move to a new deposit) or close the channel with PEER
  cocoon-node status [--node URL]
                               a running node's status, for humans (its JSON: GET /cocoon/v1/status)
  cocoon-node reputation [--node URL]
                               a running proxy's scores of its workers, the evidence behind
                               them, its audits and the reputation reports it judged
  cocoon-node id [--data-dir DIR] [--create]
                               a node's peer ID, from its datastore (the node must be stopped)
  cocoon-node version          the module version and VCS revision of this binary
  cocoon-node help [COMMAND]   this text, or a command's usage and flags with their defaults

With --node, wallet and channels send the node's local token, read from --data-dir DIR (default
~/.cocoon; the node writes DIR/local-token when it starts), or --api-key KEY / $COCOON_API_KEY.

Run 'cocoon-node help COMMAND' (or 'cocoon-node COMMAND -h') for a command's flags.
`
