package openai

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"

	"github.com/cocoon-mesh/cocoon/api/httpguard"
	"github.com/cocoon-mesh/cocoon/node"
	"github.com/cocoon-mesh/cocoon/node/wire"
)

// handleCompletion serves one chat or completions request: it reads and checks the request,
// names it, and sends it into the mesh, answering whole or as a stream.
func (f *Face) handleCompletion(w http.ResponseWriter, r *http.Request, ep wire.Endpoint) {
	body, aerr := f.readBody(w, r)
	if aerr != nil {
		aerr.write(w)
		return
	}
	req, nreq, aerr := f.request(r, body, ep)
	if aerr != nil {
		aerr.write(w)
		return
	}
	w.Header().Set("X-Request-Id", nreq.ID)
	if !req.Stream {
		f.whole(r.Context(), w, nreq)
		return
	}
	f.stream(r.Context(), w, nreq, req.IncludeUsage)
}

// readBody reads the request body within the node's size limit and the guard's time limit.
func (f *Face) readBody(w http.ResponseWriter, r *http.Request) ([]byte, *apiErr) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(f.cfg.MaxBodyBytes)))
	if err == nil {
		return body, nil
	}
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return nil, &apiErr{http.StatusRequestEntityTooLarge, wire.CodeTooLarge.String(), "", fmt.Sprintf("request body over this node's limit of %d bytes", f.cfg.MaxBodyBytes)}
	}
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		return nil, &apiErr{http.StatusRequestTimeout, "timeout", "", fmt.Sprintf("the request body did not arrive within %s ([http] body_timeout)", f.cfg.HTTP.BodyTimeout)}
	}
	return nil, &apiErr{http.StatusBadRequest, wire.CodeBadRequest.String(), "", "cannot read request body: " + err.Error()}
}

// request checks a request and makes it the node's: its limits, the caller's price cap
// (X-Cocoon-Max-Price, which may only lower the node's) and its ID (X-Request-Id, if usable).
func (f *Face) request(r *http.Request, body []byte, ep wire.Endpoint) (completionRequest, node.Request, *apiErr) {
	req, nreq, aerr := f.parseCompletion(body, ep)
	if aerr != nil {
		return req, nreq, aerr
	}
	if v := r.Header.Get("X-Cocoon-Max-Price"); v != "" {
		p, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return req, nreq, badRequest("", "X-Cocoon-Max-Price must be a whole number of nanoTON per completion token")
		}
		if nreq.MaxPrice == 0 || p < nreq.MaxPrice {
			nreq.MaxPrice = p
		}
	}
	nreq.ID = f.n.RequestID(r.Header.Get("X-Request-Id"))
	return req, nreq, nil
}

// parseCompletion checks a request body and returns the node's request for it.
func (f *Face) parseCompletion(body []byte, ep wire.Endpoint) (completionRequest, node.Request, *apiErr) {
	req, aerr := decodeCompletion(body, ep)
	if aerr != nil {
		return req, node.Request{}, aerr
	}
	if req.Model == "" {
		return req, node.Request{}, badRequest("model", "model is required: GET /v1/models lists what the mesh offers")
	}
	if len(req.Model) > wire.MaxModelLen {
		return req, node.Request{}, badRequest("model", fmt.Sprintf("model name longer than %d bytes", wire.MaxModelLen))
	}
	var maxTokens int64
	param := "max_tokens"
	switch {
	case req.MaxCompletionTokens != nil:
		maxTokens, param = *req.MaxCompletionTokens, "max_completion_tokens"
	case req.MaxTokens != nil:
		maxTokens = *req.MaxTokens
	}
	if maxTokens < 0 {
		return req, node.Request{}, badRequest(param, param+" must not be negative")
	}
	if maxTokens > int64(f.cfg.MaxTokens) {
		return req, node.Request{}, badRequest(param, fmt.Sprintf("%s %d is over this node's limit of %d", param, maxTokens, f.cfg.MaxTokens))
	}
	nreq := node.Request{Model: req.Model, Endpoint: ep, Body: body, Stream: req.Stream, MaxTokens: uint32(maxTokens), MaxPrice: f.cfg.MaxPrice}
	return req, nreq, nil
}

// whole answers a non-streamed request: the answer as the worker sent it, once it is whole and
// checked, with who served it, what it used and cost, and the receipt as headers.
func (f *Face) whole(ctx context.Context, w http.ResponseWriter, req node.Request) {
	res, err := f.n.Infer(ctx, req, nil)
	if err != nil {
		httpguard.WriteWireError(w, node.AsWireError(err))
		return
	}
	hd := w.Header()
	hd.Set("X-Cocoon-Proxy", res.Proxy)
	hd.Set("X-Cocoon-Proxy-Tee", res.ProxyTEE)
	setResultHeaders(hd, res)
	hd.Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.Write(res.Answer)
}

// resultHeaders are what a streamed answer sends as trailers, once it is complete.
const resultHeaders = "X-Cocoon-Receipt, X-Cocoon-Worker, X-Cocoon-Worker-Tee, X-Cocoon-Usage, X-Cocoon-Cost"

// setResultHeaders tells the caller which worker served the request, what its attestation
// showed, what it used and cost, and hands over the receipt.
func setResultHeaders(h http.Header, res *node.Result) {
	h.Set("X-Cocoon-Worker", res.Worker)
	h.Set("X-Cocoon-Worker-Tee", res.WorkerTEE)
	h.Set("X-Cocoon-Usage", usageHeader(&res.Usage))
	h.Set("X-Cocoon-Receipt", res.Receipt)
	if res.Paid {
		h.Set("X-Cocoon-Cost", strconv.FormatUint(res.Cost, 10))
	}
}

func usageHeader(u *wire.Usage) string {
	return fmt.Sprintf("prompt=%d cached=%d completion=%d reasoning=%d estimated=%t",
		u.Prompt, u.Cached, u.Completion, u.Reasoning, u.Estimated)
}
