package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// runBinary runs the built cocoon-node with args and returns its exit code and output.
func runBinary(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := exec.Command(binaryPath, args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatal(err)
	}
	return code, out.String(), errOut.String()
}

// With no arguments the binary says what it can do and exits 2, instead of starting a client
// node on every interface with a new identity in ~/.cocoon.
func TestNoArgumentsPrintsHelp(t *testing.T) {
	code, stdout, stderr := runBinary(t)
	if code != 2 || !strings.Contains(stderr, "cocoon-node dev") || !strings.Contains(stderr, "cocoon-node help [COMMAND]") {
		t.Fatalf("exit %d, stdout %q, stderr:\n%s", code, stdout, stderr)
	}
	if strings.Contains(stderr, "node running") || strings.Contains(stderr, "context canceled") {
		t.Fatalf("it started something:\n%s", stderr)
	}
}

// 'help CMD' and 'CMD -h' show that command's usage and every flag with its default, and
// exit 0; the general help is on -h and 'help'.
func TestHelpShowsEachCommandsFlags(t *testing.T) {
	for _, c := range []struct {
		name string
		flag string // one of its flags, as PrintDefaults names it
	}{
		{"run", "-allow-unattested"}, {"dev", "-proxies int"}, {"init", "-role string"}, {"bench", "-concurrency string"},
		{"ledger", "-data-dir string"}, {"echo-backend", "-listen string"}, {"wallet", "-ledger string"},
		{"channels", "-force"}, {"verify-receipt", ""},
	} {
		code, stdout, stderr := runBinary(t, "help", c.name)
		if code != 0 || !strings.HasPrefix(stdout, "Usage: cocoon-node "+c.name) || !strings.Contains(stdout, c.flag) {
			t.Errorf("help %s: exit %d, stdout:\n%s\nstderr:\n%s", c.name, code, stdout, stderr)
		}
		if c.name == "dev" && !strings.Contains(stdout, `(default 2)`) {
			t.Errorf("help dev shows no defaults:\n%s", stdout)
		}
		code, _, stderr = runBinary(t, c.name, "-h")
		if code != 0 || !strings.Contains(stderr, "Usage: cocoon-node "+c.name) || !strings.Contains(stderr, c.flag) {
			t.Errorf("%s -h: exit %d, stderr:\n%s", c.name, code, stderr)
		}
	}
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}} {
		if code, stdout, _ := runBinary(t, args...); code != 0 || !strings.Contains(stdout, "Usage:\n  cocoon-node dev") {
			t.Errorf("%v: exit %d, stdout:\n%s", args, code, stdout)
		}
	}
	if code, _, stderr := runBinary(t, "help", "nope"); code != 2 || !strings.Contains(stderr, `help "nope": no such command`) {
		t.Errorf("help nope: exit %d, stderr:\n%s", code, stderr)
	}
}

// 'version' and '--version' print the module version and, built in a checkout, the revision.
func TestVersion(t *testing.T) {
	want := "cocoon-node "
	// Go stamps the revision in a clone (as CI's); not in a git worktree, whose .git is a file.
	rev, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if fi, serr := os.Stat("../../.git"); err == nil && serr == nil && fi.IsDir() {
		want = ", revision " + strings.TrimSpace(string(rev))
	} else {
		t.Logf("not a clone with git here (%v, %v): only the module version is checked", err, serr)
	}
	for _, arg := range []string{"version", "--version"} {
		code, stdout, stderr := runBinary(t, arg)
		if code != 0 || !strings.HasPrefix(stdout, "cocoon-node ") || !strings.Contains(stdout, want) || !strings.Contains(stdout, "go1.") {
			t.Errorf("%s: exit %d, stdout %q (want %q in it), stderr %q", arg, code, stdout, want, stderr)
		}
	}
}
