package node

import (
	"context"
	"log/slog"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cocoon-mesh/cocoon/node/wire"
)

// A worker's adverts: what it tells proxies of its capacity, by gossip every
// Config.AdvertInterval and straight to each proxy it connects to, and the health of its
// backend that the adverts carry.

// advertEnv is what a worker publishes its adverts and checks its backend with.
type advertEnv struct {
	h     host.Host
	life  *life
	log   *slog.Logger
	cfg   *Config
	topic *pubsub.Topic
	fault *Faults // nil: honest adverts
}

// checkHealth asks the backend whether it can serve, and logs changes.
func (w *workerState) checkHealth() {
	ctx, cancel := context.WithTimeout(w.life.ctx, 3*time.Second)
	defer cancel()
	err := w.backend.Health(ctx)
	if w.life.ctx.Err() != nil {
		return // shutting down: the check was cut short, not failed
	}
	ok := err == nil
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	first := w.backendErr.Swap(&msg) == nil // nil until the first check
	if was := w.healthy.Swap(ok); was != ok || first {
		switch {
		case ok:
			w.log.Info("backend healthy")
		case first: // a backend down from the start says so too
			w.log.Warn("backend unhealthy: proxies route no request here until it answers", "err", err, "fix", "start the model server, or check --backend")
		default:
			w.log.Warn("backend unhealthy: proxies will stop routing here", "err", err)
		}
	}
}

// advert builds the worker's current capacity advert.
func (w *workerState) advert() *wire.Advert {
	now := w.life.clock.Now()
	a := &wire.Advert{
		Worker:       w.h.ID(),
		Seq:          w.seq.Add(1),
		Time:         now,
		Addrs:        w.h.Addrs(),
		MaxActive:    uint32(w.cfg.MaxActive),
		Running:      uint32(w.active.Load()),
		Coefficient:  w.cfg.Coefficient,
		TokensPerSec: w.rate.Load(),
		Healthy:      w.healthy.Load(),
	}
	w.fault.advert(a)
	if len(a.Addrs) > wire.MaxAdvertAddrs {
		a.Addrs = a.Addrs[:wire.MaxAdvertAddrs]
	}
	for _, m := range w.cfg.Models {
		a.Offers = append(a.Offers, wire.Offer{Model: m.ID, Prices: m.Prices})
	}
	return a
}

// signedAdvert returns the current advert, signed.
func (w *workerState) signedAdvert() ([]byte, error) {
	return wire.SignAdvert(w.advert(), w.h.Peerstore().PrivKey(w.h.ID()))
}

// publishAdvert gossips the current advert.
func (w *workerState) publishAdvert(ctx context.Context) {
	w.measureRate(w.life.clock.Now())
	b, err := w.signedAdvert()
	if err == nil {
		err = w.topic.Publish(ctx, b)
		w.fault.spam(ctx, w.topic)
	}
	if err != nil && ctx.Err() == nil {
		w.log.Warn("cannot publish capacity advert", "err", err)
	}
}

// sendDirectAdvert hands a newly connected proxy our advert, so it can route to us at once.
func (w *workerState) sendDirectAdvert(ctx context.Context, p peer.ID) {
	b, err := w.signedAdvert()
	if err != nil {
		w.log.Warn("cannot sign advert", "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := w.h.NewStream(ctx, p, AdvertProtocol)
	if err != nil {
		w.log.Warn("cannot send advert to proxy", "proxy", p.String(), "err", err)
		return
	}
	fw := wire.NewWriter(s)
	defer fw.Release()
	err = fw.WriteFrame(wire.FrameAdvert, b)
	if err == nil {
		err = fw.Flush()
	}
	if err != nil {
		s.Reset()
		return
	}
	s.Close()
}

// leaveWait bounds how long a closing worker waits to queue its leaving advert, and
// leaveFlush how long it then lets pubsub send it (pubsub has no flush to wait on).
const (
	leaveWait  = time.Second
	leaveFlush = 200 * time.Millisecond
)

// publishLeaving gossips an advert offering nothing, so that clients and proxies take this
// worker off their tables now, not once its adverts have stopped for WorkerTTL (and
// /v1/models stops listing a model nobody serves any more). Best effort: a crash sends none.
func (w *workerState) publishLeaving() {
	a := w.advert()
	a.Offers, a.Healthy, a.Running = nil, false, 0
	b, err := wire.SignAdvert(a, w.h.Peerstore().PrivKey(w.h.ID()))
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(w.life.ctx, leaveWait)
	defer cancel()
	if err := w.topic.Publish(ctx, b); err != nil {
		w.log.Debug("cannot tell the network this worker leaves", "err", err)
	}
	// Publish only queues it: give pubsub a moment to write it before Close cancels it.
	t := w.life.clock.Timer(leaveFlush)
	defer t.Stop()
	<-t.C
}
