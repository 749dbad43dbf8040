package chanstore

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cocoon-mesh/cocoon/ton"
	"github.com/ipfs/go-datastore"
)

func TestPutGetListReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	d := openLevel(t, dir)
	s := New(d)
	var want []Record
	for n := uint32(1); n <= 5; n++ {
		for _, role := range []Role{Payer, Payee} {
			r := testRecord(t, n, role, uint64(n)*10, uint64(n)*1000)
			if n == 3 {
				r = testRecord(t, n, role, 0, 0) // no voucher yet
			}
			if err := s.Put(ctx, r); err != nil {
				t.Fatal(err)
			}
			want = append(want, r)
		}
	}
	// A second Put of the same state, with more known on chain, replaces it.
	want[0].CommittedSeqno = 2
	if err := s.Put(ctx, want[0]); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopen, as a restarted process would.
	d = openLevel(t, dir)
	defer d.Close()
	s = New(d)
	got, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("List returned %d records, want %d", len(got), len(want))
	}
	for i := range want {
		if !sameState(got[i], want[i]) {
			t.Fatalf("record %d: got %+v, want %+v", i, got[i], want[i])
		}
		r, err := s.Get(ctx, want[i].ChannelID, want[i].Role)
		if err != nil || !sameState(r, want[i]) {
			t.Fatalf("Get %d: %v", i, err)
		}
		wantUpdates := uint64(1)
		if i == 0 {
			wantUpdates = 2
		}
		if r.Updates != wantUpdates || time.Since(r.Updated) > time.Minute {
			t.Fatalf("record %d: updates %d at %v", i, r.Updates, r.Updated)
		}
	}
	if a, err := got[0].Address(); err != nil {
		t.Fatal(err)
	} else if !a.Equals(must(testParams(1).Address())) {
		t.Fatal("reopened record rebuilds another channel address")
	}
	if _, err := s.Get(ctx, testParams(99).ChannelID, Payer); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of an absent record: %v", err)
	}

	if err := s.Delete(ctx, want[0].ChannelID, want[0].Role); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, want[0].ChannelID, want[0].Role); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after Delete: %v", err)
	}
	if got, err := s.List(ctx); err != nil || len(got) != len(want)-1 {
		t.Fatalf("List after Delete: %d records, %v", len(got), err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestStaleRefused(t *testing.T) {
	ctx := context.Background()
	d := openLevel(t, t.TempDir())
	defer d.Close()
	s := New(d)
	stored := testRecord(t, 1, Payee, 10, 500)
	if err := s.Put(ctx, stored); err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]Record{
		"lower seqno":            testRecord(t, 1, Payee, 9, 900),
		"same seqno, lower sent": testRecord(t, 1, Payee, 10, 499),
		"no voucher":             testRecord(t, 1, Payee, 0, 0),
	} {
		if err := s.Put(ctx, r); !errors.Is(err, ErrStale) {
			t.Errorf("%s: got %v, want ErrStale", name, err)
		}
	}
	got, err := s.Get(ctx, stored.ChannelID, Payee)
	if err != nil || !sameState(got, stored) || got.Updates != 1 {
		t.Fatalf("stale Puts changed the record: %+v, %v", got, err)
	}
	// The other role of the same channel is a separate record.
	if err := s.Put(ctx, testRecord(t, 1, Payer, 1, 1)); err != nil {
		t.Fatal(err)
	}
	for _, r := range []Record{testRecord(t, 1, Payee, 10, 500), testRecord(t, 1, Payee, 10, 600), testRecord(t, 1, Payee, 11, 600)} {
		if err := s.Put(ctx, r); err != nil {
			t.Fatalf("seqno %d sent %d: %v", r.Voucher.Seqno, r.Voucher.Sent, err)
		}
	}
	if got, _ := s.Get(ctx, stored.ChannelID, Payee); got.Voucher.Seqno != 11 || got.Updates != 4 {
		t.Fatalf("got seqno %d after %d updates", got.Voucher.Seqno, got.Updates)
	}
	// A channel's state only moves forward: a late Put of the open record cannot reopen it.
	closing := testRecord(t, 1, Payee, 11, 600)
	closing.State = Closing
	if err := s.Put(ctx, closing); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, testRecord(t, 1, Payee, 12, 700)); !errors.Is(err, ErrStale) {
		t.Fatalf("reopening a closing channel: got %v, want ErrStale", err)
	}
}

