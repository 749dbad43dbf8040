package scaled

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cocoon-mesh/cocoon/reputation"
	"github.com/cocoon-mesh/cocoon/routing"
)

// bucket is one virtual minute's counts (client requests only, but for audits).
type bucket struct {
	requests, servedRight, servedWrong, failed, noWorker, audits, auditsFailed int
	att, srv                                                                   [numClasses]int
	p10                                                                        float64 // NaN: no sample
	honestZero                                                                 int
}

// add folds b into s.
func (s *bucket) add(b *bucket) {
	s.requests += b.requests
	s.servedRight += b.servedRight
	s.servedWrong += b.servedWrong
	s.failed += b.failed
	s.noWorker += b.noWorker
	s.audits += b.audits
	s.auditsFailed += b.auditsFailed
	for c := range numClasses {
		s.att[c] += b.att[c]
		s.srv[c] += b.srv[c]
	}
}

// wrongShare is the share of delivered answers that were wrong; NaN when none was delivered.
func (s *bucket) wrongShare() float64 {
	if s.servedRight+s.servedWrong == 0 {
		return math.NaN()
	}
	return float64(s.servedWrong) / float64(s.servedRight+s.servedWrong)
}

// csvWriter writes the per-minute rows.
type csvWriter struct {
	w   *bufio.Writer
	err error
}

func newCSVWriter(w io.Writer) *csvWriter { return &csvWriter{w: bufio.NewWriter(w)} }

// header writes the column names (doc.go documents them).
func (c *csvWriter) header() error {
	cols := []string{"minute", "requests", "served_right", "served_wrong", "failed", "no_worker", "audits", "audits_failed"}
	for k := range numClasses {
		cols = append(cols, "att_"+k.String())
	}
	for k := range numClasses {
		cols = append(cols, "srv_"+k.String())
	}
	cols = append(cols, "honest_p10", "honest_zero_sampled")
	_, c.err = c.w.WriteString(strings.Join(cols, ",") + "\n")
	return c.err
}

// row writes minute m's bucket.
func (c *csvWriter) row(m int, b *bucket) {
	if c.err != nil {
		return
	}
	f := []int{m, b.requests, b.servedRight, b.servedWrong, b.failed, b.noWorker, b.audits, b.auditsFailed}
	f = append(f, b.att[:]...)
	f = append(f, b.srv[:]...)
	var sb strings.Builder
	for _, v := range f {
		sb.WriteString(strconv.Itoa(v))
		sb.WriteByte(',')
	}
	if !math.IsNaN(b.p10) {
		sb.WriteString(strconv.FormatFloat(b.p10, 'f', 4, 64))
	}
	sb.WriteByte(',')
	sb.WriteString(strconv.Itoa(b.honestZero))
	sb.WriteByte('\n')
	_, c.err = c.w.WriteString(sb.String())
}

func (c *csvWriter) flush() error {
	if c.err != nil {
		return c.err
	}
	return c.w.Flush()
}

// closeMinute samples the honest workers' scores, writes the minute's row, folds it into the
// summary and starts the next minute.
func (m *Model) closeMinute() {
	b := &m.cur
	b.p10, b.honestZero = m.sampleHonest()
	if m.csv != nil {
		m.csv.row(m.minute, b)
	}
	s := &m.sum
	s.Total.add(b)
	switch {
	case m.minute == 10:
		s.WrongAt10 = b.wrongShare()
	case m.minute == 60:
		s.WrongAt60 = b.wrongShare()
	}
	if m.minute >= 120 {
		s.late.add(b)
	}
	if m.minute >= 10 {
		s.after10.add(b)
	}
	if !math.IsNaN(b.p10) && m.minute >= 10 {
		s.HonestP10Min = math.Min(s.HonestP10Min, b.p10)
	}
	s.HonestP10Last = b.p10
	s.HonestZeroSampled += b.honestZero
	m.minute++
	s.Minutes = m.minute
	m.cur = bucket{}
	m.schedule(event{at: m.now + time.Minute, kind: evMinute})
}

