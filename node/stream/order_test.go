package stream

import (
	"errors"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cocoon-mesh/cocoon/node/wire"
)

// Frames by letter, for the scripts below: a leading ! expects the frame refused.
var letters = map[string]wire.FrameType{
	"hdr": wire.FrameHeader, "body": wire.FrameBody, "sealed": wire.FrameSealed, "set": wire.FrameSealedSet,
	"prog": wire.FrameProgress, "route": wire.FrameRoute, "chosen": wire.FrameChosen, "quote": wire.FrameQuote,
	"bill": wire.FrameBill, "chunk": wire.FrameChunk, "final": wire.FrameFinal, "err": wire.FrameError,
	"pay": wire.FramePay, "settled": wire.FrameSettled, "reject": wire.FrameReject, "advert": wire.FrameAdvert,
}

func TestAnswerOrder(t *testing.T) {
	worker := Terms{Hop: ProxyWorker}
	paidWorker := Terms{Hop: ProxyWorker, Paid: true, Sealed: true}
	proxy := Terms{Hop: ClientProxy}
	sealedProxy := Terms{Hop: ClientProxy, Sealed: true, Paid: true}
	preProxy := Terms{Hop: ClientProxy, Sealed: true, Presealed: true, Paid: true}
	for _, c := range []struct {
		name   string
		terms  Terms
		script string
	}{
		{"unpaid answer", worker, "prog chunk prog chunk final !prog !chunk !err"},
		{"unpaid: no quote, no bill", worker, "!quote !bill chunk final"},
		{"error any time", worker, "prog err !final"},
		{"worker names no worker", paidWorker, "!route !chosen quote chunk final"},
		{"paid: quote first", paidWorker, "prog !chunk !final !bill quote bill chunk bill chunk final"},
		{"worker quotes once", paidWorker, "quote !quote chunk !quote final"},
		{"paid error before quote", paidWorker, "err"},
		{"unsealed proxy", proxy, "!route !chosen chunk final"},
		{"sealed proxy: route first", sealedProxy, "prog !quote !chunk !final route quote chunk final"},
		{"failover requotes", sealedProxy, "route quote bill route quote chunk !route !quote final"},
		{"chosen needs a sealed set", sealedProxy, "!chosen route quote final"},
		{"presealed: chosen or route", preProxy, "chosen quote route quote chosen chunk !chosen final"},
		{"not answer frames", sealedProxy, "!hdr !body !sealed !set !pay !settled !reject !advert route quote final"},
		{"final without chunks", sealedProxy, "route quote final !bill"},
	} {
		o := NewAnswerOrder(c.terms)
		for i, tok := range strings.Fields(c.script) {
			want, name := !strings.HasPrefix(tok, "!"), strings.TrimPrefix(tok, "!")
			before := o
			err := o.Step(letters[name])
			if (err == nil) != want {
				t.Fatalf("%s: frame %d (%s): got %v, want allowed=%v", c.name, i, tok, err, want)
			}
			if err != nil {
				var bad *BadFrame
				if !errors.As(err, &bad) || bad.Frame != letters[name] || bad.Err != nil {
					t.Fatalf("%s: frame %d: %v is not an out-of-order *BadFrame for %s", c.name, i, err, name)
				}
				if o != before {
					t.Fatalf("%s: frame %d (%s) was refused but changed the order", c.name, i, tok)
				}
			}
		}
	}
}

func TestCallOrder(t *testing.T) {
	for _, c := range []struct {
		name   string
		hop    Hop
		h      wire.Header
		paid   bool
		script string // "routed" is the callee sending a route
	}{
		{"worker unsealed", ProxyWorker, wire.Header{}, false, "!sealed body !body !pay !settled reject !reject"},
		{"worker sealed", ProxyWorker, wire.Header{Sealed: true}, true, "!body sealed pay settled reject pay !sealed"},
		{"worker ignores presealed", ProxyWorker, wire.Header{Sealed: true, Presealed: true}, false, "!set sealed"},
		{"no late bodies to a worker", ProxyWorker, wire.Header{Sealed: true}, false, "sealed routed !sealed"},
		{"proxy unsealed", ClientProxy, wire.Header{}, true, "!sealed !set body routed !body pay"},
		{"proxy sealed: body after route", ClientProxy, wire.Header{Sealed: true}, true, "!sealed routed sealed !sealed routed body pay reject !body"},
		{"proxy presealed", ClientProxy, wire.Header{Sealed: true, Presealed: true}, false, "!sealed set !pay routed sealed"},
		{"no caller sends answer frames", ClientProxy, wire.Header{Sealed: true}, true, "!chunk !final !quote !bill !prog !err !route !hdr !set"},
	} {
		o := NewCallOrder(c.hop)
		if err := o.Step(wire.FrameBody); err == nil {
			t.Fatalf("%s: a body before the header was allowed", c.name)
		}
		if err := o.Header(&c.h); err != nil {
			t.Fatal(err)
		}
		if err := o.Header(&c.h); err == nil {
			t.Fatalf("%s: a second header was allowed", c.name)
		}
		o.SetPaid(c.paid)
		for i, tok := range strings.Fields(c.script) {
			if tok == "routed" {
				o.Routed()
				continue
			}
			want, name := !strings.HasPrefix(tok, "!"), strings.TrimPrefix(tok, "!")
			before := o
			err := o.Step(letters[name])
			if (err == nil) != want {
				t.Fatalf("%s: frame %d (%s): got %v, want allowed=%v", c.name, i, tok, err, want)
			}
			if err != nil && o != before {
				t.Fatalf("%s: frame %d (%s) was refused but changed the order", c.name, i, tok)
			}
		}
	}
}

