package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cocoon-mesh/cocoon/node/wire"
	"github.com/cocoon-mesh/cocoon/routing"
)

// capacityTopic is the gossipsub topic of a network's capacity adverts.
func capacityTopic(network string) string { return "/cocoon/" + network + "/capacity/1.0.0" }

// scoreParams penalise peers that forward invalid adverts hard (a forged or malformed advert
// is never an accident) and reward first deliveries a little, so honest relays stay in the mesh.
// Colocation is not penalised: many honest nodes share an address on one machine or NAT.
func scoreParams(topic string) (*pubsub.PeerScoreParams, *pubsub.PeerScoreThresholds) {
	return &pubsub.PeerScoreParams{
			SkipAtomicValidation: true,
			Topics: map[string]*pubsub.TopicScoreParams{topic: {
				SkipAtomicValidation:           true,
				TopicWeight:                    1,
				TimeInMeshQuantum:              time.Second, // pubsub divides by it even when unweighted
				TimeInMeshWeight:               0.01,
				TimeInMeshCap:                  600,
				FirstMessageDeliveriesWeight:   1,
				FirstMessageDeliveriesDecay:    pubsub.ScoreParameterDecay(10 * time.Minute),
				FirstMessageDeliveriesCap:      20,
				InvalidMessageDeliveriesWeight: -100,
				InvalidMessageDeliveriesDecay:  pubsub.ScoreParameterDecay(time.Hour),
			}},
			TopicScoreCap:          50,
			BehaviourPenaltyWeight: -10,
			BehaviourPenaltyDecay:  pubsub.ScoreParameterDecay(10 * time.Minute),
			DecayInterval:          time.Second,
			DecayToZero:            0.01,
			RetainScore:            10 * time.Minute,
		}, &pubsub.PeerScoreThresholds{
			GossipThreshold:             -100,
			PublishThreshold:            -500,
			GraylistThreshold:           -1000,
			AcceptPXThreshold:           10,
			OpportunisticGraftThreshold: 5,
		}
}

// startGossip starts gossipsub and joins the capacity topic with its validator.
func (n *Node) startGossip() error {
	topic := capacityTopic(n.cfg.Network)
	sp, st := scoreParams(topic)
	ps, err := pubsub.NewGossipSub(n.ctx, n.h,
		pubsub.WithFloodPublish(true), // else an advert published before the first heartbeat is lost
		pubsub.WithMessageSigning(true),
		pubsub.WithStrictSignatureVerification(true),
		pubsub.WithPeerScore(sp, st),
		pubsub.WithMaxMessageSize(4*wire.MaxAdvertSize),
	)
	if err != nil {
		return fmt.Errorf("node: start gossipsub: %w", err)
	}
	if err := ps.RegisterTopicValidator(topic, n.validateAdvert); err != nil {
		return fmt.Errorf("node: register advert validator: %w", err)
	}
	n.ps = ps
	n.topic, err = ps.Join(topic)
	if err != nil {
		return fmt.Errorf("node: join %s: %w", topic, err)
	}
	return nil
}

// validateAdvert is the capacity topic's validator. Malformed, oversized, forged or
// misattributed adverts are rejected (the forwarding peer is penalised); stale ones are
// ignored, since delay is no proof of malice. Adverts of workers this node does not know are
// taken in at Config.AdmitRate; beyond it they are ignored too, and so not forwarded: a flood
// of fresh identities goes no further than that rate. It carries no penalty, as a forwarder
// that knows a thousand workers this node has not heard of yet sends a flood too.
func (n *Node) validateAdvert(_ context.Context, from peer.ID, m *pubsub.Message) pubsub.ValidationResult {
	known := n.knownWorker(m.GetFrom())
	if !known && !n.mayAdmit() {
		return pubsub.ValidationIgnore
	}
	a, err := n.checkAdvert(m.GetData(), m.GetFrom())
	switch {
	case err == nil:
	case errors.Is(err, wire.ErrStale) || errors.Is(err, wire.ErrFuture):
		n.log.Debug("advert ignored", "from", from.String(), "err", err)
		return pubsub.ValidationIgnore
	default:
		if count, ok := n.admit.note(rejectedAdvert, n.now()); ok {
			n.log.Warn("advert rejected", "from", from.String(), "err", err, "count", count)
		}
		return pubsub.ValidationReject
	}
	if !known && !n.admitNew(a) {
		return pubsub.ValidationIgnore
	}
	m.ValidatorData = a
	return pubsub.ValidationAccept
}

