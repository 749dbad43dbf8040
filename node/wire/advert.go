package wire

import (
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/cocoon-mesh/cocoon/internal/fields"
	"github.com/cocoon-mesh/cocoon/ton"
)

// Limits on an advert, so a validator can refuse a hostile one cheaply.
const (
	MaxAdvertSize   = 16 << 10
	MaxAdvertModels = 64
	MaxAdvertAddrs  = 16
)

// advertDomain separates advert signatures from anything else the identity key signs.
const advertDomain = "cocoon/advert/v1\x00"

// CoefficientOne is the price coefficient that leaves list prices unchanged (per mille).
const CoefficientOne = ton.CoefficientOne

// Prices are per-token prices in nanoTON, by billing category (the ton package bills with them).
type Prices = ton.Prices

// Offer is one model a worker serves, with its list prices.
type Offer struct {
	Model  string // full identity "name@revision:hash"
	Prices Prices
}

// Advert is a worker's signed statement of what it serves and how busy it is.
type Advert struct {
	Worker       peer.ID
	Seq          uint64    // increases with every advert from this worker process
	Time         time.Time // when it was made (millisecond precision on the wire)
	Addrs        []ma.Multiaddr
	MaxActive    uint32 // concurrent requests it accepts
	Running      uint32 // requests running when the advert was made
	Coefficient  uint32 // price multiplier in per mille (CoefficientOne = 1.0x)
	TokensPerSec uint32 // measured completion tokens per second, all requests together
	Healthy      bool   // the backend answered its last health check
	Offers       []Offer
}

// EffectivePrice is what a completion token costs at this worker: list price x coefficient,
// rounded up as billing rounds it (see Quote.Effective).
func (a *Advert) EffectivePrice(o Offer) uint64 {
	return Quote{Prices: o.Prices, Coefficient: a.Coefficient}.Effective()
}

func (a *Advert) appendBody(b []byte, pub []byte) []byte {
	e := fields.Enc{B: b}
	e.Bytes([]byte(a.Worker))
	e.Bytes(pub) // the worker's public key: not every peer ID embeds it (RSA and ECDSA IDs are hashes)
	e.Uvarint(a.Seq)
	e.Uvarint(uint64(a.Time.UnixMilli()))
	e.Uvarint(uint64(len(a.Addrs)))
	for _, m := range a.Addrs {
		e.Bytes(m.Bytes())
	}
	e.Uvarint(uint64(a.MaxActive))
	e.Uvarint(uint64(a.Running))
	e.Uvarint(uint64(a.Coefficient))
	e.Uvarint(uint64(a.TokensPerSec))
	e.Bool(a.Healthy)
	e.Uvarint(uint64(len(a.Offers)))
	for _, o := range a.Offers {
		e.Str(o.Model)
		e.Uvarint(o.Prices.Prompt)
		e.Uvarint(o.Prices.Cached)
		e.Uvarint(o.Prices.Completion)
		e.Uvarint(o.Prices.Reasoning)
	}
	return e.B
}

// SignAdvert encodes a and signs it with key, which must be the key of a.Worker.
func SignAdvert(a *Advert, key crypto.PrivKey) ([]byte, error) {
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, err
	}
	if id != a.Worker {
		return nil, fmt.Errorf("wire: advert for %s signed with the key of %s", a.Worker, id)
	}
	pub, err := crypto.MarshalPublicKey(key.GetPublic())
	if err != nil {
		return nil, err
	}
	body := a.appendBody(nil, pub)
	sig, err := key.Sign(append([]byte(advertDomain), body...))
	if err != nil {
		return nil, err
	}
	e := fields.Enc{B: body}
	e.Bytes(sig)
	if len(e.B) > MaxAdvertSize {
		return nil, fmt.Errorf("wire: advert of %d bytes is over the %d byte limit", len(e.B), MaxAdvertSize)
	}
	return e.B, nil
}

