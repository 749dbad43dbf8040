// Package channel is the life of one payment channel as a stepped state machine: open,
// pay, settle, rotate, close together or alone, challenge, finish. It holds the decisions;
// the caller (node) does the I/O: the store, the streams, the ledger. It is pure: no
// goroutines, no I/O, no clock (every Step takes now), no randomness (the caller picks
// channel ids and deposits). The money rules stay in package ton (Payer, Payee, Meter,
// Credit) and the durable record in ton/chanstore; a Channel holds one of each it needs.
//
// # The caller's loop
//
// One owner steps a Channel, as raft's RawNode is stepped, and carries out each Step's
// Effects in their order before the next Step:
//
//	ch, _ := channel.New(cfg, chanstore.Payer, params) // or channel.Resume(cfg, rec)
//	eff, err := ch.Step(now, channel.OpenRequested{Deposit: d, PayeeSemi: semi})
//	for {
//		if err != nil {
//			// The event changed nothing: bad input from the peer (answer it with an error
//			// frame), or an event that does not apply. A refused answer to one of our
//			// requests (a countersignature that does not check) is, for that request, a
//			// failure: step SendFailed for it.
//		}
//		for _, w := range eff.Persist { // 1. durable first
//			if perr := put(w); perr != nil { // store.Put or store.Delete
//				eff, err = ch.Step(now, channel.PersistFailed{Err: perr})
//				continue outer // nothing else of the batch is carried out
//			}
//		}
//		for _, m := range eff.Send { send(m) }      // 2. frames: vouchers, answers, requests
//		for _, a := range eff.Chain { submit(a) }   // 3. the ledger
//		if eff.Replace { openAnother() }            // a payer's rotation
//		log(eff.Notes)
//		eff, err = ch.Step(<-next event>)
//	}
//
// Events come from four places, all posted into the owner's loop: the data path
// (AnswerBegan, Received, Refused, Billed, AnswerEnded for a payer; AnswerBegan, Delivered,
// Refused, VoucherReceived, Settled for a payee); the channel stream (Announced, Replied,
// CloseProposed, CloseSigned, CloseRequested{Asked}, SettleAsked); the ledger (ChainObserved, answering
// an Observe or from the watch's ticker every Config.WatchEvery, and ChainDone/ChainFailed
// for the actions submitted); and time (Tick at Deadline). Requests sent (Pay or Settle
// without a Stream, Announce, Propose, AskClose, AskSettle) are answered by Replied or CloseSigned, or
// fail with SendFailed; the caller may carry the sends and the chain actions out
// concurrently, since their outcomes come back as events.
//
// Persist before send holds by construction: a Step's records are listed before its
// messages, and a voucher is only ever in Send after the record that holds it is in
// Persist. A Step that wrote nothing needs nothing durable.
//
// # What it decides
//
// A payer (node's openOnLedger, openOut, resumable, payOn, pay, payAhead, billNow,
// settleLater, settle, rotate, closeOut, closeTogether): it stores a new channel's record
// with the payee's semichannel signature before deploying it; resumes a stored one only
// once the chain shows it inited, and above the payee's newer voucher; signs a voucher when
// a quarter window is unpaid (Received.Every), at once when billed, and FlushAfter after an
// answer ended, once none is under way (the last answer to end settles); moves to a new
// channel when less than 1/LowDeposit of the deposit is left; closes once its answers
// ended: pays what is left, proposes the balances, submits them when co-signed, and
// otherwise starts an uncooperative close.
//
// A payee (node's openIn, accept, acceptNew, reserve, writeOff, cosign, closeIn): it takes a
// channel only as an inited contract with its parameters and a deposit; accepts vouchers
// that are newer and the payer's, durable before they count; serves within the credit
// window; writes off, on the payer's word, at most WriteOffWindows windows or a
// 1/WriteOffShare part of what was paid; co-signs a close only if it pays exactly the newest
// voucher held; and closes alone when its payer does not answer.
//
// Both (node's watch, settleIdle, resumeClose): a channel closed on chain is marked so; an
// open one idle for SettleIdle (a payer's: twice that, or UnearnedIdle if it never paid) is
// closed; a close stalled for two watch periods (a payee's: four) is resumed; a payee
// challenges a payer's older quarantined state; anyone finishes once the quarantine and the
// conditionals' window passed by the ledger's clock.
//
// Bad input from the peer (a forged, replayed or decreasing voucher, another channel's id,
// a bad signature, a close that pays other than the newest voucher) is an error and changes
// nothing: Step restores the channel on every error. An impossible internal transition
// (an answer ending that never began, a stored record that no longer loads) panics.
//
// # Left to the caller
//
// What spans channels or does I/O stays in node: choosing a channel id and a deposit
// (depositFor), asking the payee for its semichannel signature (FrameChannelNew, whose answer
// EmptySemi gives), trying a payer's older channels with a voucher this one refuses as
// another's (acceptAny: ton.ErrBadSignature), waiting for credit (a Delivered refused with
// ton.ErrCreditExhausted: bill once, wait for a voucher), waking the answers that wait after
// each Step, counting refused vouchers and waits (each a Step error), answering a peer's
// request with an error when its batch failed, and reading the ledger's time along with a
// contract that is in quarantine. Idle and stalled closes are decided on ChainObserved, not
// on Tick: like node's watch, they need the contract's state.
//
// The scripts in testdata (script_test.go; go test ./ton/channel -rewrite regenerates them)
// show each flow step by step, crashes at every effect boundary included.
package channel
