package reputation

import (
	"fmt"
	"math"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Kind is what an event says of a peer.
type Kind int

// The events.
const (
	Served          Kind = iota // an answer served in full, receipted and paid (Event.Paid)
	FailedEarly                 // failed before its first token
	FailedMidStream             // failed after its first token
	TimedOut                    // no first token within the bound
	Stalled                     // stopped sending mid-answer
	Refused                     // refused a request it was routed
	CapacityLie                 // its advert said free, it answered busy
	Slow                        // slower than its advert said
	AttestFailed                // its attestation did not verify
	AuditPassed                 // a canary answered exactly as the pinned model does
	AuditFailed                 // a canary answered otherwise
	PaymentFault                // a payer behind, or a bad voucher
	ReceiptMismatch             // a receipt that does not match what was delivered
	Overcharge                  // a charge above the quote
	numKinds
)

var kindNames = [...]string{"served", "failed-early", "failed-midstream", "timed-out", "stalled", "refused",
	"capacity-lie", "slow", "attest-failed", "audit-passed", "audit-failed", "payment-fault", "receipt-mismatch", "overcharge"}

// String is the kind's name, as scripts write it.
func (k Kind) String() string {
	if k < 0 || k >= numKinds {
		return fmt.Sprintf("Kind(%d)", int(k))
	}
	return kindNames[k]
}

// ParseKind is the kind named s.
func ParseKind(s string) (Kind, error) {
	for k, n := range kindNames {
		if n == s {
			return Kind(k), nil
		}
	}
	return 0, fmt.Errorf("reputation: no event kind %q", s)
}

// Event is one piece of evidence about a peer.
type Event struct {
	Kind Kind
	Paid uint64 // Served: nanoTON the answer was paid
	// Hearsay, above zero, makes the event another node's word that this node could not check
	// (a complaint gossiped): it weighs Hearsay (the reporter's trust here, at most 1) of what
	// the event would, and never bans.
	Hearsay float64
}

// Config sets how evidence weighs and fades. Zero fields take DefaultConfig's.
type Config struct {
	GoodHalfLife, BadHalfLife time.Duration
	FullAnswer                uint64  // nanoTON paid for an answer to weigh one (default 100,000)
	GoodCap                   float64 // the most good a peer can hold (default 200)
	// Weights is each fault's weight in bad (and AuditPassed's in good); kinds left out weigh
	// DefaultConfig's.
	Weights map[Kind]float64
	// BanFor is how long a proven wrong answer (AuditFailed) bans a peer and its platform:
	// score 0 until then, whatever else it serves (default 30 days).
	BanFor time.Duration
	// PerPlatform caps the identities bound to one physical platform (Book.Bind); default 8.
	PerPlatform int
	// Pin and Ban are the operator's own lists: a pinned peer scores 1, a banned one 0,
	// whatever the evidence.
	Pin, Ban []peer.ID
}

// DefaultConfig: good fades in a day, bad in a week; an audit failure or a failed
// attestation outweighs a hundred answers.
func DefaultConfig() Config {
	return Config{GoodHalfLife: 24 * time.Hour, BadHalfLife: 7 * 24 * time.Hour, FullAnswer: 100_000, GoodCap: 200,
		Weights: map[Kind]float64{FailedEarly: 1, FailedMidStream: 3, TimedOut: 2, Stalled: 3, Refused: 0.5,
			CapacityLie: 2, Slow: 1, AttestFailed: 100, AuditPassed: 5, AuditFailed: 100, PaymentFault: 5,
			ReceiptMismatch: 50, Overcharge: 50},
		BanFor: 30 * 24 * time.Hour, PerPlatform: 8}
}

// Book holds what was seen of each peer.
type Book struct {
	cfg      Config
	peers    map[peer.ID]*record
	pin, ban map[peer.ID]bool
	// platforms holds, for each platform ID, the identities bound to it and until when it
	// is banned.
	platforms map[string]*platform
}

// record is one peer's evidence, as of at.
type record struct {
	good, bad float64
	at        time.Time
	counts    [numKinds]uint64 // events of each kind ever recorded, for operators
	banned    time.Time        // banned until then
	platform  string           // bound by Bind; "" when unknown
}

// platform is one physical machine's identities.
type platform struct {
	peers  map[peer.ID]bool
	banned time.Time
}

// New returns an empty book.
func New(cfg Config) *Book {
	def := DefaultConfig()
	if cfg.GoodHalfLife <= 0 {
		cfg.GoodHalfLife = def.GoodHalfLife
	}
	if cfg.BadHalfLife <= 0 {
		cfg.BadHalfLife = def.BadHalfLife
	}
	if cfg.FullAnswer == 0 {
		cfg.FullAnswer = def.FullAnswer
	}
	if cfg.GoodCap <= 0 {
		cfg.GoodCap = def.GoodCap
	}
	w := make(map[Kind]float64, len(def.Weights))
	for k, v := range def.Weights {
		w[k] = v
	}
	for k, v := range cfg.Weights {
		w[k] = v
	}
	cfg.Weights = w
	if cfg.BanFor <= 0 {
		cfg.BanFor = def.BanFor
	}
	if cfg.PerPlatform <= 0 {
		cfg.PerPlatform = def.PerPlatform
	}
	b := &Book{cfg: cfg, peers: map[peer.ID]*record{}, pin: map[peer.ID]bool{}, ban: map[peer.ID]bool{},
		platforms: map[string]*platform{}}
	for _, p := range cfg.Pin {
		b.pin[p] = true
	}
	for _, p := range cfg.Ban {
		b.ban[p] = true
	}
	return b
}

// Record adds ev about p at now. Events older than p's last are taken as of its last. An
// AuditFailed bans p, and the platform it is bound to, for Config.BanFor.
func (b *Book) Record(now time.Time, p peer.ID, ev Event) {
	if ev.Kind < 0 || ev.Kind >= numKinds {
		return
	}
	r := b.record(now, p)
	b.decay(r, now)
	r.counts[ev.Kind]++
	if ev.Hearsay > 0 {
		if ev.Kind != Served && ev.Kind != AuditPassed {
			r.bad += math.Min(ev.Hearsay, 1) * b.cfg.Weights[ev.Kind]
		}
		return // only what this node saw earns trust
	}
	switch ev.Kind {
	case AuditFailed:
		r.bad += b.cfg.Weights[AuditFailed]
		r.banned = now.Add(b.cfg.BanFor)
		if pl := b.platforms[r.platform]; pl != nil {
			pl.banned = r.banned
		}
	case Served:
		r.good += math.Min(1, float64(ev.Paid)/float64(b.cfg.FullAnswer))
	case AuditPassed:
		r.good += b.cfg.Weights[AuditPassed]
	default:
		r.bad += b.cfg.Weights[ev.Kind]
	}
	r.good = math.Min(r.good, b.cfg.GoodCap)
}

// record is p's record, made on first use.
func (b *Book) record(now time.Time, p peer.ID) *record {
	r := b.peers[p]
	if r == nil {
		r = &record{at: now}
		b.peers[p] = r
	}
	return r
}

// Score is p's score at now, in [0, 1]: one half for a peer never seen, 1 if the operator
// pinned it, 0 if the operator banned it or it (or its platform) is banned by evidence.
func (b *Book) Score(now time.Time, p peer.ID) float64 {
	switch {
	case b.ban[p]:
		return 0
	case b.pin[p]:
		return 1
	}
	r := b.peers[p]
	if r == nil {
		return 0.5
	}
	if b.bannedUntil(r).After(now) {
		return 0
	}
	good, bad := b.faded(r, now)
	return (good + 1) / (good + bad + 2)
}

// bannedUntil is when r's ban, or its platform's, ends.
func (b *Book) bannedUntil(r *record) time.Time {
	until := r.banned
	if pl := b.platforms[r.platform]; pl != nil && pl.banned.After(until) {
		until = pl.banned
	}
	return until
}

// decay brings r's evidence to now.
func (b *Book) decay(r *record, now time.Time) {
	if now.After(r.at) {
		r.good, r.bad = b.faded(r, now)
		r.at = now
	}
}

// faded is r's evidence as of now.
func (b *Book) faded(r *record, now time.Time) (good, bad float64) {
	dt := now.Sub(r.at)
	if dt <= 0 {
		return r.good, r.bad
	}
	return r.good * halve(dt, b.cfg.GoodHalfLife), r.bad * halve(dt, b.cfg.BadHalfLife)
}

// halve is what is left of one after dt at half-life h.
func halve(dt, h time.Duration) float64 { return math.Exp2(-float64(dt) / float64(h)) }
