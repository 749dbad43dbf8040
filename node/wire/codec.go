package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
)

// FrameType says what a frame's payload holds.
type FrameType uint8

// Frame types of the inference stream.
const (
	FrameHeader FrameType = 1 // request metadata, first frame from the caller
	FrameBody   FrameType = 2 // the request body (an OpenAI JSON object), second frame from the caller
	FrameChunk  FrameType = 3 // one piece of the answer
	FrameFinal  FrameType = 4 // the answer is complete: usage follows
	FrameError  FrameType = 5 // the request failed: code and message
	FrameAdvert FrameType = 6 // a signed capacity advert, sent straight to a proxy
	FrameSealed FrameType = 7 // the request body sealed to the worker, in place of a body frame
	FrameRoute  FrameType = 8 // proxy to client: the worker chosen and its attestation, before the body
	FrameHello  FrameType = 9 // the attested handshake: a sealing key and evidence
	// FrameSealedSet is the body sealed to each of several workers the client already knows,
	// sent with the header so the proxy needs no route round trip when it picks one of them.
	FrameSealedSet FrameType = 10
	FrameChosen    FrameType = 11 // proxy to client: which worker of the sealed set serves it

	// Payments. On an inference stream the payee quotes the answer's prices before its first
	// chunk, the payer sends vouchers as value arrives, and the payee bills when it waits for
	// one. On the channel stream (/cocoon/channel/1.0.0) the payer asks for terms, names a
	// channel it is about to deploy, opens or resumes a channel, or pays between requests; the
	// payee answers with its channel state.
	FrameQuote        FrameType = 12 // payee to payer: the prices this answer is billed at
	FramePay          FrameType = 13 // payer to payee: a voucher (ton.Voucher's encoding)
	FrameBill         FrameType = 14 // payee to payer: pay what you received, I am waiting
	FrameTerms        FrameType = 15 // channel stream: the payer asks (empty), the payee answers
	FrameChannelOpen  FrameType = 16 // channel stream: the payer opened or resumes a channel
	FrameChannelState FrameType = 17 // channel stream: the payee's view of the channel
	FrameChannelClose FrameType = 18 // channel stream: a cooperative close, signed by one side
	FrameChannelNew   FrameType = 19 // channel stream: the id of a channel the payer is about to deploy

	// Reconciling. A caller that refuses an answer says so, and how much of it it accepts, so
	// the callee stops and counts the same value; a payer that a bill finds owing nothing it
	// knows of says so with its newest voucher, so the payee writes off the difference.
	FrameReject   FrameType = 20 // caller to callee: the answer is refused (Reject)
	FrameSettled  FrameType = 21 // payer to payee, answering a bill: a voucher paying all it received
	FrameProgress FrameType = 22 // callee to caller: still working (empty), sent when nothing else was for a while
)

// String names the frame type for errors and logs.
func (t FrameType) String() string {
	switch t {
	case FrameHeader:
		return "header"
	case FrameBody:
		return "body"
	case FrameChunk:
		return "chunk"
	case FrameFinal:
		return "final"
	case FrameError:
		return "error"
	case FrameAdvert:
		return "advert"
	case FrameSealed:
		return "sealed body"
	case FrameRoute:
		return "route"
	case FrameHello:
		return "hello"
	case FrameSealedSet:
		return "sealed set"
	case FrameChosen:
		return "chosen"
	case FrameQuote:
		return "quote"
	case FramePay:
		return "pay"
	case FrameBill:
		return "bill"
	case FrameTerms:
		return "terms"
	case FrameChannelOpen:
		return "channel open"
	case FrameChannelState:
		return "channel state"
	case FrameChannelNew:
		return "channel new"
	case FrameChannelClose:
		return "channel close"
	case FrameReject:
		return "reject"
	case FrameSettled:
		return "settled"
	case FrameProgress:
		return "progress"
	}
	return fmt.Sprintf("frame(%d)", uint8(t))
}

// Codec errors.
var (
	ErrFrameTooLarge = errors.New("wire: frame larger than the limit")
	ErrMalformed     = errors.New("wire: malformed message")
)

// Reader reads frames from a stream.
type Reader struct {
	br  *bufio.Reader
	max int
	buf []byte // ReadFrameReuse's payload buffer
}

// readBuffer is small on purpose: a node holds one per open stream, headers and small frames
// fit, and a large frame's payload is read straight into its own slice.
const readBuffer = 1 << 10

