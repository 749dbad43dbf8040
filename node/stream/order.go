package stream

import (
	"fmt"

	"github.com/cocoon-mesh/cocoon/node/wire"
)

// Hop names the two hops an inference stream runs on. The frames are the same on both; a
// proxy's answer to its client may also name the worker (route, chosen), a worker's may not.
type Hop uint8

// The hops.
const (
	ClientProxy Hop = 1 // a client calls a proxy
	ProxyWorker Hop = 2 // a proxy calls a worker
)

// String names the hop for errors.
func (h Hop) String() string {
	switch h {
	case ClientProxy:
		return "client->proxy"
	case ProxyWorker:
		return "proxy->worker"
	}
	return fmt.Sprintf("hop(%d)", uint8(h))
}

// Terms are what the order of one stream's frames depends on: its hop, the header's sealing
// flags and whether the answer is paid for.
type Terms struct {
	Hop Hop
	// Sealed: the body goes sealed to the worker. From a client, a route (or, presealed, a
	// chosen) frame names the worker before anything of the answer comes.
	Sealed bool
	// Presealed: a sealed set came with the header (ClientProxy only).
	Presealed bool
	// Paid: payments are on, so the callee quotes before it answers and bills when it waits,
	// and the caller sends vouchers.
	Paid bool
}

// AnswerOrder is the order of the frames a callee sends its caller, as the caller checks it:
//
//	answer  = { progress } [ route-part ] { progress | quote | bill } body-part
//	route-part (ClientProxy, sealed) = route | chosen, again (with a new quote) on each failover
//	body-part = { chunk | progress | bill } ( final | error )
//
// More precisely, each frame is allowed when:
//   - progress: any time before the end;
//   - error: any time before the end, and ends the answer;
//   - route: ClientProxy, sealed, before the first chunk;
//   - chosen: ClientProxy, presealed, before the first chunk;
//   - quote: paid, before the first chunk and, sealed on ClientProxy, after a route or chosen;
//     on ClientProxy a later quote replaces an earlier one (the proxy failed over), on
//     ProxyWorker there is one;
//   - bill: paid, after a quote, before the end;
//   - chunk and final: after the route or chosen (sealed, ClientProxy), after a quote (paid);
//     final ends the answer.
//
// It is pure: Step changes it only when the frame is allowed.
type AnswerOrder struct {
	terms Terms
	st    answerState
}

type answerState struct {
	quoted, routed, chunked, ended bool
}

// NewAnswerOrder starts checking an answer under t.
func NewAnswerOrder(t Terms) AnswerOrder { return AnswerOrder{terms: t} }

// Started reports whether a chunk came: from here on nothing names another worker.
func (o *AnswerOrder) Started() bool { return o.st.chunked }

// Ended reports whether the final or error frame came.
func (o *AnswerOrder) Ended() bool { return o.st.ended }

// Step takes the callee's next frame; a frame out of order is a *BadFrame and changes nothing.
func (o *AnswerOrder) Step(t wire.FrameType) error {
	next, err := o.next(t)
	if err == nil {
		o.st = next
	}
	return err
}

// next is the state after frame t, or why t is not allowed.
func (o *AnswerOrder) next(t wire.FrameType) (answerState, error) {
	s, tm := o.st, o.terms
	routing := tm.Hop == ClientProxy && tm.Sealed // a route or chosen comes first
	if s.ended {
		return s, outOfOrder(t, "the answer ended")
	}
	switch t {
	case wire.FrameProgress:
	case wire.FrameError:
		s.ended = true
	case wire.FrameRoute, wire.FrameChosen:
		switch {
		case !routing:
			return s, outOfOrder(t, "only a proxy names the worker of a sealed request")
		case t == wire.FrameChosen && !tm.Presealed:
			return s, outOfOrder(t, "the request was not sealed ahead")
		case s.chunked:
			return s, outOfOrder(t, "the answer started")
		}
		s.routed = true
	case wire.FrameQuote:
		switch {
		case !tm.Paid:
			return s, outOfOrder(t, "payments are off")
		case s.chunked:
			return s, outOfOrder(t, "the answer started")
		case routing && !s.routed:
			return s, outOfOrder(t, "no route named the worker yet")
		case s.quoted && tm.Hop == ProxyWorker:
			return s, outOfOrder(t, "the answer was quoted already")
		}
		s.quoted = true
	case wire.FrameBill:
		if !s.quoted {
			return s, outOfOrder(t, "nothing was quoted")
		}
	case wire.FrameChunk, wire.FrameFinal:
		switch {
		case routing && !s.routed:
			return s, outOfOrder(t, "no route named the worker yet")
		case tm.Paid && !s.quoted:
			return s, outOfOrder(t, "answered without a quote")
		}
		s.chunked = s.chunked || t == wire.FrameChunk
		s.ended = t == wire.FrameFinal
	default:
		return s, outOfOrder(t, "not a frame of an answer")
	}
	return s, nil
}

