package main

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestSealedPromptsNeverReachTheProxy runs the mesh of real processes with simulated TEEs and
// sends prompts carrying a random marker. The echo backend repeats prompts, so the marker is in
// every completion too. Afterwards the whole readable memory of each proxy process is searched
// for the marker: it must be absent, while a worker (which does see the plaintext) holds it,
// which shows the search finds what is there. Receipts come back, verify offline with
// verify-receipt, and fail it once altered.
func TestSealedPromptsNeverReachTheProxy(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 7 processes")
	}
	m := startMesh(t, 0)
	marker := "SECRET-" + rand.Text()

	var receipt string
	for i := range 6 {
		stream, usage := i%2 == 1, i%4 == 1
		body := fmt.Sprintf(`{"model":"echo-test","stream":%t,"stream_options":{"include_usage":%t},"messages":[{"role":"user","content":"%s %d"}]}`, stream, usage, marker, i)
		code, b, h := m.post("/chat/completions", body)
		if code != 200 || !strings.Contains(string(b), marker) {
			t.Fatalf("request %d: %d %s", i, code, b)
		}
		if got := h.Get("X-Cocoon-Worker-Tee"); got != "simulated (INSECURE)" {
			t.Fatalf("request %d: worker attestation header %q", i, got)
		}
		receipt = h.Get("X-Cocoon-Receipt") // a header, or a trailer when streamed
		if receipt == "" {
			t.Fatalf("request %d: no receipt", i)
		}
		if stream { // on the chunk with the finish_reason, and on the usage chunk if asked for
			want := 1
			if usage {
				want = 2
			}
			if n := strings.Count(string(b), `"cocoon_receipt":"`+receipt+`"`); n != want {
				t.Fatalf("streamed answer carries the receipt %d times, want %d: %s", n, want, b)
			}
		}
	}

	for _, p := range m.proxies {
		found, err := processMemoryContains(p.cmd.Process.Pid, []byte(marker))
		if err != nil {
			t.Fatalf("reading %s's memory: %v", p.name, err)
		}
		if found {
			t.Fatalf("%s holds the plaintext prompt in its memory", p.name)
		}
	}
	seen := false
	for _, w := range m.workers {
		found, err := processMemoryContains(w.cmd.Process.Pid, []byte(marker))
		if err != nil {
			t.Fatalf("reading %s's memory: %v", w.name, err)
		}
		seen = seen || found
	}
	if !seen {
		t.Fatal("no worker's memory holds the marker: the memory search finds nothing, so it proves nothing")
	}

	// The receipt checks offline; altered, it fails.
	dir := t.TempDir()
	good := filepath.Join(dir, "receipt")
	os.WriteFile(good, []byte(receipt+"\n"), 0o600)
	out, err := exec.Command(binaryPath, "verify-receipt", good).CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"valid": true`) || !strings.Contains(string(out), `"sealed": true`) {
		t.Fatalf("verify-receipt on a genuine receipt: %v\n%s", err, out)
	}
	raw := []byte(receipt)
	i := len(raw) / 2
	raw[i] = map[bool]byte{true: 'B', false: 'A'}[raw[i] == 'A'] // one character changed
	bad := filepath.Join(dir, "tampered")
	os.WriteFile(bad, raw, 0o600)
	out, err = exec.Command(binaryPath, "verify-receipt", bad).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || !strings.Contains(string(out), "INVALID") {
		t.Fatalf("verify-receipt on a tampered receipt: %v\n%s", err, out)
	}
	// Cut short, as a careless copy would: said so, not "not a receipt".
	cut := filepath.Join(dir, "cut")
	os.WriteFile(cut, []byte(receipt[:len(receipt)*2/3]), 0o600)
	out, err = exec.Command(binaryPath, "verify-receipt", cut).CombinedOutput()
	if !errors.As(err, &ee) || !strings.Contains(string(out), "cut short") || strings.Contains(string(out), "not a receipt") {
		t.Fatalf("verify-receipt on a truncated receipt: %v\n%s", err, out)
	}
}

// TestWorkerWithMismatchedBindingIsRefused starts a third worker whose evidence binds a key
// that is not its own (fault injection through COCOON_TEST_FAULT). The proxies refuse it at the
// handshake, say why in their logs, and never route to it.
func TestWorkerWithMismatchedBindingIsRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 8 processes")
	}
	m := startMesh(t, 0)
	boots := m.proxies[0].ready.Addrs[0] + "," + m.proxies[1].ready.Addrs[0]
	bad := startEnv(t, "badworker", []string{"COCOON_TEST_FAULT=attest-wrong-key"}, m.nodeArgs("badworker", "worker",
		"--bootstrap", boots, "--backend", m.echo[0].url, "--model", "echo-test@v1:none=echo-test")...)
	m.waitFor("both proxies refuse the bad worker", func() bool {
		for _, p := range m.proxies {
			if !strings.Contains(p.logs.String(), "report data does not bind") {
				return false
			}
		}
		return true
	})
	if !strings.Contains(bad.logs.String(), "FAULT INJECTION") {
		t.Fatal("the bad worker did not announce its injected fault")
	}
	for i := range 20 {
		code, b, h := m.post("/chat/completions", fmt.Sprintf(`{"model":"echo-test","messages":[{"role":"user","content":"r%d"}]}`, i))
		if code != 200 {
			t.Fatalf("request %d: %d %s", i, code, b)
		}
		if h.Get("X-Cocoon-Worker") == bad.ready.Peer {
			t.Fatal("a proxy routed to the worker whose attestation it refused")
		}
	}
}

// processMemoryContains reports whether any readable mapping of process pid holds needle.
// The test process started pid, so it may read /proc/pid/mem.
func processMemoryContains(pid int, needle []byte) (bool, error) {
	maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return false, err
	}
	mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if err != nil {
		return false, err
	}
	defer mem.Close()
	read := 0
	buf := make([]byte, 1<<20)
	for _, line := range strings.Split(string(maps), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[1][0] != 'r' || strings.Contains(line, "[vvar") || strings.Contains(line, "[vsyscall]") {
			continue
		}
		lo, hi, _ := strings.Cut(f[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		// Read the mapping in pieces that overlap by len(needle)-1, so no match is split.
		for off := start; off < end; {
			n := min(uint64(len(buf)), end-off)
			got, err := mem.ReadAt(buf[:n], int64(off))
			if got > 0 {
				read += got
				if bytes.Contains(buf[:got], needle) {
					return true, nil
				}
			}
			if err != nil && !errors.Is(err, io.EOF) {
				break // an unreadable mapping (a guard page): skip it
			}
			if off+n >= end {
				break
			}
			off += n - uint64(len(needle)-1)
		}
	}
	if read == 0 {
		return false, errors.New("no memory could be read")
	}
	return false, nil
}
