package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cocoon-mesh/cocoon/audit"
	"github.com/cocoon-mesh/cocoon/model"
	"github.com/cocoon-mesh/cocoon/node"
	"github.com/cocoon-mesh/cocoon/node/backend"
)

// fileAudit is the [audit] section: how a proxy checks its workers with canaries.
type fileAudit struct {
	Off       bool     `toml:"off"`
	Rate      float64  `toml:"rate"`
	Threshold float64  `toml:"threshold"`
	Dir       string   `toml:"dir"`
	Reference string   `toml:"reference"`
	Models    []string `toml:"reference_models"`
}

// referenceSettings say where a proxy's reference run of the model comes from: "embedded",
// or an OpenAI-compatible server and the names it knows each model by.
type referenceSettings struct {
	url   string
	names map[string]string
}

// resolveAudit reads the [audit] section.
func (fc *fileConfig) resolveAudit(s *settings) error {
	a := &s.node.Audit
	a.Off = fc.Audit.Off
	override(&a.Rate, fc.Audit.Rate)
	override(&a.Threshold, fc.Audit.Threshold)
	a.Dir = fc.Audit.Dir
	if a.Dir == "" {
		a.Dir = filepath.Join(s.dataDir, "evidence")
	}
	ref, err := parseReference(fc.Audit.Reference, fc.Audit.Models, "audit.reference_models")
	s.reference = ref
	return err
}

// parseReference reads a reference: "embedded", "" (none) or a URL with its model names
// (each "ID=NAME"), as key names them for errors.
func parseReference(url string, models []string, key string) (referenceSettings, error) {
	r := referenceSettings{url: url, names: map[string]string{}}
	for _, m := range models {
		id, name, ok := strings.Cut(m, "=")
		if !ok || id == "" || name == "" {
			return r, fmt.Errorf("config %s: %q is not ID=NAME (the model's identity and the name the server knows it by)", key, m)
		}
		r.names[id] = name
	}
	if url != "" && url != "embedded" && len(r.names) == 0 {
		return r, fmt.Errorf("config %s: the reference server %s needs the models it serves, as ID=NAME", key, url)
	}
	return r, nil
}

// referenceBackend is a proxy's reference run of its workers' model (nil: no audits).
func referenceBackend(s settings) (backend.Backend, error) {
	if s.node.Role != node.RoleProxy || s.node.Audit.Off {
		return nil, nil
	}
	return s.reference.backend()
}

// backend builds the reference (nil when none is set).
func (r referenceSettings) backend() (backend.Backend, error) {
	switch r.url {
	case "":
		return nil, nil
	case "embedded":
		m, tk, err := model.Embedded()
		if err != nil {
			return nil, err
		}
		return builtinBackend(m, tk, 4)
	}
	return backend.NewHTTP(backend.HTTPConfig{BaseURL: r.url, Models: r.names})
}

// verifyEvidence checks an evidence record offline: what it proves, and whether the worker's
// answer is the reference's.
func (m *Main) verifyEvidence(ctx context.Context, args []string) error {
	fs := m.flagSet("verify-evidence")
	refURL := fs.String("reference", "embedded", `the model to check against: "embedded" (the built-in model) or an OpenAI-compatible server's URL`)
	var models listFlag
	fs.Var(&models, "reference-model", "with a server --reference: ID=NAME, the model's identity and the name the server knows it by (repeatable)")
	threshold := fs.Float64("threshold", 1, "the agreement the answer needs: 1 requires the exact text")
	if err := fs.Parse(args); err != nil {
		return usageError(err.Error())
	}
	if fs.NArg() != 1 {
		return usageError("verify-evidence takes one evidence file, as a proxy's log names it")
	}
	p, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		return err
	}
	rec, err := audit.Unmarshal(p)
	if err != nil {
		return fmt.Errorf("%s: %w", fs.Arg(0), err)
	}
	ref, err := parseReference(*refURL, models, "--reference-model")
	if err != nil {
		return usageError(err.Error())
	}
	be, err := ref.backend()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	v, err := audit.Verify(ctx, &rec, be, *threshold)
	if err != nil {
		return fmt.Errorf("%s proves nothing: %w", fs.Arg(0), err)
	}
	printVerdict(m.Stdout, &rec, v)
	if !v.Match {
		return errWrongAnswer
	}
	return nil
}

// errWrongAnswer is verify-evidence's exit when the record proves a wrong answer.
var errWrongAnswer = errors.New("the worker's answer is not the reference's: the evidence holds")

func printVerdict(w io.Writer, rec *audit.Record, v audit.Verdict) {
	fmt.Fprintf(w, "request %s, model %s, audited %s\n", rec.RequestID, rec.Model, rec.At.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "worker  %s (its signed receipt covers the request and the answer)\n", v.Worker)
	fmt.Fprintf(w, "proxy   %s (signed the record)\n", v.Proxy)
	fmt.Fprintf(w, "want    %q\ngot     %q\n", v.Want, v.Got)
	if v.Unreadable != "" {
		fmt.Fprintf(w, "the answer is not OpenAI JSON: %s\n", v.Unreadable)
	}
	fmt.Fprintf(w, "agreement %.3f: match %t\n", v.Agreement, v.Match)
}
