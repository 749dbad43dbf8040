package node

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cocoon-mesh/cocoon/node/wire"
	"github.com/cocoon-mesh/cocoon/reputation"
	"github.com/cocoon-mesh/cocoon/tee"
)

// What an attempt's outcome says of the worker: each kind of failure is its own evidence, and
// what is not the worker's doing (the client left, a bad request, an unattested worker on a node
// that allows none) is none.
func TestAttemptEvidence(t *testing.T) {
	free, full := capacityClaim{max: 16, running: 2}, capacityClaim{max: 16, running: 15}
	refused := &peerAttest{err: errors.New("quote signature does not verify")}
	outside := &peerAttest{err: fmt.Errorf("no TEE: %w", tee.ErrNotAttested)}
	for _, c := range []struct {
		name    string
		rl      relay
		err     error
		claim   capacityClaim
		want    reputation.Kind
		counted bool
	}{
		{"served", relay{}, nil, free, reputation.Served, true},
		{"client left", relay{}, context.Canceled, free, 0, false},
		{"bad request", relay{}, wire.Errorf(wire.CodeBadRequest, "no"), free, 0, false},
		{"busy after advertising free", relay{}, wire.Errorf(wire.CodeNoCapacity, "at limit"), free, reputation.CapacityLie, true},
		{"busy near its limit", relay{}, wire.Errorf(wire.CodeNoCapacity, "at limit"), full, reputation.Refused, true},
		{"failed before the first token", relay{}, wire.Errorf(wire.CodeBackend, "oom"), free, reputation.FailedEarly, true},
		{"failed mid-stream", relay{started: true}, wire.Errorf(wire.CodeWorkerFailed, "reset"), free, reputation.FailedMidStream, true},
		{"attestation refused", relay{pa: refused}, wire.Errorf(wire.CodeWorkerFailed, "not attested"), free, reputation.AttestFailed, true},
		{"no TEE on a node allowing none", relay{pa: outside}, wire.Errorf(wire.CodeWorkerFailed, "not attested"), free, reputation.FailedEarly, true},
	} {
		ev, ok := c.rl.evidence(c.err, c.claim)
		if ok != c.counted || (ok && ev.Kind != c.want) {
			t.Errorf("%s: got %v %v, want %v %v", c.name, ev.Kind, ok, c.want, c.counted)
		}
	}
}

// A worker's reputation floor is checked like every other setting: out of (0, 1), a peer both
// pinned and banned, or no identity allowed per machine, is refused with the key to change.
func TestReputationConfig(t *testing.T) {
	good := ReputationConfig{MinTrust: 0.1, PerPlatform: 8, ProbationAnswers: 20}
	if err := good.validate(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []ReputationConfig{{MinTrust: 1, PerPlatform: 8, ProbationAnswers: 20}, {MinTrust: -0.5, PerPlatform: 8, ProbationAnswers: 20},
		{MinTrust: 0.2, PerPlatform: 8, ProbationAnswers: 20, Pin: []peer.ID{"a"}, Ban: []peer.ID{"a"}}, {MinTrust: 0.1, PerPlatform: 0, ProbationAnswers: 20}, {MinTrust: 0.1, PerPlatform: 8}} {
		var ce *ConfigError
		if err := bad.validate(); !errors.As(err, &ce) {
			t.Errorf("%+v: want a ConfigError, got %v", bad, err)
		}
	}
}
