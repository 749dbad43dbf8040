package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cocoon-mesh/cocoon/node/backend"
)

// Objects are the OpenAI JSON objects an answer's chunks carry as a worker sends them: a
// stream's chunks hold server-sent events ("data: <JSON>", ending "data: [DONE]"), split
// anywhere; a whole answer is one object, split across chunks as it was billed.
func Objects(chunks [][]byte, stream bool) ([][]byte, error) {
	all := bytes.Join(chunks, nil)
	if !stream {
		return [][]byte{all}, nil
	}
	var out [][]byte
	for line := range bytes.Lines(all) {
		line = bytes.TrimRight(line, "\r\n")
		switch {
		case len(line) == 0 || line[0] == ':': // a blank line ends an event; a comment
		case bytes.HasPrefix(line, []byte("data:")):
			data := bytes.TrimPrefix(bytes.TrimPrefix(line, []byte("data:")), []byte(" "))
			if !bytes.Equal(data, []byte("[DONE]")) {
				out = append(out, data)
			}
		default:
			return nil, fmt.Errorf("the stream holds a line that is not a server-sent event: %.40q", line)
		}
	}
	return out, nil
}

// AnswerText is the text an answer's objects carry, one string per choice (by index): a
// completion's text, a chat message's content (and reasoning), or a stream's deltas of them,
// in order. What else an object holds (ids, timestamps, usage) differs from run to run and is
// not compared.
func AnswerText(chunks [][]byte) ([]string, error) {
	var texts [][]byte
	for i, c := range chunks {
		var obj struct {
			Choices []struct {
				Index   int     `json:"index"`
				Text    *string `json:"text"`
				Delta   *part   `json:"delta"`
				Message *part   `json:"message"`
			} `json:"choices"`
		}
		if err := json.Unmarshal(c, &obj); err != nil {
			return nil, fmt.Errorf("object %d is not OpenAI JSON: %v", i, err)
		}
		for _, ch := range obj.Choices {
			if ch.Index < 0 || ch.Index >= 128 {
				return nil, fmt.Errorf("object %d: choice index %d out of range", i, ch.Index)
			}
			for len(texts) <= ch.Index {
				texts = append(texts, nil)
			}
			b := &texts[ch.Index]
			if ch.Text != nil {
				*b = append(*b, *ch.Text...)
			}
			for _, p := range []*part{ch.Delta, ch.Message} {
				if p != nil {
					*b = append(append(*b, p.Reasoning...), p.Content...)
				}
			}
		}
	}
	out := make([]string, len(texts))
	for i := range texts {
		out[i] = string(texts[i])
	}
	return out, nil
}

// part is a chat message or delta: the fields that carry text.
type part struct {
	Content   string `json:"content"`
	Reasoning string `json:"reasoning_content"`
}

// Agreement is the share of positions, in whitespace-separated words over all choices, on
// which got agrees with want (1 when they are equal, or differ in whitespace only).
func Agreement(want, got []string) float64 {
	if slices.Equal(want, got) {
		return 1
	}
	same, total := 0, 0
	for i := range max(len(want), len(got)) {
		var w, g []string
		if i < len(want) {
			w = strings.Fields(want[i])
		}
		if i < len(got) {
			g = strings.Fields(got[i])
		}
		total += max(len(w), len(g))
		for j := range min(len(w), len(g)) {
			if w[j] == g[j] {
				same++
			}
		}
	}
	if total == 0 {
		return 1 // both blank
	}
	return float64(same) / float64(total)
}

// Verdict is a record checked against a reference run of its model.
type Verdict struct {
	Worker, Proxy peer.ID
	Want, Got     []string // the reference's text and the worker's, by choice
	Agreement     float64
	// Match: the texts are equal, or (for a threshold below 1) agree at least that much.
	Match bool
	// Unreadable says why the worker's answer has no text at all (it is not OpenAI JSON);
	// such an answer never matches.
	Unreadable string
}

// Verify checks rec (Open) and compares the worker's answer with ref's to the same request:
// equal text (threshold 1), or at least threshold agreement. An error means the record proves
// nothing (or the reference failed); a Verdict without Match is proof of a wrong answer.
func Verify(ctx context.Context, rec *Record, ref backend.Backend, threshold float64) (Verdict, error) {
	c, err := rec.Open()
	if err != nil {
		return Verdict{}, err
	}
	return Compare(ctx, c, ref, threshold)
}

// Compare runs c's request on ref and compares the answers (Verify, once the record is open).
func Compare(ctx context.Context, c Claim, ref backend.Backend, threshold float64) (Verdict, error) {
	v := Verdict{Worker: c.Worker, Proxy: c.Proxy}
	var want [][]byte
	if _, err := ref.Generate(ctx, c.Request, func(ch backend.Chunk) error {
		want = append(want, slices.Clone(ch.Data))
		return nil
	}); err != nil {
		return v, fmt.Errorf("audit: the reference run failed: %w", err)
	}
	var err error
	if v.Want, err = AnswerText(want); err != nil {
		return v, fmt.Errorf("audit: the reference's own answer: %w", err)
	}
	got, err := Objects(c.Answer, c.Request.Stream)
	if err == nil {
		v.Got, err = AnswerText(got)
	}
	if err != nil {
		v.Unreadable = err.Error()
		return v, nil
	}
	v.Agreement = Agreement(v.Want, v.Got)
	v.Match = slices.Equal(v.Want, v.Got) || (threshold < 1 && v.Agreement >= threshold)
	return v, nil
}
