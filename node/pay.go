package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/xssnick/tonutils-go/address"

	"github.com/cocoon-mesh/cocoon/node/stream"
	"github.com/cocoon-mesh/cocoon/node/wire"
	"github.com/cocoon-mesh/cocoon/ton"
	"github.com/cocoon-mesh/cocoon/ton/chanstore"
	"github.com/cocoon-mesh/cocoon/ton/ledger"
)

// payState is a node's payment channels: those it pays on (a client's to proxies, a proxy's to
// workers) and those it is paid on (a proxy's from clients, a worker's from proxies). Each
// channel's state has one owner, its own mutex; the maps only find channels.
type payState struct {
	cfg    PaymentConfig
	ledger ledger.Ledger
	store  *chanstore.Store
	key    ed25519.PrivateKey // the channel key: the node's libp2p identity key
	wallet *address.Address   // dest_A of channels we pay, dest_B of those paying us
	terms  wire.Terms         // what we ask of channels paying us

	depositMu sync.Mutex // sizes a new channel's deposit and stores its record, one at a time

	mu      sync.Mutex
	out     map[peer.ID]*outChan  // channels we pay on, by payee
	in      map[peer.ID]*inChan   // channels paying us, by payer
	old     map[peer.ID][]*inChan // channels a payer replaced with a newer one, until they close
	opening map[peer.ID]*opening  // channels being opened or resumed, by payee
	busy    map[ton.ChannelID]int // closes under way in this process, by channel
}

// closing marks a close of channel id as under way in this process until done is called: the
// watcher leaves such a channel to it (see resumeClose).
func (ps *payState) closing(id ton.ChannelID) (done func()) {
	ps.mu.Lock()
	ps.busy[id]++
	ps.mu.Unlock()
	return sync.OnceFunc(func() {
		ps.mu.Lock()
		if ps.busy[id]--; ps.busy[id] <= 0 {
			delete(ps.busy, id)
		}
		ps.mu.Unlock()
	})
}

// closingHere reports whether a close of channel id is under way in this process.
func (ps *payState) closingHere(id ton.ChannelID) bool {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return ps.busy[id] > 0
}

// pub is this node's channel public key.
func (ps *payState) pub() ed25519.PublicKey { return ps.key.Public().(ed25519.PublicKey) }

// opening is one ensureChannel in flight; others wanting the same channel wait for it.
type opening struct {
	done chan struct{}
	ch   *outChan
	err  error
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

func newPayState(cfg PaymentConfig, l ledger.Ledger, store *chanstore.Store, identity crypto.PrivKey, wallet *address.Address) (*payState, error) {
	if identity.Type() != crypto.Ed25519 {
		return nil, errors.New("node: payments need an ed25519 identity key")
	}
	raw, err := identity.Raw()
	if err != nil || len(raw) != ed25519.PrivateKeySize {
		return nil, errors.New("node: payments need an ed25519 identity key")
	}
	return &payState{
		cfg: cfg, ledger: l, store: store, key: raw, wallet: wallet,
		terms: wire.Terms{
			Wallet:       wallet.String(),
			Quarantine:   uint32(cfg.Quarantine / time.Second),
			CondClose:    uint32(cfg.ConditionalClose / time.Second),
			ExcessFee:    cfg.ExcessFee,
			Commission:   cfg.Commission,
			WindowTokens: cfg.WindowTokens,
		},
		out: make(map[peer.ID]*outChan), in: make(map[peer.ID]*inChan), opening: make(map[peer.ID]*opening),
		busy: make(map[ton.ChannelID]int),
		old:  make(map[peer.ID][]*inChan),
	}, nil
}

// outChan is a channel this node pays on. Signing and persisting a voucher is sequenced by
// payMu; mu guards the meter and the record, and is never held across I/O.
type outChan struct {
	peer  peer.ID
	id    ton.ChannelID // rec's, fixed: read without mu to find the channel
	terms wire.Terms    // the payee's terms: its commission and window

	payMu sync.Mutex
	mu    sync.Mutex
	rec   chanstore.Record
	payer *ton.Payer
	meter *ton.Meter
	flush *Timer // a pending settle (nil: none)
	acked uint64 // the highest seqno the payee confirmed holding on the channel stream
	// disputed: we refused value the payee may still count; the next settle says so.
	disputed bool
	due      *dueVoucher // the newest answer that found a voucher due while one was being paid
	ahead    bool        // payAhead is signing and persisting a voucher in the background

	active  int           // answers being paid for on the channel
	closing bool          // no new answers: the channel is being replaced or closed
	idle    chan struct{} // closed when closing and active reaches 0
}

// acquire counts a new answer paid on c; false once c is closing.
func (c *outChan) acquire() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return false
	}
	c.active++
	return true
}

