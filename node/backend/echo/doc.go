// Package echo is a test fixture, never a model: a small OpenAI-compatible
// HTTP server that the project's end-to-end tests and benchmarks run in place
// of a real model server (vLLM, SGLang, llama.cpp...).
//
// It generates nothing. Its only model is named "echo-test", and its "answer"
// is the last user message (chat) or the prompt (completions) repeated back,
// one whitespace-separated word per "token". What it does reproduce
// faithfully is the wire protocol a worker depends on: OpenAI's response and
// chunk objects, SSE framing flushed token by token, the usage chunk of
// stream_options.include_usage, [DONE], OpenAI-shaped errors, and a client
// disconnect being noticed mid-answer. Stats lets a test check what the
// server saw: how many requests completed or were cancelled, and the last
// request body byte for byte.
package echo
