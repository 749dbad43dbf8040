package node

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cocoon-mesh/cocoon/audit"
	"github.com/cocoon-mesh/cocoon/node/backend"
	"github.com/cocoon-mesh/cocoon/reputation"
	"github.com/cocoon-mesh/cocoon/tee"
)

// Audits: a proxy holding the pinned model (Deps.Reference) sends its workers canaries, a
// share of its traffic (AuditConfig.Rate), and checks each answer against its own run of the
// model (package audit). A canary goes to the worker that served the most answers since its
// last one; it is sealed, paid and sized like the requests the proxy relays (canary.go), so a
// worker cannot tell it from client traffic but by its content, which is drawn from a corpus
// and carries a decoding seed (a worker that served only seeded requests honestly would be
// the way to game it: the risk is stated in README). A match is an AuditPassed event; a
// mismatch is AuditFailed, which bans the worker and its machine, and a signed evidence
// record that anyone holding the model re-checks with `cocoon-node verify-evidence FILE`.

// AuditConfig is how a proxy audits its workers.
type AuditConfig struct {
	// Rate is the canaries sent per client answer served (default 0.02: one in 50).
	Rate float64
	// Threshold is the agreement a worker's answer needs (audit.Agreement): 1, the default,
	// requires the exact text, as a deterministic engine gives; lower only for an external
	// GPU server whose runs differ slightly.
	Threshold float64
	// Dir is where evidence records of failed audits are written ("": kept in the log only).
	Dir string
	// Off sends no canaries even with a reference.
	Off bool
}

func (a *AuditConfig) fill(d AuditConfig) {
	fill(&a.Rate, d.Rate)
	fill(&a.Threshold, d.Threshold)
}

func (a *AuditConfig) validate() error {
	if !(a.Rate > 0 && a.Rate <= 1) {
		return &ConfigError{"audit.rate", a.Rate, "want canaries per answer served in (0, 1] (default 0.02); audit.off = true sends none"}
	}
	if !(a.Threshold > 0 && a.Threshold <= 1) {
		return &ConfigError{"audit.threshold", a.Threshold, "want an agreement in (0, 1]: 1 requires the exact answer"}
	}
	return nil
}

// AuditStatus counts a proxy's audits, for status and metrics.
type AuditStatus struct {
	Sent   int `json:"sent"`
	Passed int `json:"passed"`
	Failed int `json:"failed"`
	Errors int `json:"errors"` // canaries that could not run (the worker failed, or our reference)
	// CanaryTokens and ServedTokens are the completion tokens canaries and client answers took:
	// what audits cost, as a share of the traffic.
	CanaryTokens uint64   `json:"canary_tokens"`
	ServedTokens uint64   `json:"served_tokens"`
	Evidence     []string `json:"evidence,omitempty"` // records written, newest last (at most 16)
}

// auditor is a proxy's audit state; mu guards it.
type auditor struct {
	n   *Node
	ref backend.Backend

	mu       sync.Mutex
	credit   float64
	since    map[peer.ID]servedSince
	shapes   [64]shape // recent client requests' shapes, a ring
	nshapes  int
	busy     bool
	sessions map[string]*tee.Session // by worker sealing key: one "client" session each
	ids      uint64
	idPrefix string
	stats    AuditStatus
}

// servedSince is what a worker served since its last audit.
type servedSince struct {
	answers int
	model   string
}

// shape is what a canary copies of a client request: how big it was sealed, whether it
// streamed, and its token limit.
type shape struct {
	size      int
	stream    bool
	maxTokens uint32
}

func newAuditor(n *Node, ref backend.Backend) *auditor {
	if ref == nil || n.cfg.Role != RoleProxy || n.cfg.Audit.Off {
		return nil
	}
	return &auditor{n: n, ref: ref, since: map[peer.ID]servedSince{}, sessions: map[string]*tee.Session{},
		idPrefix: fmt.Sprintf("%012x", n.rand.IntN(1<<48)), ids: uint64(n.rand.IntN(1 << 20))}
}

