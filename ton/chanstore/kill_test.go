package chanstore

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// killDirEnv, when set, makes TestKilledAfterPut the child: it Puts ever higher vouchers into
// the leveldb directory it names and reports each one on stdout once Put has returned.
const killDirEnv = "CHANSTORE_KILL_DIR"

// TestKilledAfterPut re-executes the test binary as a child that Puts in a loop, kills it with
// SIGKILL as soon as it reports a Put returned (while it is already writing the next one), then
// reopens the store: the reported record, or a later one, must be there. A kill loses the process
// but not the OS page cache, so this shows "durable when Put returns" only as far as a process
// crash can; a power cut relies on the fsync, see the package doc.
func TestKilledAfterPut(t *testing.T) {
	if dir := os.Getenv(killDirEnv); dir != "" {
		killChild(t, dir)
		return
	}
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	for round := range 3 {
		dir := t.TempDir()
		cmd := exec.Command(os.Args[0], "-test.run=^TestKilledAfterPut$", "-test.count=1")
		cmd.Env = append(os.Environ(), killDirEnv+"="+dir)
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill at a different point each round.
		killAt := uint64(1 + round*7)
		var acked uint64
		sc := bufio.NewScanner(out)
		for acked < killAt && sc.Scan() {
			if s, ok := strings.CutPrefix(sc.Text(), "put "); ok {
				acked, _ = strconv.ParseUint(s, 10, 64)
			}
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		err = cmd.Wait()
		if acked < killAt {
			t.Fatalf("child stopped after %d Puts: %v", acked, err)
		}
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("child was not killed by SIGKILL: %v", err)
		}

		d := openLevel(t, dir)
		got, err := New(d).Get(context.Background(), testParams(1).ChannelID, Payer)
		d.Close()
		if err != nil {
			t.Fatalf("round %d: record lost after kill: %v", round, err)
		}
		if got.Voucher.Seqno < acked || !got.VerifyVoucher(got.Voucher) {
			t.Fatalf("round %d: found seqno %d after Put of %d returned", round, got.Voucher.Seqno, acked)
		}
		t.Logf("round %d: killed after Put %d returned, found seqno %d", round, acked, got.Voucher.Seqno)
	}
}

// killChild Puts seqno 1, 2, ... until it is killed, printing "put N" after each Put returns.
func killChild(t *testing.T, dir string) {
	d := openLevel(t, dir)
	s := New(d)
	for seqno := uint64(1); ; seqno++ {
		if err := s.Put(context.Background(), testRecord(t, 1, Payer, seqno, seqno*100)); err != nil {
			t.Fatal(err)
		}
		fmt.Printf("put %d\n", seqno)
	}
}
