package stream

import (
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cocoon-mesh/cocoon/node/wire"
)

// Kind says what an Event is.
type Kind uint8

// The events of an answer, one per frame type a callee sends.
const (
	Progress Kind = iota + 1 // a heartbeat: the callee still works
	Route                    // the proxy chose a worker; seal the body to it (Event.Route)
	Chosen                   // the proxy chose a worker the body was sealed to ahead (Event.Chosen)
	Quote                    // the prices the answer is billed at (Event.Quote)
	Bill                     // the payee waits for a voucher (Event.Owed)
	Chunk                    // a piece of the answer (Event.Chunk)
	Final                    // the answer is complete (Event.Final)
	Error                    // the request failed (Event.Err)
)

var kindNames = [...]string{Progress: "progress", Route: "route", Chosen: "chosen", Quote: "quote",
	Bill: "bill", Chunk: "chunk", Final: "final", Error: "error"}

// String names the kind for logs.
func (k Kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Event is one frame of an answer, checked against the hop's order and decoded. Only the field
// of its Kind (and Raw) holds this frame; the others are left from earlier ones. Its slices
// alias the frame as read, valid until the next Call.Next: a hop passes each frame on at once.
type Event struct {
	Kind   Kind
	Raw    []byte      // the payload as it came: a proxy forwards a chunk without re-encoding it
	Route  wire.Route  // Route
	Chosen peer.ID     // Chosen
	Quote  wire.Quote  // Quote
	Owed   uint64      // Bill
	Chunk  wire.Chunk  // Chunk
	Final  wire.Final  // Final
	Err    *wire.Error // Error
}

// BadFrame is a frame a peer sent that its hop does not allow where it came (out of order), or
// that does not decode. Refusing it changed nothing.
type BadFrame struct {
	Frame wire.FrameType
	Why   string
	Err   error // the decoding error (nil: out of order)
}

// Error says which frame came and what is wrong with it.
func (e *BadFrame) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("a malformed %s frame: %v", e.Frame, e.Err)
	}
	return fmt.Sprintf("%s frame out of order: %s", e.Frame, e.Why)
}

// Unwrap returns the decoding error.
func (e *BadFrame) Unwrap() error { return e.Err }

func outOfOrder(t wire.FrameType, format string, args ...any) error {
	return &BadFrame{Frame: t, Why: fmt.Sprintf(format, args...)}
}

// decode fills ev from frame t's payload p; the order allowed t already.
func (ev *Event) decode(t wire.FrameType, p []byte) error {
	ev.Raw = p
	var err error
	switch t {
	case wire.FrameProgress:
		ev.Kind = Progress
	case wire.FrameRoute:
		ev.Kind = Route
		ev.Route, err = wire.DecodeRoute(p)
	case wire.FrameChosen:
		ev.Kind = Chosen
		ev.Chosen, err = peer.IDFromBytes(p)
	case wire.FrameQuote:
		ev.Kind = Quote
		ev.Quote, err = wire.DecodeQuote(p)
	case wire.FrameBill:
		ev.Kind = Bill
		ev.Owed, err = wire.DecodeBill(p)
	case wire.FrameChunk:
		ev.Kind = Chunk
		ev.Chunk, err = wire.DecodeChunk(p)
	case wire.FrameFinal:
		ev.Kind = Final
		ev.Final, err = wire.DecodeFinal(p)
	case wire.FrameError:
		ev.Kind = Error
		ev.Err, err = wire.DecodeError(p)
	default:
		panic("stream: decoding a frame the order refuses: " + t.String())
	}
	if err != nil {
		return &BadFrame{Frame: t, Err: err}
	}
	return nil
}
