// Package openai is the OpenAI-compatible face of a client node. Face.Routes serves
// GET /v1/models (handleModels, from node.Prices), POST /v1/chat/completions and
// POST /v1/completions (handleCompletion), whose steps are:
//
//   - readBody: the body, within Config.MaxBodyBytes (413) and [http] body_timeout (408);
//   - request: decodeCompletion checks what the face reads (one JSON object, no duplicate or
//     case-variant keys, the types, n and best_of, one prompt), parseCompletion the model and
//     max_tokens against the node's limits, then the X-Cocoon-Max-Price and X-Request-Id
//     headers; a refusal is an apiErr, in OpenAI's error JSON, naming the param;
//   - node.Infer, with the body untouched (tools and any other field reach the backend);
//   - whole: the answer as the worker sent it, with who served it, its usage, cost and
//     receipt as X-Cocoon-* headers (setResultHeaders); or stream (sse.go): the worker's
//     events passed through, the event with the finish_reason held back to carry the receipt,
//     the usage chunk when stream_options.include_usage asks for it, an error event after a
//     failure, [DONE], and the receipt, usage and cost as trailers.
//
// What belongs to the mesh rather than to OpenAI's API stays in node: the SSE framing of a
// streamed chunk on the wire (backend.AppendEvent, at the worker) and the check of every chunk
// and whole answer before it reaches a face (backend.CheckEvents and CheckAnswer, in
// node.Infer), so that no face can forget it.
package openai
