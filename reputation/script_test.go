package reputation

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cocoon-mesh/cocoon/internal/script"
)

var rewrite = flag.Bool("rewrite", false, "rewrite testdata/*.txt with the actual output")

// The scripts in testdata/*.txt step a Book and read its scores:
//
//	record t=DURATION PEER KIND [paid=NANOTON] [xN]   one event (N times)
//	score t=DURATION PEER...                          each peer's score, three decimals
//	bind t=DURATION PLATFORM PEER...                  bind each peer to the platform: ok or the refusal
//	unbind t=DURATION PEER                            free the peer's place on its platform
//	standing t=DURATION PEER...                       what the book holds of each peer
//	config pin=PEER,... ban=PEER,...                  start over with the operator's lists
//
// t is the time since the script's start; peers are short names.
func TestScripts(t *testing.T) {
	script.RunDir(t, *rewrite, func(t *testing.T) script.Runner {
		b := New(Config{})
		start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		return func(file string, line int, cmd string) string {
			if f := strings.Fields(cmd); f[0] == "config" {
				b = New(scriptConfig(f[1:]))
				return "ok"
			}
			out, err := step(b, start, cmd)
			if err != nil {
				t.Fatalf("%s:%d: %v", file, line, err)
			}
			return out
		}
	})
}

func step(b *Book, start time.Time, cmd string) (string, error) {
	f := strings.Fields(cmd)
	if len(f) < 3 || !strings.HasPrefix(f[1], "t=") {
		return "", fmt.Errorf("want: record|score t=DURATION ...")
	}
	d, err := time.ParseDuration(strings.TrimPrefix(f[1], "t="))
	if err != nil {
		return "", err
	}
	now := start.Add(d)
	switch f[0] {
	case "record":
		if len(f) < 4 {
			return "", fmt.Errorf("record t=D PEER KIND")
		}
		k, err := ParseKind(f[3])
		if err != nil {
			return "", err
		}
		ev, times := Event{Kind: k}, 1
		for _, a := range f[4:] {
			switch {
			case strings.HasPrefix(a, "paid="):
				ev.Paid, err = strconv.ParseUint(strings.TrimPrefix(a, "paid="), 10, 64)
			case strings.HasPrefix(a, "hearsay="):
				ev.Hearsay, err = strconv.ParseFloat(strings.TrimPrefix(a, "hearsay="), 64)
			case strings.HasPrefix(a, "x"):
				times, err = strconv.Atoi(a[1:])
			default:
				err = fmt.Errorf("unknown argument %q", a)
			}
			if err != nil {
				return "", err
			}
		}
		for range times {
			b.Record(now, peer.ID(f[2]), ev)
		}
		return "ok", nil
	case "score":
		var out []string
		for _, p := range f[2:] {
			out = append(out, fmt.Sprintf("%s %.3f", p, b.Score(now, peer.ID(p))))
		}
		return strings.Join(out, "\n"), nil
	case "bind":
		var out []string
		for _, p := range f[3:] {
			res := "ok"
			if err := b.Bind(now, peer.ID(p), f[2]); err != nil {
				res = err.Error()
			}
			out = append(out, res)
		}
		return strings.Join(out, "\n"), nil
	case "unbind":
		b.Unbind(peer.ID(f[2]))
		return "ok", nil
	case "standing":
		var out []string
		for _, p := range f[2:] {
			out = append(out, standingText(b.Standing(now, peer.ID(p)), now))
		}
		return strings.Join(out, "\n"), nil
	}
	return "", fmt.Errorf("unknown command %q", f[0])
}

// standingText spells a Standing on one line, counts in kind order.
func standingText(s Standing, now time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s score=%.3f good=%.2f bad=%.2f", string(s.Peer), s.Score, s.Good, s.Bad)
	if s.Pinned {
		b.WriteString(" pinned")
	}
	if s.Blocked {
		b.WriteString(" blocked")
	}
	if s.Banned.After(now) {
		fmt.Fprintf(&b, " banned-for=%v", s.Banned.Sub(now))
	}
	var counts []string
	for k := range numKinds {
		if n := s.Counts[k]; n > 0 {
			counts = append(counts, fmt.Sprintf("%s:%d", k, n))
		}
	}
	fmt.Fprintf(&b, " counts=[%s]", strings.Join(counts, " "))
	return b.String()
}

// scriptConfig is the Config of "config pin=a,b ban=c".
func scriptConfig(args []string) Config {
	var c Config
	for _, a := range args {
		k, v, _ := strings.Cut(a, "=")
		for p := range strings.SplitSeq(v, ",") {
			switch k {
			case "pin":
				c.Pin = append(c.Pin, peer.ID(p))
			case "ban":
				c.Ban = append(c.Ban, peer.ID(p))
			}
		}
	}
	return c
}
