// Package model is the embedded language-model engine: a pure-Go forward pass of a llama-family
// decoder (token embedding, RMSNorm, rotary position embeddings, grouped-query attention with a
// KV cache, SwiGLU feed-forward, tied or untied output head) over checkpoints in llama2.c's
// format.
//
// A Model is read-only once loaded and shared by every request; each request owns a State
// (its KV cache) and calls Forward once per token. Generate runs a whole request: sampling
// (greedy, temperature, top_p, seed), max_tokens, stop sequences, EOS and cancellation. The
// Tokenizer is byte-fallback BPE in llama2.c's tokenizer.bin layout, and ChatPrompt is the
// chat template. node/backend's Embedded serves all this as a worker backend.
//
// # Files
//
// A checkpoint (llama2.c's legacy format, little-endian) is seven int32s, dim, hidden_dim,
// n_layers, n_heads, n_kv_heads, vocab_size (negative when the output head is a separate
// matrix) and seq_len, then float32 tensors in this order: token embedding (vocab, dim); per
// layer attention RMSNorm weights; wq, wk, wv, wo of every layer, each (out, in); per layer
// feed-forward RMSNorm weights; w1, w2, w3 of every layer; the final RMSNorm weights; the legacy
// RoPE tables (seq_len x head_size/2 floats twice, ignored); and the output head if not shared.
//
// A tokenizer (llama2.c's tokenizer.bin) is an int32 (the longest piece, ignored), then per
// piece a float32 merge score, an int32 length and the piece's bytes; "<0xXX>" pieces stand for
// single bytes. The project's own model and tokenizer live in weights/, with SHA256SUMS and the
// corpus licence (NOTICE); train/ makes them.
package model
