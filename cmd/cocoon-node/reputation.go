package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/cocoon-mesh/cocoon/node"
)

// reputation lists a running proxy's book of its workers, its audits and the reputation
// reports it judged.
func (m *Main) reputation(ctx context.Context, args []string) error {
	st, err := m.fetchStatus(ctx, "reputation", args)
	if err != nil {
		return err
	}
	return printReputation(m.Stdout, st)
}

// printReputation writes the reputation parts of st.
func printReputation(w io.Writer, st node.Status) error {
	if st.Role != node.RoleProxy {
		fmt.Fprintf(w, "%s %s keeps no book of workers (a proxy does)\n", st.Role, st.Peer)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	writeReputation(tw, st.Reputation)
	if err := tw.Flush(); err != nil {
		return err
	}
	if a := st.Audits; a != nil {
		share := 0.0
		if a.ServedTokens > 0 {
			share = float64(a.CanaryTokens) / float64(a.ServedTokens)
		}
		fmt.Fprintf(w, "\nAudits: %d canaries sent, %d passed, %d failed, %d could not run; canaries took %.2f%% of the tokens served\n",
			a.Sent, a.Passed, a.Failed, a.Errors, 100*share)
		for _, e := range a.Evidence {
			fmt.Fprintf(w, "  evidence %s (cocoon-node verify-evidence FILE re-checks it)\n", e)
		}
	} else if st.Role == node.RoleProxy {
		fmt.Fprintln(w, "\nAudits: none (no audit.reference set)")
	}
	if r := st.Reports; r != nil {
		fmt.Fprintf(w, "Reputation reports: %d published; of those received %d accepted, %d refused, %d ignored; %d moved a score here\n",
			r.Published, r.Accepted, r.Rejected, r.Ignored, r.Applied)
	}
	return nil
}
