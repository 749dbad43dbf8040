package stream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cocoon-mesh/cocoon/node/wire"
)

// Limits bound what a callee reads of a request.
type Limits struct {
	MaxFrame  int    // the largest frame payload: a body (sealed, or a sealed set) with its slack
	MaxBody   int    // the largest body in the clear
	MaxTokens uint32 // the largest max_tokens
}

// Late says what a callee does with the vouchers its caller sends after the request.
type Late struct {
	Pay     func(voucher []byte) // a voucher (nil: payments are off)
	Settled func(voucher []byte) // a voucher answering a bill: it pays all the caller received
}

// lateBody is a body a client sent after a route frame.
type lateBody struct {
	sealed bool
	p      []byte
}

// ReadRequest reads the header and body a caller sends first, within ReadTimeout and lim: a
// slow, oversized or out-of-order request gets a *wire.Error, not our memory. On ClientProxy a
// sealed request has no body yet (the caller sends it after our route, see Body), or, if
// presealed, the sealed set's payload stands in for the body.
func (a *Answer) ReadRequest(lim Limits) (wire.Header, []byte, error) {
	a.lim = lim
	_ = a.s.SetReadDeadline(a.life.Clock().Now().Add(ReadTimeout))
	defer a.s.SetReadDeadline(time.Time{})
	a.r = wire.NewReader(a.s, lim.MaxFrame)
	t, p, err := a.r.ReadFrame()
	if err != nil {
		return wire.Header{}, nil, readErr("header", err)
	}
	if t != wire.FrameHeader {
		return wire.Header{}, nil, wire.Errorf(wire.CodeBadRequest, "%v", a.order.Step(t))
	}
	h, err := wire.DecodeHeader(p)
	if err != nil {
		return wire.Header{}, nil, wire.Errorf(wire.CodeBadRequest, "%v", err)
	}
	if h.MaxTokens > lim.MaxTokens {
		return wire.Header{}, nil, wire.Errorf(wire.CodeTooLarge, "max_tokens %d is over this node's limit of %d", h.MaxTokens, lim.MaxTokens)
	}
	a.mu.Lock()
	_ = a.order.Header(&h) // the first frame: always in order
	want := a.order.WantBody()
	a.mu.Unlock()
	if !want {
		return h, nil, nil
	}
	t, body, err := a.r.ReadFrame()
	if err != nil {
		return wire.Header{}, nil, readErr("body", err)
	}
	a.mu.Lock()
	err = a.order.Step(t)
	a.mu.Unlock()
	if err != nil {
		return wire.Header{}, nil, wire.Errorf(wire.CodeBadRequest, "%v", err)
	}
	if t == wire.FrameBody {
		if err := a.checkBody(body); err != nil {
			return wire.Header{}, nil, err
		}
	}
	return h, body, nil
}

// checkBody holds a body in the clear to the limit.
func (a *Answer) checkBody(body []byte) error {
	if len(body) > a.lim.MaxBody {
		return wire.Errorf(wire.CodeTooLarge, "request body of %d bytes is over this node's limit of %d", len(body), a.lim.MaxBody)
	}
	return nil
}

func readErr(what string, err error) error {
	if errors.Is(err, wire.ErrFrameTooLarge) {
		return wire.Errorf(wire.CodeTooLarge, "request %s: %v", what, err)
	}
	return wire.Errorf(wire.CodeBadRequest, "request %s: %v", what, err)
}

// Watch has the caller's frames after the request read: vouchers go to late, and the caller's
// side ending cancels the request (it keeps its write side open until it has the answer, so
// any end of our read side means it went away); a refusal cancels it with a *Rejection. The
// stream stays open for reading after the answer ends, until the caller closes it or
// DrainTimeout passes: the caller's verdict, and the voucher for its last tokens, follow the
// final frame. A sealed request to a proxy is read by Body first (which spares a hand-off
// between goroutines on every request), or, presealed, once Chosen names its worker.
func (a *Answer) Watch(cancel context.CancelCauseFunc, late Late) {
	a.cancel, a.late = cancel, late
	a.mu.Lock()
	a.order.SetPaid(late.Pay != nil)
	t := a.order.Terms()
	a.mu.Unlock()
	if t.Hop == ClientProxy && t.Sealed {
		a.bodies = make(chan lateBody, 1)
		return
	}
	a.startWatch()
}

// startWatch starts the caller watcher, once.
func (a *Answer) startWatch() {
	if a.watching || a.cancel == nil {
		return
	}
	a.watching = true
	a.watched = make(chan struct{})
	ended := a.watched
	if !a.life.Go(func() {
		defer close(ended)
		a.watchCaller()
	}) { // the node is closing
		close(ended)
		a.r.Release()
		a.cancel(context.Canceled)
	}
}

