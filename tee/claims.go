package tee

import (
	"crypto/sha256"
	"fmt"
)

// TCBStatus is Intel's verdict on a platform's trusted computing base, best first.
type TCBStatus int

// TCB statuses in Intel's order, from best to worst; a policy names the worst it accepts.
const (
	TCBUnknown TCBStatus = iota // no collateral was consulted
	TCBUpToDate
	TCBSWHardeningNeeded
	TCBConfigurationNeeded
	TCBConfigurationAndSWHardeningNeeded
	TCBOutOfDate
	TCBOutOfDateConfigurationNeeded
	TCBRevoked
)

var tcbNames = []string{"Unknown", "UpToDate", "SWHardeningNeeded", "ConfigurationNeeded",
	"ConfigurationAndSWHardeningNeeded", "OutOfDate", "OutOfDateConfigurationNeeded", "Revoked"}

func (s TCBStatus) String() string {
	if s >= 0 && int(s) < len(tcbNames) {
		return tcbNames[s]
	}
	return fmt.Sprintf("TCBStatus(%d)", int(s))
}

// ParseTCBStatus reads a status as Intel's collateral spells it.
func ParseTCBStatus(s string) (TCBStatus, error) {
	for i, n := range tcbNames {
		if n == s && i != int(TCBUnknown) {
			return TCBStatus(i), nil
		}
	}
	return TCBUnknown, fmt.Errorf("tee: unknown TCB status %q (want one of UpToDate, SWHardeningNeeded, ConfigurationNeeded, ConfigurationAndSWHardeningNeeded, OutOfDate, OutOfDateConfigurationNeeded)", s)
}

// Measurement is one TDX measurement register (SHA-384).
type Measurement [48]byte

// Claims are what verified evidence says about the TD that produced it.
type Claims struct {
	Kind          Kind
	ReportData    [64]byte
	MRTD          Measurement // the initial TD image (firmware)
	MRConfigID    Measurement
	MROwner       Measurement
	MROwnerConfig Measurement
	RTMR          [4]Measurement // runtime measurements: kernel, initrd, command line, application
	Debug         bool           // the TD was started with debugging on: its memory is readable by the host
	TCB           TCBStatus
	// Platform names the physical machine: "ppid:" and the hex PPID of a TDX quote's PCK
	// certificate, or "simulated:" and hex for a simulated TEE (see SimulatedPlatform).
	Platform string
}

// ImageHash is one hash over every measurement with the report data left out, so a policy can
// allow an image with one value. Like COCOON's image_hash: SHA-256 over MRTD, MRCONFIGID,
// MROWNER, MROWNERCONFIG, RTMR0-3, then 64 zero bytes where the report data would be.
func (c *Claims) ImageHash() [32]byte {
	h := sha256.New()
	for _, m := range [][]byte{c.MRTD[:], c.MRConfigID[:], c.MROwner[:], c.MROwnerConfig[:],
		c.RTMR[0][:], c.RTMR[1][:], c.RTMR[2][:], c.RTMR[3][:]} {
		h.Write(m)
	}
	h.Write(make([]byte, 64))
	var out [32]byte
	h.Sum(out[:0])
	return out
}
