#!/usr/bin/python3
"""Trains the project's embedded model and writes it in llama2.c's format.

Reads the corpus (corpus/main.go writes it: Go standard-library doc comments), learns a
byte-fallback BPE tokenizer of 512 pieces, trains a llama-style decoder of llama2.c's
stories260K shape (dim 64, hidden 172, 5 layers, 8 heads, 4 key/value heads, tied output head),
and writes to OUT: model.bin, tokenizer.bin, and reference.txt (the logits this program computes
for a fixed prompt, which the Go forward pass must reproduce). Deterministic for a given corpus,
torch version and STEPS. Run through train.sh, which installs Debian's python3-torch.
"""
import math
import os
import struct
import sys
import time
from collections import Counter

import torch
import torch.nn as nn
import torch.nn.functional as F

CORPUS, OUT = sys.argv[1], sys.argv[2]
STEPS = int(os.environ.get("STEPS", "3000"))
DIM, HIDDEN, LAYERS, HEADS, KV_HEADS, VOCAB, SEQ = 64, 172, 5, 8, 4, 512, 128
HS = DIM // HEADS
torch.manual_seed(1)
torch.set_num_threads(max(1, os.cpu_count() or 1))

# --- tokenizer: <unk>, <s>, </s>, 256 byte pieces, then merges learned on words ---
text = open(CORPUS, "rb").read()
SPECIAL = [b"<unk>", b"<s>", b"</s>"]
pieces = SPECIAL + [bytes([b]) for b in range(256)]
words = Counter()
cur = bytearray()
for b in text:  # a word is a run of non-space bytes with the spaces before it
    if b in b" \n" and cur and cur[-1] not in b" \n":
        words[bytes(cur)] += 1
        cur = bytearray()
    cur.append(b)
if cur:
    words[bytes(cur)] += 1
splits = {w: [bytes([b]) for b in w] for w in words}
merges = []
while len(pieces) < VOCAB:
    pairs = Counter()
    for w, n in words.items():
        s = splits[w]
        for a, b in zip(s, s[1:]):
            pairs[(a, b)] += n
    if not pairs:
        break
    (a, b), _ = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))
    merged = a + b
    merges.append(merged)
    pieces.append(merged)
    for w in words:
        s = splits[w]
        i, out = 0, []
        while i < len(s):
            if i + 1 < len(s) and s[i] == a and s[i + 1] == b:
                out.append(merged)
                i += 2
            else:
                out.append(s[i])
                i += 1
        splits[w] = out
index = {p: i for i, p in enumerate(pieces)}
# Merges earlier in training score higher; the Go encoder merges the best-scoring pair first.
scores = [0.0] * len(pieces)
for rank, m in enumerate(merges):
    scores[index[m]] = float(len(merges) - rank)

def encode(data):
    """The Go encoder's algorithm: start from bytes, merge the best-scoring pair, leftmost first."""
    ids = [index[bytes([b])] for b in data]
    while True:
        best, at = None, -1
        for i in range(len(ids) - 1):
            j = index.get(pieces[ids[i]] + pieces[ids[i + 1]])
            if j is not None and (best is None or scores[j] > scores[best]):
                best, at = j, i
        if best is None:
            return ids
        ids[at:at + 2] = [best]

# Encode the corpus word by word (pieces never span words), memoised.
memo = {}
tokens = []
cur = bytearray()
def flush(word):
    if word not in memo:
        memo[word] = encode(word)
    tokens.extend(memo[word])
for b in text:
    if b in b" \n" and cur and cur[-1] not in b" \n":
        flush(bytes(cur))
        cur = bytearray()
    cur.append(b)
if cur:
    flush(bytes(cur))
data = torch.tensor(tokens, dtype=torch.long)
print(f"corpus {len(text)} bytes -> {len(tokens)} tokens, {len(pieces)} pieces", flush=True)

# --- model: llama2.c's architecture ---
def rope_tables():
    freqs = 1.0 / (10000.0 ** (torch.arange(0, HS, 2).float() / HS))
    t = torch.arange(SEQ).float()
    ang = torch.outer(t, freqs)
    return torch.cos(ang), torch.sin(ang)
COS, SIN = rope_tables()

def rope(x):  # x: (B, T, H, HS); rotates interleaved pairs, as llama2.c does
    T = x.shape[1]
    xr, xi = x[..., 0::2], x[..., 1::2]
    c, s = COS[:T, None, :], SIN[:T, None, :]
    return torch.stack([xr * c - xi * s, xr * s + xi * c], dim=-1).flatten(-2)

class RMSNorm(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(DIM))
    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5))