// readers recycles the buffered readers under Readers: a node makes one or two per request.
var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, readBuffer) }}

// NewReader returns a Reader that refuses frames whose payload exceeds max bytes.
func NewReader(r io.Reader, max int) *Reader {
	br := readers.Get().(*bufio.Reader)
	br.Reset(r)
	return &Reader{br: br, max: max}
}

// Release hands the Reader's buffer back for reuse; the Reader must not be used after.
func (r *Reader) Release() {
	if r.br != nil {
		r.br.Reset(nil)
		readers.Put(r.br)
		r.br = nil
	}
}

// Buffered reports whether more of the stream is already in memory, so a forwarder can skip a
// flush that the next frame would make anyway.
func (r *Reader) Buffered() bool { return r.br.Buffered() > 0 }

// ReadFrame returns the next frame. The payload is a fresh slice the caller may keep.
// An oversized frame is refused before its payload is read, so memory stays bounded.
func (r *Reader) ReadFrame() (FrameType, []byte, error) {
	t, n, err := r.readHeader()
	if err != nil {
		return 0, nil, err
	}
	return r.readPayload(t, make([]byte, n))
}

// maxReuse bounds the buffer ReadFrameReuse keeps between frames.
const maxReuse = 64 << 10

// ReadFrameReuse is ReadFrame for a caller that is done with the payload before its next read
// (a forwarder): payloads up to 64 KiB share one buffer, saving an allocation per frame.
func (r *Reader) ReadFrameReuse() (FrameType, []byte, error) {
	t, n, err := r.readHeader()
	if err != nil {
		return 0, nil, err
	}
	if n > maxReuse {
		return r.readPayload(t, make([]byte, n))
	}
	if cap(r.buf) < n {
		r.buf = make([]byte, n, max(n, 512))
	}
	return r.readPayload(t, r.buf[:n])
}

// readHeader reads a frame's type and length, refusing a length over the limit.
func (r *Reader) readHeader() (FrameType, int, error) {
	t, err := r.br.ReadByte()
	if err != nil {
		return 0, 0, err
	}
	n, err := binary.ReadUvarint(r.br)
	if err != nil {
		return 0, 0, noEOF(err)
	}
	if n > uint64(r.max) {
		return 0, 0, fmt.Errorf("%w: %s frame of %d bytes, limit %d", ErrFrameTooLarge, FrameType(t), n, r.max)
	}
	return FrameType(t), int(n), nil
}

func (r *Reader) readPayload(t FrameType, p []byte) (FrameType, []byte, error) {
	if _, err := io.ReadFull(r.br, p); err != nil {
		return 0, nil, noEOF(err)
	}
	return t, p, nil
}

// noEOF turns a clean EOF inside a frame into ErrUnexpectedEOF: the peer stopped mid-frame.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Writer writes frames to a stream through a buffer; call Flush to send.
type Writer struct {
	w   io.Writer
	buf []byte // frames not sent yet; grows to the largest small frame, no more
}

// directWrite is the payload size above which a frame skips the buffer: copying a big body or
// answer once more buys nothing.
const directWrite = 4 << 10

// NewWriter returns a buffered frame Writer.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// writeBuffers recycles Writer buffers: a node makes a few per request.
var writeBuffers = sync.Pool{New: func() any { b := make([]byte, 0, directWrite+64); return &b }}

// Release hands the Writer's buffer back for reuse; call it once nothing more will be written.
func (w *Writer) Release() {
	if w.buf != nil && cap(w.buf) <= 4*directWrite {
		b := w.buf[:0]
		writeBuffers.Put(&b)
	}
	w.buf = nil
}

// WriteFrame buffers one frame (a large payload is written through at once).
func (w *Writer) WriteFrame(t FrameType, payload []byte) error {
	if w.buf == nil {
		w.buf = *writeBuffers.Get().(*[]byte)
	}
	w.buf = append(w.buf, byte(t))
	w.buf = binary.AppendUvarint(w.buf, uint64(len(payload)))
	if len(payload) <= directWrite {
		w.buf = append(w.buf, payload...)
		return nil
	}
	if err := w.Flush(); err != nil {
		return err
	}
	_, err := w.w.Write(payload)
	return err
}

// Flush sends buffered frames.
func (w *Writer) Flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	_, err := w.w.Write(w.buf)
	w.buf = w.buf[:0]
	return err
}
