package model

import (
	"bufio"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestEmbeddedMatchesTrainingProgram loads the committed model and compares the Go forward
// pass with the logits the training program (PyTorch) computed for its fixed prompt.
func TestEmbeddedMatchesTrainingProgram(t *testing.T) {
	m, tk, err := Embedded()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("weights/reference.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	sc.Scan()
	var tokens []int
	for _, s := range strings.Fields(strings.TrimPrefix(sc.Text(), "# tokens")) {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatal(err)
		}
		tokens = append(tokens, n)
	}
	// The tokenizer encodes the prompt as the training program did.
	ids, err := tk.Encode([]byte("Package fmt implements formatted I/O"))
	if err != nil || len(ids) != len(tokens) {
		t.Fatalf("prompt encodes to %v (%v), training program had %v", ids, err, tokens)
	}
	for i := range ids {
		if ids[i] != tokens[i] {
			t.Fatalf("prompt encodes to %v, training program had %v", ids, tokens)
		}
	}
	st := m.NewState()
	for pos, tok := range tokens {
		got, err := st.Forward(tok)
		if err != nil {
			t.Fatal(err)
		}
		if !sc.Scan() {
			t.Fatal("reference ends early")
		}
		want := strings.Fields(sc.Text())
		worst := 0.0
		for i, w := range want {
			ref, _ := strconv.ParseFloat(w, 64)
			worst = math.Max(worst, math.Abs(float64(got[i])-ref))
		}
		if len(want) != len(got) || worst > 2e-3 {
			t.Fatalf("position %d: largest difference %g from the training program's logits", pos, worst)
		}
	}
	if got, want := tk.Decode(tokens), "Package fmt implements formatted I/O"; string(got) != want {
		t.Fatalf("decode %q", got)
	}
}
