package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/xssnick/tonutils-go/address"

	"github.com/cocoon-mesh/cocoon/node/wire"
	"github.com/cocoon-mesh/cocoon/ton"
	"github.com/cocoon-mesh/cocoon/ton/channel"
	"github.com/cocoon-mesh/cocoon/ton/chanstore"
	"github.com/cocoon-mesh/cocoon/ton/ledger"
)

// channels is a node's payment channels: the shell that does the I/O of ton/channel's
// stepped core. Each channel has one owner (chanOwner), a goroutine that alone steps its
// channel.Channel, writes its record and carries out its Effects; channels only finds the
// owners (every one by channel, and the one in use with each peer) and does what spans
// channels: opening one (the payee's terms, which stored channel to resume, a new channel's
// id and deposit), the channel protocol's requests, and the watch's ticks.
type channels struct {
	cfg    PaymentConfig
	core   channel.Config // what every channel's core shares
	ledger ledger.Ledger
	store  *chanstore.Store
	key    ed25519.PrivateKey // the channel key: the node's libp2p identity key
	wallet *address.Address   // dest_A of channels we pay, dest_B of those paying us
	terms  wire.Terms         // what we ask of channels paying us

	h      host.Host
	log    *slog.Logger
	clock  Clock
	life   *life
	ctx    context.Context // the node's: ends when it closes
	payees string          // what this node's payees are, for errors: "proxy" or "worker"
	// leaveAlone is the node's: a payee that takes no payments is left alone for a while.
	leaveAlone func(peer.ID, error)
	withhold   bool // Faults.WithholdPayment: vouchers are stored and never sent

	depositMu sync.Mutex // sizes a new channel's deposit and stores its record, one at a time

	mu      sync.Mutex
	owners  map[chanKey]*chanOwner // every channel with an owner, by role and id
	out     map[peer.ID]*outChan   // the channel we pay each payee on
	in      map[peer.ID]*inChan    // the channel each payer pays us on
	old     map[peer.ID][]*inChan  // channels a payer replaced with a newer one, until they close
	opening map[peer.ID]*opening   // the attempt under way to open or resume a channel to a payee
}

// chanKey names a channel as the store does: one record per role and channel id.
type chanKey struct {
	role chanstore.Role
	id   ton.ChannelID
}

// opening is one attempt to open or resume the channel to a payee; others wanting it wait.
type opening struct {
	done chan struct{}
	ch   *outChan
	err  error
}

func newChannels(n *Node, l ledger.Ledger, store *chanstore.Store, identity crypto.PrivKey, wallet *address.Address) (*channels, error) {
	cfg := n.cfg.Payments
	if identity.Type() != crypto.Ed25519 {
		return nil, errors.New("node: payments need an ed25519 identity key")
	}
	raw, err := identity.Raw()
	if err != nil || len(raw) != ed25519.PrivateKeySize {
		return nil, errors.New("node: payments need an ed25519 identity key")
	}
	payees := "worker"
	if n.cfg.Role == RoleClient {
		payees = "proxy"
	}
	return &channels{
		cfg: cfg, ledger: l, store: store, key: raw, wallet: wallet,
		core: channel.Config{Key: raw, FlushAfter: cfg.FlushAfter, SettleIdle: cfg.SettleIdle, UnearnedIdle: cfg.UnearnedIdle,
			WatchEvery: cfg.WatchEvery, OpenFee: cfg.OpenFee, DisputeFee: cfg.DisputeFee},
		terms: wire.Terms{
			Wallet:       wallet.String(),
			Quarantine:   uint32(cfg.Quarantine / time.Second),
			CondClose:    uint32(cfg.ConditionalClose / time.Second),
			ExcessFee:    cfg.ExcessFee,
			Commission:   cfg.Commission,
			WindowTokens: cfg.WindowTokens,
		},
		h: n.h, log: n.log, clock: n.clock, life: n.life, ctx: n.ctx, payees: payees, leaveAlone: n.leaveAlone, withhold: n.faults.withholds(),
		owners: make(map[chanKey]*chanOwner), out: make(map[peer.ID]*outChan), in: make(map[peer.ID]*inChan),
		old: make(map[peer.ID][]*inChan), opening: make(map[peer.ID]*opening),
	}, nil
}