// ErrBadSignature means an advert's signature does not match its worker's key.
var ErrBadSignature = errors.New("wire: advert signature does not verify")

// DecodeAdvert decodes an advert and verifies its signature against the worker's identity.
func DecodeAdvert(p []byte) (*Advert, error) {
	if len(p) > MaxAdvertSize {
		return nil, fmt.Errorf("%w: advert of %d bytes, limit %d", ErrFrameTooLarge, len(p), MaxAdvertSize)
	}
	d := fields.Dec{B: p, Bad: ErrMalformed}
	a := &Advert{}
	rawID := d.Bytes("worker id", 128)
	rawPub := d.Bytes("public key", 1024)
	a.Seq = d.Uvarint("seq")
	ms := d.Bounded("time", 1<<53)
	a.Time = time.UnixMilli(int64(ms))
	n := d.Bounded("address count", MaxAdvertAddrs)
	for i := uint64(0); i < n && d.Err == nil; i++ {
		m, err := ma.NewMultiaddrBytes(d.Bytes("address", 512))
		if err != nil && d.Err == nil {
			d.Err = fmt.Errorf("%w: address %d: %v", ErrMalformed, i, err)
		}
		a.Addrs = append(a.Addrs, m)
	}
	a.MaxActive = uint32(d.Bounded("max active", 1<<20))
	a.Running = uint32(d.Bounded("running", 1<<20))
	a.Coefficient = uint32(d.Bounded("coefficient", 1<<20))
	a.TokensPerSec = uint32(d.Bounded("tokens per second", 1<<32-1))
	a.Healthy = d.Bool("healthy flag")
	n = d.Bounded("model count", MaxAdvertModels)
	for i := uint64(0); i < n && d.Err == nil; i++ {
		var o Offer
		o.Model = d.Str("model", MaxModelLen)
		o.Prices.Prompt = d.Uvarint("prompt price")
		o.Prices.Cached = d.Uvarint("cached price")
		o.Prices.Completion = d.Uvarint("completion price")
		o.Prices.Reasoning = d.Uvarint("reasoning price")
		if d.Err == nil {
			if _, err := ParseModelID(o.Model); err != nil {
				d.Err = fmt.Errorf("%w: %v", ErrMalformed, err)
			}
		}
		a.Offers = append(a.Offers, o)
	}
	bodyLen := len(p) - len(d.B)
	sig := d.Bytes("signature", 1024)
	if err := d.Done(); err != nil {
		return nil, err
	}
	id, err := peer.IDFromBytes(rawID)
	if err != nil {
		return nil, fmt.Errorf("%w: worker id: %v", ErrMalformed, err)
	}
	a.Worker = id
	pub, err := crypto.UnmarshalPublicKey(rawPub)
	if err != nil {
		return nil, fmt.Errorf("%w: public key: %v", ErrMalformed, err)
	}
	if !id.MatchesPublicKey(pub) {
		return nil, fmt.Errorf("%w: public key is not the worker's", ErrBadSignature)
	}
	ok, err := pub.Verify(append([]byte(advertDomain), p[:bodyLen]...), sig)
	if err != nil || !ok {
		return nil, ErrBadSignature
	}
	return a, nil
}

// Advert freshness errors.
var (
	ErrStale  = errors.New("wire: advert is stale")
	ErrFuture = errors.New("wire: advert is from the future")
)

// CheckFresh refuses an advert older than maxAge or more than maxSkew ahead of now.
func (a *Advert) CheckFresh(now time.Time, maxAge, maxSkew time.Duration) error {
	age := now.Sub(a.Time)
	if age > maxAge {
		return fmt.Errorf("%w: made %s ago, limit %s", ErrStale, age.Round(time.Millisecond), maxAge)
	}
	if -age > maxSkew {
		return fmt.Errorf("%w: %s ahead of this node's clock", ErrFuture, (-age).Round(time.Millisecond))
	}
	return nil
}
