package tee

import (
	"fmt"
	"sync"
	"time"
)

// How long a verification result is reused: a success until collateral is worth consulting
// again, a failure briefly (it may have been a collateral server that was down).
const (
	verifiedTTL = time.Hour
	failedTTL   = time.Minute
)

// maxCached bounds the verification cache; past it the cache starts over.
const maxCached = 4096

// Verifier checks evidence against a policy. Verification of each distinct piece of evidence is
// cached by its digest, so a peer's quote costs its signature checks once, not once per use.
type Verifier struct {
	policy Policy
	tdx    *TDXVerifier // nil: TDX evidence is refused

	mu    sync.Mutex
	cache map[[32]byte]verified
}

type verified struct {
	claims Claims
	err    error
	at     time.Time
}

func (r *verified) ttl() time.Duration {
	if r.err != nil {
		return failedTTL
	}
	return verifiedTTL
}

// NewVerifier returns a verifier applying policy; tdx checks TDX quotes (nil refuses them).
func NewVerifier(policy Policy, tdx *TDXVerifier) *Verifier {
	return &Verifier{policy: policy, tdx: tdx, cache: make(map[[32]byte]verified)}
}

// Policy returns the policy the verifier applies.
func (v *Verifier) Policy() Policy { return v.policy }

// Verify checks ev for a peer whose report data must be want, and returns its claims.
func (v *Verifier) Verify(ev *Evidence, want [64]byte, now time.Time) (Claims, error) {
	digest := ev.Digest()
	v.mu.Lock()
	r, ok := v.cache[digest]
	v.mu.Unlock()
	if !ok || now.Sub(r.at) > r.ttl() || now.Before(r.at) {
		r = verified{at: now}
		r.claims, r.err = v.verifyQuote(ev, now)
		v.mu.Lock()
		if len(v.cache) >= maxCached {
			clear(v.cache)
		}
		v.cache[digest] = r
		v.mu.Unlock()
	}
	if r.err != nil {
		return Claims{}, r.err
	}
	if err := v.policy.Check(&r.claims, want); err != nil {
		return Claims{}, err
	}
	return r.claims, nil
}

func (v *Verifier) verifyQuote(ev *Evidence, now time.Time) (Claims, error) {
	if len(ev.Extra) > 0 {
		return Claims{}, fmt.Errorf("tee: evidence carries %d extra item(s) this node cannot verify", len(ev.Extra))
	}
	switch ev.Kind {
	case KindSimulated:
		return verifySimulated(ev.Quote)
	case KindTDX:
		if v.tdx == nil {
			return Claims{}, fmt.Errorf("tee: TDX evidence, but this node has no TDX verifier configured")
		}
		return v.tdx.Verify(ev.Quote, now)
	}
	return Claims{}, fmt.Errorf("tee: unknown evidence kind %v", ev.Kind)
}

// VerifyHello checks that h's evidence is valid, allowed by the policy, and binds peerKey (the
// peer's marshalled libp2p public key, as the secure channel authenticated it) and h.SealKey.
func (v *Verifier) VerifyHello(h *Hello, peerKey []byte, now time.Time) (Attestation, error) {
	if h.Evidence == nil {
		return Attestation{}, ErrNotAttested
	}
	if err := CheckSealPublicKey(h.SealKey); err != nil {
		return Attestation{}, err
	}
	c, err := v.Verify(h.Evidence, ReportData(peerKey, h.SealKey), now)
	if err != nil {
		return Attestation{}, err
	}
	return Attestation{Claims: c, SealKey: h.SealKey, Digest: h.Evidence.Digest()}, nil
}
