package stream

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cocoon-mesh/cocoon/node/wire"
)

// testLife runs a stream's goroutines and timers for a test, and waits for them at the end.
type testLife struct {
	clock clock.Clock
	wg    sync.WaitGroup
	done  chan struct{}
}

func newTestLife(t *testing.T, c clock.Clock) *testLife {
	l := &testLife{clock: c, done: make(chan struct{})}
	t.Cleanup(func() {
		close(l.done)
		l.wg.Wait()
	})
	return l
}

func (l *testLife) Clock() clock.Clock { return l.clock }
func (l *testLife) Go(f func()) bool {
	l.wg.Go(f)
	return true
}
func (l *testLife) AfterFunc(d time.Duration, f func()) *clock.Timer {
	return l.clock.AfterFunc(d, f)
}
func (l *testLife) AfterCtx(ctx context.Context, f func()) func() bool {
	return context.AfterFunc(ctx, f)
}
func (l *testLife) AtClose(func()) func() { return func() {} }
func (l *testLife) Done() <-chan struct{} { return l.done }

var _ Life = (*testLife)(nil)

// tcpPipe is a loopback TCP connection as a Pipe (half-close and deadlines, as a libp2p stream).
type tcpPipe struct{ *net.TCPConn }

func (p tcpPipe) Reset() error {
	_ = p.SetLinger(0)
	return p.Close()
}

func pipes(t *testing.T) (caller, callee tcpPipe) {
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan *net.TCPConn, 1)
	go func() {
		c, _ := ln.AcceptTCP()
		accepted <- c
	}()
	c, err := net.DialTCP("tcp", nil, ln.Addr().(*net.TCPAddr))
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	t.Cleanup(func() { c.Close(); s.Close() })
	return tcpPipe{c}, tcpPipe{s}
}

