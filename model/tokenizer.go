package model

import (
	"bytes"
	"container/heap"
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
)

// Tokenizer is a byte-fallback BPE tokenizer in llama2.c's tokenizer.bin layout: every piece
// has a score, and encoding merges the best-scoring adjacent pair until none is in the
// vocabulary. Bytes with no piece of their own use the pieces "<0x00>".."<0xFF>", so any input,
// valid UTF-8 or not, encodes and decodes back to itself. No prefix space and no BOS/EOS are
// added: the caller adds what its chat template needs.
type Tokenizer struct {
	pieces  [][]byte
	text    [][]byte // what each piece decodes to: "<0xXX>" pieces decode to their byte
	scores  []float32
	index   map[string]int // piece as written -> token (for "<s>" and the like)
	byText  map[string]int // what a token decodes to -> token; merging works on this
	bytes   [256]int       // token of each raw byte, -1 where the vocabulary has none
	longest int            // bytes of the longest piece's text
}

// maxPiece bounds one piece, and maxTokenizerVocab the vocabulary, of a tokenizer file.
const (
	maxPiece          = 1 << 10
	maxTokenizerVocab = 1 << 20
)

// ParseTokenizer decodes a tokenizer.bin for a vocabulary of vocab pieces: a 4-byte maximum
// piece length, then per piece a float32 score, an int32 length and the bytes.
func ParseTokenizer(b []byte, vocab int) (*Tokenizer, error) {
	if vocab <= 0 || vocab > maxTokenizerVocab {
		return nil, fmt.Errorf("model: tokenizer vocabulary of %d out of range", vocab)
	}
	if len(b) < 4 {
		return nil, fmt.Errorf("model: tokenizer file too short")
	}
	b = b[4:] // the longest piece's length: recomputed, not trusted
	t := &Tokenizer{pieces: make([][]byte, 0, min(vocab, len(b)/8)), index: map[string]int{}}
	for i := 0; i < vocab; i++ {
		if len(b) < 8 {
			return nil, fmt.Errorf("model: tokenizer file ends at piece %d of %d", i, vocab)
		}
		score := math.Float32frombits(binary.LittleEndian.Uint32(b))
		n := int(int32(binary.LittleEndian.Uint32(b[4:])))
		b = b[8:]
		if n < 0 || n > maxPiece || n > len(b) || math.IsNaN(float64(score)) {
			return nil, fmt.Errorf("model: tokenizer piece %d is malformed", i)
		}
		t.add(b[:n:n], score)
		b = b[n:]
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("model: %d bytes after the tokenizer's last piece", len(b))
	}
	t.finish()
	return t, nil
}

// NewTokenizer builds a tokenizer from pieces and their scores (higher merges first).
func NewTokenizer(pieces [][]byte, scores []float32) *Tokenizer {
	t := &Tokenizer{index: map[string]int{}}
	for i, p := range pieces {
		t.add(bytes.Clone(p), scores[i])
	}
	t.finish()
	return t
}

func (t *Tokenizer) add(p []byte, score float32) {
	if _, dup := t.index[string(p)]; !dup { // the first of duplicate pieces wins, as in llama2.c
		t.index[string(p)] = len(t.pieces)
	}
	t.pieces = append(t.pieces, p)
	t.scores = append(t.scores, score)
}

// finish works out what each piece decodes to ("<0xXX>" pieces to their byte), indexes pieces
// by that text (a piece written as itself wins over a "<0xXX>" one), and maps raw bytes to
// their tokens.
func (t *Tokenizer) finish() {
	t.text = make([][]byte, len(t.pieces))
	t.byText = make(map[string]int, len(t.pieces))
	var fallback []int
	for id, p := range t.pieces {
		t.text[id] = p
		if len(p) == 6 && string(p[:3]) == "<0x" && p[5] == '>' {
			if v, err := strconv.ParseUint(string(p[3:5]), 16, 8); err == nil {
				t.text[id] = []byte{byte(v)}
				fallback = append(fallback, id)
				continue
			}
		}
		if _, dup := t.byText[string(p)]; !dup {
			t.byText[string(p)] = id
		}
	}
	for _, text := range t.text {
		t.longest = max(t.longest, len(text))
	}
	for _, id := range fallback {
		if _, dup := t.byText[string(t.text[id])]; !dup {
			t.byText[string(t.text[id])] = id
		}
	}
	for c := range t.bytes {
		t.bytes[c] = -1
		if id, ok := t.byText[string([]byte{byte(c)})]; ok {
			t.bytes[c] = id
		}
	}
}