// sampleHonest is the 10th percentile of the scores, at their proxies, of up to Config.Samples
// right-answering workers per proxy that the proxy holds evidence of, and how many of the
// sample score zero (banned).
func (m *Model) sampleHonest() (float64, int) {
	now := m.at(m.now)
	var scores []float64
	zero := 0
	for i := range m.proxies {
		p := &m.proxies[i]
		for range min(m.cfg.Samples, len(p.honestSeen)) {
			s := p.book.Score(now, m.workers[p.honestSeen[m.mrng.IntN(len(p.honestSeen))]].id)
			scores = append(scores, s)
			if s == 0 {
				zero++
			}
		}
	}
	if len(scores) == 0 {
		return math.NaN(), zero
	}
	slices.Sort(scores)
	return scores[int(0.1*float64(len(scores)-1))], zero
}

// Summary is a run's headline figures.
type Summary struct {
	Cfg     Config
	Minutes int
	Total   bucket
	late    bucket // hours 2 to the end
	after10 bucket // minute 10 to the end

	WrongAt10, WrongAt60, WrongLate, WrongAfter10 float64 // shares of delivered answers that were wrong

	HonestP10Last, HonestP10Min float64
	HonestZeroSampled           int // sampled honest scores of zero, over the run
	HonestBanned                int // right-answering workers scoring 0 at some proxy at the end
	HonestAuditFailed           int
	Excluded                    [numClasses]float64 // share of (proxy, worker) pairs below MinTrust at the end

	WorkersServed int     // workers that delivered at least one client answer
	TopShare      float64 // share of the answers delivered by the busiest 1% of workers

	FlashWorkers, FlashCaught       int
	FlashWrongMedian, FlashWrongMax int // wrong answers a caught flash worker delivered before its first ban
	FlashWrongMean                  float64
	FlashWrongUncaught              int // wrong answers delivered by flash workers never caught
	FlashCatchMedian                time.Duration
	SybilAttempted, SybilAccepted   int // (proxy, identity) pairs
	SybilMaxPerProxy, PerPlatform   int
	Events, Picks                   uint64
	Wall                            time.Duration
	PeakHeap, Sys                   uint64
}

// finish computes the end-of-run figures.
func (m *Model) finish() {
	s := &m.sum
	s.Cfg, s.PerPlatform = m.cfg, reputation.DefaultConfig().PerPlatform
	s.WrongLate, s.WrongAfter10 = s.late.wrongShare(), s.after10.wrongShare()
	now := m.at(m.now)
	floor := routing.DefaultConfig().MinTrust
	var pairs, below [numClasses]int
	banned := make([]bool, len(m.workers))
	for i := range m.proxies {
		p := &m.proxies[i]
		for _, slot := range p.slots {
			for _, wi := range slot {
				w := &m.workers[wi]
				sc := p.book.Score(now, w.id)
				pairs[w.class]++
				if sc < floor {
					below[w.class]++
				}
				if sc == 0 && w.class.answersRight() && !banned[wi] {
					banned[wi] = true
					s.HonestBanned++
				}
			}
		}
	}
	for c := range numClasses {
		if pairs[c] > 0 {
			s.Excluded[c] = float64(below[c]) / float64(pairs[c])
		}
	}
	m.finishFlash()
	m.finishSpread()
}

// finishSpread measures how the answers spread over the workers.
func (m *Model) finishSpread() {
	s := &m.sum
	counts := make([]int, len(m.workers))
	total := 0
	for i := range m.workers {
		counts[i] = m.workers[i].served
		total += counts[i]
		if counts[i] > 0 {
			s.WorkersServed++
		}
	}
	slices.Sort(counts)
	top := 0
	for _, n := range counts[len(counts)-max(len(counts)/100, 1):] {
		top += n
	}
	if total > 0 {
		s.TopShare = float64(top) / float64(total)
	}
}

