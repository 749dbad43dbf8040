package localnet

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
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
