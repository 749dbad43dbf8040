package simulations

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const minimal = `
name = "t"
duration = "2m"
[nodes]
proxies = 1
workers = 2
clients = 1
[traffic]
rate_per_sec = 1
`

// A minimal file gets every default, and every scenario shipped in scenarios/ loads.
func TestScenarioDefaultsAndShippedFiles(t *testing.T) {
	s, err := Parse([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if s.Warmup.Duration != 20*time.Second || s.GPU.Capacity != 16 || !s.Payments || s.Traffic.Arrival != "poisson" ||
		len(s.Regions) != 1 || len(s.Traffic.Models) != 1 || s.Traffic.AnswerTokens.Max != 64 {
		t.Errorf("defaults not filled: %+v", s)
	}
	files, _ := filepath.Glob("scenarios/*.toml")
	if len(files) < 9 {
		t.Fatalf("only %d scenarios in scenarios/", len(files))
	}
	for _, f := range files {
		if _, err := Load(f); err != nil {
			t.Error(err)
		}
	}
}

// Every bad scenario is refused with an error that names the key to change.
func TestBadScenariosNameTheField(t *testing.T) {
	for _, c := range []struct{ add, want string }{
		{`seed = "x"`, "seed"},
		{`bogus = 1`, "unknown key bogus"},
		{"[gpu]\nspeed = 3", "unknown key gpu.speed"},
		{`warmup = "5m"`, "warmup"},
		{`sample_every = "1ms"`, "sample_every"},
		{"[gpu]\ncapacity = 0\nttft = \"-1s\"", "gpu.ttft"},
		{"[gpu]\ncapacity = 5000", "gpu.capacity"},
		{"[churn]\nproxy_crashes = [\"1m\"]", "churn.proxy_crashes"},
		{"[churn]\nproxy_joins = [\"9m\"]", "churn.proxy_joins[0]"},
		{"[churn]\nworker_leaves_per_min = -1", "churn.worker_leaves_per_min"},
		{"[[adversaries]]\nbehaviour = \"evil\"\nfraction = 0.1", "adversaries[0].behaviour"},
		{"[[adversaries]]\nbehaviour = \"wrong\"\nfraction = 0", "adversaries[0].fraction"},
		{"[[adversaries]]\nbehaviour = \"slow\"\nfraction = 0.1\nfactor = 0.5", "adversaries[0].factor"},
		{"[[adversaries]]\nbehaviour = \"sybil\"\nfraction = 0.3\nas = \"withhold_payment\"", "adversaries[0].as"},
		{"[[adversaries]]\nbehaviour = \"wrong\"\nfraction = 0.6\n[[adversaries]]\nbehaviour = \"stall\"\nfraction = 0.6", "adversaries.fraction"},
		{"[[regions]]\nname = \"a\"\nshare = 0.5\nlatency = { a = \"1ms\" }", "regions.share"},
		{"[[regions]]\nname = \"a\"\nshare = 1\nlatency = { b = \"1ms\" }", "regions[0].latency.a"},
		{"[[regions]]\nname = \"a\"\nshare = 1\nlatency = { a = \"soon\" }", "a duration"},
	} {
		text := minimal
		// Keys before the first table go at the top; tables after the rest.
		if strings.HasPrefix(c.add, "[") {
			text = strings.Replace(text, "[traffic]", c.add+"\n[traffic]", 1)
		} else {
			text = c.add + "\n" + text
		}
		if strings.Contains(c.add, "[gpu]") || strings.Contains(c.add, "[churn]") || strings.Contains(c.add, "[[") {
			text = minimal + "\n" + c.add
		}
		_, err := Parse([]byte(text))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want an error naming %q", c.add, err, c.want)
		}
	}
	for _, c := range []struct{ old, new, want string }{
		{`rate_per_sec = 1`, `rate_per_sec = 0`, "traffic.rate_per_sec"},
		{`proxies = 1`, `proxies = 0`, "nodes.proxies"},
		{`name = "t"`, `name = "a b"`, "name"},
		{`duration = "2m"`, `duration = "0s"`, "duration"},
		{`rate_per_sec = 1`, "rate_per_sec = 1\narrival = \"bursty\"", "traffic.arrival"},
		{`rate_per_sec = 1`, "rate_per_sec = 1\nstream_share = 2", "traffic.stream_share"},
		{`rate_per_sec = 1`, "rate_per_sec = 1\nprompt_tokens = { min = 10, max = 5 }", "traffic.prompt_tokens"},
	} {
		_, err := Parse([]byte(strings.Replace(minimal, c.old, c.new, 1)))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want an error naming %q", c.new, err, c.want)
		}
	}
	if _, err := Load(filepath.Join(t.TempDir(), "none.toml")); err == nil || !os.IsNotExist(err) {
		t.Errorf("a missing file: %v", err)
	}
}

// FuzzParse: no scenario text makes Parse panic, and what it accepts passes its own checks.
func FuzzParse(f *testing.F) {
	f.Add([]byte(minimal))
	files, _ := filepath.Glob("scenarios/*.toml")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Parse(b)
		if err == nil && s.check() != nil {
			t.Fatalf("accepted a scenario that fails its checks: %v", s.check())
		}
	})
}

// A sweep's settings override a scenario's keys, new tables included, and rename it; bad
// settings are refused naming the key.
func TestOverride(t *testing.T) {
	b, err := Override([]byte(minimal), []string{"traffic.rate_per_sec=16", `churn.proxy_crashes=["1m"]`, "nodes.proxies=2"})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if s.Traffic.RatePerSec != 16 || len(s.Churn.ProxyCrashes) != 1 || s.Nodes.Proxies != 2 || s.Name != "t_traffic-rate_per_sec-16_churn-proxy_crashes-1m_nodes-proxies-2" {
		t.Errorf("not overridden: %+v", s)
	}
	for set, want := range map[string]string{"rate": "dotted.key=value", "traffic.rate_per_sec=fast": "traffic.rate_per_sec", "name.x=1": "name is not a table"} {
		if _, err := Override([]byte(minimal), []string{set}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", set, err, want)
		}
	}
}
