package main

import (
	"strings"
	"testing"
)

// --modes picks the targets: only those are started and measured, and a wrong name is a usage
// error before anything starts.
func TestBenchModes(t *testing.T) {
	out, err := runCmd("bench", "--modes", "direct, http2hop", "--concurrency", "1", "--requests", "5", "--rounds", "1", "--warmup", "0", "--stream", "off")
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, out)
	}
	for _, want := range []string{"Measuring 2 scenarios", "\ndirect    off        1", "\nhttp2hop  off        1"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\nmesh") {
		t.Errorf("a mesh was measured:\n%s", out)
	}
	for _, bad := range []string{"mesh,nope", ",", ""} {
		if out, err := runCmd("bench", "--modes", bad); err == nil || !strings.Contains(err.Error(), "--modes") {
			t.Errorf("--modes %q: %v\n%s", bad, err, out)
		}
	}
}

// The embedded-model bench takes --concurrency and --requests when given (it ran its own
// defaults whatever they said).
func TestBenchBuiltinTakesConcurrencyAndRequests(t *testing.T) {
	out, err := runCmd("bench", "--model-file", "builtin", "--concurrency", "2", "--requests", "4", "--max-tokens", "4", "--log-level", "error")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, "in-process, concurrency 2:") || strings.Contains(out, "concurrency 1:") || strings.Contains(out, "concurrency 16:") {
		t.Errorf("want only concurrency 2 measured:\n%s", out)
	}
}
