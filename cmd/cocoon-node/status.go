package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cocoon-mesh/cocoon/node"
)

// status runs `cocoon-node status --node URL`: a running node's status, for humans.
func (m *Main) status(ctx context.Context, args []string) error {
	st, err := m.fetchStatus(ctx, "status", args)
	if err != nil {
		return err
	}
	return printStatus(m.Stdout, st)
}

// fetchStatus reads a running node's status, with command name's flags from args.
func (m *Main) fetchStatus(ctx context.Context, name string, args []string) (node.Status, error) {
	var st node.Status
	fs := m.flagSet(name)
	nodeURL := fs.String("node", "http://127.0.0.1:10000", "the running node's URL: a client's API, or a proxy's or worker's admin address")
	apiKey := fs.String("api-key", "", "the node's api_key or local token, if it wants one (default $COCOON_API_KEY, else the token in --data-dir)")
	dataDir := fs.String("data-dir", "", "the node's data directory, holding its local token (default: none sent)")
	if err := fs.Parse(args); err != nil {
		return st, err
	}
	if fs.NArg() > 0 {
		return st, usageError(fmt.Sprintf("unexpected argument %q", fs.Arg(0)))
	}
	c, err := newNodeClient(*nodeURL, *apiKey, *dataDir)
	if err != nil {
		return st, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err = c.call(ctx, http.MethodGet, "/cocoon/v1/status", &st)
	return st, err
}

// printStatus writes st as a few short sections.
func printStatus(w io.Writer, st node.Status) error {
	fmt.Fprintf(w, "%s %s on network %s, TEE %s, %d peers connected\n", st.Role, st.Peer, st.Network, st.TEE, st.Peers)
	for _, a := range st.Addrs {
		fmt.Fprintf(w, "  %s\n", a)
	}
	if st.Healthy != nil {
		fmt.Fprintf(w, "backend healthy: %t; requests running: %d\n", *st.Healthy, st.Active)
		if st.BackendError != "" {
			fmt.Fprintf(w, "  backend: %s\n", st.BackendError)
		}
	}
	if st.Role != node.RoleProxy {
		fmt.Fprintf(w, "\nProxies (%d):\n", len(st.Proxies))
		for _, p := range st.Proxies {
			fmt.Fprintf(w, "  %s\n", p)
		}
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if st.Role == node.RoleProxy {
		fmt.Fprintf(tw, "\nWorkers (%d):\nPEER\tMODELS\tRUNNING\tHEALTHY\tLATENCY (ms)\tFAILURES\tROUTED\tSCORE\n", len(st.Workers))
		for _, ws := range st.Workers {
			var models []string
			for _, o := range ws.Offers {
				models = append(models, fmt.Sprintf("%s (%d nanoTON/token)", o.Model, o.Price))
			}
			health := fmt.Sprint(ws.Healthy)
			if ws.EjectedUntil != nil {
				health = "ejected until " + ws.EjectedUntil.Format(time.TimeOnly)
			}
			fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%s\t%.1f\t%d\t%d\t%.3f\n", ws.Peer, strings.Join(models, ", "), ws.Running, ws.MaxActive,
				health, ws.AvgLatencyMs, ws.Failures, ws.Picks, ws.Score)
		}
		writeReputation(tw, st.Reputation)
	}
	if st.Wallet != "" {
		fmt.Fprintf(tw, "\nWallet %s; channels (%d):\nROLE\tPEER\tSTATE\tDEPOSIT (nanoTON)\tPAID\tOWED\n", st.Wallet, len(st.Channels))
		for _, c := range st.Channels {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\n", c.Role, c.Peer, c.State, c.Deposit, c.Paid, c.Owed)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(st.Refused) > 0 {
		fmt.Fprintf(w, "\nRefused (%d):\n", len(st.Refused))
		for _, r := range st.Refused {
			fmt.Fprintf(w, "  %s: %s\n    fix: %s\n", r.Peer, r.Reason, r.Fix)
		}
	}
	if len(st.AttestationCounts) > 0 {
		kinds := make([]string, 0, len(st.AttestationCounts))
		for k := range st.AttestationCounts {
			kinds = append(kinds, k)
		}
		slices.Sort(kinds)
		fmt.Fprint(w, "\nPeers' attestations:")
		for _, k := range kinds {
			fmt.Fprintf(w, " %s %d;", k, st.AttestationCounts[k])
		}
		fmt.Fprintln(w)
	}
	return nil
}

// writeReputation lists a proxy's book, lowest scores first, with the evidence behind each.
func writeReputation(tw io.Writer, rs []node.ReputationStatus) {
	if len(rs) == 0 {
		return
	}
	fmt.Fprintf(tw, "\nReputation (%d, lowest first):\nPEER\tSCORE\tGOOD\tBAD\tEVIDENCE\tSTANDING\tPLATFORM\n", len(rs))
	for _, r := range rs {
		kinds := slices.Sorted(maps.Keys(r.Evidence))
		ev := make([]string, len(kinds))
		for i, k := range kinds {
			ev[i] = fmt.Sprintf("%s %d", k, r.Evidence[k])
		}
		standing := "-"
		switch {
		case r.Banned:
			standing = "banned by the operator"
		case r.Pinned:
			standing = "pinned by the operator"
		case r.BannedUntil != nil:
			standing = "banned until " + r.BannedUntil.Format(time.DateTime) + " (failed audit)"
		}
		fmt.Fprintf(tw, "%s\t%.3f\t%.1f\t%.1f\t%s\t%s\t%s\n", r.Peer, r.Score, r.Good, r.Bad, strings.Join(ev, ", "), standing, cmp.Or(r.Platform, "-"))
	}
}