// served notes a client answer worker w served, and sends a canary when one is due.
func (a *auditor) served(rl *relay, completion uint32) {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	w := rl.d.Worker
	s := a.since[w]
	s.answers++
	s.model = rl.d.Offer.Model
	a.since[w] = s
	a.shapes[a.nshapes%len(a.shapes)] = shape{size: len(rl.body), stream: rl.h.Stream, maxTokens: rl.h.MaxTokens}
	a.nshapes++
	a.stats.ServedTokens += uint64(completion)
	a.credit += a.n.cfg.Audit.Rate
	if a.credit < 1 || a.busy {
		return
	}
	target, most := peer.ID(""), 0
	for p, s := range a.since {
		if s.answers > most {
			target, most = p, s.answers
		}
	}
	spec := a.since[target]
	delete(a.since, target)
	a.credit--
	a.busy = true
	sh := a.shapes[a.n.rand.IntN(min(a.nshapes, len(a.shapes)))]
	if !a.n.life.Go(func() { a.run(target, spec.model, sh) }) {
		a.busy = false
	}
}

// run sends one canary to w and records what it shows.
func (a *auditor) run(w peer.ID, model string, sh shape) {
	defer func() { a.mu.Lock(); a.busy = false; a.mu.Unlock() }()
	if a.excluded(w) {
		return // routed no traffic: nothing to check (a canary now would only cost)
	}
	ctx, cancel := context.WithTimeout(a.n.ctx, a.n.cfg.RequestTimeout)
	defer cancel()
	rec, tokens, err := a.canary(ctx, w, model, sh)
	var v audit.Verdict
	if err == nil {
		v, err = audit.Verify(ctx, rec, a.ref, a.n.cfg.Audit.Threshold)
	}
	a.mu.Lock()
	a.stats.Sent++
	a.stats.CanaryTokens += tokens
	switch {
	case err != nil:
		a.stats.Errors++
	case v.Match:
		a.stats.Passed++
	default:
		a.stats.Failed++
	}
	a.mu.Unlock()
	if err != nil {
		if a.n.ctx.Err() == nil {
			a.n.log.Info("audit could not run; the worker's next answers count toward another", "worker", w.String(), "err", err)
		}
		return
	}
	a.judge(w, rec, v)
}

// excluded reports whether w is below the routing floor (banned, or failing).
func (a *auditor) excluded(w peer.ID) bool {
	ro := a.n.workers
	if ro.cfg.Reputation.Off {
		return false
	}
	ro.mu.Lock()
	defer ro.mu.Unlock()
	return ro.rep.Score(a.n.now(), w) < ro.cfg.Reputation.MinTrust
}

// judge records the verdict in the reputation book, and writes the evidence of a failure.
func (a *auditor) judge(w peer.ID, rec *audit.Record, v audit.Verdict) {
	if v.Match {
		a.n.workers.note(w, reputation.Event{Kind: reputation.AuditPassed}, nil)
		return
	}
	why := fmt.Errorf("answered a canary otherwise than the pinned model (agreement %.3f, %s)", v.Agreement, describeMismatch(v))
	a.n.workers.note(w, reputation.Event{Kind: reputation.AuditFailed}, why)
	a.n.rumors.publish(w, reputation.AuditFailed, rec)
	path, err := a.keep(w, rec, a.n.now())
	switch {
	case err != nil:
		a.n.log.Warn("worker failed an audit: banned with its machine; the evidence could not be written", "worker", w.String(), "why", why, "err", err)
	case path == "":
		a.n.log.Warn("worker failed an audit: banned with its machine (set audit.dir to keep the evidence)", "worker", w.String(), "why", why)
	default:
		a.n.log.Warn("worker failed an audit: banned with its machine", "worker", w.String(), "why", why,
			"evidence", path, "check", "cocoon-node verify-evidence "+path)
	}
}

