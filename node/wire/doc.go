// Package wire defines the messages Cocoon mesh nodes exchange and their one framed codec.
//
// Three kinds of exchange travel between peers:
//
//   - On an inference stream (protocol /cocoon/infer/1.0.0, one stream per request, the same
//     format on both hops, client -> proxy and proxy -> worker, so a proxy forwards frames
//     without re-encoding them):
//   - the caller sends a Header, then a Body (or, sealing, a Sealed body; or a SealedSet sealed
//     ahead to workers it knows, or nothing until the proxy's Route names the worker);
//   - the callee answers with a Quote (payments on), Chunks, and exactly one Final or Error;
//     a proxy sends Route or Chosen before them, and any callee sends Progress in silences
//     (a heartbeat) and Bill when it waits for payment;
//   - meanwhile the caller sends Pay (vouchers), Settled (a voucher answering a Bill: it pays
//     all the caller received) and, to refuse the answer, Reject (why, and the tokens it
//     accepts); closing its write side cancels.
//   - On the channel stream (/cocoon/channel/1.0.0), one request and one answer: Terms,
//     ChannelNew, ChannelOpen, Pay or ChannelClose from the payer, ChannelState, ChannelClose
//     or Error from the payee.
//   - On the capacity gossip topic (and on the direct advert stream), workers publish an Advert
//     signed with their libp2p identity key.
//
// Every frame is a one-byte type, a uvarint length and a payload of at most the reader's limit.
// Payloads are fixed sequences of uvarints and length-prefixed byte strings; decoders are strict
// (no trailing bytes, bounded lengths) because everything here arrives from untrusted peers.
// The protocol version lives in the libp2p protocol ID, not in the payload.
package wire
