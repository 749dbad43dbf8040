package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Mode names a benchmark target.
type Mode string

// The targets.
const (
	Mesh      Mode = "mesh"       // the client node's OpenAI API: the whole mesh path, prompts sealed
	MeshClear Mode = "mesh-clear" // the same mesh through a second client that does not seal
	// MeshUnpaid is a second mesh of the same size whose nodes run no payment channels.
	MeshUnpaid Mode = "mesh-unpaid"
	Direct     Mode = "direct"   // the echo backend, called directly
	HTTP2Hop   Mode = "http2hop" // two httputil.ReverseProxy hops in front of the direct backend
)

// Modes returns the targets in the order each (stream, concurrency) pair runs them.
func Modes() []Mode { return []Mode{Mesh, MeshClear, MeshUnpaid, Direct, HTTP2Hop} }

// Shape is the shape of a run's requests.
type Shape struct {
	// PromptWords is the number of words in the prompt (default 16). The echo backend answers
	// one word per token, so the answer has min(PromptWords, MaxTokens) tokens.
	PromptWords int
	// MaxTokens is the request's max_tokens (default 16).
	MaxTokens int
}

func (r Shape) withDefaults() Shape {
	if r.PromptWords <= 0 {
		r.PromptWords = 16
	}
	if r.MaxTokens <= 0 {
		r.MaxTokens = 16
	}
	return r
}

// Sample is the timing of one successful request.
type Sample struct {
	Latency time.Duration // from sending the request to having read the whole answer
	TTFT    time.Duration // until the first content token arrived; Latency for non-stream
}

// Client sends benchmark requests to one target over keep-alive connections. It is safe for
// concurrent use.
type Client struct {
	url    string
	hc     *http.Client
	prefix []byte // request body up to the first prompt word
	tail   string // the rest of the prompt, after the first word
	suffix [2][]byte
	seq    atomic.Uint64
}

// firstWordLen is the length of the unique first prompt word, "q" and nine digits: fixed, so
// no request's word is a prefix of another's.
const firstWordLen = 10

// NewClient returns a client for the OpenAI API at baseURL (".../v1") that keeps up to
// maxConns idle connections, so a closed loop of that many requests reuses warm ones.
func NewClient(baseURL string, maxConns int, r Shape) *Client {
	r = r.withDefaults()
	maxConns = max(maxConns, 1)
	tr := &http.Transport{
		Proxy:               nil, // loopback only: never an environment proxy
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        maxConns + 16,
		MaxIdleConnsPerHost: maxConns + 16,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	var tail strings.Builder
	for i := 1; i < r.PromptWords; i++ {
		fmt.Fprintf(&tail, " w%d", i)
	}
	c := &Client{
		url:    strings.TrimRight(baseURL, "/") + "/chat/completions",
		hc:     &http.Client{Transport: tr, Timeout: 2 * time.Minute},
		prefix: []byte(`{"model":"echo-test","messages":[{"role":"user","content":"`),
		tail:   tail.String(),
	}
	end := `"}],"max_tokens":` + strconv.Itoa(r.MaxTokens)
	c.suffix[0] = []byte(end + `}`)
	c.suffix[1] = []byte(end + `,"stream":true}`)
	return c
}

// Close drops the client's idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// scratch is one load-generating goroutine's reusable buffer.
type scratch struct {
	resp bytes.Buffer
}

// body builds the next request body and returns it with its first prompt word, which is unique
// to the request, so an answer that belongs to another request is caught. Each body is fresh:
// the transport may still hold the last one when its answer is already in.
func (c *Client) body(stream bool) ([]byte, []byte) {
	b := make([]byte, 0, len(c.prefix)+firstWordLen+len(c.tail)+len(c.suffix[1]))
	b = append(b, c.prefix...)
	start := len(b)
	b = append(b, 'q')
	b = appendPadded(b, c.seq.Add(1)%1e9, firstWordLen-1)
	word := b[start:len(b):len(b)]
	b = append(b, c.tail...)
	if stream {
		b = append(b, c.suffix[1]...)
	} else {
		b = append(b, c.suffix[0]...)
	}
	return b, word
}

// appendPadded appends v in decimal, zero-padded to width digits.
func appendPadded(b []byte, v uint64, width int) []byte {
	var d [20]byte
	n := strconv.AppendUint(d[:0], v, 10)
	for range width - len(n) {
		b = append(b, '0')
	}
	return append(b, n...)
}

// Do sends one chat completion and reads the answer to its end.
func (c *Client) Do(ctx context.Context, stream bool) (Sample, error) {
	var s scratch
	return c.do(ctx, stream, &s)
}

func (c *Client) do(ctx context.Context, stream bool, s *scratch) (Sample, error) {
	body, word := c.body(stream)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return Sample{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := c.hc.Do(req)
	if err != nil {
		return Sample{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		s.resp.Reset()
		_, _ = s.resp.ReadFrom(io.LimitReader(resp.Body, 4096))
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxEvent))
		return Sample{}, fmt.Errorf("HTTP %s: %s", resp.Status, bytes.TrimSpace(s.resp.Bytes()))
	}
	if stream {
		a, err := ReadStream(resp.Body, start)
		lat := time.Since(start)
		if err != nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxEvent))
			return Sample{}, fmt.Errorf("stream: %w", err)
		}
		if !strings.Contains(a.First, string(word)) {
			return Sample{}, fmt.Errorf("stream: first token %q, want the first prompt word %q", a.First, word)
		}
		return Sample{Latency: lat, TTFT: a.TTFT}, nil
	}
	s.resp.Reset()
	_, err = s.resp.ReadFrom(io.LimitReader(resp.Body, maxEvent))
	lat := time.Since(start)
	if err != nil {
		return Sample{}, fmt.Errorf("read answer: %w", err)
	}
	if !bytes.Contains(s.resp.Bytes(), word) {
		return Sample{}, fmt.Errorf("answer lacks the first prompt word %q: %.200s", word, s.resp.Bytes())
	}
	return Sample{Latency: lat, TTFT: lat}, nil
}

