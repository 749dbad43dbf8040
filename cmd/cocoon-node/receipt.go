package main

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/cocoon-mesh/cocoon/tee"
)

// verifyReceipt checks a receipt offline: the worker's signature, the proxy's countersignature,
// and that the keys in it are the peers it names. The file holds the receipt as the client API
// hands it out (the X-Cocoon-Receipt header or the cocoon_receipt field), or its raw bytes.
func (m *Main) verifyReceipt(args []string) error {
	fs := m.flagSet("verify-receipt")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError("verify-receipt wants one file")
	}
	var raw []byte
	var err error
	if name := fs.Arg(0); name == "-" {
		raw, err = io.ReadAll(io.LimitReader(m.Stdin, 1<<20))
	} else {
		raw, err = os.ReadFile(name)
	}
	if err != nil {
		return err
	}
	r, err := parseReceiptFile(raw)
	if err != nil {
		return err
	}
	worker, proxy, err := r.Verify()
	if err != nil {
		return fmt.Errorf("receipt INVALID: %w", err)
	}
	digest := func(d [32]byte) string {
		if d == ([32]byte{}) {
			return "none"
		}
		return hex.EncodeToString(d[:])
	}
	out := map[string]any{
		"valid":             true,
		"request_id":        r.RequestID,
		"model":             r.Model,
		"sealed":            r.Sealed,
		"request_sha256":    hex.EncodeToString(r.RequestHash[:]),
		"answer_hash":       hex.EncodeToString(r.AnswerHash[:]),
		"prompt_tokens":     r.PromptTokens,
		"cached_tokens":     r.CachedTokens,
		"completion_tokens": r.CompletionTokens,
		"reasoning_tokens":  r.ReasoningTokens,
		"time":              r.Time.Format(time.RFC3339Nano),
		"worker":            worker.String(),
		"worker_evidence":   digest(r.WorkerEvidence),
		"proxy":             proxy.String(),
		"proxy_evidence":    digest(r.ProxyEvidence),
	}
	enc := json.NewEncoder(m.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// parseReceiptFile reads a receipt as text (base64url, surrounding space ignored) or raw bytes.
func parseReceiptFile(raw []byte) (tee.Receipt, error) {
	if text := bytes.TrimSpace(raw); len(text) > 0 {
		r, err := tee.ParseReceipt(string(text))
		if err == nil {
			return r, nil
		}
		if _, derr := base64.RawURLEncoding.DecodeString(string(text)); derr == nil {
			// Text that decodes is a receipt's text gone wrong, most likely cut when copied.
			return r, fmt.Errorf("receipt INVALID: the file holds base64url text, but not a whole receipt (was it cut short when copied? "+
				"copy the whole X-Cocoon-Receipt header or cocoon_receipt field): %w", err)
		}
	}
	r, err := tee.UnmarshalReceipt(raw)
	if err != nil {
		return r, fmt.Errorf("receipt INVALID: not a receipt (neither base64url text nor raw bytes): %w", err)
	}
	return r, nil
}
