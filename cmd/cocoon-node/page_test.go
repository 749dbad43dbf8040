package main

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The status page, driven by a real headless browser (Debian's chromium, which .ci/run
// installs) against a running dev network: it shows the node, its proxies, its channels and
// the live figures of the requests just served, from the JSON endpoint, with no asset from
// elsewhere. A screenshot is kept in the temporary directory as the test's output.
func TestStatusPageInABrowser(t *testing.T) {
	browser, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("no chromium on this machine: .ci/run installs it (apt-get install chromium)")
	}
	api := startDev(t).api
	const served = 5
	for range served {
		resp, err := http.Post(api+"/chat/completions", "application/json",
			strings.NewReader(`{"model":"gocomment","max_tokens":8,"messages":[{"role":"user","content":"the page"}]}`))
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("request: %v %v", err, resp)
		}
		resp.Body.Close()
	}
	page := strings.TrimSuffix(api, "/v1") + "/cocoon/"
	args := []string{"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--user-data-dir=" + t.TempDir(),
		"--virtual-time-budget=5000", "--window-size=1280,1100"}
	bctx, bcancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer bcancel()
	dom, err := exec.CommandContext(bctx, browser, append(args, "--dump-dom", page)...).Output()
	if err != nil {
		t.Fatalf("chromium --dump-dom: %v\n%s", err, dom)
	}
	text := string(dom)
	for _, want := range []string{`<span id="role">client</span>`, `id="peers-title">Proxies (2)</h2>`, `data-points="90"`, `<td>payer</td>`,
		`id="rep-title">Reputation of proxies (`, `<td>served `} {
		if !strings.Contains(text, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	total := regexp.MustCompile(`<span id="total">(\d+)</span>`).FindStringSubmatch(text)
	if total == nil {
		t.Fatalf("the page shows no request count:\n%s", text)
	}
	if n, _ := strconv.Atoi(total[1]); n < served {
		t.Errorf("the page counts %d requests in the last 15 minutes, want at least the %d served", n, served)
	}
	if strings.Contains(text, `id="error" class="bad">G`) {
		t.Errorf("the page could not read the status:\n%s", text)
	}
	shot := filepath.Join(os.TempDir(), "cocoon-status-page.png")
	if b, err := exec.CommandContext(bctx, browser, append(args, "--screenshot="+shot, page)...).CombinedOutput(); err != nil {
		t.Fatalf("chromium --screenshot: %v\n%s", err, b)
	}
	if fi, err := os.Stat(shot); err != nil || fi.Size() < 10_000 {
		t.Fatalf("no screenshot at %s: %v", shot, err)
	}
	t.Logf("screenshot of the status page: %s", shot)
}