// release ends an answer counted by acquire.
func (c *outChan) release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.active--; c.active == 0 && c.closing && c.idle != nil {
		close(c.idle)
		c.idle = nil
	}
}

// stop takes no more answers on c and returns a channel closed once those under way ended;
// false if c was already stopping.
func (c *outChan) stop() (<-chan struct{}, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	first := !c.closing
	c.closing = true
	idle := make(chan struct{})
	if c.active == 0 {
		close(idle)
	} else if c.idle != nil {
		idle = c.idle
	} else {
		c.idle = idle
	}
	return idle, first
}

// newOutChan resumes paying on rec.
func newOutChan(p peer.ID, terms wire.Terms, key ed25519.PrivateKey, rec chanstore.Record) (*outChan, error) {
	payer, err := ton.NewPayer(ton.PayerConfig{ChannelID: rec.ChannelID, Key: key, Limit: rec.Limit,
		Seqno: max(rec.Voucher.Seqno, rec.CommittedSeqno), Sent: rec.Voucher.Sent})
	if err != nil {
		return nil, err
	}
	return &outChan{peer: p, id: rec.ChannelID, terms: terms, rec: rec, payer: payer, meter: ton.NewMeter(rec.Voucher.Sent)}, nil
}

// every is how much value this channel's payer lets go unpaid before signing, for an answer
// billed at tab: a quarter of the payee's window, so the payee never waits on a paying payer.
func (c *outChan) every(tab *ton.Tab) uint64 { return tab.Per(uint64(c.terms.WindowTokens) / 4) }

// refuse takes back value received that we refused; the next settle tells the payee.
func (c *outChan) refuse(value uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.meter.Refuse(value)
	c.disputed = true
}

// receive records value received and reports whether a voucher is due.
func (c *outChan) receive(value, every uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.meter.Receive(value, every)
}

// latest is the encoding of the newest durable voucher (nil: none yet).
func (c *outChan) latest() ([]byte, error) {
	c.mu.Lock()
	v, ok := c.rec.Voucher, c.rec.HasVoucher
	c.mu.Unlock()
	if !ok {
		return nil, nil
	}
	return v.MarshalBinary()
}

// limit is the channel's deposit.
func (c *outChan) limit() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rec.Limit
}

// left is what the deposit still covers beyond what was received.
func (c *outChan) left() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rec.Limit - min(c.rec.Limit, c.meter.Received())
}

// pay signs a voucher for everything received, if one is due (or, with force, if anything is
// unpaid), and returns its encoding once it is durable; nil when none was due. A voucher is
// never sent before it is on disk: a restarted payer must never reuse its seqno.
func (n *Node) pay(ctx context.Context, c *outChan, force bool, every uint64) ([]byte, error) {
	c.payMu.Lock()
	defer c.payMu.Unlock()
	c.mu.Lock()
	unpaid := c.meter.Unpaid()
	if unpaid == 0 || (!force && unpaid < max(every, 1)) {
		c.mu.Unlock()
		return nil, nil
	}
	v, err := c.payer.PayTo(c.meter.Received())
	rec := c.rec
	c.mu.Unlock()
	if err != nil {
		return nil, err
	}
	rec.Voucher, rec.HasVoucher = v, true
	if err := n.payments.store.Put(ctx, rec); err != nil {
		return nil, fmt.Errorf("persisting voucher %d: %w", v.Seqno, err)
	}
	c.mu.Lock()
	c.rec = rec
	c.meter.Signed(v.Sent)
	c.mu.Unlock()
	return v.MarshalBinary()
}

// donePaying ends an answer paid on c (counted by payOn) and settles, later, what it left
// unpaid: the last answer to end on c is the one whose settle runs.
func (n *Node) donePaying(c *outChan) {
	c.release()
	n.settleLater(c)
}

