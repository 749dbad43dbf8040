package chanstore

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/cocoon-mesh/cocoon/ton"
)

// BenchmarkPutSequential is the cost of one durable state update from a lone caller: one
// synced leveldb batch per Put.
func BenchmarkPutSequential(b *testing.B) {
	d := openLevel(b, b.TempDir())
	defer d.Close()
	s := New(d)
	r := testRecord(b, 1, Payee, 1, 1)
	ctx := context.Background()
	b.ReportAllocs()
	seqno := uint64(1)
	for b.Loop() {
		r.Voucher.Seqno, r.Voucher.Sent = seqno, seqno // the signature is not checked by Put
		if err := s.Put(ctx, r); err != nil {
			b.Fatal(err)
		}
		seqno++
	}
}

// BenchmarkPutConcurrent has 16 callers per CPU, each updating its own channel: group commit
// shares one fsync among the Puts that queue while one is under way.
func BenchmarkPutConcurrent(b *testing.B) {
	d := openLevel(b, b.TempDir())
	defer d.Close()
	s := New(d)
	ctx := context.Background()
	var channels atomic.Uint32
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		r := testRecord(b, channels.Add(1), Payee, 1, 1)
		for seqno := uint64(1); pb.Next(); seqno++ {
			r.Voucher = ton.Voucher{Seqno: seqno, Sent: seqno, Signature: r.Voucher.Signature}
			if err := s.Put(ctx, r); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
