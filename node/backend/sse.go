package backend

import (
	"bytes"
	"errors"
	"io"
	"math"
	"sync"
)

// DefaultMaxBody is the default cap on one response body or one SSE event.
const DefaultMaxBody = 8 << 20

// ErrTooLarge reports an SSE line or event, or a response body, larger than
// the configured cap; the stream is abandoned rather than buffered.
var ErrTooLarge = errors.New("backend: response or SSE event exceeds size limit")

// sseReadSize is the read buffer of one ParseSSE call; events usually span
// far less, and larger ones are assembled in the line buffer.
const sseReadSize = 8 << 10

// readBuffers recycles ParseSSE's read buffers: a worker makes one call per streamed request.
var readBuffers = sync.Pool{New: func() any { b := make([]byte, sseReadSize); return &b }}

// sseLineSlack lets a line hold a field name ("data: ") on top of max bytes
// of value, so a max-sized event is still accepted.
const sseLineSlack = 16

// maxEmptyReads mirrors bufio: a reader that keeps returning (0, nil) is
// broken, and looping on it forever would hang the call.
const maxEmptyReads = 100

// AppendEvent appends to dst one server-sent event carrying data (one line: "data: " data and
// a blank line). A streamed answer travels in this framing from the worker (which frames each
// Chunk so) through the mesh to the client's caller, which gets the events as they came:
// CheckEvents is its check, ParseSSE its reader.
func AppendEvent(dst, data []byte) []byte {
	dst = append(dst, "data: "...)
	dst = append(dst, data...)
	return append(dst, "\n\n"...)
}

// ParseSSE reads a text/event-stream from r and calls fn with the data of
// each event, in order, following the WHATWG parsing rules: lines end in
// CRLF, LF or CR; lines starting with ':' are comments; "data:" lines (with
// or without one following space) are joined with "\n"; other fields (event,
// id, retry) are ignored; a blank line ends an event, and events without data
// are skipped. Unlike the browser algorithm, an event still pending at EOF is
// delivered, since servers sometimes omit the final blank line.
//
// No line or event may exceed max bytes (max <= 0 means DefaultMaxBody);
// otherwise ParseSSE returns ErrTooLarge, so memory stays bounded whatever
// the peer sends. The data slice is only valid during fn. ParseSSE returns
// fn's error unchanged, the reader's error other than io.EOF, or nil at EOF.
// It knows nothing of OpenAI's "[DONE]" sentinel: fn decides when to stop.
func ParseSSE(r io.Reader, max int, fn func(data []byte) error) error {
	return parseSSE(r, max, func(data []byte, _ bool) error { return fn(data) })
}

// parseSSE is ParseSSE whose callback also learns whether another whole event is already
// read (more), so a forwarder can hold its flush for it.
func parseSSE(r io.Reader, max int, fn func(data []byte, more bool) error) error {
	if max <= 0 {
		max = DefaultMaxBody
	}
	max = min(max, math.MaxInt-sseLineSlack) // keep max+sseLineSlack from overflowing
	p := sseParser{max: max, fn: fn, first: true}
	var buf []byte
	if max+sseLineSlack >= sseReadSize {
		bp := readBuffers.Get().(*[]byte)
		defer readBuffers.Put(bp)
		buf = *bp
	} else {
		buf = make([]byte, max+sseLineSlack)
	}
	empty := 0
	for {
		n, err := r.Read(buf)
		if n > 0 {
			empty = 0
			if perr := p.feed(buf[:n]); perr != nil {
				return perr
			}
		}
		switch {
		case err == io.EOF:
			return p.finish()
		case err != nil:
			return err
		case n == 0:
			if empty++; empty >= maxEmptyReads {
				return io.ErrNoProgress
			}
		}
	}
}

// sseParser holds the state of ParseSSE between reads.
type sseParser struct {
	max     int
	fn      func(data []byte, more bool) error
	more    bool   // the rest of the current read holds another complete event
	line    []byte // a line split across reads, assembled here
	partial bool   // line holds the start of an unfinished line
	lastCR  bool   // the previous read ended in CR: skip a leading LF
	first   bool   // no line processed yet: strip a byte order mark
	data    []byte // data of the current event
	hasData bool   // the current event has at least one data line
}

// feed consumes one read's worth of bytes.
func (p *sseParser) feed(b []byte) error {
	if p.lastCR {
		p.lastCR = false
		if b[0] == '\n' {
			b = b[1:]
		}
	}
	for len(b) > 0 {
		i := lineEnd(b)
		if i < 0 {
			// The line continues in the next read: keep it, bounded.
			if len(p.line)+len(b) > p.max+sseLineSlack {
				return ErrTooLarge
			}
			p.line = append(p.line, b...)
			p.partial = true
			return nil
		}
		line := b[:i]
		if p.partial {
			if len(p.line)+len(line) > p.max+sseLineSlack {
				return ErrTooLarge
			}
			p.line = append(p.line, line...)
			line = p.line
		} else if len(line) > p.max+sseLineSlack {
			return ErrTooLarge
		}
		if b[i] == '\r' {
			if i+1 < len(b) {
				if b[i+1] == '\n' {
					i++
				}
			} else {
				p.lastCR = true
			}
		}
		b = b[i+1:]
		p.more = bytes.Contains(b, []byte("\n\n")) || bytes.Contains(b, []byte("\r\n\r\n"))
		if err := p.processLine(line); err != nil {
			return err
		}
		p.line = p.line[:0]
		p.partial = false
	}
	return nil
}

// finish handles EOF: an unterminated last line and a pending event are
// processed as if the stream had ended with a blank line.
func (p *sseParser) finish() error {
	if p.partial {
		p.partial = false
		if err := p.processLine(p.line); err != nil {
			return err
		}
	}
	return p.dispatch()
}

// processLine interprets one complete line.
func (p *sseParser) processLine(line []byte) error {
	if p.first {
		p.first = false
		line = bytes.TrimPrefix(line, []byte("\xef\xbb\xbf"))
	}
	if len(line) == 0 {
		return p.dispatch()
	}
	if line[0] == ':' {
		return nil // comment, often a keep-alive
	}
	field, value := line, []byte(nil)
	if i := bytes.IndexByte(line, ':'); i >= 0 {
		field, value = line[:i], line[i+1:]
		if len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
	}
	if string(field) != "data" {
		return nil // event, id, retry and unknown fields do not matter here
	}
	size := len(p.data) + len(value)
	if p.hasData {
		size++
	}
	if size > p.max {
		return ErrTooLarge
	}
	if p.hasData {
		p.data = append(p.data, '\n')
	}
	p.data = append(p.data, value...)
	p.hasData = true
	return nil
}

// dispatch delivers the current event, if it has data, and resets it.
func (p *sseParser) dispatch() error {
	if !p.hasData {
		return nil
	}
	p.hasData = false
	data := p.data
	p.data = p.data[:0]
	if len(data) == 0 {
		return nil
	}
	return p.fn(data, p.more)
}

// lineEnd is the index of the first CR or LF in b, or -1: two IndexByte scans (vectorised) beat
// one IndexAny, which builds a byte set on every call.
func lineEnd(b []byte) int {
	i := bytes.IndexByte(b, '\n')
	limit := b
	if i >= 0 {
		limit = b[:i]
	}
	if j := bytes.IndexByte(limit, '\r'); j >= 0 {
		return j
	}
	return i
}
