#!/usr/bin/env python3
"""Independent reference for model's forward pass: plain Python, no numpy.

Writes tiny.bin, a llama2.c-format checkpoint with deterministic pseudo-random weights
(grouped-query attention, untied classifier), and tiny_logits.txt, the logits this script
computes for a fixed token sequence, one line per position. The Go test loads the checkpoint,
runs its own forward pass and compares. Run: python3 reference.py (output is deterministic).
"""
import math
import struct

DIM, HIDDEN, LAYERS, HEADS, KV_HEADS, VOCAB, SEQ = 8, 16, 2, 2, 1, 11, 8
HS = DIM // HEADS
KV_DIM = KV_HEADS * HS
TOKENS = [1, 5, 3, 9, 0, 7]

state = 12345
def rnd():
    global state
    state = (state * 1103515245 + 12345) % (1 << 31)
    return (state / (1 << 31)) - 0.5

def mat(rows, cols):
    return [[rnd() for _ in range(cols)] for _ in range(rows)]

emb = mat(VOCAB, DIM)
rms_att = [[1.0 + 0.1 * rnd() for _ in range(DIM)] for _ in range(LAYERS)]
wq = [mat(DIM, DIM) for _ in range(LAYERS)]
wk = [mat(KV_DIM, DIM) for _ in range(LAYERS)]
wv = [mat(KV_DIM, DIM) for _ in range(LAYERS)]
wo = [mat(DIM, DIM) for _ in range(LAYERS)]
rms_ffn = [[1.0 + 0.1 * rnd() for _ in range(DIM)] for _ in range(LAYERS)]
w1 = [mat(HIDDEN, DIM) for _ in range(LAYERS)]
w2 = [mat(DIM, HIDDEN) for _ in range(LAYERS)]
w3 = [mat(HIDDEN, DIM) for _ in range(LAYERS)]
rms_final = [1.0 + 0.1 * rnd() for _ in range(DIM)]
wcls = mat(VOCAB, DIM)

def f32(x):  # round to float32 as the checkpoint stores it
    return struct.unpack("<f", struct.pack("<f", x))[0]

def round_all(m):
    if isinstance(m, list):
        return [round_all(v) for v in m]
    return f32(m)

emb, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final, wcls = map(
    round_all, (emb, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final, wcls))

def flat(m):
    if isinstance(m, list):
        out = []
        for v in m:
            out.extend(flat(v))
        return out
    return [m]

with open("tiny.bin", "wb") as f:
    f.write(struct.pack("<7i", DIM, HIDDEN, LAYERS, HEADS, KV_HEADS, -VOCAB, SEQ))  # negative vocab: untied classifier
    for part in (emb, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final):
        vals = flat(part)
        f.write(struct.pack("<%df" % len(vals), *vals))
    zeros = [0.0] * (SEQ * HS)  # legacy freq_cis_real and freq_cis_imag, unused
    f.write(struct.pack("<%df" % len(zeros), *zeros))
    vals = flat(wcls)
    f.write(struct.pack("<%df" % len(vals), *vals))

def matvec(w, x):
    return [sum(wi * xi for wi, xi in zip(row, x)) for row in w]

def rmsnorm(x, w):
    ss = sum(v * v for v in x) / len(x) + 1e-5
    s = 1.0 / math.sqrt(ss)
    return [wi * (s * xi) for wi, xi in zip(w, x)]

def rope(v, pos):
    out = list(v)
    for i in range(0, len(v), 2):
        hd = i % HS
        freq = 1.0 / (10000.0 ** (hd / HS))
        a = pos * freq
        c, s = math.cos(a), math.sin(a)
        out[i] = v[i] * c - v[i + 1] * s
        out[i + 1] = v[i] * s + v[i + 1] * c
    return out

kcache = [[] for _ in range(LAYERS)]
vcache = [[] for _ in range(LAYERS)]
lines = []
for pos, tok in enumerate(TOKENS):
    x = list(emb[tok])
    for l in range(LAYERS):
        xb = rmsnorm(x, rms_att[l])
        q = rope(matvec(wq[l], xb), pos)
        k = rope(matvec(wk[l], xb), pos)
        v = matvec(wv[l], xb)
        kcache[l].append(k)
        vcache[l].append(v)
        att_out = [0.0] * DIM
        for h in range(HEADS):
            kvh = h // (HEADS // KV_HEADS)
            qh = q[h * HS:(h + 1) * HS]
            scores = []
            for t in range(pos + 1):
                kh = kcache[l][t][kvh * HS:(kvh + 1) * HS]
                scores.append(sum(a * b for a, b in zip(qh, kh)) / math.sqrt(HS))
            m = max(scores)
            e = [math.exp(s - m) for s in scores]
            z = sum(e)
            p = [v / z for v in e]
            for t in range(pos + 1):
                vh = vcache[l][t][kvh * HS:(kvh + 1) * HS]
                for i in range(HS):
                    att_out[h * HS + i] += p[t] * vh[i]
        x = [a + b for a, b in zip(x, matvec(wo[l], att_out))]
        xb = rmsnorm(x, rms_ffn[l])
        h1, h3 = matvec(w1[l], xb), matvec(w3[l], xb)
        hb = [(a / (1.0 + math.exp(-a))) * b for a, b in zip(h1, h3)]
        x = [a + b for a, b in zip(x, matvec(w2[l], hb))]
    x = rmsnorm(x, rms_final)
    logits = matvec(wcls, x)
    lines.append(" ".join("%.7g" % v for v in logits))

with open("tiny_logits.txt", "w") as f:
    f.write("# tokens %s\n" % " ".join(map(str, TOKENS)))
    f.write("\n".join(lines) + "\n")
