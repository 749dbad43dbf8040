package model

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"testing"
)

// testTokenizer has all 256 byte pieces and a few merges, scored so "ab" beats "bc".
func testTokenizer() *Tokenizer {
	var pieces [][]byte
	var scores []float32
	for c := range 256 {
		pieces = append(pieces, []byte(fmt.Sprintf("<0x%02X>", c)))
		scores = append(scores, 0)
	}
	for _, p := range []struct {
		s     string
		score float32
	}{{"a", 0}, {"b", 0}, {"c", 0}, {"ab", 3}, {"bc", 2}, {"abc", 5}, {"é", 0}, {"hé", 1}, {"h", 0}, {" ", 0}, {" a", 4}} {
		pieces = append(pieces, []byte(p.s))
		scores = append(scores, p.score)
	}
	return NewTokenizer(pieces, scores)
}

func TestTokenizerKnownEncodings(t *testing.T) {
	tk := testTokenizer()
	id := func(s string) int { return tk.index[s] }
	for in, want := range map[string][]int{
		"abc":      {id("abc")},
		"bc":       {id("bc")},
		"abab":     {id("ab"), id("ab")},
		"hé":       {id("hé")},
		" abc":     {id(" a"), id("bc")}, // " a" (4) merges before "ab" (3)
		"\xff":     {id("<0xFF>")},
		"z":        {id("<0x7A>")},
		"":         {},
		"a\x00b\n": {id("a"), id("<0x00>"), id("b"), id("<0x0A>")},
	} {
		got, err := tk.Encode([]byte(in))
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%q: got %v, want %v", in, got, want)
		}
	}
}

// naiveEncode is llama2.c's quadratic algorithm, the reference for the heap-based Encode.
func naiveEncode(t *Tokenizer, text []byte) []int {
	ids, _ := t.initial(text)
	for {
		best, bestScore, at := -1, float32(math.Inf(-1)), -1
		for i := 0; i+1 < len(ids); i++ {
			if id, ok := t.byText[string(append(append([]byte{}, t.text[ids[i]]...), t.text[ids[i+1]]...))]; ok && t.scores[id] > bestScore {
				best, bestScore, at = id, t.scores[id], i
			}
		}
		if best < 0 {
			return ids
		}
		ids = append(append(ids[:at:at], best), ids[at+2:]...)
	}
}

func FuzzTokenizer(f *testing.F) {
	tk := testTokenizer()
	for _, s := range []string{"abcabc", " abab", "hé hé", "\xff\xfe", "ab\xc3"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, text []byte) {
		ids, err := tk.Encode(text)
		if err != nil {
			t.Fatal(err)
		}
		if got := tk.Decode(ids); !bytes.Equal(got, text) {
			t.Fatalf("round trip: %q -> %v -> %q", text, ids, got)
		}
		if want := naiveEncode(tk, text); fmt.Sprint(ids) != fmt.Sprint(want) {
			t.Fatalf("%q: heap merge %v, llama2.c merge %v", text, ids, want)
		}
	})
}

func TestParseTokenizer(t *testing.T) {
	var b []byte
	b = binary.LittleEndian.AppendUint32(b, 3)
	for _, p := range []struct {
		s     string
		score float32
	}{{"a", 0}, {"b", 0}, {"ab", 1}} {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(p.score))
		b = binary.LittleEndian.AppendUint32(b, uint32(len(p.s)))
		b = append(b, p.s...)
	}
	tk, err := ParseTokenizer(b, 3)
	if err != nil {
		t.Fatal(err)
	}
	if ids, err := tk.Encode([]byte("abab")); err != nil || fmt.Sprint(ids) != "[2 2]" {
		t.Fatalf("%v %v", ids, err)
	}
	if _, err := tk.Encode([]byte("c")); err == nil {
		t.Fatal("encoded a byte the vocabulary lacks")
	}
	for name, bad := range map[string][]byte{
		"short":      b[:2],
		"truncated":  b[:len(b)-1],
		"extra":      append(append([]byte{}, b...), 0),
		"huge piece": append(append([]byte{}, b[:8]...), 0xff, 0xff, 0xff, 0x7f),
	} {
		if _, err := ParseTokenizer(bad, 3); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzParseTokenizer(f *testing.F) {
	f.Add([]byte{3, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 'a'}, 1)
	f.Fuzz(func(t *testing.T, b []byte, vocab int) {
		tk, err := ParseTokenizer(b, vocab%4096)
		if err != nil {
			return
		}
		_, _ = tk.Encode([]byte("hello"))
	})
}

func BenchmarkEncode10KB(b *testing.B) {
	tk := testTokenizer()
	text := bytes.Repeat([]byte("abc hé ab bc "), 800)
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		if _, err := tk.Encode(text); err != nil {
			b.Fatal(err)
		}
	}
}

func TestLongestPieceBoundsTokens(t *testing.T) {
	tk := testTokenizer()
	if tk.LongestPiece() != 3 { // "abc" and "hé"; "<0xXX>" pieces decode to one byte
		t.Fatalf("longest piece %d, want 3", tk.LongestPiece())
	}
	for _, in := range []string{"abcabcabc", "hé hé", "\xff\xfe", " abc"} {
		ids, err := tk.Encode([]byte(in))
		if err != nil {
			t.Fatal(err)
		}
		if len(ids)*tk.LongestPiece() < len(in) {
			t.Errorf("%q: %d tokens of at most %d bytes cannot make %d bytes", in, len(ids), tk.LongestPiece(), len(in))
		}
	}
}