// pub is this node's channel public key.
func (cs *channels) pub() ed25519.PublicKey { return cs.key.Public().(ed25519.PublicKey) }

// resumed returns the owner of rec's channel: the one it has, or a new one resumed from rec.
func (cs *channels) resumed(rec chanstore.Record) (*chanOwner, error) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if o := cs.owners[chanKey{rec.Role, rec.ChannelID}]; o != nil {
		return o, nil
	}
	ch, err := channel.Resume(cs.core, rec)
	if err != nil {
		return nil, err
	}
	return cs.own(ch, chanKey{rec.Role, rec.ChannelID}, counterparty(rec), wire.Terms{})
}

// fresh returns the owner of a new channel with parameters p, as role, with peer: for a
// payee, the one a payer's earlier announcement of the same channel made, if any.
func (cs *channels) fresh(role chanstore.Role, p peer.ID, params ton.Params, terms wire.Terms) (*chanOwner, error) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if o := cs.owners[chanKey{role, params.ChannelID}]; o != nil {
		if role == chanstore.Payer || o.peer != p {
			return nil, fmt.Errorf("channel %x is another's", params.ChannelID[:])
		}
		return o, nil
	}
	ch, err := channel.New(cs.core, role, params)
	if err != nil {
		return nil, err
	}
	return cs.own(ch, chanKey{role, params.ChannelID}, p, terms)
}

// own starts the owner of ch, named key, with peer p; cs.mu is held.
func (cs *channels) own(ch *channel.Channel, key chanKey, p peer.ID, terms wire.Terms) (*chanOwner, error) {
	o := newOwner(cs, ch, key, p, terms)
	if !cs.life.Go(o.run) {
		return nil, errNodeClosed
	}
	cs.owners[o.key] = o
	return o, nil
}

// byID is the owner of channel id, as role, with peer p; nil if it has none.
func (cs *channels) byID(role chanstore.Role, p peer.ID, id ton.ChannelID) *chanOwner {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if o := cs.owners[chanKey{role, id}]; o != nil && o.peer == p {
		return o
	}
	return nil
}

// drop forgets o, whose loop has ended.
func (cs *channels) drop(o *chanOwner) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.owners[o.key] == o {
		delete(cs.owners, o.key)
	}
	if o.out != nil && cs.out[o.peer] == o.out {
		delete(cs.out, o.peer)
	}
	if o.in == nil {
		return
	}
	if cs.in[o.peer] == o.in {
		delete(cs.in, o.peer)
	}
	old := cs.old[o.peer][:0]
	for _, c := range cs.old[o.peer] {
		if c != o.in {
			old = append(old, c)
		}
	}
	if len(old) == 0 {
		delete(cs.old, o.peer)
	} else {
		cs.old[o.peer] = old
	}
}

// use makes c the channel its payee is paid on, its opening or resumption done.
func (cs *channels) use(c *outChan) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.out[c.peer] = c
}

// unuse takes c out of use, if it is the channel its payee is paid on: it stopped taking
// answers (it is being replaced or closed).
func (cs *channels) unuse(c *outChan) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.out[c.peer] == c {
		delete(cs.out, c.peer)
	}
}

// replace takes c out of use and starts opening the next channel to its payee, with the whole
// deposit if full: c's deposit runs low, or an operator topped it up (Effects.Replace).
func (cs *channels) replace(c *outChan, full bool, left uint64) {
	cs.mu.Lock()
	if cs.out[c.peer] == c {
		delete(cs.out, c.peer)
		cs.startOpening(c.peer, full)
	}
	cs.mu.Unlock()
	cs.log.Info("moving payments to a new channel", "payee", c.peer.String(), "deposit_left", left)
}

