package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cocoon-mesh/cocoon/node"
)

// auditRate is the share of answers the proxy of TestWrongWorkerIsCaughtByAudit audits: high,
// so the test is short. The bound follows from it: a canary is due every 1/rate answers and
// goes to the worker that served the most since its last one, so of two workers the wrong one
// is audited by the second canary at the latest, 2/rate answers in, and banned by it.
const auditRate = 0.2

// A worker that answers with another model than it advertises (well-formed answers, wrong
// text) is caught by the proxy's canaries within the bound above, banned and routed around;
// the evidence the proxy writes re-checks offline with verify-evidence (exit 3: it holds),
// and the honest worker passes every audit it gets.
func TestWrongWorkerIsCaughtByAudit(t *testing.T) {
	if testing.Short() {
		t.Skip("starts several processes")
	}
	ref := start(t, "reference", "echo-backend", "--listen", "127.0.0.1:0", "--token-delay", "1ms")
	refModel := "echo-test@v1:none=echo-test"
	a := startAdvNet(t, map[string][]string{"wrong": {"--fault-wrong-answer"}},
		fmt.Sprintf("[audit]\nrate = %v\nreference = %q\nreference_models = [%q]\n", auditRate, ref.url, refModel))
	a.waitFor("the client sees both workers", func() bool { return a.modelWorkers() == 2 })
	bound := int(2/auditRate) + 4 // + the requests in flight while the canary runs
	failed, byWrong := a.ask(40, 2, func(i int) bool { return i%2 == 0 })
	if len(failed) > 0 {
		t.Fatalf("%d requests failed: %v", len(failed), failed)
	}
	a.waitFor("the proxy bans the wrong worker", func() bool {
		return strings.Contains(a.proxy.logs.String(), "worker failed an audit")
	})
	if len(byWrong) > bound {
		t.Errorf("the wrong worker served %d answers before its ban, over the bound %d", len(byWrong), bound)
	}
	if _, after := a.ask(20, 2, func(i int) bool { return i%2 == 1 }); len(after) > 0 {
		t.Errorf("the banned worker still served %d answers: %v", len(after), after)
	}
	var st struct {
		Audits     *node.AuditStatus       `json:"audits"`
		Reputation []node.ReputationStatus `json:"reputation"`
	}
	a.status(a.proxy, &st)
	if st.Audits == nil || st.Audits.Failed < 1 || st.Audits.Passed < 1 || len(st.Audits.Evidence) != st.Audits.Failed {
		t.Fatalf("the proxy's audits: %+v\n%s", st.Audits, logLines(a.proxy.logs.String(), "audit"))
	}
	for _, r := range st.Reputation {
		banned := r.BannedUntil != nil
		if banned != (r.Peer == a.rogues["wrong"].ready.Peer) {
			t.Errorf("peer %s banned %t (the wrong worker is %s)", r.Peer, banned, a.rogues["wrong"].ready.Peer)
		}
	}
	// The proof went out on the reputation topic, and the client, which cannot re-run it,
	// checked its signatures and took it in.
	a.waitFor("the client takes in the proxy's proof", func() bool {
		var cst struct {
			Reports *node.RumorStatus `json:"reports"`
		}
		a.status(a.client, &cst)
		return cst.Reports != nil && cst.Reports.Accepted >= 1
	})
	out, err := exec.Command(binaryPath, "reputation", "--node", a.proxy.ready.Admin).CombinedOutput()
	if err != nil || !strings.Contains(string(out), a.rogues["wrong"].ready.Peer) || !strings.Contains(string(out), "(failed audit)") ||
		!strings.Contains(string(out), "Audits:") || !strings.Contains(string(out), "simulated:") {
		t.Errorf("cocoon-node reputation: %v\n%s", err, out)
	}
	checkEvidence(t, st.Audits.Evidence[0], ref.url, refModel, a.rogues["wrong"].ready.Peer)
	t.Logf("the wrong worker served %d of the first 40 answers (bound %d); audits: %d sent, %d passed, %d failed; canaries took %d tokens of %d served",
		len(byWrong), bound, st.Audits.Sent, st.Audits.Passed, st.Audits.Failed, st.Audits.CanaryTokens, st.Audits.ServedTokens)
}

// checkEvidence runs verify-evidence on path: it must hold (exit 3) against the reference and
// name worker; the same record altered proves nothing (exit 1).
func checkEvidence(t *testing.T, path, refURL, refModel, worker string) {
	t.Helper()
	out, err := exec.Command(binaryPath, "verify-evidence", "--reference", refURL, "--reference-model", refModel, path).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 || !strings.Contains(string(out), worker) || !strings.Contains(string(out), "match false") {
		t.Fatalf("verify-evidence on the record: %v\n%s", err, out)
	}
	p, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p[len(p)/2] ^= 1
	bad := filepath.Join(t.TempDir(), "altered.evidence")
	if err := os.WriteFile(bad, p, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = exec.Command(binaryPath, "verify-evidence", "--reference", refURL, "--reference-model", refModel, bad).CombinedOutput()
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("verify-evidence on an altered record: %v\n%s", err, out)
	}
}