// settleLater pays what is left unpaid on c after PaymentConfig.FlushAfter, over the channel
// stream: the end of an answer, or value drained from a cancelled one, has no stream left to
// carry a voucher. It also makes sure the payee holds our newest voucher: one sent on an
// inference stream that broke may never have arrived.
func (n *Node) settleLater(c *outChan) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.flush != nil || (c.meter.Unpaid() == 0 && c.rec.Voucher.Seqno <= c.acked && !c.disputed) {
		return
	}
	c.flush = n.life.AfterFunc(n.cfg.Payments.FlushAfter, func() {
		c.mu.Lock()
		c.flush = nil
		busy := c.active > 0
		c.mu.Unlock()
		// Answers still under way may yet be refused (a proxy learns its client's verdict
		// last): paying what they received now would pay for value we may refuse. The last
		// of them to end settles (donePaying).
		if busy || n.ctx.Err() != nil {
			return
		}
		ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
		defer cancel()
		if err := n.settle(ctx, c); err != nil && n.ctx.Err() == nil {
			n.log.Warn("cannot pay on channel", "payee", c.peer.String(), "err", err)
		}
	})
}

// inChan is a channel paying this node. mu guards everything; paid is closed (and replaced)
// whenever a durable voucher raises what is paid, waking answers waiting for credit.
type inChan struct {
	peer peer.ID
	id   ton.ChannelID // rec's, fixed: read without mu to find the channel

	mu       sync.Mutex
	rec      chanstore.Record
	payee    *ton.Payee
	credit   *ton.Credit
	paid     chan struct{}
	window   uint64     // the credit window of the latest answer billed, nanoTON: what bounds a write-off
	largest  uint64     // the costliest single item delivered (a long prompt's, billed at the end), nanoTON
	disputes int        // write-offs refused: the payer disputed more than it is trusted with
	bad      int        // vouchers refused
	waits    int        // answers that waited for a voucher: the payer was a whole window behind
	waitLog  quietCount // the waits not logged yet
	closed   bool       // a close was signed or started: no more vouchers, no more credit
}

// newInChan resumes being paid on rec.
func newInChan(p peer.ID, rec chanstore.Record) (*inChan, error) {
	payee, err := ton.NewPayee(ton.PayeeConfig{ChannelID: rec.ChannelID, PayerKey: rec.KeyA, Limit: rec.Limit, CommittedSeqno: rec.CommittedSeqno})
	if err != nil {
		return nil, err
	}
	if rec.HasVoucher {
		if err := payee.Accept(rec.Voucher); err != nil {
			return nil, fmt.Errorf("stored voucher: %w", err)
		}
	}
	return &inChan{peer: p, id: rec.ChannelID, rec: rec, payee: payee, credit: ton.NewCredit(payee.Sent()), paid: make(chan struct{})}, nil
}

// errSuperseded drops a voucher that pays no more than one already accepted, at a seqno no
// higher: vouchers of one channel travel on many answers' streams and may arrive out of order.
var errSuperseded = errors.New("voucher superseded by one already accepted")

// accept checks a voucher, makes it durable, and only then counts it as paid. A refused
// voucher changes nothing; a superseded one is not even checked (errSuperseded).
func (n *Node) accept(ctx context.Context, c *inChan, b []byte) error {
	v, err := ton.DecodeVoucher(b)
	c.mu.Lock()
	if latest, ok := c.payee.Latest(); err == nil && ok && v.Seqno <= latest.Seqno && v.Sent <= latest.Sent {
		c.mu.Unlock()
		return errSuperseded
	}
	if err == nil && c.closed {
		err = errChannelClosing
	}
	if err == nil {
		err = c.payee.Accept(v)
	}
	if err != nil {
		c.bad++
		c.mu.Unlock()
		return err
	}
	rec := c.rec
	rec.Voucher, rec.HasVoucher = v, true
	c.mu.Unlock()
	// Puts of one channel may finish out of order; the store keeps the newest, and a voucher
	// older than what is stored is covered by that one.
	if err := n.payments.store.Put(ctx, rec); err != nil && !errors.Is(err, chanstore.ErrStale) {
		return fmt.Errorf("persisting voucher %d: %w", v.Seqno, err)
	}
	c.mu.Lock()
	if v.Seqno > c.rec.Voucher.Seqno || !c.rec.HasVoucher {
		c.rec = rec
	}
	c.credit.Paid(v.Sent)
	close(c.paid)
	c.paid = make(chan struct{})
	c.mu.Unlock()
	return nil
}