// TestConcurrentSameChannel races Puts of one channel's seqnos: the highest must win whatever
// the order and grouping, and every lower one either stored first or refused as stale.
func TestConcurrentSameChannel(t *testing.T) {
	ctx := context.Background()
	d := openLevel(t, t.TempDir())
	defer d.Close()
	s := New(d)
	const n = 40
	var wg sync.WaitGroup
	for i := n; i >= 1; i-- {
		wg.Go(func() {
			err := s.Put(ctx, testRecord(t, 1, Payer, uint64(i), uint64(i)*10))
			if err != nil && !errors.Is(err, ErrStale) {
				t.Errorf("seqno %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	got, err := s.Get(ctx, testParams(1).ChannelID, Payer)
	if err != nil || got.Voucher.Seqno != n {
		t.Fatalf("got seqno %d, %v; want %d", got.Voucher.Seqno, err, n)
	}
}

func TestCorruptStoredRecord(t *testing.T) {
	ctx := context.Background()
	d := openLevel(t, t.TempDir())
	defer d.Close()
	s := New(d)
	good := testRecord(t, 2, Payee, 4, 40)
	if err := s.Put(ctx, good); err != nil {
		t.Fatal(err)
	}
	bad := testRecord(t, 1, Payee, 5, 50)
	key := Key(bad.ChannelID, bad.Role)
	garbage := []byte{recordVersion, byte(Payee), 1, 2, 3}
	if err := d.Put(ctx, key, garbage); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, bad.ChannelID, Payee); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Get of a corrupt record: %v", err)
	}
	if err := s.Put(ctx, bad); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Put over a corrupt record: %v", err)
	}
	if b, err := d.Get(ctx, key); err != nil || string(b) != string(garbage) {
		t.Fatalf("Put over a corrupt record changed it: %x, %v", b, err)
	}
	got, err := s.List(ctx)
	if !errors.Is(err, ErrCorrupt) || len(got) != 1 || !sameState(got[0], good) {
		t.Fatalf("List with one corrupt record: %d records, %v", len(got), err)
	}
	// A valid record stored under the wrong key is corrupt too.
	misfiled, _ := good.MarshalBinary()
	if err := d.Put(ctx, key, misfiled); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, bad.ChannelID, Payee); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Get of a misfiled record: %v", err)
	}
	// Delete clears it; then Put works.
	if err := s.Delete(ctx, bad.ChannelID, Payee); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, bad); err != nil {
		t.Fatal(err)
	}
}

// gated wraps a datastore: each batch Commit announces itself on entered and waits for gate,
// and the keys of every committed batch are recorded once the real commit returns.
type gated struct {
	datastore.Batching
	entered chan struct{}
	gate    chan struct{}

	mu        sync.Mutex
	batches   [][]datastore.Key
	committed map[datastore.Key]bool
}

type gatedBatch struct {
	datastore.Batch
	g    *gated
	keys []datastore.Key
}

func (g *gated) Batch(ctx context.Context) (datastore.Batch, error) {
	b, err := g.Batching.Batch(ctx)
	return &gatedBatch{Batch: b, g: g}, err
}

func (b *gatedBatch) Put(ctx context.Context, k datastore.Key, v []byte) error {
	b.keys = append(b.keys, k)
	return b.Batch.Put(ctx, k, v)
}

