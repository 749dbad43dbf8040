package ton

import (
	"errors"
	"fmt"
	"math/bits"
)

// CoefficientOne is the per-mille price coefficient that leaves list prices unchanged.
const CoefficientOne = 1000

// Prices are per-token prices in nanoTON, by billing category.
type Prices struct {
	Prompt, Cached, Completion, Reasoning uint64
}

// Usage counts a response's tokens by billing category. Cached counts prompt tokens served
// from cache, billed at the cached price instead of the prompt price.
type Usage struct {
	Prompt, Cached, Completion, Reasoning uint64
}

// ErrOverflow is returned when a cost does not fit in 64 bits of nanoTON.
var ErrOverflow = errors.New("ton: cost overflows 2^64 nanoTON")

// Cost is what u costs at p scaled by coefficient (per mille), rounded up to the nanoTON so a
// payee is never paid less than the list price times the coefficient.
func (p Prices) Cost(u Usage, coefficient uint32) (uint64, error) {
	if u.Cached > u.Prompt {
		return 0, fmt.Errorf("ton: %d cached tokens of %d prompt tokens", u.Cached, u.Prompt)
	}
	var hi, lo uint64
	add := func(tokens, price uint64) {
		h, l := bits.Mul64(tokens, price)
		var carry uint64
		lo, carry = bits.Add64(lo, l, 0)
		hi += h + carry
	}
	add(u.Prompt-u.Cached, p.Prompt)
	add(u.Cached, p.Cached)
	add(u.Completion, p.Completion)
	add(u.Reasoning, p.Reasoning)
	// (hi:lo) * coefficient / 1000, rounded up.
	h1, l1 := bits.Mul64(lo, uint64(coefficient))
	h2, l2 := bits.Mul64(hi, uint64(coefficient))
	if h2 != 0 {
		return 0, ErrOverflow
	}
	top, carry := bits.Add64(h1, l2, 0)
	if carry != 0 || top >= CoefficientOne {
		return 0, ErrOverflow
	}
	q, r := bits.Div64(top, l1, CoefficientOne)
	if r != 0 {
		if q == ^uint64(0) {
			return 0, ErrOverflow
		}
		q++
	}
	return q, nil
}

// WithCommission is the price a proxy charges clients for a worker's price p: p plus the
// proxy's commission in per mille, rounded up per category.
func (p Prices) WithCommission(commission uint32) (Prices, error) {
	up := func(v uint64) (uint64, error) {
		h, l := bits.Mul64(v, uint64(CoefficientOne+commission))
		if h >= CoefficientOne {
			return 0, ErrOverflow
		}
		q, r := bits.Div64(h, l, CoefficientOne)
		if r != 0 {
			q++
		}
		return q, nil
	}
	var out Prices
	var err error
	for _, f := range []struct{ dst, src *uint64 }{{&out.Prompt, &p.Prompt}, {&out.Cached, &p.Cached},
		{&out.Completion, &p.Completion}, {&out.Reasoning, &p.Reasoning}} {
		if *f.dst, err = up(*f.src); err != nil {
			return Prices{}, err
		}
	}
	return out, nil
}