// watchCaller reads the caller's frames until its side ends or a frame is out of order.
func (a *Answer) watchCaller() {
	defer a.r.Release() // the watcher is the reader's last user
	for {
		t, p, err := a.r.ReadFrame()
		if err != nil {
			a.cancel(context.Canceled)
			return
		}
		if a.take(t, p) != nil {
			return
		}
	}
}

// errBodyUnread ends the watcher when a body comes that nobody took the previous one of.
var errBodyUnread = errors.New("a second body before the first was read")

// take handles one frame the caller sent after its request. A frame out of order cancels the
// request (the caller is not the peer it should be) and ends the reading.
func (a *Answer) take(t wire.FrameType, p []byte) error {
	a.mu.Lock()
	err := a.order.Step(t)
	a.mu.Unlock()
	if err != nil {
		a.cancel(fmt.Errorf("%w: the caller sent a %v", context.Canceled, err))
		return err
	}
	switch t {
	case wire.FramePay:
		a.late.Pay(p)
	case wire.FrameSettled:
		a.late.Settled(p)
	case wire.FrameReject:
		rj, err := wire.DecodeReject(p)
		if err != nil {
			rj = wire.Reject{Err: *wire.Errorf(wire.CodeBadRequest, "malformed refusal: %v", err)}
		}
		a.refuse(rj)
	case wire.FrameBody, wire.FrameSealed:
		select {
		case a.bodies <- lateBody{sealed: t == wire.FrameSealed, p: p}:
		default:
			a.cancel(context.Canceled)
			return errBodyUnread
		}
	}
	return nil
}

// Body waits for the body a client sends after our route (sealed, or in the clear to an
// unattested worker), at most ReadTimeout. The first is read here, not by the watcher, which
// starts then.
func (a *Answer) Body(ctx context.Context) (sealed bool, body []byte, err error) {
	if !a.watching {
		_ = a.s.SetReadDeadline(a.life.Clock().Now().Add(ReadTimeout))
		t, p, err := a.r.ReadFrame()
		_ = a.s.SetReadDeadline(time.Time{})
		if err != nil {
			a.startWatch()
			a.cancel(context.Canceled)
			return false, nil, readErr("body after the route", err)
		}
		if err := a.take(t, p); err != nil {
			return false, nil, wire.Errorf(wire.CodeBadRequest, "expected a body after the route: %v", err)
		}
		a.startWatch()
	}
	select {
	case b := <-a.bodies:
		return a.lateBody(b)
	default:
	}
	t := a.life.Clock().Timer(ReadTimeout)
	defer t.Stop()
	select {
	case b := <-a.bodies:
		return a.lateBody(b)
	case <-ctx.Done():
		return false, nil, context.Cause(ctx)
	case <-t.C:
		return false, nil, wire.Errorf(wire.CodeTimeout, "the client sent no body after the route")
	}
}

func (a *Answer) lateBody(b lateBody) (bool, []byte, error) {
	if !b.sealed {
		if err := a.checkBody(b.p); err != nil {
			return false, nil, err
		}
	}
	return b.sealed, b.p, nil
}

// refuse records the caller's refusal, tells the OnRefusal hooks and cancels the request.
func (a *Answer) refuse(rj wire.Reject) {
	a.mu.Lock()
	if a.refusal != nil {
		a.mu.Unlock()
		return
	}
	a.refusal = &rj
	hooks := a.onRefus[:len(a.onRefus):len(a.onRefus)] // OnRefusal may append meanwhile
	close(a.refused)
	a.mu.Unlock()
	for _, f := range hooks {
		f(rj)
	}
	a.cancel(&Rejection{rj})
}

// OnRefusal has f called once if the caller refuses the answer (at once, if it did already):
// billing takes back what it counted beyond what the caller accepted.
func (a *Answer) OnRefusal(f func(wire.Reject)) {
	a.mu.Lock()
	a.onRefus = append(a.onRefus, f)
	rj := a.refusal
	a.mu.Unlock()
	if rj != nil {
		f(*rj)
	}
}

// Verdict waits, at most wait, for the caller to take the ended answer (it closes its side)
// or refuse it; nil means taken (or no word in time, which is no refusal).
func (a *Answer) Verdict(wait time.Duration) *wire.Reject {
	if a.watched == nil {
		return nil
	}
	t := a.life.Clock().Timer(wait)
	defer t.Stop()
	select {
	case <-a.watched:
	case <-a.refused:
	case <-t.C:
	case <-a.life.Done():
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.refusal
}
