// Package chanstore keeps durable payment-channel records: for each channel and role (payer or
// payee) the parameters and the newest voucher, enough for a restarted node to resume the channel
// and, for a payee, to close it unilaterally on its own.
//
// # Durability rule
//
// "A GPU owner never loses money because a process died": the newest signed state a side holds is
// made durable BEFORE the node sends anything that depends on it (the payer, before it sends
// voucher n; the payee, before it credits or serves against it). Store.Put returns only once the
// record is durable, so a kill -9 at any moment loses nothing a Put acknowledged.
//
// What makes a write durable is the datastore's commit. Over go-ds-leveldb (NewDatastore sets
// syncWrites: true, and neither this package nor its Options may set NoSync), Batch.Commit calls
// goleveldb's DB.Write with opt.WriteOptions{Sync: true}: the batch is appended to the write-ahead
// journal, flushed, and the journal file is fsynced (os.File.Sync) before Write returns. A
// datastore that does not sync its commits gives no such guarantee; the Store cannot add one.
//
// # Group commit
//
// One fsync costs milliseconds, so concurrent Puts share one: a Put that finds no write under
// way leads, writing every record queued at that moment in one synced batch, and then hands the
// lead to the first Put that queued meanwhile. There is no goroutine and no timer of its own; a
// lone Put pays one fsync and no added delay.
//
// # Ordering
//
// A Put never replaces a stored record of the same (channel, role) with an older one: the higher
// voucher seqno wins, and at equal seqno a lower cumulative sent is refused with ErrStale. After
// a restart, Reconcile merges the local record with the voucher the other side presents.
package chanstore
