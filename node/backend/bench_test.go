package backend

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/cocoon-mesh/cocoon/node/backend/echo"
)

// The HTTP benchmarks run the backend against the echo server in-process,
// so they measure the adapter (rewrite, HTTP round trip over loopback, SSE
// parsing, metering) plus the echo server's small cost, not a model.

func benchmarkHTTP(b *testing.B, stream bool) {
	_, h := newEcho(b, echo.Config{})
	r := Request{Endpoint: Chat, Model: testModel, Stream: stream, Body: chatBody(words(16))}
	emit := func(Chunk) error { return nil }
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		u, err := h.Generate(ctx, r, emit)
		if err != nil || u.Completion != 16 || u.Estimated {
			b.Fatalf("usage %+v err %v", u, err)
		}
	}
}

func BenchmarkHTTPNonStream(b *testing.B) { benchmarkHTTP(b, false) }

func BenchmarkHTTPStream(b *testing.B) { benchmarkHTTP(b, true) }

// BenchmarkHTTPStreamParallel shows warm connections being reused under
// concurrency.
func BenchmarkHTTPStreamParallel(b *testing.B) {
	_, h := newEcho(b, echo.Config{})
	r := Request{Endpoint: Chat, Model: testModel, Stream: true, Body: chatBody(words(16))}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := h.Generate(context.Background(), r, func(Chunk) error { return nil }); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkParseSSE(b *testing.B) {
	ev := "data: " + `{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":" word"},"finish_reason":null}]}` + "\n\n"
	in := []byte(strings.Repeat(ev, 256))
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		if err := ParseSSE(bytes.NewReader(in), 0, func([]byte) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRewriteBody(b *testing.B) {
	body := chatBody(words(64))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := rewriteBody(Request{Endpoint: Chat, Body: body, Stream: true}, serverModel); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeEvent is what reading one streamed event costs the worker, per token.
func BenchmarkDecodeEvent(b *testing.B) {
	for b.Loop() {
		var a answer
		if err := a.decode(sampleChunk); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckEvents is what the client's check of a frame of four events costs.
func BenchmarkCheckEvents(b *testing.B) {
	ev := bytes.Repeat(append(append([]byte("data: "), sampleChunk...), "\n\n"...), 4)
	b.SetBytes(int64(len(ev)))
	for b.Loop() {
		if err := CheckEvents(ev); err != nil {
			b.Fatal(err)
		}
	}
}
