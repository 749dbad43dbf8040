package node

import (
	"crypto/sha256"
	"runtime"
	"sync"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
)

// Many concurrent callers all get valid signatures, and fewer signatures than callers are made.
func TestBatchSignerGroupsConcurrentCallers(t *testing.T) {
	key, _, _ := crypto.GenerateEd25519Key(nil)
	s := &batchSigner{key: key}
	const n = 200
	var wg sync.WaitGroup
	var mu sync.Mutex
	sigs := map[string]bool{}
	for i := range n {
		wg.Go(func() {
			d := sha256.Sum256([]byte{byte(i), byte(i >> 8)})
			b, err := s.sign(d)
			if err != nil || !b.Verify(key.GetPublic(), d) {
				t.Errorf("caller %d: %v", i, err)
				return
			}
			mu.Lock()
			sigs[string(b.Sig)] = true
			mu.Unlock()
		})
	}
	wg.Wait()
	if len(sigs) >= n {
		t.Logf("no batching happened (%d signatures for %d callers): a fast, idle machine", len(sigs), n)
	}
	if s.busy || len(s.pending) != 0 {
		t.Fatalf("signer left busy=%t with %d pending", s.busy, len(s.pending))
	}
}

// gatedKey blocks its first signature until released, so callers queue behind it.
type gatedKey struct {
	crypto.PrivKey
	started, release chan struct{}
	once             sync.Once
}

func (g *gatedKey) Sign(b []byte) ([]byte, error) {
	g.once.Do(func() {
		close(g.started)
		<-g.release
	})
	return g.PrivKey.Sign(b)
}

// While one signature is under way, ten callers queue; the next leader signs all ten at once.
func TestBatchSignerSignsTheQueueInOne(t *testing.T) {
	key, _, _ := crypto.GenerateEd25519Key(nil)
	g := &gatedKey{PrivKey: key, started: make(chan struct{}), release: make(chan struct{})}
	s := &batchSigner{key: g}
	var wg sync.WaitGroup
	wg.Go(func() { s.sign([32]byte{0xff}) })
	<-g.started
	results := make(chan []byte, 10)
	for i := range 10 {
		wg.Go(func() {
			d := [32]byte{byte(i)}
			b, err := s.sign(d)
			if err != nil || !b.Verify(key.GetPublic(), d) || b.Count != 10 {
				t.Errorf("queued caller %d: count %d, %v", i, b.Count, err)
			}
			results <- b.Sig
		})
	}
	for {
		s.mu.Lock()
		n := len(s.pending)
		s.mu.Unlock()
		if n == 10 {
			break
		}
		runtime.Gosched()
	}
	close(g.release)
	wg.Wait()
	close(results)
	first := <-results
	for sig := range results {
		if string(sig) != string(first) {
			t.Fatal("the queued callers got different signatures")
		}
	}
}