// loop is the outcome of one closed loop.
type loop struct {
	samples  []Sample
	errors   int
	firstErr error
	wall     time.Duration
}

// closedLoop sends n requests from conc goroutines, each sending its next request as soon as
// its previous answer is read, and collects the timings of successful ones.
func closedLoop(ctx context.Context, c *Client, stream bool, conc, n int) loop {
	conc = max(1, min(conc, n))
	var (
		next     atomic.Int64
		mu       sync.Mutex
		out      loop
		perGo    = make([][]Sample, conc)
		wg       sync.WaitGroup
		perQuota = n/conc + 1
	)
	start := time.Now()
	for i := range conc {
		wg.Go(func() {
			var s scratch
			local := make([]Sample, 0, perQuota)
			for next.Add(1) <= int64(n) && ctx.Err() == nil {
				smp, err := c.do(ctx, stream, &s)
				if err != nil {
					mu.Lock()
					out.errors++
					if out.firstErr == nil {
						out.firstErr = err
					}
					mu.Unlock()
					continue
				}
				local = append(local, smp)
			}
			perGo[i] = local
		})
	}
	wg.Wait()
	out.wall = time.Since(start)
	for _, l := range perGo {
		out.samples = append(out.samples, l...)
	}
	return out
}

// Scenario is one measurement: one target, one stream mode, one concurrency.
type Scenario struct {
	Mode        Mode
	Stream      bool
	Concurrency int
	Requests    int // measured
	Warmup      int // sent first at the same concurrency, not measured
}

// Result is the outcome of one scenario. Durations are nanoseconds in JSON.
type Result struct {
	Mode        Mode          `json:"mode"`
	Stream      bool          `json:"stream"`
	Concurrency int           `json:"concurrency"`
	Requests    int           `json:"requests"`
	OK          int           `json:"ok"`
	Errors      int           `json:"errors"`
	FirstError  string        `json:"first_error,omitempty"`
	Wall        time.Duration `json:"wall_ns"`
	RPS         float64       `json:"requests_per_second"`
	Latency     Summary       `json:"latency"`
	TTFT        Summary       `json:"ttft"`
	// CPUPerRequest is this process's CPU time (user + system) during the scenario over the
	// requests sent. The whole bench shares one process, so it covers the load generator,
	// the target and, for the mesh, every node and backend: a cost, not a breakdown.
	CPUPerRequest time.Duration `json:"cpu_per_request_ns"`
	// CPUCores is that CPU time over the wall time: how many cores the process kept busy.
	// Near the machine's core count, the run was CPU-bound.
	CPUCores float64 `json:"cpu_cores"`
	// Rounds is how many back-to-back rounds the requests were split into; RoundRPS each
	// round's requests per second, when there were several.
	Rounds   int       `json:"rounds"`
	RoundRPS []float64 `json:"round_rps,omitempty"`
	// VouchersPerRequest is, for a paying mesh, how many vouchers its payers signed per
	// request (both hops together): each costs a signature, a check and two fsynced writes.
	VouchersPerRequest float64 `json:"vouchers_per_request,omitempty"`
	// WaitsPerRequest is, for a paying mesh, how many answers per request a payee held back
	// until a voucher came, because the payer was a whole credit window behind.
	WaitsPerRequest float64 `json:"payment_waits_per_request,omitempty"`
}

