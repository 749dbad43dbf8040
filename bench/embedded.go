package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cocoon-mesh/cocoon/node/backend"
	"github.com/cocoon-mesh/cocoon/node/localnet"
)

// EmbeddedConfig is the embedded-model mode: completion tokens/s of the engine called
// in-process against the same requests through a local mesh whose workers run it.
type EmbeddedConfig struct {
	NewBackend  func() (backend.Backend, error) // one engine per worker (and one for in-process runs)
	ModelID     string
	Prompt      string
	MaxTokens   int   // per request (default 64)
	Requests    int   // per measurement, at least twice the concurrency (default 8)
	Concurrency []int // default 1, 4 and 16
	Progress    func(string)
}

// EmbeddedResult is one measurement.
type EmbeddedResult struct {
	Path         string  `json:"path"` // "in-process" or "mesh"
	Concurrency  int     `json:"concurrency"`
	Tokens       int     `json:"completion_tokens"`
	TokensPerSec float64 `json:"tokens_per_sec"`
}

// RunEmbedded measures the engine in-process, then through a 1-proxy, 1-worker mesh, with
// greedy decoding so both paths generate the same tokens.
func RunEmbedded(ctx context.Context, cfg EmbeddedConfig) ([]EmbeddedResult, error) {
	if cfg.MaxTokens <= 0 {
		cfg.MaxTokens = 64
	}
	if cfg.Requests <= 0 {
		cfg.Requests = 8
	}
	if len(cfg.Concurrency) == 0 {
		cfg.Concurrency = []int{1, 4, 16}
	}
	progress := cfg.Progress
	if progress == nil {
		progress = func(string) {}
	}
	body, _ := json.Marshal(map[string]any{"model": cfg.ModelID, "prompt": cfg.Prompt, "max_tokens": cfg.MaxTokens, "temperature": 0})
	engine, err := cfg.NewBackend()
	if err != nil {
		return nil, err
	}
	inProcess := func(ctx context.Context) (int, error) {
		u, err := engine.Generate(ctx, backend.Request{Endpoint: backend.Completion, Model: cfg.ModelID, Body: body}, func(backend.Chunk) error { return nil })
		return u.Completion, err
	}
	var out []EmbeddedResult
	for _, c := range cfg.Concurrency {
		r, err := tokensPerSec(ctx, "in-process", c, max(cfg.Requests, 2*c), inProcess)
		if err != nil {
			return nil, err
		}
		progress(fmt.Sprintf("in-process, concurrency %d: %.0f tokens/s", c, r.TokensPerSec))
		out = append(out, r)
	}

	nw, err := localnet.Start(ctx, localnet.Options{Proxies: 1, Workers: 1, NewBackend: cfg.NewBackend, ModelID: cfg.ModelID})
	if err != nil {
		return nil, err
	}
	defer nw.Close()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer hc.CloseIdleConnections()
	viaMesh := func(ctx context.Context) (int, error) {
		req, _ := http.NewRequestWithContext(ctx, "POST", nw.ClientURL()+"/completions", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			return 0, fmt.Errorf("mesh: HTTP %d: %s", resp.StatusCode, b)
		}
		var r struct {
			Usage struct {
				Completion int `json:"completion_tokens"`
			} `json:"usage"`
		}
		if err := json.Unmarshal(b, &r); err != nil {
			return 0, err
		}
		return r.Usage.Completion, nil
	}
	for _, c := range cfg.Concurrency {
		r, err := tokensPerSec(ctx, "mesh", c, max(cfg.Requests, 2*c), viaMesh)
		if err != nil {
			return nil, err
		}
		progress(fmt.Sprintf("through the mesh, concurrency %d: %.0f tokens/s", c, r.TokensPerSec))
		out = append(out, r)
	}
	return out, nil
}

// tokensPerSec runs n calls of one with conc at a time and reports completion tokens per second.
func tokensPerSec(ctx context.Context, path string, conc, n int, one func(context.Context) (int, error)) (EmbeddedResult, error) {
	var next, tokens atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for range conc {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				k, err := one(ctx)
				if err != nil {
					once.Do(func() { firstErr = err })
					return
				}
				tokens.Add(int64(k))
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return EmbeddedResult{}, firstErr
	}
	el := time.Since(start).Seconds()
	return EmbeddedResult{Path: path, Concurrency: conc, Tokens: int(tokens.Load()), TokensPerSec: float64(tokens.Load()) / el}, nil
}
