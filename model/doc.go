// Package model is the embedded language-model engine: a pure-Go forward pass of a llama-family
// decoder (token embedding, RMSNorm, rotary position embeddings, grouped-query attention with a
// KV cache, SwiGLU feed-forward, tied or untied output head) over checkpoints in llama2.c's
// format.
//
// A Model is read-only once loaded and shared by every request; each request owns a State
// (its KV cache) and calls Forward once per token. This is the first part of issue 3: the
// tokenizer, sampling, the project's own trained weights and the worker backend build on it.
package model
