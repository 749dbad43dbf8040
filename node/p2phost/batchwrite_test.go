package p2phost

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

func TestBatchConnKeepsOrderAndFlushesOnClose(t *testing.T) {
	a, b := net.Pipe()
	bc := newBatchConn(a)
	var want bytes.Buffer
	got := make(chan []byte)
	go func() {
		all, _ := io.ReadAll(b)
		got <- all
	}()
	for i := range 2000 {
		msg := bytes.Repeat([]byte{byte(i)}, i%300+1)
		want.Write(msg)
		if _, err := bc.Write(msg); err != nil {
			t.Fatal(err)
		}
	}
	if err := bc.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(<-got, want.Bytes()) {
		t.Fatal("bytes arrived changed or out of order")
	}
	if _, err := bc.Write([]byte("late")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
}

func TestBatchConnReportsWriteErrors(t *testing.T) {
	a, b := net.Pipe()
	bc := newBatchConn(a)
	b.Close() // the peer is gone: the flusher's write fails
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := bc.Write([]byte("x")); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("writes kept succeeding on a dead connection")
		}
		time.Sleep(time.Millisecond)
	}
	bc.Close()
}

func TestBatchConnBlocksWritersBeyondTheBound(t *testing.T) {
	a, b := net.Pipe() // nobody reads b yet: the first flush blocks
	bc := newBatchConn(a)
	defer bc.Close()
	big := make([]byte, maxBatch)
	done := make(chan struct{})
	go func() {
		bc.Write(big) // taken by the flusher, stuck in the pipe
		bc.Write(big) // pending: full
		bc.Write(big) // must wait for room
		close(done)
	}()
	select {
	case <-done:
		t.Fatal("a writer went past the bound while nothing drained")
	case <-time.After(100 * time.Millisecond):
	}
	go io.Copy(io.Discard, b)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("writer stayed blocked after the peer started reading")
	}
}
