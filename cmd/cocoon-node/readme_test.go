package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// readmeBlock is the shell block of README.md that follows marker.
func readmeBlock(t *testing.T, marker string) string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), marker)
	if !ok {
		t.Fatalf("README.md has no %q", marker)
	}
	_, rest, ok = strings.Cut(rest, "```sh\n")
	block, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatalf("README.md: no sh block after %q", marker)
	}
	return block
}

// The README's "Running nodes by hand" works as written: its lines, run by bash with the real
// binary on PATH, start a proxy, a worker and a client as separate processes on loopback, and
// the curl line in it gets an answer.
func TestReadmeHandRunNetwork(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("no curl on this machine: .ci/run installs it (apt-get install curl)")
	}
	block := readmeBlock(t, "<!-- hand-run:")
	// The block ends by stopping its nodes; the test does that itself, to see them stop.
	block = strings.Replace(block, "kill %1 %2 %3", "echo; echo DONE", 1)
	dir := t.TempDir()
	script := "set -e\n" + block + "\nkill -INT %1 %2 %3\nwait\n"
	var out bytes.Buffer
	cmd := exec.Command("bash", "-c", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(binaryPath)+":"+os.Getenv("PATH"), "HOME="+dir)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // the nodes go with the test, whatever happens
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	var err error
	select {
	case err = <-done:
	case <-time.After(90 * time.Second):
		t.Fatalf("the README's commands did not finish:\n%s", out.String())
	}
	got := out.String()
	if err != nil || !strings.Contains(got, `"object":"chat.completion"`) || !strings.Contains(got, "DONE") {
		t.Fatalf("the README's commands: %v\n%s", err, got)
	}
	if strings.Contains(got, "level=ERROR") {
		t.Errorf("an ERROR line:\n%s", got)
	}
}
