package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/cocoon-mesh/cocoon/node/localnet"
)

// TestOpenAINodeSDK drives a local mesh with the official OpenAI SDK for Node
// (testdata/sdk/check.mjs): models, chat, streaming with usage, completions, a 404 and an
// aborted stream, as an app developer would use them. It needs node and npm; the SDK version
// is pinned in testdata/sdk/package.json and installed into a temporary directory.
func TestOpenAINodeSDK(t *testing.T) {
	if testing.Short() {
		t.Skip("installs the OpenAI SDK with npm")
	}
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed: the OpenAI SDK check needs Node.js", tool)
		}
	}
	dir := t.TempDir()
	for _, f := range []string{"package.json", "check.mjs"} {
		b, err := os.ReadFile(filepath.Join("testdata", "sdk", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	install := exec.Command("npm", "install", "--no-audit", "--no-fund", "--loglevel=error")
	install.Dir = dir
	if out, err := install.CombinedOutput(); err != nil {
		t.Skipf("npm could not install the OpenAI SDK (no registry?): %v\n%s", err, out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nw, err := localnet.Start(ctx, localnet.Options{Proxies: 2, Workers: 2, EchoTokenDelay: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer nw.Close()
	check := exec.CommandContext(ctx, "node", "check.mjs", nw.ClientURL())
	check.Dir = dir
	out, err := check.CombinedOutput()
	if err != nil {
		t.Fatalf("the OpenAI SDK disagrees with the client API: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}
