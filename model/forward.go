package model

import (
	"fmt"
	"math"
)

// State is one sequence's working memory: its KV cache and scratch buffers. Not safe for
// concurrent use; each request has its own.
type State struct {
	m       *Model
	pos     int       // next position
	x, xb   []float32 // residual stream, normalised copy
	xb2     []float32
	q       []float32
	hb, hb2 []float32
	att     []float32 // scores of one head over the positions so far
	kc, vc  []float32 // (layers, seqlen, kvdim)
	logits  []float32
	cos     []float32 // RoPE tables (seqlen, headsize/2)
	sin     []float32
}

// NewState allocates a sequence's state: about 2 x layers x seqlen x kvdim floats of cache.
func (m *Model) NewState() *State {
	c := m.Config
	hs := c.HeadSize()
	s := &State{
		m: m, x: make([]float32, c.Dim), xb: make([]float32, c.Dim), xb2: make([]float32, c.Dim),
		q: make([]float32, c.Dim), hb: make([]float32, c.Hidden), hb2: make([]float32, c.Hidden),
		att: make([]float32, c.SeqLen), logits: make([]float32, c.Vocab),
		kc: make([]float32, c.Layers*c.SeqLen*c.KVDim()), vc: make([]float32, c.Layers*c.SeqLen*c.KVDim()),
		cos: make([]float32, c.SeqLen*hs/2), sin: make([]float32, c.SeqLen*hs/2),
	}
	for p := 0; p < c.SeqLen; p++ {
		for i := 0; i < hs/2; i++ {
			freq := 1 / math.Pow(10000, float64(2*i)/float64(hs))
			a := float64(p) * freq
			s.cos[p*hs/2+i] = float32(math.Cos(a))
			s.sin[p*hs/2+i] = float32(math.Sin(a))
		}
	}
	return s
}

// Pos is the number of tokens fed so far.
func (s *State) Pos() int { return s.pos }

// Forward feeds the next token and returns the logits for the token after it. The slice is
// reused by the next call.
func (s *State) Forward(token int) ([]float32, error) {
	c, w := s.m.Config, &s.m.Weights
	if token < 0 || token >= c.Vocab {
		return nil, fmt.Errorf("model: token %d outside the vocabulary of %d", token, c.Vocab)
	}
	if s.pos >= c.SeqLen {
		return nil, fmt.Errorf("model: context full (%d tokens)", c.SeqLen)
	}
	d, hd, kv, hs := c.Dim, c.Hidden, c.KVDim(), c.HeadSize()
	pos := s.pos
	x := s.x
	copy(x, w.Embedding[token*d:(token+1)*d])
	group := c.Heads / c.KVHeads
	scale := float32(1 / math.Sqrt(float64(hs)))
	for l := 0; l < c.Layers; l++ {
		rmsnorm(s.xb, x, w.RMSAtt[l*d:(l+1)*d])
		off := (l*c.SeqLen + pos) * kv
		k, v := s.kc[off:off+kv], s.vc[off:off+kv]
		matvec(s.q, w.WQ[l*d*d:(l+1)*d*d], s.xb)
		matvec(k, w.WK[l*kv*d:(l+1)*kv*d], s.xb)
		matvec(v, w.WV[l*kv*d:(l+1)*kv*d], s.xb)
		s.rope(s.q, pos)
		s.rope(k, pos)

		for h := 0; h < c.Heads; h++ {
			q := s.q[h*hs : (h+1)*hs]
			kvh := (h / group) * hs
			att := s.att[:pos+1]
			for t := 0; t <= pos; t++ {
				kt := s.kc[(l*c.SeqLen+t)*kv+kvh:][:hs]
				att[t] = dot(q, kt) * scale
			}
			softmax(att)
			out := s.xb[h*hs : (h+1)*hs]
			clear(out)
			for t := 0; t <= pos; t++ {
				vt := s.vc[(l*c.SeqLen+t)*kv+kvh:][:hs]
				a := att[t]
				for i := range out {
					out[i] += a * vt[i]
				}
			}
		}
		matvec(s.xb2, w.WO[l*d*d:(l+1)*d*d], s.xb)
		for i := range x {
			x[i] += s.xb2[i]
		}

		rmsnorm(s.xb, x, w.RMSFFN[l*d:(l+1)*d])
		matvec(s.hb, w.W1[l*hd*d:(l+1)*hd*d], s.xb)
		matvec(s.hb2, w.W3[l*hd*d:(l+1)*hd*d], s.xb)
		for i, a := range s.hb {
			s.hb[i] = a / (1 + float32(math.Exp(float64(-a)))) * s.hb2[i] // SwiGLU
		}
		matvec(s.xb, w.W2[l*d*hd:(l+1)*d*hd], s.hb)
		for i := range x {
			x[i] += s.xb[i]
		}
	}
	rmsnorm(x, x, w.RMSFinal)
	matvec(s.logits, w.Classifier, x)
	s.pos++
	return s.logits, nil
}

// rope rotates each pair of v by its position's angle, per head.
func (s *State) rope(v []float32, pos int) {
	hs := s.m.Config.HeadSize()
	cos, sin := s.cos[pos*hs/2:][:hs/2], s.sin[pos*hs/2:][:hs/2]
	for i := 0; i < len(v); i += 2 {
		j := (i % hs) / 2
		a, b := v[i], v[i+1]
		v[i] = a*cos[j] - b*sin[j]
		v[i+1] = a*sin[j] + b*cos[j]
	}
}

// matvec sets out = W x for W of shape (len(out), len(x)).
func matvec(out, w, x []float32) {
	n := len(x)
	for i := range out {
		out[i] = dot(w[i*n:(i+1)*n], x)
	}
}

func dot(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// rmsnorm sets out = w * x / rms(x); out may be x.
func rmsnorm(out, x, w []float32) {
	var ss float32
	for _, v := range x {
		ss += v * v
	}
	inv := float32(1 / math.Sqrt(float64(ss/float32(len(x))+1e-5)))
	for i, v := range x {
		out[i] = w[i] * (inv * v)
	}
}

func softmax(x []float32) {
	m := x[0]
	for _, v := range x[1:] {
		m = max(m, v)
	}
	var sum float32
	for i, v := range x {
		e := float32(math.Exp(float64(v - m)))
		x[i] = e
		sum += e
	}
	for i := range x {
		x[i] /= sum
	}
}