// errChannelClosing refuses vouchers and answers on a channel being closed.
var errChannelClosing = wire.Errorf(wire.CodePayment, "the payment channel is closing: open a new one")

// waitLogEvery spaces the log lines saying a channel's answers wait for payment.
const waitLogEvery = time.Minute

// paymentWait bounds how long an answer waits for a payer that fell behind.
const paymentWait = 10 * time.Second

// rebillEvery is how often a payee waiting for payment bills its payer again: a bill the
// payer answered before the value it is behind on reached it (an answer's end still on its
// way, which the payer settles only once its answers ended) would otherwise hold the item for
// the whole of paymentWait.
const rebillEvery = time.Second

// reserve lets an item worth cost go out on c within window, waiting for payment when the
// payer is behind: bill asks for it (with what is owed), again every rebillEvery.
func (n *Node) reserve(ctx context.Context, c *inChan, cost, window uint64, bill func(owed uint64) error) error {
	var t *Timer
	var again *Ticker
	for billed := false; ; billed = true {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return errChannelClosing
		}
		err := c.credit.Reserve(cost, window)
		if err == nil {
			c.largest = max(c.largest, cost)
		}
		owed, paid := c.credit.Owed(), c.paid
		report := 0
		if err != nil && !billed {
			c.waits++
			report, _ = c.waitLog.note(n.now(), waitLogEvery)
		}
		c.mu.Unlock()
		if report > 0 {
			n.log.Info("answers wait for payment: the payer is a whole credit window behind",
				"payer", c.peer.String(), "waits", report, "window_tokens", n.cfg.Payments.WindowTokens,
				"hint", "many answers at once on one channel outgrow the window; raise payments.window_tokens to serve them without waiting")
		}
		if err == nil {
			return nil
		}
		if !billed {
			if err := bill(owed); err != nil {
				return context.Canceled // the payer is gone
			}
			t = n.clock.Timer(paymentWait)
			defer t.Stop()
			again = n.clock.Ticker(rebillEvery)
			defer again.Stop()
		}
		select {
		case <-paid:
		case <-again.C:
			if err := bill(owed); err != nil {
				return context.Canceled
			}
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-t.C:
			n.log.Warn("payer stopped paying; ending its answer", "payer", c.peer.String(), "owed", owed)
			return wire.Errorf(wire.CodePayment, "no payment for %d nanoTON owed within %s", owed, paymentWait)
		}
	}
}

// payerIn returns the channel peer p pays this node on, or a payment error. After a restart
// the channel is resumed from the store, newest first, at its durable voucher.
func (n *Node) payerIn(p peer.ID) (*inChan, error) {
	n.payments.mu.Lock()
	c := n.payments.in[p]
	n.payments.mu.Unlock()
	if c != nil {
		return c, nil
	}
	if key, err := ed25519Key(n.h.Peerstore().PubKey(p)); err == nil {
		rec, ok, err := n.newestRecord(n.ctx, func(r chanstore.Record) bool {
			return r.Role == chanstore.Payee && r.State == chanstore.Open && bytes.Equal(r.KeyA, key)
		})
		if err == nil && ok {
			return n.adoptIn(p, rec)
		}
	}
	return nil, wire.Errorf(wire.CodePayment, "no payment channel from %s: open one first (%s)", p.String(), ChannelProtocol)
}