// checkAdvert decodes an advert, verifies its signature, that it was published by the worker
// it describes, and that it is fresh.
func (n *Node) checkAdvert(data []byte, publisher peer.ID) (*wire.Advert, error) {
	a, err := wire.DecodeAdvert(data)
	if err != nil {
		return nil, err
	}
	if a.Worker != publisher {
		return nil, fmt.Errorf("advert for %s published by %s", a.Worker.String(), publisher.String())
	}
	if err := a.CheckFresh(n.now(), n.cfg.AdvertMaxAge, n.cfg.AdvertMaxSkew); err != nil {
		return nil, err
	}
	return a, nil
}

// readAdverts feeds every accepted advert into the worker table until the node closes.
func (n *Node) readAdverts(ctx context.Context) {
	sub, err := n.topic.Subscribe()
	if err != nil {
		n.log.Error("cannot subscribe to capacity adverts", "err", err)
		return
	}
	defer sub.Cancel()
	for {
		m, err := sub.Next(ctx)
		if err != nil {
			return
		}
		if a, ok := m.ValidatorData.(*wire.Advert); ok {
			n.observeAdvert(a)
		}
	}
}

// observeAdvert puts a worker's advert into the table; a proxy admits an unknown worker
// first (see admitWorker).
func (n *Node) observeAdvert(a *wire.Advert) {
	if a.Worker == n.h.ID() {
		return
	}
	if n.cfg.Role == RoleProxy && !n.admitWorker(a) {
		return
	}
	n.upsertWorker(a)
}

// upsertWorker adds a worker to the table, or refreshes it; a new one only while the table
// has room (Config.MaxWorkers).
func (n *Node) upsertWorker(a *wire.Advert) {
	info := routing.WorkerInfo{ID: a.Worker, MaxActive: int(a.MaxActive), Healthy: a.Healthy}
	for _, o := range a.Offers {
		info.Offers = append(info.Offers, routing.Offer{Model: o.Model, Price: a.EffectivePrice(o), Prices: o.Prices, Coefficient: a.Coefficient})
	}
	n.tableMu.Lock()
	known := n.table.Has(a.Worker)
	room := known || n.table.Len() < n.cfg.MaxWorkers
	if room {
		n.table.Upsert(n.now(), info)
	}
	n.tableMu.Unlock()
	if !room {
		n.refuse(refusedTable)
		return
	}
	if !known && n.cfg.Role == RoleProxy {
		n.h.ConnManager().Protect(a.Worker, workerTag)
		// Its payment channel opens with the first request routed to it: a worker that never
		// gets one locks none of our deposit.
		n.log.Info("worker joined", "worker", a.Worker.String(), "models", len(a.Offers), "max_active", a.MaxActive, "healthy", a.Healthy)
		if n.payments != nil {
			n.life.Go(func() { n.checkTakesPayments(n.ctx, a.Worker) })
		}
	}
}

// admitWorker reports whether a proxy may put the advertising worker in its table: its
// attestation verified (or it offers none, where unattested workers are allowed). A worker
// without one is queued for the handshake (at most once), and its latest advert is admitted
// once that succeeds (admitOne). One that is connected to us (its direct advert) is attested
// over that connection; one heard of through gossip was queued by validateAdvert, within
// Config.AdmitRate.
func (n *Node) admitWorker(a *wire.Advert) bool {
	if n.mismatch.has(a.Worker, n.now()) {
		return false // dropped with a log line when found out
	}
	switch pa := n.cachedAttestation(a.Worker); {
	case pa == nil:
	case pa.unreached:
		return false // tried a moment ago; its next advert tries again
	case pa.trusted(n.cfg.AllowUnattested):
		return true
	default:
		n.dropWorker(a.Worker, "attestation refused: "+pa.err.Error())
		return false
	}
	kind := admitDial
	if n.connected(a.Worker) {
		kind = admitOverConn
	}
	if ok, why := n.admit.offer(a, kind, n.now()); !ok {
		n.refuse(why)
	}
	return false
}

// dropWorker removes a worker from the table and says why.
func (n *Node) dropWorker(id peer.ID, why string) {
	n.tableMu.Lock()
	had := n.table.Remove(id)
	n.tableMu.Unlock()
	if had {
		n.forgotWorker(id, why)
	}
}

// expireWorkers drops workers whose adverts stopped arriving.
func (n *Node) expireWorkers() {
	n.tableMu.Lock()
	gone := n.table.Expire(n.now())
	n.tableMu.Unlock()
	for _, id := range gone {
		n.forgotWorker(id, fmt.Sprintf("no advert for %s", n.cfg.WorkerTTL))
	}
}

// forgotWorker releases a proxy's hold on a worker the table no longer has, and logs why.
func (n *Node) forgotWorker(id peer.ID, why string) {
	if n.cfg.Role == RoleProxy {
		n.h.ConnManager().Unprotect(id, workerTag)
		n.log.Warn("worker dropped", "worker", id.String(), "reason", why)
	}
}

// workerTag protects a proxy's connections to its workers from the connection manager.
const workerTag = "cocoon-worker"
