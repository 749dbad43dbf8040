package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cocoon-mesh/cocoon/node/wire"
	"github.com/cocoon-mesh/cocoon/reputation"
	"github.com/cocoon-mesh/cocoon/routing"
)

// capacityTopic is the gossipsub topic of a network's capacity adverts.
func capacityTopic(network string) string { return "/cocoon/" + network + "/capacity/1.0.0" }

// scoreParams penalise peers that forward invalid adverts hard (a forged or malformed advert
// is never an accident) and reward first deliveries a little, so honest relays stay in the mesh.
// Colocation is not penalised: many honest nodes share an address on one machine or NAT.
//
// A proxy's reputation of a peer feeds the application-specific score (appScore): a worker
// banned by evidence is graylisted, one below the routing floor penalised.
func scoreParams(topic, reports string, appScore func(peer.ID) float64) (*pubsub.PeerScoreParams, *pubsub.PeerScoreThresholds) {
	return &pubsub.PeerScoreParams{
			SkipAtomicValidation:   true,
			AppSpecificScore:       appScore,
			AppSpecificWeight:      1,
			Topics:                 map[string]*pubsub.TopicScoreParams{topic: topicScore(), reports: topicScore()},
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

// topicScore is each topic's part of the peer score.
func topicScore() *pubsub.TopicScoreParams {
	return &pubsub.TopicScoreParams{
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
	}
}

// appScore is gossipsub's application-specific score of p: at a proxy, -1000 (the graylist)
// for a peer banned by evidence or the operator, -50 below the routing floor, else 0.
func (ro *roster) appScore(p peer.ID) float64 {
	if ro.cfg.Role != RoleProxy || ro.cfg.Reputation.Off {
		return 0
	}
	ro.mu.Lock()
	s := ro.rep.Score(ro.now(), p)
	ro.mu.Unlock()
	switch {
	case s == 0:
		return -1000
	case s < ro.cfg.Reputation.MinTrust:
		return -50
	}
	return 0
}

// roster is the node's view of the workers: the worker table (a proxy routes with it, a
// client lists models from it), fed by capacity adverts, and at a proxy the admission of
// workers it does not know yet. It is the table's one owner: every call on the table happens
// under mu, and nothing blocks there.
type roster struct {
	h        host.Host
	life     *life
	log      *slog.Logger
	cfg      *Config
	attest   *attester
	mismatch *mismatches
	refused  *refusedPeers // workers refused, and why
	metrics  *metrics      // counts the adverts judged (nil in unit tests)
	topic    *pubsub.Topic
	// joined is called (in a goroutine of the node's) for a worker a proxy takes in.
	joined func(ctx context.Context, worker peer.ID)
	// complain gossips a complaint about a worker that fell below the routing floor (nil:
	// none); it must not block.
	complain func(worker peer.ID, kind reputation.Kind)

	mu    sync.Mutex
	table *routing.Table
	admit *admissions // workers being taken in from adverts
	// rep is what a proxy saw of each worker, weighed by Pick; it outlives the table's
	// entries, so a worker that leaves and comes back keeps its record.
	rep *reputation.Book
	// claims is what each worker in the table last advertised of its capacity.
	claims map[peer.ID]capacityClaim
}

func (ro *roster) now() time.Time { return ro.life.clock.Now() }

// servedLately reports whether a worker in the table offers model, or did until lately.
func (ro *roster) servedLately(model string) bool {
	ro.mu.Lock()
	defer ro.mu.Unlock()
	return ro.table.ServedLately(ro.now(), model)
}

// has reports whether the table holds worker p.
func (ro *roster) has(p peer.ID) bool {
	ro.mu.Lock()
	defer ro.mu.Unlock()
	return ro.table.Has(p)
}

// startGossip starts gossipsub and joins the capacity topic with its validator.
func (n *Node) startGossip() error {
	topic := capacityTopic(n.cfg.Network)
	sp, st := scoreParams(topic, reputationTopic(n.cfg.Network), n.workers.appScore)
	opts := []pubsub.Option{
		pubsub.WithFloodPublish(true), // else an advert published before the first heartbeat is lost
		pubsub.WithMessageSigning(true),
		pubsub.WithStrictSignatureVerification(true),
		pubsub.WithPeerScore(sp, st),
		pubsub.WithMaxMessageSize(4 * wire.MaxAdvertSize),
	}
	if n.tracer != nil && n.tracer.Gossip != nil {
		opts = append(opts, pubsub.WithRawTracer(n.tracer.Gossip))
	}
	ps, err := pubsub.NewGossipSub(n.ctx, n.h, opts...)
	if err != nil {
		return fmt.Errorf("node: start gossipsub: %w", err)
	}
	if !n.faults.spams() {
		if err := ps.RegisterTopicValidator(topic, n.workers.validate); err != nil {
			return fmt.Errorf("node: register advert validator: %w", err)
		}
	}
	n.ps = ps
	n.topic, err = ps.Join(topic)
	if err != nil {
		return fmt.Errorf("node: join %s: %w", topic, err)
	}
	n.workers.topic = n.topic
	return nil
}

// validate is the capacity topic's validator. Malformed, oversized, forged or
// misattributed adverts are rejected (the forwarding peer is penalised); stale ones are
// ignored, since delay is no proof of malice. Adverts of workers this node does not know are
// taken in at Config.AdmitRate; beyond it they are ignored too, and so not forwarded: a flood
// of fresh identities goes no further than that rate. It carries no penalty, as a forwarder
// that knows a thousand workers this node has not heard of yet sends a flood too.
func (ro *roster) validate(ctx context.Context, from peer.ID, m *pubsub.Message) pubsub.ValidationResult {
	r := ro.judge(ctx, from, m)
	if ro.metrics != nil {
		ro.metrics.adverts.WithLabelValues(validationNames[r]).Inc()
	}
	return r
}

var validationNames = map[pubsub.ValidationResult]string{pubsub.ValidationAccept: "accept", pubsub.ValidationReject: "reject", pubsub.ValidationIgnore: "ignore"}

// judge is validate's verdict on one advert.
func (ro *roster) judge(_ context.Context, from peer.ID, m *pubsub.Message) pubsub.ValidationResult {
	known := ro.known(m.GetFrom())
	if !known && !ro.mayAdmit() {
		return pubsub.ValidationIgnore
	}
	a, err := ro.check(m.GetData(), m.GetFrom())
	switch {
	case err == nil:
	case errors.Is(err, wire.ErrStale) || errors.Is(err, wire.ErrFuture):
		ro.log.Debug("advert ignored", "from", from.String(), "err", err)
		return pubsub.ValidationIgnore
	default:
		if count, ok := ro.admit.note(rejectedAdvert, ro.now()); ok {
			ro.log.Warn("advert rejected", "from", from.String(), "err", err, "count", count)
		}
		return pubsub.ValidationReject
	}
	if !known && !ro.admitNew(a) {
		return pubsub.ValidationIgnore
	}
	m.ValidatorData = a
	return pubsub.ValidationAccept
}

// check decodes an advert, verifies its signature, that it was published by the worker
// it describes, and that it is fresh.
func (ro *roster) check(data []byte, publisher peer.ID) (*wire.Advert, error) {
	a, err := wire.DecodeAdvert(data)
	if err != nil {
		return nil, err
	}
	if a.Worker != publisher {
		return nil, fmt.Errorf("advert for %s published by %s", a.Worker.String(), publisher.String())
	}
	if err := a.CheckFresh(ro.now(), ro.cfg.AdvertMaxAge, ro.cfg.AdvertMaxSkew); err != nil {
		return nil, err
	}
	return a, nil
}

// read feeds every accepted advert into the worker table until the node closes.
func (ro *roster) read(ctx context.Context) {
	readTopic(ctx, ro.topic, ro.log, "capacity adverts", func(m *pubsub.Message) {
		if a, ok := m.ValidatorData.(*wire.Advert); ok {
			ro.observe(a)
		}
	})
}

// readTopic hands each message of topic that its validator accepted to each, until ctx ends.
func readTopic(ctx context.Context, topic *pubsub.Topic, log *slog.Logger, what string, each func(*pubsub.Message)) {
	sub, err := topic.Subscribe()
	if err != nil {
		if ctx.Err() == nil { // not a node closing as it starts (a fatal start-up error)
			log.Error("cannot subscribe to "+what, "err", err)
		}
		return
	}
	defer sub.Cancel()
	for {
		m, err := sub.Next(ctx)
		if err != nil {
			return
		}
		each(m)
	}
}

// observe puts a worker's advert into the table; a proxy admits an unknown worker
// first (see vet).
func (ro *roster) observe(a *wire.Advert) {
	if a.Worker == ro.h.ID() {
		return
	}
	if len(a.Offers) == 0 { // only the worker can sign it: it is leaving (publishLeaving)
		ro.drop(a.Worker, workerLeft)
		return
	}
	if ro.cfg.Role == RoleProxy && !ro.vet(a) {
		return
	}
	ro.upsert(a)
}

// upsert adds a worker to the table, or refreshes it; a new one only while the table
// has room (Config.MaxWorkers).
func (ro *roster) upsert(a *wire.Advert) {
	info := routing.WorkerInfo{ID: a.Worker, MaxActive: int(a.MaxActive), Healthy: a.Healthy}
	for _, o := range a.Offers {
		info.Offers = append(info.Offers, routing.Offer{Model: o.Model, Price: a.EffectivePrice(o), Prices: o.Prices, Coefficient: a.Coefficient})
	}
	ro.mu.Lock()
	known := ro.table.Has(a.Worker)
	room := known || ro.table.Len() < ro.cfg.MaxWorkers
	if room {
		ro.table.Upsert(ro.now(), info)
		ro.claims[a.Worker] = capacityClaim{max: a.MaxActive, running: a.Running}
	}
	ro.mu.Unlock()
	if !room {
		ro.refuse(refusedTable)
		return
	}
	if !known && ro.cfg.Role == RoleProxy {
		ro.h.ConnManager().Protect(a.Worker, workerTag)
		// Its payment channel opens with the first request routed to it: a worker that never
		// gets one locks none of our deposit.
		ro.log.Info("worker joined", "worker", a.Worker.String(), "models", len(a.Offers), "max_active", a.MaxActive, "healthy", a.Healthy)
		if ro.joined != nil {
			ro.life.Go(func() { ro.joined(ro.life.ctx, a.Worker) })
		}
	}
}

// vet reports whether a proxy may put the advertising worker in its table: its
// attestation verified (or it offers none, where unattested workers are allowed). A worker
// without one is queued for the handshake (at most once), and its latest advert is admitted
// once that succeeds (admitOne). One that is connected to us (its direct advert) is attested
// over that connection; one heard of through gossip was queued by validate, within
// Config.AdmitRate.
func (ro *roster) vet(a *wire.Advert) bool {
	if ro.mismatch.has(a.Worker, ro.now()) {
		return false // dropped with a log line when found out
	}
	switch pa := ro.attest.cached(a.Worker); {
	case pa == nil:
	case pa.unreached:
		return false // tried a moment ago; its next advert tries again
	case pa.trusted(ro.cfg.AllowUnattested):
		return ro.bind(a.Worker, &pa.att.Claims)
	default:
		ro.drop(a.Worker, "attestation refused: "+pa.err.Error())
		ro.refuseWorker(a.Worker, pa.err)
		return false
	}
	kind := admitDial
	if ro.connected(a.Worker) {
		kind = admitOverConn
	}
	if ok, why := ro.admit.offer(a, kind, ro.now()); !ok {
		ro.refuse(why)
	}
	return false
}

// drop removes a worker from the table and says why.
func (ro *roster) drop(id peer.ID, why string) {
	ro.mu.Lock()
	had := ro.table.Remove(id)
	delete(ro.claims, id)
	ro.rep.Unbind(id)
	ro.mu.Unlock()
	if had {
		ro.forgot(id, why)
	}
}

// expire drops workers whose adverts stopped arriving.
func (ro *roster) expire() {
	ro.mu.Lock()
	gone := ro.table.Expire(ro.now())
	for _, id := range gone {
		delete(ro.claims, id)
		ro.rep.Unbind(id)
	}
	ro.mu.Unlock()
	for _, id := range gone {
		ro.forgot(id, fmt.Sprintf("no advert for %s", ro.cfg.WorkerTTL))
	}
}

// forgot releases a proxy's hold on a worker the table no longer has, and logs why.
func (ro *roster) forgot(id peer.ID, why string) {
	if ro.cfg.Role != RoleProxy {
		return
	}
	ro.h.ConnManager().Unprotect(id, workerTag)
	if why == workerLeft { // a clean stop, not a fault
		ro.log.Info("worker left", "worker", id.String())
		return
	}
	ro.log.Warn("worker dropped", "worker", id.String(), "reason", why)
}

// workerLeft is why a worker that said it leaves is dropped.
const workerLeft = "it left the network"

// workerTag protects a proxy's connections to its workers from the connection manager.
const workerTag = "cocoon-worker"
