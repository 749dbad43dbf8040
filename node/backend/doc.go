// Package backend connects a worker node to the thing that actually runs
// inference: today any OpenAI-compatible HTTP server (vLLM, SGLang,
// llama.cpp, TGI...), later an embedded model.
//
// A worker receives an OpenAI request body from the mesh, hands it to a
// Backend as a Request, and relays the Chunks that Generate emits back to the
// client. Because billing depends on accurate token counts, the HTTP backend
// meters streams itself: it forces stream_options.include_usage so the server
// reports usage at the end of a stream, keeps that usage chunk out of the
// relayed answer (the client node re-synthesizes it for its caller), and
// falls back to a clearly marked estimate when a server reports nothing.
//
// Everything read from a model server is treated as untrusted input: the SSE
// parser (ParseSSE) and the usage parser (ParseUsage) are pure functions with
// hard size bounds so they can be fuzzed, and client request bodies are
// rewritten without ever re-encoding the fields the worker does not own. A
// whole answer, and every streamed event, must be one valid JSON object (UTF-8
// strings included), or the call fails with a 502 and the proxy tries another
// worker; the client node checks what it opens the same way, with CheckAnswer
// and CheckEvents.
package backend
