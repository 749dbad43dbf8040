package chanstore

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cocoon-mesh/cocoon/ton"
	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
)

// ErrStale is wrapped by the error of a Put that would replace a stored record with an older one.
var ErrStale = errors.New("chanstore: record is older than the stored one")

// ErrNotFound is wrapped by Get's error when no record is stored for the (channel, role).
var ErrNotFound = errors.New("chanstore: no record")

// prefix is the namespace of every record key: /chan/<role>/<hex channel id>.
const prefix = "/chan"

// Store keeps one durable Record per (channel, role) in a datastore. Its methods are safe for
// concurrent use; Puts and Deletes that arrive while a write is under way share its next fsync.
type Store struct {
	d   datastore.Batching
	now func() time.Time

	mu      sync.Mutex
	writing bool  // a leader is writing; new ops queue up
	queue   []*op // ops waiting for the next batch, in arrival order
}

// op is one queued Put or Delete and, once its batch is done, its result.
type op struct {
	key  datastore.Key
	rec  Record
	del  bool
	err  error
	lead bool          // set before wake is closed: the op's caller is to write the next batch
	wake chan struct{} // closed once: the op is done, or its caller leads
}

// New returns a store over d. Durability is d's: over go-ds-leveldb every batch commit is
// fsynced (see the package doc). The caller keeps closing d.
func New(d datastore.Batching) *Store {
	return &Store{d: d, now: time.Now}
}

// Key returns the datastore key of the record for (id, role).
func Key(id ton.ChannelID, role Role) datastore.Key {
	return datastore.NewKey(prefix + "/" + role.String() + "/" + hex.EncodeToString(id[:]))
}

// Put stores rec and returns only once it is durable, with rec's Updates and Updated replaced
// by the store's counter and clock. A rec older than the stored one (lower voucher seqno, equal
// seqno with lower sent, no voucher where one is stored, or an earlier State) is refused with
// an error wrapping ErrStale and changes nothing; while the stored one does not decode, Put
// fails with an error wrapping ErrCorrupt (Delete clears it). ctx is passed to the datastore; a
// Put waiting for the batch under way is not interrupted by it. A Put that returns another
// error may or may not have been written.
func (s *Store) Put(ctx context.Context, rec Record) error {
	if err := rec.check(); err != nil {
		return err
	}
	rec.KeyA, rec.KeyB = slices.Clone(rec.KeyA), slices.Clone(rec.KeyB) // the caller may reuse them
	return s.do(ctx, &op{key: Key(rec.ChannelID, rec.Role), rec: rec})
}

// Delete durably removes the record for (id, role), once the channel is closed for good (and
// before a re-init on the same id, whose vouchers restart below the old ones). Deleting an
// absent or corrupt record is not an error.
func (s *Store) Delete(ctx context.Context, id ton.ChannelID, role Role) error {
	return s.do(ctx, &op{key: Key(id, role), del: true})
}

// Get returns the stored record for (id, role), or an error wrapping ErrNotFound or ErrCorrupt.
func (s *Store) Get(ctx context.Context, id ton.ChannelID, role Role) (Record, error) {
	r, ok, err := s.load(ctx, Key(id, role))
	if err == nil && !ok {
		err = fmt.Errorf("%w for %s of channel %x", ErrNotFound, role, id[:])
	}
	return r, err
}

// List returns every stored record, sorted by channel id then role, for resuming at start. A
// record that does not decode is left out and reported in the error (wrapping ErrCorrupt), so
// one bad record does not hide the others.
func (s *Store) List(ctx context.Context) ([]Record, error) {
	res, err := s.d.Query(ctx, query.Query{Prefix: prefix})
	if err != nil {
		return nil, err
	}
	defer res.Close()
	var out []Record
	var errs []error
	for e := range res.Next() {
		if e.Error != nil {
			return nil, e.Error
		}
		r, err := DecodeRecord(e.Value)
		if err == nil && Key(r.ChannelID, r.Role).String() != e.Key {
			err = fmt.Errorf("%w: stored under another key", ErrCorrupt)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", e.Key, err))
			continue
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Record) int {
		if c := strings.Compare(string(a.ChannelID[:]), string(b.ChannelID[:])); c != 0 {
			return c
		}
		return int(a.Role) - int(b.Role)
	})
	return out, errors.Join(errs...)
}

