package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"text/tabwriter"

	leveldb "github.com/ipfs/go-ds-leveldb"

	"github.com/cocoon-mesh/cocoon/ton/chanstore"
)

// channels runs `cocoon-node channels list`: every payment channel the node's datastore holds,
// as it was last made durable. A running node holds its datastore; its status
// (/cocoon/v1/status on a client) shows the same figures live, with what is owed.
func (m *Main) channels(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "list" {
		return usageError("usage: cocoon-node channels list [--data-dir DIR] (opening, topping up and closing by command are not built yet)")
	}
	fs := flag.NewFlagSet("channels list", flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	dataDir := fs.String("data-dir", "", "the node's data directory (default ~/.cocoon); the node must be stopped")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	dir := *dataDir
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return usageError("no home directory: give --data-dir")
		}
		dir = filepath.Join(home, ".cocoon")
	}
	ds, err := leveldb.NewDatastore(filepath.Join(dir, "datastore"), &leveldb.Options{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("open datastore in %s: %w (stop the node using this data dir first)", dir, err)
	}
	defer ds.Close()
	recs, err := chanstore.New(ds).List(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROLE\tCHANNEL\tADDRESS\tDEPOSIT (nanoTON)\tPAID\tLEFT\tSEQNO\tUPDATED")
	for _, r := range recs {
		addr := "?"
		if p, err := r.Params(); err == nil {
			if a, err := p.Address(); err == nil {
				addr = a.String()
			}
		}
		fmt.Fprintf(tw, "%s\t%x\t%s\t%d\t%d\t%d\t%d\t%s\n", r.Role, r.ChannelID[:], addr, r.Limit, r.Voucher.Sent,
			r.Limit-min(r.Limit, r.Voucher.Sent), r.Voucher.Seqno, r.Updated.Format("2006-01-02 15:04:05"))
	}
	if len(recs) == 0 {
		fmt.Fprintln(tw, "(no channels)")
	}
	return tw.Flush()
}
