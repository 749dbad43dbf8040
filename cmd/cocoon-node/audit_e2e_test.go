package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cocoon-mesh/cocoon/audit"
	"github.com/cocoon-mesh/cocoon/node"
	"github.com/cocoon-mesh/cocoon/reputation"
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

// A peer on the reputation topic that slanders an honest worker with complaints, forges a
// report and replays one changes nothing at the proxy (a separate process): the forged one is
// refused, the replay and those past the reporter's rate ignored, and the complaints of a
// reporter the proxy never dealt with weigh nothing: the worker's score stays and it serves.
func TestSlanderAndForgedReportsChangeNothing(t *testing.T) {
	a := startAdvNet(t, nil, "")
	if failed, _ := a.ask(10, 2, func(int) bool { return false }); len(failed) > 0 {
		t.Fatalf("requests failed: %v", failed)
	}
	honest, _ := peer.Decode(a.honest.ready.Peer)
	before := a.score(honest)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	key, _, _ := crypto.GenerateEd25519Key(nil)
	topic := attackerOn(ctx, t, "/cocoon/"+a.network+"/reputation/1.0.0", key, a.proxy)
	complaint := func(at time.Time) []byte {
		r := audit.Report{Subject: honest, Kind: reputation.Stalled, At: at}
		if err := r.Sign(key); err != nil {
			t.Fatal(err)
		}
		return r.Marshal()
	}
	forged := complaint(time.Now())
	forged[len(forged)-2] ^= 1
	first := complaint(time.Now())
	msgs := [][]byte{forged, first, first} // the second `first` is a replay
	for i := range 20 {
		msgs = append(msgs, complaint(time.Now().Add(time.Duration(i+1)*time.Millisecond)))
	}
	for _, m := range msgs {
		if err := topic.Publish(ctx, m); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	var st struct {
		Reports *node.RumorStatus `json:"reports"`
	}
	a.waitFor("the proxy judges the reports", func() bool {
		a.status(a.proxy, &st)
		return st.Reports != nil && st.Reports.Accepted+st.Reports.Rejected+st.Reports.Ignored >= len(msgs)-1
	})
	if r := st.Reports; r.Rejected < 1 || r.Ignored < 1 || r.Accepted > 3 || r.Applied != 0 {
		t.Errorf("the proxy's judgement of %d reports (1 forged, 1 replay, 21 complaints at a rate of 3 at once): %+v", len(msgs), r)
	}
	if !strings.Contains(a.proxy.logs.String(), "reputation report refused") {
		t.Error("the proxy never said it refused the forged report")
	}
	if after := a.score(honest); after < before-0.01 { // its good evidence fades a little meanwhile
		t.Errorf("the slandered worker's score fell from %.3f to %.3f", before, after)
	}
	if failed, _ := a.ask(6, 2, func(int) bool { return false }); len(failed) > 0 {
		t.Errorf("requests failed after the slander: %v", failed)
	}
	t.Logf("reports at the proxy: %+v; the worker's score %.3f before, %.3f after", st.Reports, before, a.score(honest))
}

// score is worker w's score at a's proxy.
func (a *advNet) score(w peer.ID) float64 {
	var st struct {
		Workers []node.WorkerStatus `json:"workers"`
	}
	a.status(a.proxy, &st)
	for _, ws := range st.Workers {
		if ws.Peer == w.String() {
			return ws.Score
		}
	}
	return -1
}
