// Package node assembles a Cocoon mesh peer from the parts it is given (a libp2p host, a model
// backend, a TEE provider and verifier, a logger, a clock) and runs one of three roles on it:
//
//   - client: sends each request a face hands it (Infer, face.go) over one libp2p stream to a
//     proxy it found through the DHT (client.go);
//   - proxy: announces itself in the DHT, keeps a table of workers fed by signed capacity
//     adverts (gossip.go, admit.go), and routes each request to a worker, failing over while
//     no token has reached the client yet (proxy.go);
//   - worker: stays connected to a few proxies, publishes its capacity, and runs requests on
//     its model backend (worker.go).
//
// A caller's loop is short (cmd/cocoon-node and node/localnet do this):
//
//	n, err := node.New(cfg, node.Deps{Host: h, Backend: b, Ledger: l, Channels: store, Wallet: w})
//	if err != nil { ... }              // a wrong config names the setting to change
//	if err := n.Start(); err != nil { ... }
//	srv, err := api.Serve(n, log)      // a client's OpenAI API and the admin endpoints
//	...                                // until a signal
//	srv.Close(); n.Close()             // Close returns once nothing of n's runs
//
// A node is parts that each own their state, wired together by *Node (node.go), which keeps
// the role's hops of the data path: life (life.go: every goroutine, timer and stream handler
// the node starts, so Close waits for them), attester (attest.go: our hello, peers'
// handshakes, the routes a client is sent), roster (gossip.go, admit.go: the worker table,
// fed by capacity adverts, and the admission of unknown workers into it), channels
// (channels.go, owner.go: the payment channels, one owner each), workerState (worker.go,
// workeradvert.go: a worker's jobs, adverts and backend health) and clientState (client.go,
// seal.go: a client's proxies, sealing and receipts). Time and randomness come from Deps
// (Clock, Rand): a simulation runs many nodes in one process on a fake clock.
//
// The data path, top to bottom: HTTP request -> api/openai handleCompletion -> face.go Infer
// (checks each chunk) -> client.go infer, which makes an attempt per proxy (attempt.go:
// attempt.run opens the call with openCall, and attempt.step takes each event: sealTo on a
// route, quote, chunk, final) -> [stream /cocoon/infer/1.0.0] -> proxy.go handleProxyInfer ->
// serve, which makes a relay per worker (relay.run: sealedBody, openCall; relay.step: quote,
// chunk, final, each checking the worker's claims, billing the client, metering the worker and
// forwarding) -> [stream] -> worker.go handleWorkerInfer -> admitJob -> job.run -> job.generate
// -> backend.Generate, whose chunks job.send bills, seals and sends back along the same
// streams. Both ends of each stream are package stream: the caller's a stream.Call (Next yields
// typed events), the callee's a stream.Answer (Quote, Bill, Route, Chosen, Chunk, Final, Fail);
// the frame order of each hop, both ways, is checked there (stream.AnswerOrder,
// stream.CallOrder, documented in wire's doc.go), so the hops hold only what they do with each
// event. Payments (meter.go: billing on the payee's side, metering on the payer's), sealing
// (seal.go, attest.go) and receipts (proxy_checks.go countersign, seal.go checkReceipt) are
// steps the hops call on those events.
//
// Faces (face.go): the node serves no HTTP. Package api serves a client's API and any node's
// admin endpoints over a small exported API, so that another API can sit beside OpenAI's
// without reaching into the node: Infer takes a Request (an OpenAI body, the model, limits,
// an ID from RequestID) and hands a streamed answer to a callback chunk by chunk (server-sent
// events, checked) or returns it whole, checked, in the Result with its usage, cost, receipt
// and the peers that served it; Prices says what each model costs this client; the operator
// endpoints use Status, Channels, the channel commands, Wallet and PaymentsOn (admin.go).
// Errors are *wire.Error (AsWireError classifies any other).
//
// Every wait has a bound (stream.Call.Next): a callee sends a progress frame after
// StallTimeout/3 of silence, so a caller that hears nothing for StallTimeout, or gets no first
// chunk of a streamed answer within FirstTokenTimeout (of a non-streamed one, all of it within
// WholeAnswerTimeout), gives up on it: before the first token the request fails over, after it
// the answer ends with an error saying the callee stalled.
//
// Every claim is checked (claims.go): a payer pays for no more completion tokens than the
// request's max_tokens and the bytes that came, and for no more prompt tokens than the request
// could hold; a proxy takes a worker's quote only at the prices its advert routed on. An answer
// that fails a check, or that the client cannot open, decode or verify, is refused: the caller
// sends a reject frame with the tokens it accepts, so both sides count the same, and the
// refused worker's failure feeds routing (it ranks last at once, and is ejected after three).
//
// Confidentiality (attest.go): on each connection a node verifies its peer's attestation once
// (tee.Verifier), proxies route only to attested workers, and a client seals each request body
// to the worker the proxy picks (a route frame names it, or the body was sealed ahead of routing
// to workers the proxy chose before), so the proxy forwards ciphertext. The worker signs a
// receipt for each answer and the proxy countersigns it.
//
// Payments, when the node has a ledger: the client pays each proxy and the proxy each worker
// over a TON payment channel opened on /cocoon/channel/1.0.0 (chanproto.go). On the
// inference stream the payee quotes the answer's prices before its first chunk, the payer
// sends cumulative vouchers as value arrives (every quarter of the payee's credit window; each
// signed and made durable beside the answer, which never waits on the disk for it), and the
// payee sends each chunk only within that window, billing and waiting when the payer is
// behind; it reads its caller until the caller closes, so the voucher for an answer's last
// tokens, and the caller's verdict on the answer, arrive after the final frame. A proxy bills
// its client for each chunk before it counts it as owed to the worker (meter.go). Every
// voucher is durable (ton/chanstore) before a payer sends it and before a payee counts it.
// What a payee counted that never reached its payer (a broken stream, a restart) is written
// off when they next meet, within bounds (pay.go), so a channel never jams. Deposits follow
// trust (deposit.go): a proxy opens a worker's channel with its first request, small at first
// and growing with what it earned, and caps what channels to payees that earned nothing
// lock. Peers whose payments do not match ours (one side has a ledger, the other not) are
// left alone for a while (mismatch.go). Operators steer channels over the admin endpoints
// (package api/admin, through close.go).
//
// Every decision about a channel is ton/channel's stepped core (open, pay, settle, rotate,
// close together or alone, challenge, finish, write off); node only carries out its Effects.
// Each channel has one owner (owner.go): a goroutine that alone steps its channel.Channel and,
// before the next Step, carries out the Effects in order: the records durable (chanstore),
// then the messages (a voucher on the answer's stream; a request on the channel stream, in
// the background), then the chain actions (chain.go, in the background); outcomes come back
// into its loop as events. So persist before send holds by construction. The rest posts
// into that loop: the data path (pay.go: payOn, outChan.begin, receive, bill, end;
// inChan.reserve, frames), the channel protocol's handlers (chanproto.go), the opening of a
// channel (open.go), the watch's ticker and the owner's own timer, which only post. What
// spans channels stays in channels.go: the owners by channel and the one in use per peer,
// which stored channel to resume, a new channel's id and deposit.
//
// One owner per channel rather than one loop for all: a channel's writes are fsynced, and a
// loop for all would queue every channel's voucher behind every other's write, so a disk or
// a peer that stalls would stall every channel; per channel, it holds only its own (as the
// per-channel voucher lock did before). An owner's work runs in its turn (mailbox.go), one
// piece at a time and in order: on its goroutine, or, while it is idle, on the goroutine of
// a caller that waits for it anyway (a reservation of credit on every chunk) or whose work
// writes nothing, which spares two hand-offs between goroutines on the hot path. Value
// received is always metered on the owner's goroutine (it may sign and write a voucher),
// merged while a voucher is being written, as the pay-ahead goroutine did before. A turn
// blocks on nothing but the channel's store writes and a voucher's write to an answer's
// stream; a channel's status is published after each piece of work, so reading it never
// waits for a turn.
//
// Cancellation is the stream itself: a caller keeps its write side open until it has the
// answer, so a callee that sees its read side end knows the caller went away, stops, and ends
// its answer with an error, closing its own call to the next hop in turn. A cancelling caller
// reads (and pays for) what was sent until that end, for up to two seconds, then resets. Each
// hop shrinks the request's time left by HopMargin.
//
// Faults (faults.go) make a worker misbehave on purpose in this same code, for the adversarial
// tests and simulations; a release binary cannot set them.
package node