// finishFlash sums up how long the covert-flash workers got away with it.
func (m *Model) finishFlash() {
	s := &m.sum
	var wrong []int
	var delays []time.Duration
	for i := range m.workers {
		w := &m.workers[i]
		if w.class != Flash {
			continue
		}
		s.FlashWorkers++
		if w.caught < 0 {
			s.FlashWrongUncaught += w.flashWrong
			continue
		}
		s.FlashCaught++
		wrong = append(wrong, w.flashWrong)
		delays = append(delays, w.caught-m.cfg.FlashAfter)
	}
	if len(wrong) == 0 {
		return
	}
	slices.Sort(wrong)
	slices.Sort(delays)
	total := 0
	for _, n := range wrong {
		total += n
	}
	s.FlashWrongMedian, s.FlashWrongMax = wrong[len(wrong)/2], wrong[len(wrong)-1]
	s.FlashWrongMean = float64(total) / float64(len(wrong))
	s.FlashCatchMedian = delays[len(delays)/2]
}

// share formats a share, or "-" for NaN.
func share(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "-"
	}
	return fmt.Sprintf("%.4f", v)
}

// String is the summary as the command prints it.
func (s Summary) String() string {
	var b strings.Builder
	c := s.Cfg
	fmt.Fprintf(&b, "scaled model: %d workers, %d proxies (each worker advertises to %d), %d models, %.0f req/s, %v virtual, seed %d\n",
		c.Workers, c.Proxies, c.Reach, c.Models, c.Rate, c.Duration, c.Seed)
	t := &s.Total
	fmt.Fprintf(&b, "requests %d: served right %d, served wrong %d, failed %d (no eligible worker %d); audits %d, failed %d\n",
		t.requests, t.servedRight, t.servedWrong, t.failed, t.noWorker, t.audits, t.auditsFailed)
	fmt.Fprintf(&b, "wrong share of delivered answers: minute 10 %s, minute 60 %s, hours 2-end %s, minute 10-end %s, whole run %s\n",
		share(s.WrongAt10), share(s.WrongAt60), share(s.WrongLate), share(s.WrongAfter10), share(t.wrongShare()))
	served := t.servedRight + t.servedWrong
	b.WriteString("share of delivered answers by class:")
	for k := range numClasses {
		fmt.Fprintf(&b, " %s %s", k, share(float64(t.srv[k])/float64(max(served, 1))))
	}
	b.WriteString("\nshare of client attempts routed to class:")
	attempts := 0
	for _, n := range t.att {
		attempts += n
	}
	for k := range numClasses {
		fmt.Fprintf(&b, " %s %s", k, share(float64(t.att[k])/float64(max(attempts, 1))))
	}
	fmt.Fprintf(&b, "\nworkers that delivered an answer: %d of %d; the busiest 1%% delivered %s of the answers",
		s.WorkersServed, c.Workers, share(s.TopShare))
	b.WriteString("\nat the end, share of (proxy, worker) pairs below the routing floor:")
	for k := range numClasses {
		fmt.Fprintf(&b, " %s %s", k, share(s.Excluded[k]))
	}
	fmt.Fprintf(&b, "\nhonest p10 score: at the end %s, lowest from minute 10 %s; honest banned %d (sampled zero scores %d, audits failed %d)\n",
		share(s.HonestP10Last), share(s.HonestP10Min), s.HonestBanned, s.HonestZeroSampled, s.HonestAuditFailed)
	fmt.Fprintf(&b, "covert flash (turn wrong at %v): %d workers, %d caught; wrong answers before caught median %d, mean %.1f, max %d; median time to catch %v; wrong answers by never caught %d\n",
		c.FlashAfter, s.FlashWorkers, s.FlashCaught, s.FlashWrongMedian, s.FlashWrongMean, s.FlashWrongMax,
		s.FlashCatchMedian.Round(time.Second), s.FlashWrongUncaught)
	fmt.Fprintf(&b, "sybil: %d identities on one platform; Bind accepted %d of %d (proxy, identity) attempts, at most %d at one proxy (cap %d)\n",
		c.Sybils, s.SybilAccepted, s.SybilAttempted, s.SybilMaxPerProxy, s.PerPlatform)
	fmt.Fprintf(&b, "wall %v, events %d, picks %d, peak heap %.0f MB (HeapAlloc sampled each virtual minute), Sys %.0f MB\n",
		s.Wall.Round(time.Millisecond), s.Events, s.Picks, float64(s.PeakHeap)/1e6, float64(s.Sys)/1e6)
	return b.String()
}
