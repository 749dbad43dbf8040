package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cocoon-mesh/cocoon/node"
	"github.com/cocoon-mesh/cocoon/node/p2phost"
)

func TestDefaultConfigFileParsesToDefaults(t *testing.T) {
	for _, role := range []string{"client", "proxy", "worker"} {
		fc, err := parseConfig(strings.NewReader(renderDefaultConfig(role)))
		if err != nil {
			t.Fatalf("%s: %v", role, err)
		}
		s, err := fc.resolve()
		if err != nil {
			t.Fatal(err)
		}
		d, dh := node.DefaultConfig(), p2phost.DefaultConfig()
		if string(s.node.Role) != role || s.node.Network != d.Network || s.node.APIAddr != d.APIAddr ||
			s.node.MaxTokens != d.MaxTokens || s.node.RequestTimeout != d.RequestTimeout || s.node.MaxBodyBytes != d.MaxBodyBytes ||
			s.host.ConnsHigh != dh.ConnsHigh || s.host.MaxStreams != dh.MaxStreams || len(s.host.Listen) != 2 {
			t.Errorf("%s: the written defaults differ from node's: %+v %+v", role, s.node, s.host)
		}
		if s.node.MaxWorkers != d.MaxWorkers || s.node.AdmitRate != d.AdmitRate || s.node.AdmitBurst != d.AdmitBurst ||
			s.node.MaxAttestations != d.MaxAttestations {
			t.Errorf("%s: the written gossip bounds differ from node's: %+v", role, s.node)
		}
		if s.node.Payments != d.Payments {
			t.Errorf("%s: the written payment defaults differ from node's:\n%+v\n%+v", role, s.node.Payments, d.Payments)
		}
		if h, dh := s.node.HTTP, d.HTTP; h.MaxConns != dh.MaxConns || h.BodyTimeout != dh.BodyTimeout || h.WriteTimeout != dh.WriteTimeout ||
			h.IdleTimeout != dh.IdleTimeout || len(h.AllowedHosts)+len(h.AllowedOrigins) != 0 {
			t.Errorf("%s: the written [http] defaults differ from node's:\n%+v\n%+v", role, h, dh)
		}
	}
}

// The [http] section reaches the node's config, and bad values are refused naming the key.
func TestConfigHTTPSection(t *testing.T) {
	fc, err := parseConfig(strings.NewReader(`
[http]
allowed_hosts = ["cocoon.lan"]
allowed_origins = ["http://localhost:3000"]
max_conns = 64
body_timeout = "2s"
`))
	if err != nil {
		t.Fatal(err)
	}
	s, err := fc.resolve()
	if h := s.node.HTTP; err != nil || h.MaxConns != 64 || h.BodyTimeout != 2*time.Second || h.WriteTimeout != time.Minute ||
		len(h.AllowedHosts) != 1 || h.AllowedOrigins[0] != "http://localhost:3000" {
		t.Fatalf("%v: %+v", err, h)
	}
	fc.HTTP.AllowedOrigins = []string{"localhost:3000"}
	s, _ = fc.resolve()
	if _, err := node.New(s.node, node.Deps{}); err == nil || !strings.Contains(err.Error(), "http.allowed_origins") {
		t.Fatalf("an origin without a scheme: %v", err)
	}
}

func TestConfigRejectsUnknownKeysAndBadValues(t *testing.T) {
	for _, bad := range []string{
		"rol = \"client\"\n",
		"[client]\napi_adr = \"x\"\n",
		"[limits]\nrequest_timeout = \"soon\"\n",
		"role = 7\n",
	} {
		if _, err := parseConfig(strings.NewReader(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestFlagsOverrideFile(t *testing.T) {
	fc, err := parseConfig(strings.NewReader(`
role = "worker"
network = "from-file"
[worker]
max_active = 3
[[worker.models]]
id = "llama@1:abc"
prices = { completion = 4 }
`))
	if err != nil {
		t.Fatal(err)
	}
	f := runFlags{network: "from-flag", models: listFlag{"qwen@2:def=Qwen/Qwen"}, prices: "1,0,5,5"}
	if err := f.apply(&fc); err != nil {
		t.Fatal(err)
	}
	s, err := fc.resolve()
	if err != nil {
		t.Fatal(err)
	}
	if s.node.Network != "from-flag" || s.node.MaxActive != 3 || len(s.node.Models) != 2 ||
		s.node.Models[0].Prices.Completion != 4 || s.node.Models[1].Prices.Completion != 5 ||
		s.backendNames["llama@1:abc"] != "llama" || s.backendNames["qwen@2:def"] != "Qwen/Qwen" {
		t.Fatalf("resolved %+v %v", s.node, s.backendNames)
	}
	if err := (&runFlags{prices: "1,2"}).apply(&fc); err == nil {
		t.Fatal("short --prices accepted")
	}
}

func TestInitWritesAndRefusesToOverwrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.toml")
	var out bytes.Buffer
	m := &Main{Stdout: &out, Stderr: &out}
	if err := m.Run(context.Background(), []string{"init", "--out", path, "--role", "proxy"}); err != nil {
		t.Fatal(err)
	}
	if _, err := loadConfigFile(path); err != nil {
		t.Fatal(err)
	}
	if err := m.Run(context.Background(), []string{"init", "--out", path}); err == nil {
		t.Fatal("overwrote an existing config without --force")
	}
	if err := m.Run(context.Background(), []string{"frobnicate"}); err == nil {
		t.Fatal("unknown command accepted")
	}
}

func TestRunRejectsBadConfigClearly(t *testing.T) {
	m := &Main{Stdout: os.Stdout, Stderr: os.Stderr}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := m.Run(ctx, []string{"run", "--role", "worker", "--data-dir", t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "backend") {
		t.Fatalf("worker without backend: %v", err)
	}
	err = m.Run(ctx, []string{"run", "--role", "client", "--bootstrap", "/ip4/127.0.0.1/tcp/1", "--data-dir", t.TempDir(), "--listen", "/ip4/127.0.0.1/tcp/0"})
	if err == nil || !strings.Contains(err.Error(), "bootstrap") {
		t.Fatalf("bootstrap without peer id: %v", err)
	}
}

// A worker's config straight from init works as written (it serves the built-in model); one
// that points at a model server but names no model is refused with what to add.
func TestWorkerConfigFromInitWorks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.toml")
	m := &Main{Stdout: io.Discard, Stderr: io.Discard}
	if err := m.Run(context.Background(), []string{"init", "--out", path, "--role", "worker"}); err != nil {
		t.Fatal(err)
	}
	_, s, _, err := m.runSettings([]string{"--config", path})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := workerBackend(&s); err != nil {
		t.Fatalf("a worker config from init: %v", err)
	}
	_, s, _, err = m.runSettings([]string{"--config", path, "--backend", "http://127.0.0.1:8000/v1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := workerBackend(&s); err == nil || !strings.Contains(err.Error(), "[[worker.models]]") || !strings.Contains(err.Error(), "--model") {
		t.Fatalf("a model server and no model: %v, want a refusal naming [[worker.models]] and --model", err)
	}
}
