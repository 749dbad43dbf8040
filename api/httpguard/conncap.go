package httpguard

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Limits of a connCap.
const (
	// newGrace is how long a new connection may send nothing before it counts as idle: a real
	// client sends its request at once.
	newGrace = time.Second
	// maxRefusing bounds the 503s being written at once; beyond it a connection is just closed.
	maxRefusing = 64
	// refuseWait bounds how long a refused connection is kept for its 503 to reach the client.
	refuseWait = time.Second
)

// busyAnswer is what a connection over the cap gets, in OpenAI's error shape.
const busyAnswer = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\n\r\n" +
	`{"error":{"message":"this node has as many HTTP connections open as it allows ([http] max_conns), all busy: try again shortly, or raise max_conns","type":"server_error","param":null,"code":"too_many_connections"}}` + "\n"

// connCap is a listener that keeps its HTTP server's open connections at max or below, so
// idle or trickling clients cannot take the process's file descriptors (which libp2p needs).
// At the cap, a new connection takes the place of the one idle longest (kept alive between
// requests, or silent since it opened); when every one is busy, it is answered 503 and
// closed. It learns the connections' states from the server's ConnState hook, track.
type connCap struct {
	net.Listener
	max int
	log *slog.Logger

	mu      sync.Mutex
	conns   map[net.Conn]connEntry
	evicted uint64    // idle connections closed to make room
	logged  time.Time // when the cap was last logged

	refusing atomic.Int32 // 503s being written
	refused  atomic.Uint64
}

// connEntry is what a connCap knows of one connection.
type connEntry struct {
	state http.ConnState
	since time.Time // when it entered state
}

func newConnCap(ln net.Listener, max int, log *slog.Logger) *connCap {
	return &connCap{Listener: ln, max: max, log: log, conns: make(map[net.Conn]connEntry)}
}

// Accept returns the next connection the cap lets in.
func (l *connCap) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		victim, ok := l.admit(c, time.Now())
		if victim != nil {
			victim.Close()
		}
		if ok {
			return c, nil
		}
		l.refuse(c)
	}
}

// admit counts c in if there is room, making room by evicting the connection idle longest,
// which it returns for the caller to close.
func (l *connCap) admit(c net.Conn, now time.Time) (victim net.Conn, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.conns) >= l.max {
		victim = l.idlest(now)
		if victim == nil {
			l.logCap(now)
			return nil, false
		}
		delete(l.conns, victim)
		l.evicted++
		l.logCap(now)
	}
	l.conns[c] = connEntry{http.StateNew, now}
	return victim, true
}

// idlest is the connection idle longest: kept alive between requests, or silent since it
// opened more than newGrace ago. Nil if every connection is busy.
func (l *connCap) idlest(now time.Time) net.Conn {
	var best net.Conn
	var bestSince time.Time
	for c, e := range l.conns {
		idle := e.state == http.StateIdle || (e.state == http.StateNew && now.Sub(e.since) >= newGrace)
		if idle && (best == nil || e.since.Before(bestSince)) {
			best, bestSince = c, e.since
		}
	}
	return best
}

// logCap says, at most once a minute, that the server is at its cap.
func (l *connCap) logCap(now time.Time) {
	if now.Sub(l.logged) < time.Minute {
		return
	}
	l.logged = now
	l.log.Warn("HTTP server at its connection cap ([http] max_conns): closing idle connections to make room, refusing new ones while all are busy",
		"max_conns", l.max, "idle_closed", l.evicted, "refused", l.refused.Load())
}

// track is the server's ConnState hook: it follows each connection's state, and forgets it
// once closed. A connection already evicted stays forgotten.
func (l *connCap) track(c net.Conn, s http.ConnState) {
	if s == http.StateIdle {
		// The answer is out: lift its write deadline, so the server's own answer to the next
		// request (a 400 for bad headers) does not find it passed.
		_ = c.SetWriteDeadline(time.Time{})
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.conns[c]
	switch {
	case !ok:
	case s == http.StateClosed || s == http.StateHijacked:
		delete(l.conns, c)
	case s != e.state:
		l.conns[c] = connEntry{s, time.Now()}
	}
}

// refuse answers c 503 and closes it, in the background and within refuseWait. Reading what
// the client sent before closing keeps the close from resetting the answer away.
func (l *connCap) refuse(c net.Conn) {
	l.refused.Add(1)
	if l.refusing.Add(1) > maxRefusing {
		l.refusing.Add(-1)
		c.Close()
		return
	}
	go func() {
		defer l.refusing.Add(-1)
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(refuseWait))
		if _, err := io.WriteString(c, busyAnswer); err != nil {
			return
		}
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(c, 64<<10))
	}()
}