// CallOrder is the order of the frames a caller sends its callee, as the callee checks it:
//
//	call = header request-body { pay | settled | reject | late-body }
//	request-body = body | sealed     (ProxyWorker; ClientProxy unsealed: body)
//	             | sealed set        (ClientProxy, presealed)
//	             | nothing           (ClientProxy, sealed: the body follows the proxy's route)
//
// After the request, each frame is allowed when:
//   - pay, settled: paid (the callee set it once it knew its payer);
//   - reject: once (vouchers for what it accepted may follow);
//   - a body or sealed body: ClientProxy, sealed, not refused, one per route frame the callee
//     sent (Routed) that no body answered yet.
//
// It is pure: Step changes it only when the frame is allowed.
type CallOrder struct {
	terms Terms
	st    callState
}

type callState struct {
	stage          callStage
	routes, bodies int // route frames sent, bodies that answered them
	rejected       bool
}

type callStage uint8

const (
	wantHeader callStage = iota
	wantBody             // the request's body frame
	late                 // the request is in: payments, refusal, bodies after routes
)

// NewCallOrder starts checking a call on hop.
func NewCallOrder(hop Hop) CallOrder { return CallOrder{terms: Terms{Hop: hop}} }

// Terms returns what the header (and SetPaid) set.
func (o *CallOrder) Terms() Terms { return o.terms }

// Header takes the request's header frame, decoded.
func (o *CallOrder) Header(h *wire.Header) error {
	if o.st.stage != wantHeader {
		return outOfOrder(wire.FrameHeader, "the request has its header")
	}
	o.terms.Sealed, o.terms.Presealed = h.Sealed, h.Presealed && o.terms.Hop == ClientProxy
	o.st.stage = wantBody
	if o.terms.Hop == ClientProxy && h.Sealed && !h.Presealed {
		o.st.stage = late // the body follows the route
	}
	return nil
}

// WantBody reports whether the request's body frame is still to come (after the header).
func (o *CallOrder) WantBody() bool { return o.st.stage == wantBody }

// BodyFrame is the frame type the request's body comes in.
func (o *CallOrder) BodyFrame() wire.FrameType {
	switch {
	case o.terms.Presealed:
		return wire.FrameSealedSet
	case o.terms.Sealed && o.terms.Hop == ProxyWorker:
		return wire.FrameSealed
	}
	return wire.FrameBody
}

// SetPaid says whether the callee is paid on this stream: vouchers are allowed only then.
func (o *CallOrder) SetPaid(paid bool) { o.terms.Paid = paid }

// Routed records a route frame the callee sent: one more body may come.
func (o *CallOrder) Routed() { o.st.routes++ }

// Step takes the caller's next frame after the header; a frame out of order is a
// *BadFrame and changes nothing.
func (o *CallOrder) Step(t wire.FrameType) error {
	next, err := o.next(t)
	if err == nil {
		o.st = next
	}
	return err
}

func (o *CallOrder) next(t wire.FrameType) (callState, error) {
	s, tm := o.st, o.terms
	switch s.stage {
	case wantHeader:
		return s, outOfOrder(t, "expected a header frame first")
	case wantBody:
		if want := o.BodyFrame(); t != want {
			return s, outOfOrder(t, "expected a %s frame after the header", want)
		}
		s.stage = late
		return s, nil
	}
	switch t {
	case wire.FramePay, wire.FrameSettled:
		if !tm.Paid {
			return s, outOfOrder(t, "payments are off")
		}
	case wire.FrameReject:
		if s.rejected {
			return s, outOfOrder(t, "the answer was refused already")
		}
		s.rejected = true
	case wire.FrameBody, wire.FrameSealed:
		switch {
		case tm.Hop != ClientProxy || !tm.Sealed:
			return s, outOfOrder(t, "the request had its body")
		case s.rejected:
			return s, outOfOrder(t, "the answer was refused")
		case s.bodies >= s.routes:
			return s, outOfOrder(t, "no route waits for a body")
		}
		s.bodies++
	default:
		return s, outOfOrder(t, "not a frame a caller sends after its request")
	}
	return s, nil
}
