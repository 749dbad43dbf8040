package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	leveldb "github.com/ipfs/go-ds-leveldb"

	"github.com/cocoon-mesh/cocoon/ton/ledger"
)

// ledgerReady is what `cocoon-node ledger --ready-file` holds.
type ledgerReady struct {
	URL string `json:"url"`
}

// ledgerServer serves an embedded DEVELOPMENT ledger: the real payment-channel contract run in
// a pure-Go TVM over accounts kept in a leveldb datastore in --data-dir. Its money is NOT real
// TON: anyone who can reach it may mint nanoTON through its faucet (/v1/fund), so it belongs on
// loopback. The separate processes of a development network share it through ledger.NewRemote.
func (m *Main) ledgerServer(ctx context.Context, args []string) error {
	fs := m.flagSet("ledger")
	listen := fs.String("listen", "127.0.0.1:10050", "address to serve on; keep it on loopback: the faucet mints for anyone")
	dataDir := fs.String("data-dir", "", "directory for the ledger's accounts (required)")
	readyFile := fs.String("ready-file", "", "write {\"url\": ...} as JSON here once the ledger serves")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError(fmt.Sprintf("unexpected argument %q", fs.Arg(0)))
	}
	if *dataDir == "" {
		return usageError("ledger: --data-dir is required")
	}
	if err := os.MkdirAll(*dataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	ds, err := leveldb.NewDatastore(filepath.Join(*dataDir, "ledger"), nil)
	if err != nil {
		return fmt.Errorf("open datastore in %s: %w (is another ledger using this data dir?)", *dataDir, err)
	}
	defer ds.Close()
	l, err := ledger.NewEmbedded(ctx, ds, ledger.Options{})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	if host, _, err := net.SplitHostPort(ln.Addr().String()); err == nil {
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			fmt.Fprintf(m.Stderr, "WARNING: the development ledger listens on %s, beyond loopback: anyone who reaches it can mint money and move channels\n", ln.Addr())
		}
	}
	srv := &http.Server{Handler: ledger.NewServer(l), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute}
	url := "http://" + ln.Addr().String()
	fmt.Fprintf(m.Stdout, "embedded development ledger (NOT real TON) at %s\n", url)
	if *readyFile != "" {
		if err := writeLedgerReady(*readyFile, url); err != nil {
			ln.Close()
			return err
		}
		defer os.Remove(*readyFile) // a script must not find a stopped ledger ready
	}
	done, served := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-ctx.Done():
		case <-served:
			return
		}
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			srv.Close()
		}
	}()
	err = srv.Serve(ln)
	close(served)
	<-done // in-flight requests are over before the datastore closes
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// writeLedgerReady writes the ledger's ready file.
func writeLedgerReady(path, url string) error { return writeJSONFile(path, ledgerReady{URL: url}) }
