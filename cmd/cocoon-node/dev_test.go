package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cocoon-mesh/cocoon/internal/syncbuf"
)

// devRun is `cocoon-node dev` run in this process by a test.
type devRun struct {
	out  *syncbuf.Buffer
	api  string       // the client's OpenAI base URL
	stop func() error // what Ctrl-C does; returns what dev returned
}

// startDev runs `cocoon-node dev --api 127.0.0.1:0 --log-level error` with args, waits until
// it is up, and stops it when the test ends.
func startDev(t *testing.T, args ...string) *devRun {
	t.Helper()
	d := &devRun{out: &syncbuf.Buffer{}}
	m := &Main{Stdout: d.out, Stderr: d.out}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- m.Run(ctx, append([]string{"dev", "--api", "127.0.0.1:0", "--log-level", "error"}, args...))
	}()
	var once sync.Once
	var err error
	d.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(15 * time.Second):
				err = errors.New("dev did not stop")
			}
		})
		return err
	}
	t.Cleanup(func() { d.stop() })
	for deadline := time.Now().Add(40 * time.Second); !strings.Contains(d.out.String(), "Press Ctrl-C"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("dev did not come up:\n%s", d.out.String())
		}
	}
	d.api = regexp.MustCompile(`OpenAI base URL: (http://\S+)`).FindStringSubmatch(d.out.String())[1]
	return d
}

func TestDevStartsServesAndStops(t *testing.T) {
	d := startDev(t, "--token-delay", "0")
	out, base := d.out, d.api
	if !strings.Contains(out.String(), "curl -N "+base+"/completions") {
		t.Errorf("no ready-to-paste curl line:\n%s", out.String())
	}
	resp, err := http.Post(base+"/chat/completions", "application/json",
		strings.NewReader(`{"model":"gocomment","max_tokens":8,"messages":[{"role":"user","content":"dev works"}]}`))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("request to the dev network: %v %v", err, resp)
	}
	resp.Body.Close()
	// The operator commands reach the running client: its wallet on the dev ledger, funded
	// at start, and its channels to both proxies.
	node := strings.TrimSuffix(base, "/v1")
	dir := regexp.MustCompile(`--data-dir (\S+)`).FindStringSubmatch(out.String())
	if dir == nil {
		t.Fatalf("dev did not say where the client's local token is:\n%s", out.String())
	}
	t.Setenv("COCOON_API_KEY", "")
	if got, err := runCmd("wallet", "balance", "--node", node, "--data-dir", t.TempDir()); err == nil || !strings.Contains(err.Error(), "--data-dir must be the data dir") {
		t.Errorf("wallet balance --node with a data dir holding no token: %q %v", got, err)
	}
	if got, err := runCmd("wallet", "balance", "--node", node, "--data-dir", dir[1]); err != nil || !regexp.MustCompile(`^\S+ [1-9]\d* nanoTON \(\d+\.\d{9} TON\)\n$`).MatchString(got) {
		t.Errorf("wallet balance --node: %q %v", got, err)
	}
	if got, err := runCmd("wallet", "address", "--node", node, "--ledger", "http://x"); err == nil {
		t.Errorf("wallet address with --node and --ledger: %q, want a usage error", got)
	}
	if got, err := runCmd("channels", "list", "--node", node, "--data-dir", dir[1]); err != nil || strings.Count(got, "payer ") != 2 {
		t.Errorf("channels list --node:\n%s %v", got, err)
	}
	if err := d.stop(); err != nil {
		t.Fatalf("dev ended with %v", err)
	}
	if !strings.Contains(out.String(), "Stopped.") {
		t.Fatalf("no clean stop:\n%s", out.String())
	}
}

// dev refuses a network it cannot make, rather than starting defaults in its place.
func TestDevRefusesNoProxiesOrWorkers(t *testing.T) {
	for _, args := range [][]string{{"dev", "--proxies", "0"}, {"dev", "--workers", "0"}, {"dev", "--proxies", "-1"}} {
		out, err := runCmd(args...)
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), "at least one proxy and one worker") || strings.Contains(out, "Starting") {
			t.Errorf("%v: %v, output %q", args, err, out)
		}
	}
}

// dev with a model server that does not answer says so at once, instead of waiting out its
// start-up bound in silence.
func TestDevSaysItsBackendIsDown(t *testing.T) {
	start := time.Now()
	out, err := runCmd("dev", "--api", "127.0.0.1:0", "--backend", "http://127.0.0.1:1/v1", "--backend-model", "m", "--log-level", "error")
	if err == nil || !strings.Contains(err.Error(), "does not answer its health check") || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("dev with a dead backend: %v\n%s", err, out)
	}
	t.Logf("refused after %v: %v", time.Since(start).Round(time.Millisecond), err)
}

// dev prints its proxies' multiaddrs, its ledger and a command line that attaches a node
// started by hand; run as printed (the real binary, its own process), that worker joins the
// dev network, is paid on its ledger, and serves the dev client.
func TestDevAttachesAHandRunWorker(t *testing.T) {
	d := startDev(t, "--workers", "1")
	out := d.out
	cmdLine := regexp.MustCompile(`(?s)  (cocoon-node run --role worker .*?--listen \S+)\n`)
	var line []string
	for deadline := time.Now().Add(40 * time.Second); line == nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("dev printed no attach command:\n%s", out.String())
		}
		if mm := cmdLine.FindStringSubmatch(out.String()); mm != nil {
			line = strings.Fields(strings.ReplaceAll(mm[1], "\\\n", " "))
		}
	}
	if !strings.Contains(out.String(), "ledger:  http://127.0.0.1:") || !strings.Contains(out.String(), "proxies: /ip4/127.0.0.1/") {
		t.Errorf("dev did not print its proxies and ledger:\n%s", out.String())
	}
	api := d.api
	args := line[1:]
	for i, a := range args {
		if a == "./worker3" {
			args[i] = filepath.Join(t.TempDir(), "worker3")
		}
	}
	w := exec.Command(binaryPath, args...)
	var logs syncbuf.Buffer
	w.Stdout, w.Stderr = &logs, &logs
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { w.Process.Signal(os.Interrupt); w.Wait() }()
	var models string
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(models, `"cocoon_workers": 2`); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the hand-run worker never joined (models %s):\n%s", models, logs.String())
		}
		if resp, err := http.Get(api + "/models"); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			models = string(b)
		}
	}
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("the hand-run worker logged an error:\n%s", logs.String())
	}
}

// dev --dir keeps its nodes' keys private, as run does: the directory, even one that existed,
// and each node's datastore are readable by this user only.
func TestDevDirIsPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dev")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	startDev(t, "--dir", dir, "--proxies", "1", "--workers", "1").stop()
	for _, p := range []string{dir, filepath.Join(dir, "client"), filepath.Join(dir, "proxy1"), filepath.Join(dir, "worker1"), filepath.Join(dir, "ledger")} {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s: %v %v, want readable by its owner only", p, fi.Mode(), err)
		}
	}
}
