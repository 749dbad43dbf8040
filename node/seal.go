package node

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cocoon-mesh/cocoon/node/stream"
	"github.com/cocoon-mesh/cocoon/node/wire"
	"github.com/cocoon-mesh/cocoon/tee"
)

// A client's side of sealing and receipts: what it seals its request to, how it opens the
// answer, and how it checks the receipt that ends it.

// exchange is what a client checks an answer's receipt against.
type exchange struct {
	worker   peer.ID         // the worker the route named ("" without sealing)
	sealed   bool            // the body went sealed
	sent     [32]byte        // hash of the body as sent
	sentBody []byte          // a presealed body, hashed into sent once the proxy chooses it
	hash     *tee.AnswerHash // over the chunks as received
	answer   *tee.Answer     // opens the chunks of a sealed answer
	session  *tee.Session    // the session the body was sealed in
	plain    []byte          // buffer for opened chunks
	workerTE string
}

// open takes a chunk as it came: it hashes it for the receipt and, if the answer is sealed,
// opens it in place (into ex's buffer).
func (ex *exchange) open(ch *wire.Chunk) error {
	ex.hash.Add(ch.Data)
	if ex.answer == nil {
		return nil
	}
	var err error
	if ex.plain, err = ex.answer.Open(ex.plain[:0], ch.Data); err != nil {
		return fmt.Errorf("a chunk that does not open: %v", err)
	}
	ch.Data = ex.plain
	return nil
}

// preseal seals body to each worker proxy p routed this client to before for h.Model, and
// returns the sealed-set frame's payload (nil when there are none) and what each answer will be
// checked against. It marks h presealed.
func (cs *clientState) preseal(p peer.ID, h *wire.Header, body []byte) ([]byte, map[peer.ID]exchange, error) {
	cands := cs.routes.candidatesFor(p, h.Model, cs.attest.now(), cs.cfg.AttestTTL)
	// The set travels as one frame under the body limit: a large body is sealed to fewer
	// workers (the most recently routed to), or to none, and then takes the route.
	const perEntry = 1300 // worker id, key id, the encapsulated key of an unconfirmed session
	fit := (cs.cfg.MaxBodyBytes + sealSlack) / (len(body) + perEntry)
	if len(cands) > fit {
		cands = cands[len(cands)-fit:]
	}
	if len(cands) == 0 {
		return nil, nil, nil
	}
	set := make([]wire.Sealed, len(cands))
	exs := make(map[peer.ID]exchange, len(cands))
	for i, c := range cands {
		sealed, ans, err := c.sess.Seal([]byte(h.ID), body)
		if err != nil {
			return nil, nil, wire.Errorf(wire.CodeInternal, "sealing: %v", err)
		}
		set[i] = wire.Sealed{Worker: c.worker, KeyID: c.keyID, Body: sealed}
		exs[c.worker] = exchange{worker: c.worker, sealed: true, sentBody: sealed, answer: ans, session: c.sess, workerTE: c.te}
	}
	h.Presealed = true
	return wire.AppendSealedSet(nil, set), exs, nil
}

// sealTo handles a route event: it checks the worker's attestation and sends the body sealed
// to it (or in the clear to an unattested worker, where this node allows that). The worker
// becomes a candidate for presealing this client's next requests through proxy p.
func (cs *clientState) sealTo(c *stream.Call, p peer.ID, route *wire.Route, h *wire.Header, body []byte, ex *exchange) error {
	sess, att, err := cs.attest.checkRoute(&cs.routes, route)
	if err != nil {
		return err
	}
	*ex = exchange{worker: route.Worker, hash: tee.NewAnswerHash(), plain: ex.plain, workerTE: "none"}
	sent := body
	if sess != nil {
		if sent, ex.answer, err = sess.Seal([]byte(h.ID), body); err != nil {
			return wire.Errorf(wire.CodeInternal, "sealing: %v", err)
		}
		ex.sealed, ex.workerTE, ex.session = true, describe(&att.Claims), sess
		cs.routes.remember(p, h.Model, candidate{worker: route.Worker, keyID: wire.SealKeyID(att.SealKey),
			sess: sess, te: ex.workerTE, at: cs.attest.now()})
	}
	ex.sent = sha256.Sum256(sent)
	if err := c.Body(ex.sealed, sent); err != nil {
		return wire.Errorf(wire.CodeUnavailable, "sending the body: %v", err)
	}
	return nil
}

// checkReceipt checks the receipt that ends an answer: from the worker we sealed to (or the one
// the final names) and proxy p, for this request, for exactly what we sent and received, and
// for the usage reported. A sealed answer carries the worker's own word for the receipt; the
// signatures are verified on a sample (Config.ReceiptCheckEvery), and a proxy that passes on a
// bad one is distrusted.
func (cs *clientState) checkReceipt(fin *wire.Final, h *wire.Header, p peer.ID, ex *exchange) (string, error) {
	rc, err := tee.UnmarshalReceipt(fin.Receipt)
	if err != nil {
		return "", err
	}
	worker, proxy, err := rc.Peers()
	if err != nil {
		return "", err
	}
	if ex.answer != nil { // the worker vouches for the receipt inside the sealed answer
		d, err := ex.answer.Open(nil, fin.Tag)
		want := rc.WorkerDigest()
		if err != nil || !bytes.Equal(d, want[:]) {
			return "", errors.New("the worker did not seal this receipt's digest into the answer")
		}
	}
	if cs.attest.sampleReceipt() {
		if _, _, err := rc.Verify(); err != nil {
			cs.attest.distrust(p, err)
			return "", err
		}
	}
	u := fin.Usage
	switch {
	case proxy != p:
		return "", errors.New("countersigned by another proxy")
	case ex.worker != "" && worker != ex.worker, fin.Worker != worker.String():
		return "", errors.New("signed by another worker")
	case rc.RequestID != h.ID:
		return "", errors.New("for another request")
	case rc.Sealed != ex.sealed:
		return "", errors.New("sealed flag is wrong")
	case rc.RequestHash != ex.sent:
		return "", errors.New("the request hash is not that of the body sent")
	case rc.AnswerHash != ex.hash.Sum():
		return "", errors.New("the answer hash is not that of the answer received")
	case rc.PromptTokens != uint64(u.Prompt) || rc.CachedTokens != uint64(u.Cached) ||
		rc.CompletionTokens != uint64(u.Completion) || rc.ReasoningTokens != uint64(u.Reasoning):
		return "", errors.New("token counts differ from the usage reported")
	}
	return base64.RawURLEncoding.EncodeToString(fin.Receipt), nil
}
