package tee

import (
	"bytes"
	"errors"
	"sync"
	"testing"
)

func newPair(t testing.TB) (*Session, *Opener) {
	t.Helper()
	k, err := GenerateSealKey()
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSession(k.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	return s, NewOpener(k)
}

func TestSealRoundTrip(t *testing.T) {
	s, o := newPair(t)
	aad := []byte("req-1 model")
	sealed, cAns, err := s.Seal(aad, []byte(`{"messages":"secret prompt"}`))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("secret prompt")) {
		t.Fatal("sealed body contains the plaintext")
	}
	body, wAns, err := o.Open(aad, sealed)
	if err != nil || string(body) != `{"messages":"secret prompt"}` {
		t.Fatalf("open: %q %v", body, err)
	}
	for _, chunk := range []string{"data: one\n\n", "data: two\n\n", ""} {
		sc, _ := wAns.Seal(nil, []byte(chunk))
		got, err := cAns.Open(nil, sc)
		if err != nil || string(got) != chunk {
			t.Fatalf("answer chunk %q: %q %v", chunk, got, err)
		}
	}
	// Chunks out of order do not open.
	a, _ := wAns.Seal(nil, []byte("a"))
	b, _ := wAns.Seal(nil, []byte("b"))
	if _, err := cAns.Open(nil, b); !errors.Is(err, ErrSeal) {
		t.Fatalf("reordered chunk opened: %v", err)
	}
	_ = a
}

func TestSealRefusesTamperingReplayAndOtherKeys(t *testing.T) {
	s, o := newPair(t)
	aad := []byte("req-1")
	sealed, _, _ := s.Seal(aad, []byte("body"))

	if _, _, err := o.Open([]byte("req-2"), sealed); !errors.Is(err, ErrSeal) {
		t.Fatalf("moved to another request: %v", err)
	}
	bad := bytes.Clone(sealed)
	bad[len(bad)-1] ^= 1
	if _, _, err := o.Open(aad, bad); !errors.Is(err, ErrSeal) {
		t.Fatalf("tampered: %v", err)
	}
	if _, _, err := o.Open(aad, sealed); err != nil {
		t.Fatalf("genuine after failed attempts: %v", err)
	}
	if _, _, err := o.Open(aad, sealed); !errors.Is(err, ErrSeal) {
		t.Fatalf("replay: %v", err)
	}
	_, other := newPair(t)
	sealed2, _, _ := s.Seal(aad, []byte("body"))
	if _, _, err := other.Open(aad, sealed2); !errors.Is(err, ErrSeal) {
		t.Fatalf("another worker's key: %v", err)
	}
	for _, p := range [][]byte{nil, {0}, {5, 1, 2}} {
		if _, _, err := o.Open(aad, p); err == nil {
			t.Fatalf("garbage %x opened", p)
		}
	}
}

// After Confirm, bodies name the session by ID alone; a worker that lost the session says so,
// and after Unconfirm the client's next body sets it up again.
func TestSessionResumption(t *testing.T) {
	s, o := newPair(t)
	first, _, _ := s.Seal(nil, []byte("one"))
	if _, _, err := o.Open(nil, first); err != nil {
		t.Fatal(err)
	}
	s.Confirm()
	short, _, _ := s.Seal(nil, []byte("two"))
	if len(short) >= len(first) {
		t.Fatalf("confirmed body of %d bytes, first of %d: the encapsulated key is still sent", len(short), len(first))
	}
	if body, _, err := o.Open(nil, short); err != nil || string(body) != "two" {
		t.Fatalf("resumed body: %q %v", body, err)
	}
	fresh := NewOpener(o.Key()) // the same key, sessions lost
	third, _, _ := s.Seal(nil, []byte("three"))
	if _, _, err := fresh.Open(nil, third); !errors.Is(err, ErrUnknownSession) {
		t.Fatalf("unknown session: %v", err)
	}
	s.Unconfirm()
	fourth, _, _ := s.Seal(nil, []byte("four"))
	if body, _, err := fresh.Open(nil, fourth); err != nil || string(body) != "four" {
		t.Fatalf("after Unconfirm: %q %v", body, err)
	}
	// A session ID that is not its key's: refused.
	bad := bytes.Clone(fourth)
	bad[0] ^= 1
	if _, _, err := NewOpener(o.Key()).Open(nil, bad); !errors.Is(err, ErrMalformed) {
		t.Fatalf("mismatched session id: %v", err)
	}
}

