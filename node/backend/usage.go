package backend

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strconv"
)

// maxCount bounds any token count read from a server, so that a hostile or
// broken server cannot make billing arithmetic overflow; it fits an int32 or
// uint32 wire field and is far beyond any real call.
const maxCount = 1<<31 - 1

// count is a token count as a server reports it. Decoding is tolerant:
// anything that is not a non-negative number reads as 0, fractions are
// truncated and huge values are clamped, because one odd field must not void
// the whole usage report.
type count int

// UnmarshalJSON implements json.Unmarshaler.
func (c *count) UnmarshalJSON(b []byte) error {
	*c = 0
	if len(b) == 0 || (b[0] != '-' && (b[0] < '0' || b[0] > '9')) {
		return nil // null, string, object...: not a count
	}
	// The decoder has already validated b as a JSON number; ParseFloat
	// returns ±Inf with ErrRange for magnitudes beyond float64, which the
	// clamp below handles.
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return nil
	}
	switch {
	case f <= 0 || math.IsNaN(f):
	case f >= maxCount:
		*c = maxCount
	default:
		*c = count(f)
	}
	return nil
}

// wireUsage is OpenAI's usage object.
type wireUsage struct {
	PromptTokens            count         `json:"prompt_tokens"`
	CompletionTokens        count         `json:"completion_tokens"`
	PromptTokensDetails     *tokenDetails // cached_tokens
	CompletionTokensDetails *tokenDetails // reasoning_tokens
}

// usage converts the wire form, keeping the parts consistent with their
// totals (cached <= prompt, reasoning <= completion).
func (w *wireUsage) usage() Usage {
	u := Usage{Prompt: int(w.PromptTokens), Completion: int(w.CompletionTokens)}
	if d := w.PromptTokensDetails; d != nil {
		u.Cached = min(int(d.Tokens), u.Prompt)
	}
	if d := w.CompletionTokensDetails; d != nil {
		u.Reasoning = min(int(d.Tokens), u.Completion)
	}
	return u
}

// usageOf decodes a raw "usage" value; ok is false when it is absent, null
// or not an object.
// raw must be valid JSON (a part of a validated answer).
func usageOf(raw json.RawMessage) (Usage, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return Usage{}, false
	}
	var w wireUsage
	ok := true
	_, err := eachMember(raw, 0, func(k, v []byte) {
		switch {
		case keyIs(k, "prompt_tokens"):
			w.PromptTokens.UnmarshalJSON(v)
		case keyIs(k, "completion_tokens"):
			w.CompletionTokens.UnmarshalJSON(v)
		case keyIs(k, "prompt_tokens_details"):
			w.PromptTokensDetails, ok = details(v, w.PromptTokensDetails, "cached_tokens", ok)
		case keyIs(k, "completion_tokens_details"):
			w.CompletionTokensDetails, ok = details(v, w.CompletionTokensDetails, "reasoning_tokens", ok)
		}
	})
	if err != nil || !ok {
		return Usage{}, false
	}
	return w.usage(), true
}

// tokenDetails is the shape of prompt_tokens_details and completion_tokens_details.
type tokenDetails = struct {
	Tokens count
}

// details reads a *_tokens_details object as encoding/json would into a pointer: null clears
// it, an object fills it, anything else spoils the whole usage report (ok false).
func details(v []byte, cur *tokenDetails, field string, ok bool) (*tokenDetails, bool) {
	switch v[0] {
	case 'n':
		return nil, ok
	case '{':
	default:
		return cur, false
	}
	if cur == nil {
		cur = &tokenDetails{}
	}
	if _, err := eachMember(v, 0, func(k, n []byte) {
		if keyIs(k, field) {
			cur.Tokens.UnmarshalJSON(n)
		}
	}); err != nil {
		return cur, false
	}
	return cur, ok
}

// ParseUsage extracts the "usage" object of an OpenAI response or chunk
// object. ok is false when obj is not a JSON object or has no usable usage
// (absent or null).
func ParseUsage(obj []byte) (u Usage, ok bool) {
	var v struct {
		Usage json.RawMessage `json:"usage"`
	}
	if err := json.Unmarshal(obj, &v); err != nil {
		return Usage{}, false
	}
	return usageOf(v.Usage) // v.Usage is valid: json.Unmarshal checked all of obj
}

// estimateTokens guesses a token count from a byte length with the usual
// rule of thumb of four bytes per token; anything non-empty is at least one.
func estimateTokens(n int) int {
	if n <= 0 {
		return 0
	}
	return max(1, n/4)
}

// PromptSlack is how many prompt tokens a call may claim beyond one per byte of its request
// body: the tokens a chat template adds around the messages.
const PromptSlack = 256

// CheckUsage holds a backend's usage report to what one call can have used, the bounds a proxy
// holds a worker's claims to, so an honest worker never claims what its proxy refuses:
// completion tokens (reasoning included) no more than maxTokens (the call's cap; below zero:
// none) and no more than answerBytes, the bytes of answer relayed (every token the client is
// billed for reaches it as at least one byte), and prompt tokens no more than bodyBytes, the
// request body's size, plus PromptSlack. A claim beyond them is a failing backend: the error is
// an *Error with status 502 naming the numbers.
func CheckUsage(u Usage, maxTokens, bodyBytes, answerBytes int) error {
	switch {
	case maxTokens >= 0 && u.Completion > maxTokens:
		return errorf(502, "server claimed %d completion tokens for a call capped at %d", u.Completion, maxTokens)
	case u.Completion > answerBytes:
		return errorf(502, "server claimed %d completion tokens for %d bytes of answer", u.Completion, answerBytes)
	case u.Prompt > bodyBytes+PromptSlack:
		return errorf(502, "server claimed %d prompt tokens for a request body of %d bytes (at most %d)", u.Prompt, bodyBytes, bodyBytes+PromptSlack)
	}
	return nil
}

// clampEstimate keeps an estimated usage within CheckUsage's bounds: an estimate is the
// worker's own guess, and guessing high must not make it claim what a proxy refuses.
func clampEstimate(u Usage, maxTokens, bodyBytes, answerBytes int) Usage {
	if maxTokens >= 0 {
		u.Completion = min(u.Completion, maxTokens)
	}
	u.Completion = min(u.Completion, answerBytes)
	u.Prompt = min(u.Prompt, bodyBytes+PromptSlack)
	return u
}
