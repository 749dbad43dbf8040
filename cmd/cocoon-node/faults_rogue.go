//go:build rogue

package main

import (
	"flag"

	"github.com/cocoon-mesh/cocoon/node"
)

// This file is built only with -tags rogue: the binary the adversarial end-to-end tests run as
// rogue workers. A release binary has none of these flags, so it cannot be told to misbehave.

// registerFaults adds the --fault-* flags of `run`; the function it returns makes the node's
// faults from them (nil when none is set).
func registerFaults(fs *flag.FlagSet) func() *node.Faults {
	var f node.Faults
	fs.Uint64Var(&f.QuoteFactor, "fault-quote-factor", 0, "ROGUE: quote this multiple of the advertised prices")
	var claimTokens, claimPrompt uint
	fs.UintVar(&claimTokens, "fault-claim-tokens", 0, "ROGUE: every chunk claims this many completion tokens")
	fs.UintVar(&claimPrompt, "fault-claim-prompt", 0, "ROGUE: every final claims this many prompt tokens")
	fs.BoolVar(&f.Garbage, "fault-garbage", false, "ROGUE: send random bytes in place of every chunk's data")
	fs.BoolVar(&f.WrongAnswer, "fault-wrong-answer", false, "ROGUE: alter the text of every answer (another model than advertised)")
	fs.BoolVar(&f.Hang, "fault-hang", false, "ROGUE: take requests and never answer")
	fs.BoolVar(&f.Idle, "fault-idle", false, "ROGUE: take requests and send heartbeats, never a token")
	fs.BoolVar(&f.Reset, "fault-reset", false, "ROGUE: reset every inference stream")
	fs.IntVar(&f.StallAfter, "fault-stall-after", 0, "ROGUE: stop answering after this many chunks")
	return func() *node.Faults {
		f.ClaimTokens, f.ClaimPrompt = uint32(claimTokens), uint32(claimPrompt)
		if f == (node.Faults{}) {
			return nil
		}
		return &f
	}
}