class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.att_norm, self.ffn_norm = RMSNorm(), RMSNorm()
        self.wq = nn.Linear(DIM, DIM, bias=False)
        self.wk = nn.Linear(DIM, KV_HEADS * HS, bias=False)
        self.wv = nn.Linear(DIM, KV_HEADS * HS, bias=False)
        self.wo = nn.Linear(DIM, DIM, bias=False)
        self.w1 = nn.Linear(DIM, HIDDEN, bias=False)
        self.w2 = nn.Linear(HIDDEN, DIM, bias=False)
        self.w3 = nn.Linear(DIM, HIDDEN, bias=False)
    def forward(self, x):
        B, T, _ = x.shape
        h = self.att_norm(x)
        q = rope(self.wq(h).view(B, T, HEADS, HS))
        k = rope(self.wk(h).view(B, T, KV_HEADS, HS))
        v = self.wv(h).view(B, T, KV_HEADS, HS)
        rep = HEADS // KV_HEADS
        k = k.repeat_interleave(rep, dim=2)
        v = v.repeat_interleave(rep, dim=2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(HS)
        att = att.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1), float("-inf"))
        y = (F.softmax(att, dim=-1) @ v).transpose(1, 2).reshape(B, T, DIM)
        x = x + self.wo(y)
        h = self.ffn_norm(x)
        return x + self.w2(F.silu(self.w1(h)) * self.w3(h))

class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(VOCAB, DIM)
        self.blocks = nn.ModuleList([Block() for _ in range(LAYERS)])
        self.norm = RMSNorm()
        nn.init.normal_(self.emb.weight, std=0.02)
        for b in self.blocks:
            for lin in (b.wq, b.wk, b.wv, b.wo, b.w1, b.w2, b.w3):
                nn.init.normal_(lin.weight, std=0.02)
    def forward(self, idx):
        x = self.emb(idx)
        for b in self.blocks:
            x = b(x)
        return self.norm(x) @ self.emb.weight.T  # tied head

model = Model()
print(f"{sum(p.numel() for p in model.parameters())} parameters", flush=True)
opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
BATCH = 16
split = int(0.98 * len(data))
train, val = data[:split], data[split:]
g = torch.Generator().manual_seed(2)
def batch(src):
    ix = torch.randint(len(src) - SEQ - 1, (BATCH,), generator=g)
    x = torch.stack([src[i:i + SEQ] for i in ix])
    y = torch.stack([src[i + 1:i + SEQ + 1] for i in ix])
    return x, y
start = time.time()
for step in range(STEPS):
    lr = 3e-3 * min(1.0, (step + 1) / 100) * (0.1 + 0.9 * (1 + math.cos(math.pi * step / STEPS)) / 2)
    for group in opt.param_groups:
        group["lr"] = lr
    x, y = batch(train)
    loss = F.cross_entropy(model(x).view(-1, VOCAB), y.view(-1))
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    if step % 200 == 0 or step == STEPS - 1:
        with torch.no_grad():
            vx, vy = batch(val)
            vloss = F.cross_entropy(model(vx).view(-1, VOCAB), vy.view(-1))
        print(f"step {step} loss {loss.item():.3f} val {vloss.item():.3f} {time.time() - start:.0f}s", flush=True)

# --- export: llama2.c legacy format, shared classifier ---
os.makedirs(OUT, exist_ok=True)
def f32(t):
    return t.detach().float().contiguous().view(-1).tolist()
with open(os.path.join(OUT, "model.bin"), "wb") as f:
    f.write(struct.pack("<7i", DIM, HIDDEN, LAYERS, HEADS, KV_HEADS, VOCAB, SEQ))
    parts = [model.emb.weight]
    parts += [b.att_norm.weight for b in model.blocks]
    for name in ("wq", "wk", "wv", "wo"):
        parts += [getattr(b, name).weight for b in model.blocks]
    parts += [b.ffn_norm.weight for b in model.blocks]
    for name in ("w1", "w2", "w3"):
        parts += [getattr(b, name).weight for b in model.blocks]
    parts += [model.norm.weight, COS[:, :], SIN[:, :]]  # legacy freq_cis tables (unused by Go)
    for p in parts:
        v = f32(p)
        f.write(struct.pack("<%df" % len(v), *v))
with open(os.path.join(OUT, "tokenizer.bin"), "wb") as f:
    f.write(struct.pack("<i", max(len(p) for p in pieces)))
    for p, s in zip(pieces, scores):
        shown = b"<0x%02X>" % p[0] if len(p) == 1 else p  # byte pieces as llama2.c names them
        f.write(struct.pack("<fi", s, len(shown)) + shown)

# --- reference logits for the Go test: the fixed prompt, position by position ---
prompt = b"Package fmt implements formatted I/O"
ids = encode(prompt)
with torch.no_grad():
    logits = model(torch.tensor([ids]))[0]
with open(os.path.join(OUT, "reference.txt"), "w") as f:
    f.write("# tokens " + " ".join(map(str, ids)) + "\n")
    for row in logits:
        f.write(" ".join("%.6g" % v for v in row.tolist()) + "\n")
print("wrote", OUT, flush=True)