func testCall(t *testing.T, l Life, s Pipe, hop Hop, paid bool, h *wire.Header, body []byte) *Call {
	t.Helper()
	c, err := Open(context.Background(), s, CallConfig{Life: l, Hop: hop, Peer: peer.ID("callee"), Paid: paid,
		MaxFrame: 1 << 16, Stall: 5 * time.Second, FirstWait: 5 * time.Second}, h, body)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var testLimits = Limits{MaxFrame: 1 << 16, MaxBody: 1 << 12, MaxTokens: 100}

// rawFrames writes frames as a peer would, in whatever order it likes.
func rawFrames(t *testing.T, s Pipe, frames ...any) {
	t.Helper()
	w := wire.NewWriter(s)
	for i := 0; i < len(frames); i += 2 {
		if err := w.WriteFrame(frames[i].(wire.FrameType), frames[i+1].([]byte)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
}

func TestPaidExchange(t *testing.T) {
	l := newTestLife(t, clock.New())
	cs, ss := pipes(t)
	h := &wire.Header{ID: "r1", Model: "m", Endpoint: wire.Chat, Timeout: time.Second, MaxTokens: 10}
	c := testCall(t, l, cs, ProxyWorker, true, h, []byte(`{"x":1}`))

	vouchers := make(chan []byte, 4)
	served := make(chan error, 1)
	go func() {
		a := NewAnswer(ss, AnswerConfig{Life: l, Hop: ProxyWorker})
		got, body, err := a.ReadRequest(testLimits)
		if err != nil || got.ID != "r1" || string(body) != `{"x":1}` {
			served <- errors.Join(err, errors.New("wrong request"))
			return
		}
		a.Watch(func(error) {}, Late{Pay: func(v []byte) { vouchers <- v }, Settled: func([]byte) {}})
		q := wire.Quote{Coefficient: wire.CoefficientOne}
		err = errors.Join(a.Quote(&q, false), a.Chunk(&wire.Chunk{Tokens: 2, Data: []byte("ab")}, true),
			a.Bill(7), a.Final(&wire.Final{Worker: "w"}))
		if v := a.Verdict(time.Second); v != nil {
			err = errors.Join(err, errors.New("refused"))
		}
		a.Close()
		served <- err
	}()

	var kinds []Kind
	for {
		ev, err := c.Next()
		if err != nil {
			t.Fatal(err)
		}
		kinds = append(kinds, ev.Kind)
		switch ev.Kind {
		case Chunk:
			if string(ev.Chunk.Data) != "ab" || ev.Chunk.Tokens != 2 {
				t.Fatalf("chunk %+v", ev.Chunk)
			}
			c.Take(ev.Chunk.Tokens)
		case Bill:
			if ev.Owed != 7 {
				t.Fatalf("bill for %d, want 7", ev.Owed)
			}
			if err := c.Pay([]byte("voucher")); err != nil {
				t.Fatal(err)
			}
		}
		if ev.Kind == Final {
			break
		}
	}
	if want := []Kind{Quote, Chunk, Bill, Final}; !equalKinds(kinds, want) {
		t.Fatalf("events %v, want %v", kinds, want)
	}
	if v := <-vouchers; string(v) != "voucher" {
		t.Fatalf("voucher %q", v)
	}
	c.Finish()
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	if c.Taken() != 2 {
		t.Fatalf("taken %d, want 2", c.Taken())
	}
}

func equalKinds(a, b []Kind) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestCallRefusesOutOfOrder: a chunk before the quote of a paid answer, and a malformed quote,
// are bad frames that change nothing; the answer that follows in order is taken.
func TestCallRefusesOutOfOrder(t *testing.T) {
	l := newTestLife(t, clock.New())
	cs, ss := pipes(t)
	c := testCall(t, l, cs, ProxyWorker, true, &wire.Header{ID: "r", Model: "m", Endpoint: wire.Chat, Timeout: time.Second}, []byte("{}"))
	chunk := wire.AppendChunk(nil, &wire.Chunk{Tokens: 1, Data: []byte("a")})
	rawFrames(t, ss, wire.FrameChunk, chunk, wire.FrameQuote, []byte{1},
		wire.FrameQuote, wire.AppendQuote(nil, &wire.Quote{}), wire.FrameChunk, chunk, wire.FrameFinal, wire.AppendFinal(nil, &wire.Final{}))
	for i, want := range []string{"out of order", "malformed"} {
		_, err := c.Next()
		var bad *BadFrame
		if !errors.As(err, &bad) {
			t.Fatalf("frame %d: %v, want a bad frame", i, err)
		}
		if got := bad.Error(); !strings.Contains(got, want) {
			t.Fatalf("frame %d: %q does not say %q", i, got, want)
		}
	}
	for _, want := range []Kind{Quote, Chunk, Final} {
		ev, err := c.Next()
		if err != nil || ev.Kind != want {
			t.Fatalf("got %v %v, want %s", ev, err, want)
		}
	}
	c.Abort()
}

// TestAnswerCancelsOnCallerOutOfOrder: a voucher on an unpaid stream ends the caller watcher
// and cancels the request, with the frame named in the cause.
func TestAnswerCancelsOnCallerOutOfOrder(t *testing.T) {
	l := newTestLife(t, clock.New())
	cs, ss := pipes(t)
	a := NewAnswer(ss, AnswerConfig{Life: l, Hop: ProxyWorker})
	rawFrames(t, cs, wire.FrameHeader, wire.AppendHeader(nil, &wire.Header{ID: "r", Model: "m", Endpoint: wire.Chat, Timeout: time.Second}),
		wire.FrameBody, []byte("{}"), wire.FramePay, []byte("v"))
	if _, _, err := a.ReadRequest(testLimits); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	a.Watch(cancel, Late{})
	<-ctx.Done()
	cause := context.Cause(ctx)
	if !errors.Is(cause, context.Canceled) || !strings.Contains(cause.Error(), "pay frame out of order") {
		t.Fatalf("cause %v", cause)
	}
	a.Fail(wire.Errorf(wire.CodeCancelled, "cancelled"))
}

// TestRouteThenBody: a proxy's route lets one body come; the client's refusal cancels the
// request with a *Rejection that the OnRefusal hooks and the verdict see.
func TestRouteThenBody(t *testing.T) {
	l := newTestLife(t, clock.New())
	cs, ss := pipes(t)
	h := &wire.Header{ID: "r", Model: "m", Endpoint: wire.Chat, Timeout: time.Second, Sealed: true}
	c := testCall(t, l, cs, ClientProxy, false, h, nil)
	a := NewAnswer(ss, AnswerConfig{Life: l, Hop: ClientProxy})
	if _, body, err := a.ReadRequest(testLimits); err != nil || body != nil {
		t.Fatalf("a sealed request to a proxy read a body %q (%v)", body, err)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	a.Watch(cancel, Late{})
	var hooked []wire.Reject
	for range 3 { // more hooks than the answer holds without allocating
		a.OnRefusal(func(rj wire.Reject) { hooked = append(hooked, rj) })
	}
	_, pub, _ := crypto.GenerateEd25519Key(nil)
	w, _ := peer.IDFromPublicKey(pub)
	if err := a.Route(&wire.Route{Worker: w, Key: []byte("k")}); err != nil {
		t.Fatal(err)
	}
	if ev, err := c.Next(); err != nil || ev.Kind != Route || ev.Route.Worker != w {
		t.Fatalf("got %v %v, want the route", ev, err)
	}
	if err := c.Body(true, []byte("sealed")); err != nil {
		t.Fatal(err)
	}
	if sealed, body, err := a.Body(ctx); err != nil || !sealed || string(body) != "sealed" {
		t.Fatalf("body %q sealed=%v: %v", body, sealed, err)
	}
	c.Reject(3, wire.Errorf(wire.CodeWorkerFailed, "bad"))
	<-ctx.Done()
	var rj *Rejection
	if !errors.As(context.Cause(ctx), &rj) || rj.Tokens != 3 {
		t.Fatalf("cause %v, want the rejection", context.Cause(ctx))
	}
	if v := a.Verdict(time.Second); v == nil || v.Tokens != 3 {
		t.Fatalf("verdict %v", v)
	}
	if len(hooked) != 3 || hooked[0].Tokens != 3 {
		t.Fatalf("hooks saw %v, want three of one refusal of 3 tokens", hooked)
	}
	late := 0
	a.OnRefusal(func(wire.Reject) { late++ })
	if late != 1 {
		t.Fatal("a hook added after the refusal was not called at once")
	}
	a.Close()
	c.Leave()
}

// TestHeartbeat: a silent callee sends progress frames every beat, and none once it ended.
func TestHeartbeat(t *testing.T) {
	mock := clock.NewMock()
	mock.Set(time.Now())
	l := newTestLife(t, mock)
	cs, ss := pipes(t)
	a := NewAnswer(ss, AnswerConfig{Life: l, Hop: ProxyWorker, Beat: time.Second})
	r := wire.NewReader(cs, 1<<10)
	for range 2 {
		// The heartbeat runs on its own goroutine once the mock fires it: move on until it did.
		var ft wire.FrameType
		err := errors.New("no progress frame")
		for try := 0; try < 50 && err != nil; try++ {
			mock.Add(time.Second)
			_ = cs.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			ft, _, err = r.ReadFrame()
		}
		if err != nil || ft != wire.FrameProgress {
			t.Fatalf("got %s %v, want progress", ft, err)
		}
	}
	_ = cs.SetReadDeadline(time.Now().Add(5 * time.Second))
	if err := a.Final(&wire.Final{}); err != nil {
		t.Fatal(err)
	}
	if ft, _, err := r.ReadFrame(); err != nil || ft != wire.FrameFinal {
		t.Fatalf("got %s %v, want the final", ft, err)
	}
	mock.Add(3 * time.Second)
	if err := a.Chunk(&wire.Chunk{}, true); !errors.Is(err, ErrClosed) {
		t.Fatalf("a chunk after the final: %v", err)
	}
	a.Close()
	if ft, _, err := r.ReadFrame(); err == nil {
		t.Fatalf("a %s frame after the final", ft)
	}
}
