package main

import (
	"context"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cocoon-mesh/cocoon/node/p2phost"
)

// id runs `cocoon-node id`: the peer ID of the node whose data directory is --data-dir, read
// from (or, with --create, made in) its datastore, so that a script can name a node's
// multiaddr (…/p2p/ID) before starting it, as the README's hand-run network does.
func (m *Main) id(ctx context.Context, args []string) error {
	fs := m.flagSet("id")
	dataDir := fs.String("data-dir", "", "the node's data directory (default ~/.cocoon); the node must not be running")
	create := fs.Bool("create", false, "make the node's data directory and identity if --data-dir holds none yet")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError(fmt.Sprintf("unexpected argument %q", fs.Arg(0)))
	}
	ds, err := openNodeStore(*dataDir, *create)
	if err != nil {
		return err
	}
	defer ds.Close()
	key, err := p2phost.LoadOrCreateIdentity(ctx, ds)
	if err != nil {
		return err
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return err
	}
	fmt.Fprintln(m.Stdout, id.String())
	return nil
}