// adoptIn makes c the channel its payer pays this node on; one it replaces is kept until it
// closes (the payer pays off what it owes there).
func (cs *channels) adoptIn(c *inChan) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cur := cs.in[c.peer]
	if cur == c {
		return
	}
	for _, o := range cs.old[c.peer] {
		if o == c {
			return
		}
	}
	if cur != nil {
		cs.old[c.peer] = append(cs.old[c.peer], cur)
	}
	cs.in[c.peer] = c
}

// payerIn returns the channel peer p pays this node on, or a payment error. After a restart
// the channel is resumed from the store, newest first, at its durable voucher.
func (cs *channels) payerIn(p peer.ID) (*inChan, error) {
	cs.mu.Lock()
	c := cs.in[p]
	cs.mu.Unlock()
	if c != nil {
		return c, nil
	}
	if key, err := ed25519Key(cs.h.Peerstore().PubKey(p)); err == nil {
		rec, ok, err := cs.newestRecord(cs.ctx, func(r chanstore.Record) bool {
			return r.Role == chanstore.Payee && r.State == chanstore.Open && bytes.Equal(r.KeyA, key)
		})
		if err == nil && ok {
			o, err := cs.resumed(rec)
			if err != nil {
				return nil, err
			}
			cs.adoptIn(o.in)
			return o.in, nil
		}
	}
	return nil, wire.Errorf(wire.CodePayment, "no payment channel from %s: open one first (%s)", p.String(), ChannelProtocol)
}

// newestRecord finds the most recently stored channel record that match accepts.
func (cs *channels) newestRecord(ctx context.Context, match func(chanstore.Record) bool) (chanstore.Record, bool, error) {
	recs, err := cs.store.List(ctx)
	if err != nil {
		return chanstore.Record{}, false, err
	}
	var best chanstore.Record
	found := false
	for _, r := range recs {
		if match(r) && (!found || r.Updated.After(best.Updated)) {
			best, found = r, true
		}
	}
	return best, found, nil
}

// params are the contract parameters of a channel between payer key A and payee key B.
func (cs *channels) params(id ton.ChannelID, keyA, keyB []byte, destA, destB *address.Address) ton.Params {
	return ton.Params{
		KeyA: keyA, KeyB: keyB, ChannelID: id,
		Closing:  ton.ClosingConfig{QuarantineDuration: cs.terms.Quarantine, ConditionalCloseDuration: cs.terms.CondClose},
		Payments: ton.PaymentConfig{ExcessFee: cs.terms.ExcessFee, DestA: destA, DestB: destB},
	}
}

// commission is the highest per-mille commission among the payees this node pays on a
// channel (a client's proxies); false when it pays none yet.
func (cs *channels) commission() (uint32, bool) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	var c uint32
	for _, o := range cs.out {
		c = max(c, o.terms.Commission)
	}
	return c, len(cs.out) > 0
}

// ed25519Key returns the raw ed25519 key behind a libp2p key: channel keys are identity keys,
// so a peer's channel key is the one its connection authenticated.
func ed25519Key(k crypto.PubKey) (ed25519.PublicKey, error) {
	if k == nil || k.Type() != crypto.Ed25519 {
		return nil, errors.New("payments need an ed25519 peer identity")
	}
	raw, err := k.Raw()
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return nil, errors.New("payments need an ed25519 peer identity")
	}
	return raw, nil
}

// counterparty is the peer on the other side of a channel: channel keys are identity keys.
func counterparty(r chanstore.Record) peer.ID {
	key := r.KeyB
	if r.Role == chanstore.Payee {
		key = r.KeyA
	}
	return keyPeer(key)
}

// keyPeer is the peer whose identity is ed25519 key k ("" if k is not one).
func keyPeer(k ed25519.PublicKey) peer.ID {
	pub, err := crypto.UnmarshalEd25519PublicKey(k)
	if err != nil {
		return ""
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		return ""
	}
	return id
}
