package httpguard

import (
	"net/http"
	"time"
)

// deadlineWriter moves the connection's write deadline on before each write, so one slow
// reader is dropped after WriteTimeout without bounding how long a streamed answer lasts.
type deadlineWriter struct {
	http.ResponseWriter
	rc *http.ResponseController
	d  time.Duration
}

func (w *deadlineWriter) extend() { _ = w.rc.SetWriteDeadline(time.Now().Add(w.d)) }

// WriteHeader sends the status line and headers.
func (w *deadlineWriter) WriteHeader(code int) { w.extend(); w.ResponseWriter.WriteHeader(code) }

// Write writes part of the body.
func (w *deadlineWriter) Write(b []byte) (int, error) {
	w.extend()
	return w.ResponseWriter.Write(b)
}

// Flush sends what is buffered.
func (w *deadlineWriter) Flush() { w.extend(); _ = w.rc.Flush() }

// Unwrap lets http.ResponseController reach the server's writer.
func (w *deadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// finish gives the server's last write of the answer, after the handler, its deadline.
func (w *deadlineWriter) finish() { w.extend() }

// bound sets the request's deadlines: its body must arrive within BodyTimeout, and each write
// of the answer must finish within WriteTimeout. Once the body has arrived whole, the server
// lifts the read deadline itself (to notice a client hanging up while the answer streams).
func (g *Guard) bound(w http.ResponseWriter, r *http.Request) *deadlineWriter {
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{}) // none while the answer is awaited: only writes are bounded
	if r.Body != nil && r.Body != http.NoBody {
		_ = rc.SetReadDeadline(time.Now().Add(g.cfg.BodyTimeout))
	}
	return &deadlineWriter{ResponseWriter: w, rc: rc, d: g.cfg.WriteTimeout}
}
