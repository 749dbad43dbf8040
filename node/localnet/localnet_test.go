package localnet

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cocoon-mesh/cocoon/node/backend"
)

func TestLocalNetServesChat(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nw, err := Start(ctx, Options{Progress: func(s string) { t.Log(s) }})
	if err != nil {
		t.Fatal(err)
	}
	defer nw.Close()
	body := `{"model":"echo-test","messages":[{"role":"user","content":"hello mesh world"}]}`
	resp, err := http.Post(nw.ClientURL()+"/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	t.Logf("%d %s %v", resp.StatusCode, b, resp.Header)
	if resp.StatusCode != 200 || !strings.Contains(string(b), "hello mesh world") {
		t.Fatalf("unexpected answer %d %s", resp.StatusCode, b)
	}
}

// Workers on simulated GPUs (the backend issue 17's simulator will run) serve through the
// real mesh, sealed, paid and receipted.
func TestSimulatedGPUWorkersServe(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const id = "sim@1:abc"
	nw, err := Start(ctx, Options{Proxies: 1, Workers: 2, ModelID: id, NewBackend: func() (backend.Backend, error) {
		return backend.NewSimGPU(backend.SimGPUConfig{ModelID: id, Seed: 42, DecodeTokensPerSec: 1000}), nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer nw.Close()
	body := `{"model":"sim","max_tokens":6,"messages":[{"role":"user","content":"simulate me"}]}`
	resp, err := http.Post(nw.ClientURL()+"/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// The words are SimAnswer's for the body as the worker got it (its max_tokens as the mesh
	// passes it on), one a token: as many as max_tokens asked for.
	var got struct {
		Choices []struct{ Message struct{ Content string } }
	}
	if resp.StatusCode != 200 || json.Unmarshal(b, &got) != nil || len(got.Choices) != 1 {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	words := strings.Fields(got.Choices[0].Message.Content)
	if len(words) != 6 {
		t.Fatalf("answer %q: want the 6 words max_tokens asked for", got.Choices[0].Message.Content)
	}
}
