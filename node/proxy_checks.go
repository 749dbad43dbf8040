package node

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/bits"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cocoon-mesh/cocoon/node/wire"
	"github.com/cocoon-mesh/cocoon/routing"
	"github.com/cocoon-mesh/cocoon/tee"
)

// What a proxy checks and signs of a worker's answer: its receipt, and the prices it quotes.

// countersign checks the worker's receipt on fin against what this proxy forwarded (request,
// answer, token counts, the worker's key) and signs it in place: fin is then the final frame
// to pass on, and its usage what the answer is billed for.
func (n *Node) countersign(fin *wire.Final, h *wire.Header, worker peer.ID, pa *peerAttest, body []byte, answerHash [32]byte) error {
	rc, err := tee.UnmarshalReceipt(fin.Receipt)
	if err != nil {
		return fmt.Errorf("receipt: %v", err)
	}
	u := fin.Usage
	switch {
	case rc.RequestID != h.ID:
		err = errors.New("receipt names another request")
	case !bytes.Equal(rc.WorkerKey, pa.key):
		err = errors.New("receipt is not signed with the worker's key")
	case rc.RequestHash != sha256.Sum256(body):
		err = errors.New("receipt's request hash is not that of the request forwarded")
	case rc.AnswerHash != answerHash:
		err = errors.New("receipt's answer hash is not that of the answer forwarded")
	case rc.PromptTokens != uint64(u.Prompt) || rc.CachedTokens != uint64(u.Cached) ||
		rc.CompletionTokens != uint64(u.Completion) || rc.ReasoningTokens != uint64(u.Reasoning):
		err = errors.New("receipt's token counts differ from the usage reported")
	case rc.ProxyEvidence != n.attest.digest:
		err = errors.New("receipt names another attestation for this proxy")
	case rc.Sealed != h.Sealed:
		err = errors.New("receipt's sealed flag is wrong")
	}
	if err == nil && n.attest.sampleReceipt() {
		if err = rc.CheckWorker(); err != nil {
			n.attest.distrust(worker, err)
			n.workers.drop(worker, "it signed a receipt that does not verify")
		}
	}
	if err == nil {
		err = rc.CheckProxy(n.attest.priv.GetPublic())
	}
	if err == nil {
		rc.Proxy, err = n.attest.signer.sign(rc.ProxyDigest())
	}
	if err != nil {
		return err
	}
	fin.Receipt = rc.Marshal()
	return nil
}

// quotes are one answer's prices: the worker's, and the client's with our commission.
type quotes struct{ worker, client wire.Quote }

// clientQuote takes a worker's quote and adds our commission; the client's price must be
// within its cap (in worker terms, see workerCap).
func (c *Config) clientQuote(wq wire.Quote, workerCap uint64) (quotes, error) {
	if workerCap != 0 && wq.Effective() > workerCap {
		return quotes{}, fmt.Errorf("quoted %d nanoTON per completion token, over the caller's cap", wq.Effective())
	}
	cp, err := wq.Prices.WithCommission(c.Payments.Commission)
	if err != nil {
		return quotes{}, err
	}
	return quotes{worker: wq, client: wire.Quote{Prices: cp, Coefficient: wq.Coefficient}}, nil
}

// quotesAdvert checks a worker's quote against the offer it advertised: the same prices, at
// the same coefficient.
func quotesAdvert(q wire.Quote, o routing.Offer) error {
	if q.Prices != o.Prices || q.Coefficient != o.Coefficient {
		return fmt.Errorf("quoted %v at coefficient %d, not the %v at coefficient %d it advertised", q.Prices, q.Coefficient, o.Prices, o.Coefficient)
	}
	return nil
}

// workerCap turns a client's cap on what it pays per completion token into a cap on the
// worker's price, our commission taken off.
func (c *Config) workerCap(clientCap uint64) uint64 {
	if clientCap == 0 {
		return 0
	}
	// clientCap * 1000 / (1000 + commission), in 128 bits: hi < 1000 <= the divisor, so the
	// quotient fits. At least 1, since 0 means no cap.
	hi, lo := bits.Mul64(clientCap, wire.CoefficientOne)
	q, _ := bits.Div64(hi, lo, wire.CoefficientOne+uint64(c.Payments.Commission))
	return max(q, 1)
}
