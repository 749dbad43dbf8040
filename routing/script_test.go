package routing

import (
	"flag"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cocoon-mesh/cocoon/internal/script"
)

var rewrite = flag.Bool("rewrite", false, "rewrite testdata/*.txt with the actual output")

// TestScripts runs testdata/*.txt (see internal/script): each script steps one Table from t0.
// Run with -rewrite to regenerate.
func TestScripts(t *testing.T) {
	script.RunDir(t, *rewrite, func(t *testing.T) script.Runner {
		tb, now := New(Config{}), t0
		var trust map[peer.ID]float64 // set by "trust": picks weigh reputation from then on
		return func(_ string, _ int, cmd string) string {
			if f := strings.Fields(cmd); f[0] == "trust" {
				trust = setTrust(t, trust, f[1:])
				return ""
			}
			return runCommand(t, tb, &now, trust, cmd)
		}
	})
}

// runCommand executes one script line; its output is what the test checks.
func runCommand(t *testing.T, tb *Table, now *time.Time, trust map[peer.ID]float64, line string) string {
	fields := strings.Fields(line)
	args, id := map[string]string{}, peer.ID("")
	var offers []Offer
	for _, f := range fields[1:] {
		k, v, ok := strings.Cut(f, "=")
		switch {
		case !ok:
			id = peer.ID(k)
		case k == "model" && fields[0] == "upsert":
			offers = append(offers, Offer{Model: v})
		case k == "price" && len(offers) > 0:
			offers[len(offers)-1].Price = num(t, v)
		default:
			args[k] = v
		}
	}
	switch fields[0] {
	case "repeat":
		// repeat N <command...>: run the command N times and print a tally of its outputs'
		// first words (for picks: which worker), e.g. to show traffic shares.
		n, rest := num(t, fields[1]), strings.Join(fields[2:], " ")
		tally := map[string]int{}
		for range n {
			out := runCommand(t, tb, now, trust, rest)
			w, _, _ := strings.Cut(out, " ")
			tally[w]++
		}
		keys := slices.Sorted(maps.Keys(tally))
		var b strings.Builder
		for _, k := range keys {
			fmt.Fprintf(&b, "%s %d\n", k, tally[k])
		}
		return b.String()
	case "tick":
		*now = now.Add(dur(t, string(id)))
	case "upsert":
		tb.Upsert(*now, WorkerInfo{ID: id, Offers: offers, MaxActive: int(num(t, args["max"])), Healthy: args["healthy"] != "false"})
	case "remove":
		return strconv.FormatBool(tb.Remove(id))
	case "expire":
		return fmt.Sprintf("dropped %v", strs(tb.Expire(*now)))
	case "begin":
		tb.Begin(id)
	case "end":
		if d := tb.End(*now, id, dur(t, args["latency"]), args["ok"] != "false"); d > 0 {
			return fmt.Sprintf("ejected for %v", d)
		}
	case "pick":
		r := Request{Model: args["model"], MaxPrice: num(t, args["cap"])}
		if trust != nil {
			r.Trust = func(id peer.ID) float64 {
				if v, ok := trust[id]; ok {
					return v
				}
				return 0.5
			}
		}
		if args["probation"] != "" {
			on := strings.Split(args["probation"], ",")
			r.Probation = func(id peer.ID) bool { return slices.Contains(on, string(id)) }
		}
		for x := range strings.SplitSeq(args["exclude"], ",") {
			if x != "" {
				r.Exclude = append(r.Exclude, peer.ID(x))
			}
		}
		d, err := tb.Pick(*now, r)
		if err != nil {
			return "error: " + err.Error()
		}
		return fmt.Sprintf("%s %s price=%d fallbacks=%v\nreason: %s", string(d.Worker), d.Offer.Model, d.Offer.Price, strs(d.Fallbacks), d.Reason())
	case "workers":
		var b strings.Builder
		for _, w := range tb.Workers() {
			offers := make([]string, len(w.Offers))
			for i, o := range w.Offers {
				offers[i] = fmt.Sprintf("{%s %d}", o.Model, o.Price)
			}
			ejected := ""
			if w.Ejected.After(*now) {
				ejected = fmt.Sprintf(" ejected=%v", w.Ejected.Sub(*now))
			}
			fmt.Fprintf(&b, "%s running=%d/%d healthy=%t latency=%v failures=%d streak=%d%s picks=%d seen=%v offers=[%s]\n",
				string(w.ID), w.Running, w.MaxActive, w.Healthy, w.AvgLatency, w.Failures, w.Streak, ejected, w.Picks, w.LastSeen.Sub(t0), strings.Join(offers, " "))
		}
		return b.String()
	case "models":
		var b strings.Builder
		for _, m := range tb.Models() {
			fmt.Fprintf(&b, "%s min=%d workers=%d\n", m.Model, m.MinPrice, m.Workers)
		}
		return b.String()
	default:
		t.Fatalf("unknown command %q", line)
	}
	return ""
}

// setTrust applies "trust w1=0.9 w2=0.05": each worker's reputation from then on (0.5 for one
// never named, as a reputation.Book scores a peer never seen).
func setTrust(t *testing.T, trust map[peer.ID]float64, args []string) map[peer.ID]float64 {
	if trust == nil {
		trust = map[peer.ID]float64{}
	}
	for _, a := range args {
		k, v, _ := strings.Cut(a, "=")
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			t.Fatal(err)
		}
		trust[peer.ID(k)] = f
	}
	return trust
}

// strs spells IDs as written in the script; peer.ID's String is base58.
func strs(ids []peer.ID) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = string(id)
	}
	return out
}

func num(t *testing.T, s string) uint64 {
	if s == "" {
		return 0
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// dur parses a duration; empty means zero.
func dur(t *testing.T, s string) time.Duration {
	if s == "" {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
