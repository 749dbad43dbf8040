// Package audittest makes audit evidence for tests: a canary answered by a simulated GPU,
// sealed and receipted as a worker does, and signed as its proxy does.
package audittest

import (
	"context"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/cocoon-mesh/cocoon/audit"
	"github.com/cocoon-mesh/cocoon/node/backend"
	"github.com/cocoon-mesh/cocoon/tee"
)

// Model is the model the canaries name.
const Model = "sim@v1:none"

// GPU is an instant simulated GPU of seed serving Model: seeds other than the reference's
// answer wrong.
func GPU(seed uint64) *backend.SimGPU {
	return backend.NewSimGPU(backend.SimGPUConfig{ModelID: Model, Seed: seed, DecodeTokensPerSec: 1e9, PrefillTokensPerSec: 1e9})
}

// Key is a fresh ed25519 libp2p key.
func Key(t testing.TB) crypto.PrivKey {
	k, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Canary runs one audited request as node's proxy and worker do: the proxy seals it in a
// session of its own, the worker (answering with gen) sends its chunks sealed (a stream as
// server-sent events) and signs the receipt, and the proxy signs the record. It returns the
// record and the proxy's key.
func Canary(t testing.TB, gen backend.Backend, stream bool) (*audit.Record, crypto.PrivKey) {
	t.Helper()
	workerKey, proxyKey := Key(t), Key(t)
	sk, err := tee.GenerateSealKey()
	if err != nil {
		t.Fatal(err)
	}
	sess, err := tee.NewSession(sk.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	plain := []byte(`{"model":"sim","messages":[{"role":"user","content":"what is a mesh?"}],"seed":7,"temperature":0}`)
	rec := &audit.Record{RequestID: "canary-1", Model: Model, Endpoint: backend.Chat, Stream: stream, MaxTokens: 12, At: time.UnixMilli(1_800_000_000_000)}
	if rec.Body, _, err = sess.Seal([]byte(rec.RequestID), plain); err != nil {
		t.Fatal(err)
	}
	body, ans, err := tee.NewOpener(sk).Open([]byte(rec.RequestID), rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	h := tee.NewAnswerHash()
	u, err := gen.Generate(context.Background(), backend.Request{Endpoint: backend.Chat, Model: Model, Body: body, Stream: stream, MaxTokens: 12},
		func(c backend.Chunk) error {
			data := c.Data
			if stream { // as a worker sends a stream: server-sent events
				data = backend.AppendEvent(nil, data)
			}
			sealed, err := ans.Seal(nil, data)
			rec.Chunks = append(rec.Chunks, sealed)
			h.Add(sealed)
			return err
		})
	if err != nil {
		t.Fatal(err)
	}
	k := sess.Disclose()
	rec.Key = k[:]
	proxyPub, _ := crypto.MarshalPublicKey(proxyKey.GetPublic())
	rc := tee.Receipt{RequestID: rec.RequestID, Model: Model, Sealed: true, RequestHash: sha256.Sum256(rec.Body), AnswerHash: h.Sum(),
		PromptTokens: uint64(u.Prompt), CompletionTokens: uint64(u.Completion), Time: rec.At, ProxyKey: proxyPub}
	if err := rc.SignWorker(workerKey); err != nil {
		t.Fatal(err)
	}
	rec.Receipt = rc.Marshal()
	if err := rec.Sign(proxyKey); err != nil {
		t.Fatal(err)
	}
	return rec, proxyKey
}