// Spread is the highest round's requests per second over the lowest's (1 for one round): well
// above 1, the machine's speed changed during the run.
func (r Result) Spread() float64 {
	if len(r.RoundRPS) < 2 {
		return 1
	}
	lo, hi := slices.Min(r.RoundRPS), slices.Max(r.RoundRPS)
	if lo <= 0 {
		return 0
	}
	return hi / lo
}

// RunScenario measures one scenario with c, in one round.
func RunScenario(ctx context.Context, c *Client, sc Scenario) (Result, error) {
	if err := warm(ctx, c, sc); err != nil {
		return Result{}, err
	}
	m, err := measure(ctx, c, sc.Stream, sc.Concurrency, sc.Requests)
	if err != nil {
		return Result{}, err
	}
	return result(sc, []measured{m}), nil
}

// warm sends a scenario's warm-up requests. A target that fails every one is unreachable.
func warm(ctx context.Context, c *Client, sc Scenario) error {
	if sc.Warmup <= 0 {
		return nil
	}
	w := closedLoop(ctx, c, sc.Stream, max(sc.Concurrency, 1), sc.Warmup)
	if err := ctx.Err(); err != nil {
		return err
	}
	if w.errors == sc.Warmup {
		return fmt.Errorf("bench: %s unreachable: every warm-up request failed: %v", sc.Mode, w.firstErr)
	}
	return nil
}

// measured is one measured closed loop and the process CPU time it took.
type measured struct {
	loop
	cpu time.Duration
	pay payCount // a paying mesh's vouchers and payment waits during the loop
}

// measure runs one measured closed loop of n requests.
func measure(ctx context.Context, c *Client, stream bool, conc, n int) (measured, error) {
	runtime.GC() // every round starts from the same heap state
	cpu0 := processCPU()
	l := closedLoop(ctx, c, stream, max(conc, 1), n)
	cpu := processCPU() - cpu0
	if err := ctx.Err(); err != nil {
		return measured{}, err
	}
	return measured{loop: l, cpu: cpu}, nil
}

// result merges the rounds of one scenario into its result.
func result(sc Scenario, rounds []measured) Result {
	r := Result{Mode: sc.Mode, Stream: sc.Stream, Concurrency: max(sc.Concurrency, 1), Rounds: len(rounds)}
	var cpu time.Duration
	var pay payCount
	var lat, ttft []time.Duration
	for _, m := range rounds {
		pay.vouchers += m.pay.vouchers
		pay.waits += m.pay.waits
		r.Requests += len(m.samples) + m.errors
		r.OK += len(m.samples)
		r.Errors += m.errors
		if r.FirstError == "" && m.firstErr != nil {
			r.FirstError = m.firstErr.Error()
		}
		r.Wall += m.wall
		cpu += m.cpu
		if len(rounds) > 1 {
			r.RoundRPS = append(r.RoundRPS, Rate(len(m.samples), m.wall))
		}
		for _, s := range m.samples {
			lat, ttft = append(lat, s.Latency), append(ttft, s.TTFT)
		}
	}
	r.RPS = Rate(r.OK, r.Wall)
	if r.Requests > 0 && cpu > 0 {
		r.CPUPerRequest = cpu / time.Duration(r.Requests)
	}
	if r.Wall > 0 {
		r.CPUCores = float64(cpu) / float64(r.Wall)
	}
	if r.Requests > 0 {
		r.VouchersPerRequest = float64(pay.vouchers) / float64(r.Requests)
		r.WaitsPerRequest = float64(pay.waits) / float64(r.Requests)
	}
	r.Latency, r.TTFT = Summarize(lat), Summarize(ttft)
	return r
}
