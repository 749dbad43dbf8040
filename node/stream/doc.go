// Package stream is one inference stream (/cocoon/infer/1.0.0) on either hop, client -> proxy
// (ClientProxy) or proxy -> worker (ProxyWorker): the caller's side (Call) yields the answer
// as typed events, the callee's side (Answer) sends it with typed methods, and the order of
// the frames each way is checked in one place, two small pure state machines:
//
//   - AnswerOrder: what a callee may send, checked by Call.Next;
//   - CallOrder: what a caller may send, checked by Answer.ReadRequest and the caller watcher.
//
// A frame out of order, or one that does not decode, is a *BadFrame and changes nothing. The
// grammar of each hop is in package wire's doc.go and on AnswerOrder and CallOrder.
//
// The package knows nothing of payments, sealing or receipts: a hop runs those as steps on the
// events (node's attempt, relay and job). It starts no goroutine or timer of its own either:
// what it needs (a clock, goroutines for the heartbeat, the caller watcher and the drain, a
// reset when the node closes) comes from the Life it is given.
//
// The caller's loop (a client's attempt, a proxy's relay):
//
//	c, err := stream.Open(ctx, s, stream.CallConfig{Life: l, Hop: hop, Peer: p, Paid: paid, ...}, &h, body)
//	for {
//		ev, err := c.Next()
//		switch {
//		case errors.As(err, new(*stream.BadFrame)):
//			c.Reject(c.Taken(), why); c.Leave() // refuse the answer; the callee ends it
//		case err != nil:
//			return c.Broke(ctx, err)
//		}
//		switch ev.Kind {
//		case stream.Route:  // seal the body to ev.Route's worker: c.Body(sealed, body)
//		case stream.Quote:  // meter the answer at ev.Quote
//		case stream.Bill:   // pay now: c.Settled(voucher)
//		case stream.Chunk:  // check, hand on, meter ev.Chunk; c.Take(tokens); vouchers: c.Pay
//		case stream.Final:  // check the receipt; c.Finish()
//		case stream.Error:  // ev.Err; c.Finish()
//		}
//	}
//
// The callee's (a proxy's handler, a worker's job):
//
//	a := stream.NewAnswer(s, stream.AnswerConfig{Life: l, Hop: hop, Beat: beat})
//	h, body, err := a.ReadRequest(limits) // on error: a.Fail(err)
//	a.OnRefusal(takeBackBilling)
//	a.Watch(cancel, stream.Late{Pay: acceptVoucher, Settled: writeOff})
//	a.Route(&route); sealed, body, err := a.Body(ctx) // a proxy, for a sealed request
//	a.Quote(&q, false); a.Chunk(&c, flush); a.Bill(owed) // as the payer falls behind
//	a.Final(&fin); a.Verdict(DrainTimeout); a.Close() // or a.Fail(err)
package stream
