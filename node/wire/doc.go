// Package wire defines the messages Cocoon mesh nodes exchange and their one framed codec.
//
// Every frame is a one-byte type, a uvarint length and a payload of at most the reader's limit.
// Payloads are fixed sequences of uvarints and length-prefixed byte strings; decoders are strict
// (no trailing bytes, bounded lengths) because everything here arrives from untrusted peers.
// The protocol version lives in the libp2p protocol ID, not in the payload.
//
// # Frame types
//
//	 1 header      Header      caller: the request's metadata, first on an inference stream
//	 2 body        (JSON)      caller: the request body in the clear
//	 3 chunk       Chunk       callee: a piece of the answer and its completion tokens
//	 4 final       Final       callee: the answer is complete: usage, worker, receipt
//	 5 error       Error       callee: the request failed (and the payee's answer on the channel stream)
//	 6 advert      Advert      worker to proxy, on /cocoon/advert/1.0.0: its signed capacity
//	 7 sealed body (sealed)    caller: the body sealed to the worker, in place of a body
//	 8 route       Route       proxy to client: the worker chosen, its key and hello
//	 9 hello       tee.Hello   on /cocoon/attest/1.0.0: a sealing key and the evidence binding it
//	10 sealed set  []Sealed    client to proxy: the body sealed ahead to workers it knows
//	11 chosen      peer ID     proxy to client: which worker of the sealed set serves it
//	12 quote       Quote       payee: the prices the answer is billed at
//	13 pay         ton voucher payer: a cumulative voucher
//	14 bill        uvarint     payee: pay what you received (owed), the answer waits;
//	                           on the channel stream a channel id: settle it
//	15 terms       Terms       channel stream: the payer asks (empty), the payee answers
//	16 channel open ChannelOpen channel stream: the payer opened or resumes a channel
//	17 channel state ChannelState channel stream: the payee's view of the channel
//	18 channel close ChannelClose channel stream: a cooperative close, signed by one side
//	19 channel new ChannelNew  channel stream: the id of a channel the payer is about to deploy
//	20 reject      Reject      caller: the answer is refused, and the tokens it accepts
//	21 settled     ton voucher payer, answering a bill: a voucher paying all it received
//	22 progress    (empty)     callee: still working, sent after a silence (a heartbeat)
//
// # The inference stream
//
// Protocol /cocoon/infer/1.0.0, one stream per request, the same format on both hops (client
// -> proxy, proxy -> worker), so a proxy forwards chunks without re-encoding them. Package
// node/stream checks this order, on both sides of both hops (stream.AnswerOrder,
// stream.CallOrder); a frame out of place is refused and changes nothing.
//
// The caller sends:
//
//	call = header request-body { pay | settled | reject | body | sealed body }
//	request-body = body | sealed body         proxy -> worker, and client -> proxy unsealed
//	             | sealed set                 client -> proxy, presealed
//	             | (nothing)                  client -> proxy, sealed: the body follows a route
//
// After the request: pay and settled only when the answer is paid (a payment channel is open
// between the two); reject at most once, after which only vouchers (for the tokens it accepted)
// follow; a body or sealed body only to a proxy, on a sealed request, one for each route the
// proxy sent. Closing its write side cancels the request; a caller that has the answer closes
// it to take it, or sends reject to refuse it.
//
// The callee answers:
//
//	answer = { progress } [ route | chosen ] { progress | quote | bill } { chunk | progress | bill } ( final | error )
//
// where:
//   - route (sealed) or chosen (presealed) comes only from a proxy to its client, before
//     anything else of the answer but progress and error, and again, with a new quote, each
//     time the proxy fails over to another worker before the first chunk;
//   - quote comes when the answer is paid, before the first chunk (after the route, sealed); a
//     worker quotes once, a proxy once per worker it tries;
//   - bill comes only after a quote, when the payee waits for a voucher;
//   - chunk and final come after the quote (paid) and the route (sealed);
//   - progress may come any time before the end; error may end the answer any time; nothing
//     follows final or error.
//
// After final the callee keeps reading, for up to two seconds, the caller's verdict (its
// close, or reject) and the voucher for the answer's last tokens.
//
// # The channel stream
//
// Protocol /cocoon/channel/1.0.0, one request and one answer: terms, channel new, channel
// open, pay (a voucher between requests), settled or channel close from the payer; channel
// state, terms, channel close or error from the payee.
//
// # Gossip
//
// On the capacity gossip topic (and on the direct advert stream), workers publish an Advert
// signed with their libp2p identity key.
package wire