// newestRecord finds the most recently stored channel record that match accepts.
func (n *Node) newestRecord(ctx context.Context, match func(chanstore.Record) bool) (chanstore.Record, bool, error) {
	recs, err := n.payments.store.List(ctx)
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

// ChannelStatus is one payment channel as the node's status shows it.
type ChannelStatus struct {
	Peer      string `json:"peer"`
	Role      string `json:"role"`  // payer: we pay on it; payee: we are paid on it
	State     string `json:"state"` // open, closing or closed
	ChannelID string `json:"channel_id"`
	Address   string `json:"address"`
	Deposit   uint64 `json:"deposit"` // nanoTON the payer locked: the most it can ever pay
	Paid      uint64 `json:"paid"`    // the newest durable voucher's cumulative sent
	Owed      uint64 `json:"owed"`    // payee: delivered but unpaid; payer: received but unpaid
	Seqno     uint64 `json:"seqno"`   // the newest durable voucher's seqno
	Delivered uint64 `json:"delivered,omitempty"`
	Refused   int    `json:"refused_vouchers,omitempty"`
	Waits     int    `json:"payment_waits,omitempty"` // payee: answers that waited for a voucher
	// WrittenOff is what a payee wrote off as never received by its payer (a broken stream, a
	// restart), nanoTON, and not paid since; Disputes counts the write-offs it refused because
	// they went beyond what it takes on trust.
	WrittenOff uint64 `json:"written_off,omitempty"`
	Disputes   int    `json:"refused_write_offs,omitempty"`
}

// Channels lists this node's payment channels, closed ones included, as last made durable and,
// for those in use, with what is owed and delivered now (nil when payments are off).
func (n *Node) Channels() []ChannelStatus {
	if n.payments == nil {
		return nil
	}
	ps := n.payments
	type key struct {
		role chanstore.Role
		id   ton.ChannelID
	}
	live := make(map[key]ChannelStatus)
	ps.mu.Lock()
	outs := make([]*outChan, 0, len(ps.out))
	for _, c := range ps.out {
		outs = append(outs, c)
	}
	ins := make([]*inChan, 0, len(ps.in))
	for _, c := range ps.in {
		ins = append(ins, c)
	}
	for _, old := range ps.old {
		ins = append(ins, old...)
	}
	ps.mu.Unlock()
	for _, c := range outs {
		live[key{chanstore.Payer, c.id}] = c.status()
	}
	for _, c := range ins {
		live[key{chanstore.Payee, c.id}] = c.status()
	}
	recs, err := ps.store.List(n.ctx)
	if err != nil {
		n.log.Warn("cannot list every payment channel", "err", err)
	}
	st := make([]ChannelStatus, 0, len(recs))
	for _, r := range recs {
		if l, ok := live[key{r.Role, r.ChannelID}]; ok && r.State == chanstore.Open {
			st = append(st, l)
			continue
		}
		st = append(st, channelStatus(counterparty(r), r, 0, 0, 0))
	}
	return st
}

// proxyCommission is the highest per-mille commission among the payees this node pays on a
// channel (a client's proxies); false when it pays none yet.
func (n *Node) proxyCommission() (uint32, bool) {
	if n.payments == nil {
		return 0, false
	}
	ps := n.payments
	ps.mu.Lock()
	defer ps.mu.Unlock()
	var c uint32
	for _, o := range ps.out {
		c = max(c, o.terms.Commission)
	}
	return c, len(ps.out) > 0
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

func channelStatus(p peer.ID, rec chanstore.Record, owed, delivered uint64, bad int) ChannelStatus {
	s := ChannelStatus{Peer: p.String(), Role: rec.Role.String(), State: rec.State.String(), ChannelID: fmt.Sprintf("%x", rec.ChannelID[:]),
		Deposit: rec.Limit, Paid: rec.Voucher.Sent, Owed: owed, Seqno: rec.Voucher.Seqno, Delivered: delivered, Refused: bad}
	if a, err := rec.Address(); err == nil {
		s.Address = a.String()
	}
	return s
}

// payerFrames is what a request's caller watcher does with the vouchers its payer sends on the
// stream: accept them on c, and write off what a settling one shows never arrived (nothing
// when payments are off, c nil).
func (n *Node) payerFrames(c *inChan) stream.Late {
	if c == nil {
		return stream.Late{}
	}
	return stream.Late{Pay: n.voucherSink(c), Settled: func(p []byte) { n.settled(n.ctx, c, p) }}
}

// voucherSink accepts the vouchers arriving on c.
func (n *Node) voucherSink(c *inChan) func([]byte) {
	return func(p []byte) {
		switch err := n.accept(n.ctx, c, p); {
		case err == nil, n.ctx.Err() != nil:
		case errors.Is(err, errSuperseded):
			n.log.Debug("voucher arrived after a newer one", "payer", c.peer.String())
		default:
			n.log.Warn("voucher refused", "payer", c.peer.String(), "err", err)
		}
	}
}