// Lookup returns the token of a piece, such as "<s>".
func (t *Tokenizer) Lookup(piece string) (int, bool) {
	id, ok := t.index[piece]
	return id, ok
}

// Vocab is the number of pieces.
func (t *Tokenizer) Vocab() int { return len(t.pieces) }

// LongestPiece is the most bytes one token decodes to. Encode splits text into pieces, so
// text of n bytes takes at least n / LongestPiece tokens: a bound on a prompt's tokens known
// before it is encoded.
func (t *Tokenizer) LongestPiece() int { return t.longest }

// Encode splits text into tokens. It fails only if the vocabulary lacks a byte of text.
func (t *Tokenizer) Encode(text []byte) ([]int, error) {
	ids, err := t.initial(text)
	if err != nil {
		return nil, err
	}
	syms := make([]symbol, len(ids))
	for i, id := range ids {
		syms[i].id = id
	}
	for i := range syms {
		syms[i].prev, syms[i].next = i-1, i+1
	}
	if len(syms) > 0 {
		syms[len(syms)-1].next = -1
	}
	// Merge the best pair until none is left; stale candidates are skipped when popped.
	var h mergeHeap
	var buf []byte
	candidate := func(i int) {
		j := syms[i].next
		if j < 0 {
			return
		}
		buf = append(append(buf[:0], t.text[syms[i].id]...), t.text[syms[j].id]...)
		if id, ok := t.byText[string(buf)]; ok {
			heap.Push(&h, merge{pos: i, left: syms[i].id, right: syms[j].id, id: id, score: t.scores[id]})
		}
	}
	for i := range syms {
		candidate(i)
	}
	for h.Len() > 0 {
		m := heap.Pop(&h).(merge)
		i := m.pos
		j := syms[i].next
		if syms[i].dead || j < 0 || syms[i].id != m.left || syms[j].id != m.right {
			continue
		}
		syms[i].id = m.id
		syms[j].dead = true
		syms[i].next = syms[j].next
		if syms[j].next >= 0 {
			syms[syms[j].next].prev = i
		}
		if p := syms[i].prev; p >= 0 {
			candidate(p)
		}
		candidate(i)
	}
	out := make([]int, 0, len(syms))
	for i := 0; i >= 0 && len(syms) > 0; i = syms[i].next {
		out = append(out, syms[i].id)
	}
	return out, nil
}

// Piece returns the bytes token id stands for, nil for an id outside the vocabulary.
func (t *Tokenizer) Piece(id int) []byte {
	if id < 0 || id >= len(t.text) {
		return nil
	}
	return t.text[id]
}

// Decode joins the tokens' bytes.
func (t *Tokenizer) Decode(ids []int) []byte {
	var out []byte
	for _, id := range ids {
		out = append(out, t.Piece(id)...)
	}
	return out
}

// initial splits text into the pieces encoding starts from: characters that are pieces, and
// raw bytes otherwise.
func (t *Tokenizer) initial(text []byte) ([]int, error) {
	var ids []int
	for i := 0; i < len(text); {
		r, n := utf8.DecodeRune(text[i:])
		if r != utf8.RuneError || n > 1 {
			if id, ok := t.byText[string(text[i:i+n])]; ok {
				ids = append(ids, id)
				i += n
				continue
			}
		}
		for _, c := range text[i : i+n] {
			id := t.bytes[c]
			if id < 0 {
				return nil, fmt.Errorf("model: the vocabulary has no piece for byte 0x%02X", c)
			}
			ids = append(ids, id)
		}
		i += n
	}
	return ids, nil
}

type symbol struct {
	id         int
	prev, next int
	dead       bool
}

// merge is a candidate: joining the symbols at pos and its next into id.
type merge struct {
	pos, left, right, id int
	score                float32
}

// mergeHeap pops the highest score first, the leftmost among equals.
type mergeHeap []merge

func (h mergeHeap) Len() int { return len(h) }
func (h mergeHeap) Less(i, j int) bool {
	if h[i].score != h[j].score {
		return h[i].score > h[j].score
	}
	return h[i].pos < h[j].pos
}
func (h mergeHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *mergeHeap) Push(x any)   { *h = append(*h, x.(merge)) }
func (h *mergeHeap) Pop() any {
	old := *h
	m := old[len(old)-1]
	*h = old[:len(old)-1]
	return m
}
