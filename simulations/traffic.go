package simulations

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/cocoon-mesh/cocoon/node"
	"github.com/cocoon-mesh/cocoon/node/backend"
	"github.com/cocoon-mesh/cocoon/node/wire"
)

// Traffic: every request of a run is drawn when the plan is made (when it arrives, from which
// client, for which model, how long its prompt and its answer, streamed or not), sent through
// a client's node.Infer as a face would send it, and its answer checked word for word against
// what the pinned model answers (backend.SimAnswer).

// call is one planned request.
type call struct {
	at      time.Duration // after the run's start
	client  int           // index into the plan's clients
	model   string
	prompt  int // tokens
	answer  int // tokens asked for (and answered)
	stream  bool
	textKey uint64 // draws the prompt's words
	n       int    // its place in the plan: names it
}

// planTraffic draws the run's requests, from warmup to the end.
func planTraffic(sc *Scenario, rng *rand.Rand, clients int) []call {
	t := sc.Traffic
	var out []call
	at := sc.Warmup.Duration
	gap := func() time.Duration {
		mean := float64(time.Second) / t.RatePerSec
		if t.Arrival == "constant" {
			return time.Duration(mean)
		}
		return time.Duration(rng.ExpFloat64() * mean)
	}
	for at += gap(); at < sc.Duration.Duration; at += gap() {
		out = append(out, call{at: at, client: rng.IntN(clients), model: pickModel(t.Models, rng.Float64()),
			prompt: between(rng, t.PromptTokens), answer: between(rng, t.AnswerTokens),
			stream: rng.Float64() < t.StreamShare, textKey: rng.Uint64(), n: len(out)})
	}
	return out
}

func between(rng *rand.Rand, r Range) int { return r.Min + rng.IntN(r.Max-r.Min+1) }

// pickModel is the model u (in [0, 1)) falls on, by the models' shares.
func pickModel(ms []ModelShare, u float64) string {
	for _, m := range ms {
		if u < m.Share {
			return m.ID
		}
		u -= m.Share
	}
	return ms[len(ms)-1].ID
}

// body is c's OpenAI chat request: a prompt of about c.prompt tokens (four bytes each, as the
// simulated GPU counts them).
func (c call) body() []byte {
	r := rand.New(rand.NewPCG(c.textKey, 0))
	var text strings.Builder
	for text.Len() < 4*c.prompt {
		text.WriteString(promptWords[r.IntN(len(promptWords))])
		text.WriteByte(' ')
	}
	b, _ := json.Marshal(map[string]any{"model": c.model, "max_tokens": c.answer,
		"messages": []map[string]string{{"role": "user", "content": text.String()}}})
	return b
}

var promptWords = strings.Fields("please explain how a payment channel settles when one side stops answering and what the other can do about it in plain words")

// outcome is how a request ended, for the samples' outcome label.
type outcome string

const (
	served outcome = "ok"     // the right answer
	wrong  outcome = "wrong"  // an answer, checked by the node, and not the model's
	failed outcome = "failed" // no answer
)

// send makes call c from client cl and records how it went.
func (s *sim) send(ctx context.Context, c call, cl *member) {
	s.inflight.Add(1)
	defer s.inflight.Add(-1)
	start := time.Now()
	body := c.body()
	var streamed strings.Builder
	onChunk := func(ch node.Chunk) error {
		streamed.WriteString(deltas(ch.Data))
		return nil
	}
	id := fmt.Sprintf("sim-%d", c.n)
	res, err := cl.nd.Infer(ctx, node.Request{ID: id, Model: c.model, Endpoint: wire.Chat, Body: body, Stream: c.stream,
		MaxTokens: uint32(c.answer), MaxPrice: s.sc.Traffic.MaxPrice}, onChunk)
	end := time.Now()
	o, worker := failed, ""
	if err == nil {
		worker = res.Worker
		text := streamed.String()
		if !c.stream {
			text = content(res.Answer)
		}
		o = wrong
		if text == strings.Join(backend.SimAnswer(honestSeed(c.model), c.model, body, c.answer), " ") {
			o = served
		}
	}
	s.finished(cl, c, id, end.Sub(start), o, worker, res, err)
}

// deltas is the text the server-sent events in data carry.
func deltas(data []byte) string {
	var out strings.Builder
	for _, ev := range bytes.Split(data, []byte("\n\n")) {
		ev = bytes.TrimPrefix(bytes.TrimSpace(ev), []byte("data: "))
		var v struct {
			Choices []struct {
				Delta struct{ Content string } `json:"delta"`
			} `json:"choices"`
		}
		if json.Unmarshal(ev, &v) == nil {
			for _, c := range v.Choices {
				out.WriteString(c.Delta.Content)
			}
		}
	}
	return out.String()
}

// content is the text of a whole chat answer.
func content(answer []byte) string {
	var v struct {
		Choices []struct {
			Message struct{ Content string } `json:"message"`
		} `json:"choices"`
	}
	if json.Unmarshal(answer, &v) != nil || len(v.Choices) == 0 {
		return ""
	}
	return v.Choices[0].Message.Content
}

// finished records one request's end: its samples (the time to first token as the client
// node's tracer saw it), the tallies, and what it tells of recovery.
func (s *sim) finished(cl *member, c call, id string, took time.Duration, o outcome, worker string, res *node.Result, err error) {
	tr := s.traces.take(id)
	class := s.classOf(worker)
	if worker == "" {
		class = s.classOf(tr.lastTried)
	}
	labels := []string{"outcome", string(o), "class", string(class), "stream", fmt.Sprint(c.stream)}
	s.rec.add("latency_s", took.Seconds(), labels...)
	if tr.ttft > 0 {
		s.rec.add("ttft_s", tr.ttft.Seconds(), labels...)
	}
	var cost uint64
	if res != nil && res.Paid {
		cost = res.Cost
	}
	s.tally.request(o, class, cost, errorCode(err))
	if o == served {
		s.recovered(cl, time.Now().Add(-took))
	}
}

// errorCode is the wire code of a failed request, for the failure tally.
func errorCode(err error) string {
	if err == nil {
		return ""
	}
	var we *wire.Error
	if errors.As(err, &we) {
		return we.Code.String()
	}
	return "other"
}
