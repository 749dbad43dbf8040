package bench

import (
	"context"
	"log/slog"
	"sync/atomic"
)

// mutable returns a logger that writes to l (nil: discard) until mute is called. Nodes that
// shut down log warnings about peers and backends going away; once the bench stops them on
// purpose, those lines are noise.
func mutable(l *slog.Logger) (_ *slog.Logger, mute func()) {
	if l == nil {
		return slog.New(slog.DiscardHandler), func() {}
	}
	g := &gate{next: l.Handler(), closed: new(atomic.Bool)}
	return slog.New(g), func() { g.closed.Store(true) }
}

// gate is a log handler that drops everything once its switch is set; handlers derived from
// it with attributes or groups share the switch.
type gate struct {
	next   slog.Handler
	closed *atomic.Bool
}

func (g *gate) Enabled(ctx context.Context, l slog.Level) bool {
	return !g.closed.Load() && g.next.Enabled(ctx, l)
}

func (g *gate) Handle(ctx context.Context, r slog.Record) error {
	if g.closed.Load() {
		return nil
	}
	return g.next.Handle(ctx, r)
}

func (g *gate) WithAttrs(as []slog.Attr) slog.Handler {
	return &gate{next: g.next.WithAttrs(as), closed: g.closed}
}

func (g *gate) WithGroup(name string) slog.Handler {
	return &gate{next: g.next.WithGroup(name), closed: g.closed}
}