func TestOpenerEvictsLeastRecentlyUsed(t *testing.T) {
	o := NewOpener(nil)
	for i := range 10 {
		s := &openSession{}
		s.used.Store(int64(i))
		o.sessions[[16]byte{byte(i)}] = s
	}
	o.evictHalf()
	if len(o.sessions) != 5 || o.sessions[[16]byte{9}] == nil || o.sessions[[16]byte{0}] != nil {
		t.Fatalf("kept %d sessions: %v", len(o.sessions), o.sessions)
	}
}

func TestReplayWindow(t *testing.T) {
	var s openSession
	for _, seq := range []uint64{5, 3, 4, 1, 2} {
		if !s.accept(seq) {
			t.Fatalf("fresh %d refused", seq)
		}
	}
	for _, seq := range []uint64{1, 2, 3, 4, 5} {
		if s.accept(seq) {
			t.Fatalf("replayed %d accepted", seq)
		}
	}
	if !s.accept(5 + 70) { // shifts the window by more than one word
		t.Fatal("75 refused")
	}
	if s.accept(5) || s.accept(3) || !s.accept(6) || s.accept(6) {
		t.Fatal("window lost track across a shift")
	}
	if !s.accept(5000) || s.accept(5000-replayWindow) || !s.accept(5000-replayWindow+1) {
		t.Fatal("window edge")
	}
}

func TestSealConcurrent(t *testing.T) {
	s, o := newPair(t)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Go(func() {
			for j := 0; j < 50; j++ {
				sealed, _, err := s.Seal(nil, []byte("x"))
				if err != nil {
					t.Error(err)
					return
				}
				if _, _, err := o.Open(nil, sealed); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// BenchmarkSealRequest is the per-request cost of sealing once the session exists: client seal,
// worker open, one answer chunk each way.
func BenchmarkSealRequest(b *testing.B) {
	s, o := newPair(b)
	body := bytes.Repeat([]byte("x"), 512)
	chunk := bytes.Repeat([]byte("y"), 256)
	b.ReportAllocs()
	for b.Loop() {
		sealed, cAns, _ := s.Seal([]byte("id"), body)
		_, wAns, err := o.Open([]byte("id"), sealed)
		if err != nil {
			b.Fatal(err)
		}
		sc, _ := wAns.Seal(nil, chunk)
		if _, err := cAns.Open(nil, sc); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSealSession is the one-off cost of setting up a session (ML-KEM-768+X25519), both sides.
func BenchmarkSealSession(b *testing.B) {
	k, _ := GenerateSealKey()
	for b.Loop() {
		s, err := NewSession(k.PublicKey())
		if err != nil {
			b.Fatal(err)
		}
		sealed, _, _ := s.Seal(nil, nil)
		if _, _, err := NewOpener(k).Open(nil, sealed); err != nil {
			b.Fatal(err)
		}
	}
}

// Two requests of one session share its key but never a nonce: a proxy cannot pass one
// request's answer off as another's.
func TestAnswersDoNotCrossRequests(t *testing.T) {
	s, o := newPair(t)
	b1, c1, _ := s.Seal(nil, []byte("one"))
	b2, c2, _ := s.Seal(nil, []byte("two"))
	_, w1, err1 := o.Open(nil, b1)
	_, w2, err2 := o.Open(nil, b2)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	a1, _ := w1.Seal(nil, []byte("answer one"))
	a2, _ := w2.Seal(nil, []byte("answer two"))
	if _, err := c2.Open(nil, a1); !errors.Is(err, ErrSeal) {
		t.Fatalf("request 1's answer opened as request 2's: %v", err)
	}
	if got, err := c1.Open(nil, a1); err != nil || string(got) != "answer one" {
		t.Fatalf("%q %v", got, err)
	}
	_ = a2
}
