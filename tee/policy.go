package tee

import (
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
)

// Reasons a policy rejects evidence; every rejection wraps one of these.
var (
	ErrReportData  = errors.New("tee: report data does not bind this peer's keys")
	ErrMeasurement = errors.New("tee: measurements are not allowed by the policy")
	ErrTCB         = errors.New("tee: TCB status is below the policy's minimum")
	ErrDebug       = errors.New("tee: the TD runs in debug mode (the host can read its memory)")
)

// Policy says which verified evidence a node trusts.
type Policy struct {
	// AllowedImages lists image hashes (Claims.ImageHash) the node accepts; empty accepts any.
	AllowedImages [][32]byte
	// AllowedMRTD lists initial TD measurements the node accepts; empty accepts any.
	AllowedMRTD []Measurement
	// MinTCB is the worst TCB status accepted. TCBUnknown skips the check (no collateral).
	MinTCB TCBStatus
	// AllowDebug accepts debug TDs. Only for debugging a TD image: its memory is not private.
	AllowDebug bool
	// AllowSimulated accepts simulated evidence: INSECURE, for development on machines without TDX.
	AllowSimulated bool
}

// DefaultPolicy accepts real TDX evidence of any image whose TCB is up to date, no debug TDs,
// and no simulated evidence.
func DefaultPolicy() Policy { return Policy{MinTCB: TCBUpToDate} }

// Check applies the policy to verified claims, for a peer whose report data must equal want.
func (p *Policy) Check(c *Claims, want [64]byte) error {
	if c.ReportData != want {
		return fmt.Errorf("%w: the quote carries %x (first 8 bytes), this peer needs %x", ErrReportData, c.ReportData[:8], want[:8])
	}
	if c.Kind == KindSimulated {
		if !p.AllowSimulated {
			return ErrSimulated
		}
		return nil
	}
	if c.Debug && !p.AllowDebug {
		return ErrDebug
	}
	if p.MinTCB != TCBUnknown {
		if c.TCB == TCBUnknown {
			return fmt.Errorf("%w: status unknown (no collateral was checked), policy wants %v or better", ErrTCB, p.MinTCB)
		}
		if c.TCB > p.MinTCB {
			return fmt.Errorf("%w: %v, policy wants %v or better", ErrTCB, c.TCB, p.MinTCB)
		}
	}
	if len(p.AllowedMRTD) > 0 && !slices.Contains(p.AllowedMRTD, c.MRTD) {
		return fmt.Errorf("%w: MRTD %s is not in the allowed list", ErrMeasurement, hex.EncodeToString(c.MRTD[:]))
	}
	if len(p.AllowedImages) > 0 {
		if h := c.ImageHash(); !slices.Contains(p.AllowedImages, h) {
			return fmt.Errorf("%w: image hash %s is not in the allowed list", ErrMeasurement, hex.EncodeToString(h[:]))
		}
	}
	return nil
}
