// Package wire defines the messages Cocoon mesh nodes exchange and their one framed codec.
//
// Two kinds of message travel between peers:
//
//   - On an inference stream (protocol /cocoon/infer/1.0.0, one stream per request), the
//     caller writes a Header frame and a Body frame; the callee answers with Chunk frames, then
//     exactly one Final or Error frame. The same stream format serves both hops
//     (client -> proxy and proxy -> worker), so a proxy forwards frames without re-encoding them.
//   - On the capacity gossip topic (and on the direct advert stream), workers publish an Advert
//     signed with their libp2p identity key.
//
// Every frame is a one-byte type, a uvarint length and a payload of at most the reader's limit.
// Payloads are fixed sequences of uvarints and length-prefixed byte strings; decoders are strict
// (no trailing bytes, bounded lengths) because everything here arrives from untrusted peers.
// The protocol version lives in the libp2p protocol ID, not in the payload.
package wire
