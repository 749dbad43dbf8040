package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/cocoon-mesh/cocoon/node/localnet"
)

// dev starts a whole local network in this process and serves it until Ctrl-C.
func (m *Main) dev(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	proxies := fs.Int("proxies", 2, "proxies to start")
	workers := fs.Int("workers", 2, "workers to start")
	api := fs.String("api", "127.0.0.1:10000", "address of the client's OpenAI API")
	backendURL := fs.String("backend", "", "an OpenAI-compatible server for the workers (e.g. http://127.0.0.1:8080/v1); default: the echo test backend")
	backendModel := fs.String("backend-model", "", "with --backend: the model name the server knows")
	modelID := fs.String("model-id", "", "with --backend: the identity to advertise, name@revision:hash")
	delay := fs.Duration("token-delay", 30*time.Millisecond, "echo test backend: pause between streamed tokens")
	dir := fs.String("dir", "", "directory for the nodes' datastores (default: a temporary one)")
	logLevel := fs.String("log-level", "warn", "node log level: debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *backendURL != "" && *backendModel == "" {
		return usageError("--backend needs --backend-model, the model name the server serves")
	}
	log, err := newLogger(*logLevel, os.Stderr)
	if err != nil {
		return err
	}
	out := m.Stdout
	fmt.Fprintf(out, "Starting a local Cocoon mesh: %d proxies, %d workers, 1 client (each its own libp2p peer on loopback)\n", *proxies, *workers)
	start := time.Now()
	sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	nw, err := localnet.Start(sctx, localnet.Options{
		Proxies: *proxies, Workers: *workers, APIAddr: *api, Dir: *dir,
		BackendURL: *backendURL, BackendModel: *backendModel, ModelID: *modelID, EchoTokenDelay: *delay,
		Logger: log, Progress: func(s string) { fmt.Fprintf(out, "  [%5.2fs] %s\n", time.Since(start).Seconds(), s) },
	})
	if err != nil {
		return err
	}
	defer nw.Close()

	model := "echo-test"
	if *backendURL != "" {
		model = *backendModel
		if *modelID != "" {
			model = *modelID
		}
	}
	url := nw.ClientURL()
	fmt.Fprintf(out, "\nCocoon mesh is up in %.1fs.\n  OpenAI base URL: %s\n", time.Since(start).Seconds(), url)
	if *backendURL == "" {
		fmt.Fprintf(out, "  Workers use the echo test backend: it repeats your prompt word by word and is not a\n"+
			"  language model. Pass --backend URL --backend-model NAME to serve a real model.\n")
	}
	fmt.Fprintf(out, "\nTry it:\n  curl -N %s/chat/completions -H 'Content-Type: application/json' \\\n"+
		"    -d '{\"model\":\"%s\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hello from the mesh\"}]}'\n"+
		"\nPress Ctrl-C to stop.\n", url, model)
	<-ctx.Done()
	fmt.Fprintln(out, "\nStopping the local mesh...")
	if err := nw.Close(); err != nil {
		return err
	}
	fmt.Fprintln(out, "Stopped.")
	return nil
}
