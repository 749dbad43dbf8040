package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/cocoon-mesh/cocoon/node/backend/echo"
)

// echoBackend serves the echo test backend: an OpenAI-compatible server that repeats the
// prompt. End-to-end tests run it as the workers' backend process; it is not a model.
func (m *Main) echoBackend(ctx context.Context, args []string) error {
	fs := m.flagSet("echo-backend")
	listen := fs.String("listen", "127.0.0.1:8000", "address to serve on")
	delay := fs.Duration("token-delay", 0, "pause between streamed tokens")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: echo.New(echo.Config{TokenDelay: *delay}).Handler(), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(m.Stdout, "echo test backend (repeats prompts; not a language model) at http://%s/v1\n", ln.Addr())
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