func (b *gatedBatch) Commit(ctx context.Context) error {
	b.g.entered <- struct{}{}
	<-b.g.gate
	if err := b.Batch.Commit(ctx); err != nil {
		return err
	}
	b.g.mu.Lock()
	defer b.g.mu.Unlock()
	b.g.batches = append(b.g.batches, b.keys)
	for _, k := range b.keys {
		b.g.committed[k] = true
	}
	return nil
}

func TestGroupCommit(t *testing.T) {
	ctx := context.Background()
	d := openLevel(t, t.TempDir())
	defer d.Close()
	g := &gated{Batching: d, entered: make(chan struct{}, 100), gate: make(chan struct{}),
		committed: map[datastore.Key]bool{}}
	s := New(g)

	const n = 16
	var returned atomic.Int32
	var wg sync.WaitGroup
	put := func(ch uint32) {
		r := testRecord(t, ch, Payee, 1, 1)
		err := s.Put(ctx, r)
		returned.Add(1)
		g.mu.Lock()
		durable := g.committed[Key(r.ChannelID, Payee)]
		g.mu.Unlock()
		if err != nil || !durable {
			t.Errorf("channel %d: Put returned %v before its batch committed (%v)", ch, err, durable)
		}
	}
	wg.Go(func() { put(0) })
	<-g.entered // the first Put leads and is now inside its commit
	for i := uint32(1); i <= n; i++ {
		wg.Go(func() { put(i) })
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		queued := len(s.queue)
		s.mu.Unlock()
		if queued == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d Puts queued", queued, n)
		}
		time.Sleep(time.Millisecond)
	}
	if k := returned.Load(); k != 0 {
		t.Fatalf("%d Puts returned while the first batch was held", k)
	}
	close(g.gate)
	wg.Wait()
	if len(g.batches) != 2 || len(g.batches[0]) != 1 || len(g.batches[1]) != n {
		sizes := []int{}
		for _, b := range g.batches {
			sizes = append(sizes, len(b))
		}
		t.Fatalf("batch sizes %v, want [1 %d]", sizes, n)
	}
}

func TestReconcile(t *testing.T) {
	payer := testRecord(t, 1, Payer, 10, 1000)
	payee := testRecord(t, 1, Payee, 10, 1000)
	sign := func(seqno, sent uint64) ton.Voucher {
		return ton.SignVoucher(keyPair(1), payer.ChannelID, seqno, sent)
	}
	forged := sign(20, 2000)
	forged.Signature[0] ^= 1
	for _, tc := range []struct {
		name  string
		local Record
		v     ton.Voucher
		adopt bool
	}{
		{"payer behind payee", payer, sign(12, 1200), true},
		{"payer same seqno, higher sent", payer, sign(10, 1001), true},
		{"payer ahead", payer, sign(9, 900), false},
		{"payer equal", payer, sign(10, 1000), false},
		{"higher seqno, lower sent", payer, sign(11, 999), false},
		{"forged", payer, forged, false},
		{"other key", payer, ton.SignVoucher(keyPair(9), payer.ChannelID, 20, 2000), false},
		{"seqno past limit", payer, sign(ton.MaxVoucherSeqno+1, 2000), false},
		{"payee behind payer", payee, sign(11, 1100), true},
		{"payee ahead", payee, sign(8, 800), false},
		{"payee over limit", payee, sign(11, payee.Limit+1), false},
		{"payee no voucher", testRecord(t, 1, Payee, 0, 0), sign(1, 5), true},
		{"payee below committed", testRecord(t, 1, Payee, 0, 0), sign(0, 5), false},
	} {
		got, changed := Reconcile(tc.local, tc.v, tc.local.VerifyVoucher)
		want := tc.local
		if tc.adopt {
			want.Voucher, want.HasVoucher = tc.v, true
		}
		if changed != tc.adopt || !sameState(got, want) {
			t.Errorf("%s: changed %v, voucher %d/%d", tc.name, changed, got.Voucher.Seqno, got.Voucher.Sent)
		}
	}
	if _, changed := Reconcile(payer, sign(12, 1200), nil); changed {
		t.Error("adopted a voucher without a verifier")
	}
}
