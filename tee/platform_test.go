package tee

import (
	"testing"

	"github.com/google/go-tdx-guest/testing/testdata"
)

// samplePPID is the PPID in the SGX extensions of the sample quote's PCK leaf certificate.
const samplePPID = "ppid:089ddfdb9c0359c82a3bc7719239574e"

func TestTDXPlatformFromPCK(t *testing.T) {
	c, err := (&TDXVerifier{}).Verify(testdata.RawQuote, sampleTime)
	if err != nil {
		t.Fatal(err)
	}
	if c.Platform != samplePPID {
		t.Fatalf("Platform = %q, want %q", c.Platform, samplePPID)
	}
}