// load reads and decodes the record under key; ok is false when none is stored.
func (s *Store) load(ctx context.Context, key datastore.Key) (r Record, ok bool, err error) {
	b, err := s.d.Get(ctx, key)
	if errors.Is(err, datastore.ErrNotFound) {
		return Record{}, false, nil
	}
	if err != nil {
		return Record{}, false, err
	}
	r, err = DecodeRecord(b)
	if err == nil && Key(r.ChannelID, r.Role) != key {
		err = fmt.Errorf("%w: stored under another key", ErrCorrupt)
	}
	if err != nil {
		return Record{}, false, fmt.Errorf("%s: %w", key, err)
	}
	return r, true, nil
}

// do queues o and returns its result once its batch is durable. The caller that finds no write
// under way leads: it writes everything queued, then hands the lead to the first op queued
// meanwhile, whose caller writes the next batch. Only the leader touches the datastore's
// records, so the staleness check and the write cannot interleave with another Put's.
func (s *Store) do(ctx context.Context, o *op) error {
	o.wake = make(chan struct{})
	s.mu.Lock()
	s.queue = append(s.queue, o)
	if s.writing {
		s.mu.Unlock()
		<-o.wake
		if !o.lead {
			return o.err
		}
		s.mu.Lock()
	}
	s.writing = true
	batch := s.queue
	s.queue = nil
	s.mu.Unlock()

	s.commit(context.WithoutCancel(ctx), batch)

	s.mu.Lock()
	if len(s.queue) > 0 {
		next := s.queue[0]
		next.lead = true
		close(next.wake) // s.writing stays true: the lead passes on
	} else {
		s.writing = false
	}
	s.mu.Unlock()
	for _, b := range batch {
		if b != o {
			close(b.wake)
		}
	}
	return o.err
}

// commit writes the ops of one batch in one datastore batch, setting each op's err. Ops that are
// stale against the stored record, or against an earlier op of the same batch, are left out.
func (s *Store) commit(ctx context.Context, ops []*op) {
	type state struct {
		rec Record
		ok  bool
		err error
	}
	cur := make(map[datastore.Key]state, len(ops))
	now := time.UnixMilli(s.now().UnixMilli()).UTC()
	b, err := s.d.Batch(ctx)
	if err != nil {
		for _, o := range ops {
			o.err = err
		}
		return
	}
	var written []*op
	for _, o := range ops {
		st, seen := cur[o.key]
		if !seen {
			st.rec, st.ok, st.err = s.load(ctx, o.key)
		}
		if o.del {
			if o.err = b.Delete(ctx, o.key); o.err == nil {
				cur[o.key] = state{}
				written = append(written, o)
			}
			continue
		}
		if st.err != nil {
			o.err = st.err
			cur[o.key] = st
			continue
		}
		if st.ok {
			if o.err = stale(st.rec, o.rec); o.err != nil {
				cur[o.key] = st
				continue
			}
			o.rec.Updates = st.rec.Updates + 1
		} else {
			o.rec.Updates = 1
		}
		o.rec.Updated = now
		v, err := o.rec.MarshalBinary()
		if err == nil {
			err = b.Put(ctx, o.key, v)
		}
		if o.err = err; err != nil {
			cur[o.key] = st
			continue
		}
		cur[o.key] = state{rec: o.rec, ok: true}
		written = append(written, o)
	}
	if len(written) == 0 {
		return
	}
	if err := b.Commit(ctx); err != nil {
		for _, o := range written {
			o.err = err
		}
	}
}

// stale returns an error wrapping ErrStale if next would replace stored with an older state.
func stale(stored, next Record) error {
	switch {
	case next.State < stored.State:
		return fmt.Errorf("%w: channel %s, stored %s", ErrStale, next.State, stored.State)
	case !stored.HasVoucher:
		return nil
	case !next.HasVoucher:
		return fmt.Errorf("%w: no voucher, stored seqno %d", ErrStale, stored.Voucher.Seqno)
	case next.Voucher.Seqno < stored.Voucher.Seqno:
		return fmt.Errorf("%w: seqno %d, stored %d", ErrStale, next.Voucher.Seqno, stored.Voucher.Seqno)
	case next.Voucher.Seqno == stored.Voucher.Seqno && next.Voucher.Sent < stored.Voucher.Sent:
		return fmt.Errorf("%w: seqno %d with sent %d, stored sent %d", ErrStale,
			next.Voucher.Seqno, next.Voucher.Sent, stored.Voucher.Sent)
	}
	return nil
}
