package tee

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strings"

	"github.com/google/go-tdx-guest/pcs"
	pb "github.com/google/go-tdx-guest/proto/tdx"
)

// ErrNoPPID: the quote's PCK leaf certificate names no platform (its PPID is missing or zero),
// so the machine behind it cannot be told apart from others. It wraps ErrTDXChain.
var ErrNoPPID = fmt.Errorf("%w: the PCK leaf certificate carries no PPID (Intel's platform ID), so this quote's physical machine cannot be identified", ErrTDXChain)

// ppidPrefix opens Claims.Platform for a real TDX platform; simulated ones say "simulated:".
const ppidPrefix = "ppid:"

// platformOf is the physical platform a verified quote comes from: "ppid:" and the hex PPID
// from the SGX extensions of its PCK leaf certificate, the first of the chain. Call it only on
// a quote whose chain go-tdx-guest verified, so the leaf read here is the one that was checked.
func platformOf(q *pb.QuoteV4) (string, error) {
	chain := q.GetSignedData().GetCertificationData().GetQeReportCertificationData().GetPckCertificateChainData().GetPckCertChain()
	blk, _ := pem.Decode(chain)
	if blk == nil {
		return "", fmt.Errorf("%w: no PCK leaf certificate in the quote's certification data", ErrTDXChain)
	}
	leaf, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return "", fmt.Errorf("%w: PCK leaf certificate: %v", ErrTDXChain, err)
	}
	return ppidOf(leaf)
}

// ppidOf reads a PCK certificate's PPID as "ppid:" and 32 lowercase hex digits.
func ppidOf(leaf *x509.Certificate) (string, error) {
	ext, err := pcs.PckCertificateExtensions(leaf)
	if err != nil {
		return "", fmt.Errorf("%w: PCK leaf certificate extensions: %v", ErrTDXChain, err)
	}
	// go-tdx-guest hex-encodes exactly 16 bytes, or leaves PPID empty when the extension is absent.
	if ext.PPID == "" || strings.Trim(ext.PPID, "0") == "" {
		return "", fmt.Errorf("%w (PPID %q)", ErrNoPPID, ext.PPID)
	}
	return ppidPrefix + strings.ToLower(ext.PPID), nil
}
