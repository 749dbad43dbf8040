package main

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cocoon-mesh/cocoon/internal/syncbuf"
)

// interruptAfter starts the binary with args, sends it Ctrl-C once its output holds marker
// (at once if marker is empty), and returns its exit code and output.
func interruptAfter(t *testing.T, marker string, args ...string) (int, string) {
	t.Helper()
	var out syncbuf.Buffer
	cmd := exec.Command(binaryPath, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for deadline := time.Now().Add(60 * time.Second); !strings.Contains(out.String(), marker); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("%v never printed %q:\n%s", args, marker, out.String())
		}
	}
	cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-done:
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		return cmd.ProcessState.ExitCode(), out.String()
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("%v did not stop on Ctrl-C:\n%s", args, out.String())
	}
	return 0, ""
}

// Ctrl-C is a clean stop wherever it falls: exit 0 (or 130 before the command was up), no
// ERROR lines, no "context canceled"; a node's ready file goes with it; bench prints what it
// measured so far.
func TestCtrlCIsACleanStop(t *testing.T) {
	clean := func(what string, code int, out string, codes ...int) {
		t.Helper()
		ok := false
		for _, c := range codes {
			ok = ok || c == code
		}
		if !ok || strings.Contains(out, "level=ERROR") || strings.Contains(out, "context canceled") {
			t.Errorf("%s: exit %d (want %v), output:\n%s", what, code, codes, out)
		}
	}
	code, out := interruptAfter(t, "Starting a local Cocoon mesh", "dev", "--api", "127.0.0.1:0", "--dir", t.TempDir())
	clean("dev, during start-up", code, out, 0, 130)

	dir := t.TempDir()
	ready := filepath.Join(dir, "ready.json")
	code, out = interruptAfter(t, "node running", "run", "--role", "client", "--local", "--network", "ctrl-c", "--data-dir", dir,
		"--api", "127.0.0.1:0", "--listen", "/ip4/127.0.0.1/tcp/0", "--ready-file", ready, "--log-level", "info")
	clean("run", code, out, 0)
	if _, err := os.Stat(ready); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the ready file outlived the node: %v", err)
	}

	code, out = interruptAfter(t, "req/s", "bench", "--modes", "direct,http2hop", "--concurrency", "1,4,16", "--stream", "off",
		"--requests", "5000", "--rounds", "1", "--warmup", "10")
	clean("bench, mid-way", code, out, 130)
	if !strings.Contains(out, "Stopped: the results above") || !strings.Contains(out, "direct") {
		t.Errorf("bench printed nothing of what it measured:\n%s", out)
	}
}

// A fatal start-up error is one line saying what to change, exit 1, and no ERROR lines of
// the parts that were stopping with it.
func TestFatalStartUpErrorIsOneLine(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	code, _, stderr := runBinary(t, "run", "--role", "client", "--api", l.Addr().String(), "--data-dir", t.TempDir(), "--listen", "/ip4/127.0.0.1/tcp/0")
	if code != 1 || !strings.Contains(stderr, "cocoon-node: node: config api_addr = "+l.Addr().String()+": cannot listen") || strings.Contains(stderr, "level=ERROR") {
		t.Errorf("exit %d, stderr:\n%s", code, stderr)
	}
}
