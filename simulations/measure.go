package simulations

import (
	"context"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tlb"
	"github.com/xssnick/tonutils-go/tvm/cell"

	"github.com/cocoon-mesh/cocoon/simulations/report"
	"github.com/cocoon-mesh/cocoon/ton/ledger"
)

// What a run measures, and from where: the nodes' tracers (node.Tracer) for requests and
// gossip, a counting wrapper around the ledger for on-chain operations, and the simulated GPUs
// for what runs on them. Nothing is read from logs.

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// recorder keeps a run's samples, stamped with virtual time since the run began.
type recorder struct {
	start time.Time
	mu    sync.Mutex
	rows  []report.Sample
}

// add records metric with labels (key, value pairs) at value, now.
func (r *recorder) add(metric string, value float64, kv ...string) {
	s := report.Sample{At: time.Since(r.start), Metric: metric, Value: value}
	for i := 0; i+1 < len(kv); i += 2 {
		s.Labels = append(s.Labels, report.Label{Key: kv[i], Value: kv[i+1]})
	}
	r.mu.Lock()
	r.rows = append(r.rows, s)
	r.mu.Unlock()
}

// samples returns what was recorded, in time order.
func (r *recorder) samples() []report.Sample {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := append([]report.Sample(nil), r.rows...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].At < out[j].At })
	return out
}

// gossipCount counts gossipsub's messages over all nodes: a RawTracer each node is given.
type gossipCount struct {
	delivered, duplicate atomic.Int64
	rejected, ignored    atomic.Int64 // refused by a validator (the sender is penalised), or left unforwarded (it is not)
	throttled            atomic.Int64 // dropped unvalidated: the validation queue was full

	mu      sync.Mutex
	reasons map[string]int // the rejected, by pubsub's reason
}

func (g *gossipCount) DeliverMessage(*pubsub.Message)           { g.delivered.Add(1) }
func (g *gossipCount) DuplicateMessage(*pubsub.Message)         { g.duplicate.Add(1) }
func (g *gossipCount) OnNewOutboundStream(peer.ID, protocol.ID) {}
func (g *gossipCount) OnClosedOutboundStream(peer.ID)           {}
func (g *gossipCount) AddPeer(peer.ID, protocol.ID)             {}
func (g *gossipCount) RemovePeer(peer.ID)                       {}
func (g *gossipCount) Join(string)                              {}
func (g *gossipCount) Leave(string)                             {}
func (g *gossipCount) Graft(peer.ID, string)                    {}
func (g *gossipCount) Prune(peer.ID, string)                    {}
func (g *gossipCount) ValidateMessage(*pubsub.Message)          {}
func (g *gossipCount) ThrottlePeer(peer.ID)                     {}
func (g *gossipCount) RecvRPC(*pubsub.RPC)                      {}
func (g *gossipCount) SendRPC(*pubsub.RPC, peer.ID)             {}
func (g *gossipCount) DropRPC(*pubsub.RPC, peer.ID)             {}
func (g *gossipCount) UndeliverableMessage(*pubsub.Message)     {}

var _ pubsub.RawTracer = (*gossipCount)(nil)

// RejectMessage counts a message turned away, by why.
func (g *gossipCount) RejectMessage(_ *pubsub.Message, reason string) {
	switch reason {
	case pubsub.RejectValidationIgnored:
		g.ignored.Add(1)
	case pubsub.RejectValidationThrottled, pubsub.RejectValidationQueueFull:
		g.throttled.Add(1)
	default:
		g.rejected.Add(1)
		g.mu.Lock()
		if g.reasons == nil {
			g.reasons = map[string]int{}
		}
		g.reasons[reason]++
		g.mu.Unlock()
	}
}

// chainCount is the ledger every node uses, counting the operations that reach the chain.
type chainCount struct {
	ledger.Ledger
	mu  sync.Mutex
	ops map[string]int
	fee uint64 // nanoTON of gas the operations cost
}

func (c *chainCount) count(op string, r ledger.Receipt, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil {
		c.ops[op]++
		c.fee += r.Fee
	} else {
		c.ops[op+"_failed"]++
	}
}

// snapshot returns the counts so far.
func (c *chainCount) snapshot() (map[string]int, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.ops))
	for k, v := range c.ops {
		out[k] = v
	}
	return out, c.fee
}

func (c *chainCount) OpenChannel(ctx context.Context, from, ch *address.Address, init *tlb.StateInit, body *cell.Cell, value uint64) (ledger.Receipt, error) {
	r, err := c.Ledger.OpenChannel(ctx, from, ch, init, body, value)
	c.count("open", r, err)
	return r, err
}

func (c *chainCount) CooperativeClose(ctx context.Context, ch *address.Address, body *cell.Cell) (ledger.Receipt, error) {
	r, err := c.Ledger.CooperativeClose(ctx, ch, body)
	c.count("close", r, err)
	return r, err
}

func (c *chainCount) StartUncooperativeClose(ctx context.Context, from, ch *address.Address, body *cell.Cell, value uint64) (ledger.Receipt, error) {
	r, err := c.Ledger.StartUncooperativeClose(ctx, from, ch, body, value)
	c.count("solo_close", r, err)
	return r, err
}

func (c *chainCount) Challenge(ctx context.Context, from, ch *address.Address, body *cell.Cell, value uint64) (ledger.Receipt, error) {
	r, err := c.Ledger.Challenge(ctx, from, ch, body, value)
	c.count("challenge", r, err)
	return r, err
}

func (c *chainCount) FinishUncooperativeClose(ctx context.Context, ch *address.Address) (ledger.Receipt, error) {
	r, err := c.Ledger.FinishUncooperativeClose(ctx, ch)
	c.count("finish_close", r, err)
	return r, err
}
