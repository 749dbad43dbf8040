package tee

import (
	"crypto/sha512"

	"github.com/cocoon-mesh/cocoon/internal/fields"
)

// bindDomain keeps our report data distinct from any other use of the same keys.
const bindDomain = "cocoon-mesh/attest/v1"

// ReportData is what a peer's evidence must carry: SHA-512 over a domain tag, the peer's libp2p
// public key (marshalled as libp2p does) and its sealing public key. A quote is therefore only
// good for the peer that asked for it, and the sealing key it names is the one its TD holds.
func ReportData(peerKey, sealKey []byte) [64]byte {
	e := fields.Enc{B: make([]byte, 0, len(bindDomain)+len(peerKey)+len(sealKey)+8)}
	e.Str(bindDomain)
	e.Bytes(peerKey)
	e.Bytes(sealKey)
	return sha512.Sum512(e.B)
}