// frameOf maps a fuzzed byte onto the frame types, a few unknown ones included.
func frameOf(b byte) wire.FrameType { return wire.FrameType(b%24 + 1) }

func termsOf(hop, flags byte) Terms {
	t := Terms{Hop: ClientProxy, Sealed: flags&1 != 0, Presealed: flags&3 == 3, Paid: flags&4 != 0}
	if hop%2 == 1 {
		t.Hop, t.Presealed = ProxyWorker, false
	}
	return t
}

// FuzzAnswerOrder steps random frames and holds every accepted sequence to the rules.
func FuzzAnswerOrder(f *testing.F) {
	f.Add(byte(0), byte(7), []byte{7, 11, 12, 2, 2, 3})
	f.Add(byte(1), byte(4), []byte{11, 13, 2, 13, 3, 21})
	f.Fuzz(func(t *testing.T, hop, flags byte, seq []byte) {
		tm := termsOf(hop, flags)
		o := NewAnswerOrder(tm)
		var quotes, routes, chunks int
		ended := false
		for _, b := range seq {
			ft := frameOf(b)
			before := o
			err := o.Step(ft)
			if err != nil {
				if o != before {
					t.Fatalf("refused %s changed the order", ft)
				}
				if bad := (*BadFrame)(nil); !errors.As(err, &bad) || bad.Frame != ft {
					t.Fatalf("refusal %v is not a *BadFrame for %s", err, ft)
				}
				continue
			}
			if ended {
				t.Fatalf("%s allowed after the end", ft)
			}
			routing := tm.Hop == ClientProxy && tm.Sealed
			switch ft {
			case wire.FrameRoute, wire.FrameChosen:
				if !routing || chunks > 0 || (ft == wire.FrameChosen && !tm.Presealed) {
					t.Fatalf("%s allowed under %+v after %d chunks", ft, tm, chunks)
				}
				routes++
			case wire.FrameQuote:
				if !tm.Paid || chunks > 0 || (routing && routes == 0) || (tm.Hop == ProxyWorker && quotes > 0) {
					t.Fatalf("quote allowed under %+v: %d quotes, %d routes, %d chunks", tm, quotes, routes, chunks)
				}
				quotes++
			case wire.FrameBill:
				if quotes == 0 {
					t.Fatal("bill allowed before a quote")
				}
			case wire.FrameChunk, wire.FrameFinal:
				if (tm.Paid && quotes == 0) || (routing && routes == 0) {
					t.Fatalf("%s allowed under %+v without a quote or route", ft, tm)
				}
				if ft == wire.FrameChunk {
					chunks++
				}
				ended = ft == wire.FrameFinal
			case wire.FrameError:
				ended = true
			case wire.FrameProgress:
			default:
				t.Fatalf("%s allowed in an answer", ft)
			}
			if o.Ended() != ended || o.Started() != (chunks > 0) {
				t.Fatalf("Ended/Started disagree after %s", ft)
			}
		}
	})
}

// FuzzCallOrder steps random frames (and routes sent) after a header and holds every accepted
// sequence to the rules.
func FuzzCallOrder(f *testing.F) {
	f.Add(byte(0), byte(5), []byte{0, 6, 0, 1, 12, 19})
	f.Add(byte(1), byte(1), []byte{6, 12, 20, 19})
	f.Fuzz(func(t *testing.T, hop, flags byte, seq []byte) {
		tm := termsOf(hop, flags)
		o := NewCallOrder(tm.Hop)
		if o.Step(frameOf(flags)) == nil {
			t.Fatal("a frame allowed before the header")
		}
		if err := o.Header(&wire.Header{Sealed: tm.Sealed, Presealed: tm.Presealed, Exclude: []peer.ID{}}); err != nil {
			t.Fatal(err)
		}
		o.SetPaid(tm.Paid)
		wantBody := o.WantBody()
		var routes, bodies, rejects int
		for _, b := range seq {
			if b == 0 {
				o.Routed()
				routes++
				continue
			}
			ft := frameOf(b)
			before := o
			if err := o.Step(ft); err != nil {
				if o != before {
					t.Fatalf("refused %s changed the order", ft)
				}
				continue
			}
			if wantBody {
				if ft != o.BodyFrame() {
					t.Fatalf("%s allowed as the request's body, want %s", ft, o.BodyFrame())
				}
				wantBody = false
				continue
			}
			switch ft {
			case wire.FramePay, wire.FrameSettled:
				if !tm.Paid {
					t.Fatalf("%s allowed unpaid", ft)
				}
			case wire.FrameReject:
				if rejects++; rejects > 1 {
					t.Fatal("a second reject allowed")
				}
			case wire.FrameBody, wire.FrameSealed:
				if bodies++; bodies > routes || rejects > 0 || tm.Hop != ClientProxy || !tm.Sealed {
					t.Fatalf("body %d allowed after %d routes under %+v", bodies, routes, tm)
				}
			default:
				t.Fatalf("%s allowed from a caller", ft)
			}
		}
	})
}
