package main

import (
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/ipfs/go-datastore"

	"github.com/cocoon-mesh/cocoon/tee"
)

// faultEnv names the fault-injection variable the end-to-end tests use; a node that honours
// one says so loudly.
const faultEnv = "COCOON_TEST_FAULT"

// buildTEE makes the node's TEE provider (nil: none) and the verifier for its peers' evidence.
func buildTEE(ts teeSettings, ds datastore.Datastore, log *slog.Logger) (tee.Provider, *tee.Verifier, error) {
	var provider tee.Provider
	switch ts.provider {
	case "tdx":
		p, err := tee.NewTDXProvider()
		if err != nil {
			return nil, nil, err
		}
		provider = p
	case "simulated":
		provider = tee.NewSimulated(nil)
	}
	if f := os.Getenv(faultEnv); f != "" {
		if f != "attest-wrong-key" || provider == nil {
			return nil, nil, fmt.Errorf("%s=%q: the only fault is attest-wrong-key, and it needs a TEE", faultEnv, f)
		}
		log.Warn("FAULT INJECTION (" + faultEnv + "): this node's evidence binds a random key, not its own; peers must refuse it")
		provider = wrongBinding{provider}
	}
	tdx := &tee.TDXVerifier{}
	if !ts.noCollateral {
		client := &http.Client{Timeout: 30 * time.Second}
		tdx.Collateral = tee.NewCollateral(ds, ts.pccsURL, tee.HTTPFetch(client), time.Now)
		tdx.CheckRevocations = true
	}
	return provider, tee.NewVerifier(ts.policy, tdx), nil
}

// wrongBinding attests a random report instead of the one asked for: fault injection only.
type wrongBinding struct{ tee.Provider }

func (w wrongBinding) Attest([64]byte) (tee.Evidence, error) {
	var rd [64]byte
	rand.Read(rd[:])
	return w.Provider.Attest(rd)
}