// describeMismatch says in a few words how the answers differ.
func describeMismatch(v audit.Verdict) string {
	if v.Unreadable != "" {
		return "its answer is not OpenAI JSON: " + v.Unreadable
	}
	want, got := strings.Join(v.Want, " | "), strings.Join(v.Got, " | ")
	return fmt.Sprintf("want %.60q, got %.60q", want, got)
}

// keep writes rec to the evidence directory and returns its path ("" with none set).
func (a *auditor) keep(w peer.ID, rec *audit.Record, now time.Time) (string, error) {
	dir := a.n.cfg.Audit.Dir
	if dir == "" {
		return "", nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	path := filepath.Join(dir, fmt.Sprintf("%s-%s.evidence", now.UTC().Format("20060102T150405.000"), w.String()))
	if err := os.WriteFile(path, rec.Marshal(), 0o600); err != nil {
		return "", err
	}
	a.mu.Lock()
	a.stats.Evidence = append(a.stats.Evidence, path)
	if len(a.stats.Evidence) > 16 {
		a.stats.Evidence = a.stats.Evidence[1:]
	}
	a.mu.Unlock()
	return path, nil
}

// status is a copy of the counts (nil without audits).
func (a *auditor) status() *AuditStatus {
	if a == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.stats
	s.Evidence = append([]string(nil), s.Evidence...)
	return &s
}

// canaryPrompts are what canaries ask: questions a client of a general model might send.
var canaryPrompts = strings.Split(strings.TrimSpace(`
Explain in two sentences how a payment channel lets two parties trade without a blockchain fee for each payment.
Write a short poem about a lighthouse keeper who counts ships.
What are three common causes of a slow database query, and how would you check for each?
Summarize the plot of a heist story in which nothing goes according to plan.
Give me a recipe for a quick vegetable soup with what is usually in a kitchen.
How does a hash table handle two keys that land in the same bucket?
Translate into plain English: the quarterly results exceeded guidance on all key metrics.
List five questions to ask before adopting a new programming language at work.
Describe the water cycle for a ten year old.
What is the difference between latency and throughput? Use an example with a highway.
Write a polite email declining a meeting invitation and proposing another time.
Why do leaves change color in autumn?
Suggest names for a coffee shop that also sells books.
Explain what a Kademlia distance is and why XOR is used.
Draft a tweet announcing a small open source release with a bug fix.
What should I pack for a two day hike in the mountains in spring?
`), "\n")

// canaryBody is a chat request for a canary: a prompt from the corpus, cut or padded with
// more of it to size plaintext bytes, with the token limit and stream flag of the request it
// mimics and a decoding seed, so that the worker's answer and the reference's are the same run.
func canaryBody(pick func(int) int, model string, size int, sh shape, maxTokens uint32) []byte {
	words := strings.Fields(canaryPrompts[pick(len(canaryPrompts))])
	req := map[string]any{"model": model, "stream": sh.stream, "max_tokens": maxTokens, "temperature": 0, "seed": pick(1 << 30)}
	var b []byte
	for n := len(words); n >= min(3, len(words)); n-- { // as short as the request it mimics
		prompt := strings.Join(words[:n], " ")
		req["messages"] = []map[string]string{{"role": "user", "content": prompt}}
		if b, _ = json.Marshal(req); len(b) <= size {
			break
		}
	}
	prompt := strings.Join(words, " ")
	var ctx strings.Builder
	const frame = len(`Context: \n\n`) // as JSON writes it
	for fill := strings.Fields(canaryPrompts[pick(len(canaryPrompts))]); ; {
		if len(fill) == 0 {
			fill = strings.Fields(canaryPrompts[pick(len(canaryPrompts))])
		}
		if len(b)+ctx.Len()+frame+len(fill[0])+1 > size {
			break
		}
		ctx.WriteString(fill[0])
		ctx.WriteByte(' ')
		fill = fill[1:]
	}
	if ctx.Len() > 0 {
		req["messages"] = []map[string]string{{"role": "user", "content": "Context: " + ctx.String() + "\n\n" + prompt}}
		b, _ = json.Marshal(req)
	}
	return b
}
