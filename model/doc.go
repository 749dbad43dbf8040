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
package model
