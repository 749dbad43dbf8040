package httpguard

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// served serves h on loopback through Serve, with the guards and the cap of cfg.
func served(t *testing.T, tune func(*Config), h http.Handler) string {
	t.Helper()
	g := guardOf(t, "", tune)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := g.Serve("test", ln, h, slog.New(slog.DiscardHandler))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s.srv.Shutdown(ctx)
		s.srv.Close()
		<-s.done
	})
	return s.Addr()
}

// rawGet sends one GET on a new connection, reads the answer and keeps the connection open.
func rawGet(t *testing.T, addr string) (net.Conn, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "GET /ok HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return c, "error: " + err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return c, fmt.Sprintf("%d %s", resp.StatusCode, b)
}

// trickle starts a POST whose body never arrives whole.
func trickle(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "POST /ok HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{", addr)
	return c
}

// closedByServer waits until the server closes c, reading whatever it sent first.
func closedByServer(c net.Conn, within time.Duration) (string, bool) {
	c.SetReadDeadline(time.Now().Add(within))
	b, err := io.ReadAll(c)
	var ne net.Error
	return string(b), !(errors.As(err, &ne) && ne.Timeout())
}

// openConns waits up to within for only want of conns to stay open (the server closes the
// others), and returns how many are open then.
func openConns(conns []net.Conn, within time.Duration, want int) int {
	closed := make([]bool, len(conns))
	deadline := time.Now().Add(within)
	for {
		open := 0
		for i, c := range conns {
			if !closed[i] {
				_, closed[i] = closedByServer(c, 20*time.Millisecond)
			}
			if !closed[i] {
				open++
			}
		}
		if open <= want || time.Now().After(deadline) {
			return open
		}
	}
}

// At the cap, a new connection takes the place of the one idle longest, so an idle flood
// cannot lock callers out; when every connection is busy, it is refused 503 at once. A body
// that does not arrive within BodyTimeout ends its connection, which frees room again.
func TestConnCap(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusRequestTimeout)
			return
		}
		io.WriteString(w, "fine")
	})
	addr := served(t, func(c *Config) { c.MaxConns, c.BodyTimeout = 4, 500*time.Millisecond }, ok)
	var conns []net.Conn
	for i := range 7 { // past 4, each new connection closes the one idle longest
		c, got := rawGet(t, addr)
		if got != "200 fine" {
			t.Fatalf("connection %d: %s", i+1, got)
		}
		conns = append(conns, c)
	}
	if open := openConns(conns, 5*time.Second, 4); open != 4 {
		t.Fatalf("7 connections made, one request each, under a cap of 4: %d still open", open)
	}

	// Four bodies that never arrive fill the cap with busy connections.
	var slow []net.Conn
	for range 4 {
		slow = append(slow, trickle(t, addr))
	}
	time.Sleep(100 * time.Millisecond) // their headers are read: they are busy
	if _, got := rawGet(t, addr); !strings.HasPrefix(got, "503 ") || !strings.Contains(got, "max_conns") {
		t.Fatalf("at the cap, all busy: %s", got)
	}
	for i, c := range slow {
		answer, closed := closedByServer(c, 10*time.Second)
		if !closed || !strings.Contains(answer, "408") {
			t.Fatalf("trickling connection %d: closed %t, answer %q", i, closed, answer)
		}
	}
	if _, got := rawGet(t, addr); got != "200 fine" {
		t.Fatalf("after the trickling bodies timed out: %s", got)
	}
}

// Each write of an answer gets WriteTimeout, so a streamed answer may last far longer than
// the body and write timeouts (and the lifted body deadline does not cut it), while a client
// that stops reading is dropped.
func TestStreamingDeadlines(t *testing.T) {
	stuck := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		f := w.(http.Flusher)
		if r.URL.Path == "/flood" { // a client that reads nothing: writes must fail
			chunk := make([]byte, 1<<20)
			for {
				if _, err := w.Write(chunk); err != nil {
					stuck <- err
					return
				}
			}
		}
		for i := range 8 {
			select {
			case <-r.Context().Done():
				fmt.Fprintf(w, "cancelled after %d\n", i)
				return
			case <-time.After(150 * time.Millisecond):
			}
			fmt.Fprintf(w, "chunk %d\n", i)
			f.Flush()
		}
	})
	addr := served(t, func(c *Config) { c.BodyTimeout, c.WriteTimeout = 300*time.Millisecond, 400*time.Millisecond }, h)
	resp, err := http.Post("http://"+addr+"/stream", "application/json", strings.NewReader(`{"x":1}`))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || !strings.HasSuffix(string(b), "chunk 7\n") {
		t.Fatalf("a 1.2 s stream under a 300 ms body and a 400 ms write timeout: %q %v", b, err)
	}

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /flood HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
	select {
	case err := <-stuck:
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("the stuck write ended with %v, want a timeout", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a write to a client that reads nothing never timed out")
	}
}
