package node

import (
	"fmt"

	"github.com/cocoon-mesh/cocoon/node/backend"
	"github.com/cocoon-mesh/cocoon/node/wire"
)

// claims holds a callee's claims about an answer to what its caller can check: a worker's to
// its proxy, a proxy's to its client. Nobody is paid for tokens it could not have delivered:
//   - the completion tokens the chunks claim, and those of the final usage (reasoning
//     included), are at most the request's max_tokens (when it set one) and at most the bytes
//     of answer that came (a token is at least one byte of text, and more of JSON);
//   - the prompt tokens are at most the request body's bytes plus promptSlack (a chat template
//     adds tokens of its own); cached tokens are at most the prompt's, reasoning tokens at most
//     the completion's.
//
// The worker holds its backend's reports to the same rules (backend.CheckUsage), so an honest
// worker never claims what a proxy refuses. A prompt's images must come inline (data URLs),
// as their bytes: an image named by URL is tokens no byte of the request pays for.
type claims struct {
	maxTokens uint64 // the request's max_tokens (0: none set)
	bodyBytes uint64 // the request body as the callee got it (sealed, if it went sealed)
	tokens    uint64 // completion tokens the chunks claimed so far
	bytes     uint64 // bytes of answer so far
}

// promptSlack is the prompt tokens a chat template may add beyond one per byte of request: the
// same slack a worker's backend holds its model server's reports to.
const promptSlack = backend.PromptSlack

// newClaims starts checking the answer to request h with a body of bodyBytes.
func newClaims(h *wire.Header, bodyBytes int) *claims {
	return &claims{maxTokens: uint64(h.MaxTokens), bodyBytes: uint64(bodyBytes)}
}

// chunk checks a chunk claiming tokens completion tokens for data bytes of answer.
func (c *claims) chunk(tokens uint32, data int) error {
	c.tokens += uint64(tokens)
	c.bytes += uint64(data)
	switch {
	case c.maxTokens > 0 && c.tokens > c.maxTokens:
		return fmt.Errorf("claimed %d completion tokens, over the request's max_tokens of %d", c.tokens, c.maxTokens)
	case c.tokens > c.bytes:
		return fmt.Errorf("claimed %d completion tokens for %d bytes of answer", c.tokens, c.bytes)
	}
	return nil
}

// final checks the usage that ends the answer.
func (c *claims) final(u wire.Usage) error {
	completion := uint64(u.Completion)
	switch {
	case c.maxTokens > 0 && completion > c.maxTokens:
		return fmt.Errorf("usage claims %d completion tokens, over the request's max_tokens of %d", completion, c.maxTokens)
	case completion > c.bytes:
		return fmt.Errorf("usage claims %d completion tokens for %d bytes of answer", completion, c.bytes)
	case u.Reasoning > u.Completion:
		return fmt.Errorf("usage claims %d reasoning tokens of %d completion tokens", u.Reasoning, u.Completion)
	case uint64(u.Prompt) > c.bodyBytes+promptSlack:
		return fmt.Errorf("usage claims %d prompt tokens for a request of %d bytes", u.Prompt, c.bodyBytes)
	case u.Cached > u.Prompt:
		return fmt.Errorf("usage claims %d cached tokens of %d prompt tokens", u.Cached, u.Prompt)
	}
	return nil
}
