package tee

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hpke"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cocoon-mesh/cocoon/internal/fields"
)

// Sealing uses HPKE (RFC 9180) with the hybrid post-quantum KEM ML-KEM-768+X25519 to set up a
// session between a client and one attested worker, and derives one AES-256-GCM key from it.
// Every message of the session is sealed under that key with a nonce of its own: the request's
// sequence number, the direction (body or answer) and the chunk's index. A session is set up
// once per client and worker, so a request costs AES-GCM alone, not a KEM encapsulation (about
// 0.2 ms of CPU on each side, more than a whole mesh hop).
var (
	sealKEM  = hpke.MLKEM768X25519()
	sealKDF  = hpke.HKDFSHA256()
	sealAEAD = hpke.AES256GCM()
)

const (
	sealInfo       = "cocoon-mesh/seal/v1"
	sessionExport  = "cocoon-mesh/seal/session key"
	maxSealedEnc   = 2048
	replayWindow   = 1024    // requests of one session may arrive this far out of order
	maxOpenSession = 1 << 16 // sessions a worker keeps (about 200 bytes each); past it the least recently used half goes
)

// ErrSeal is wrapped by every failure to open sealed data: wrong key, tampering, replay.
var ErrSeal = errors.New("tee: sealed data does not open")

// ErrUnknownSession is wrapped when a body names a session the worker no longer holds (it
// restarted its key, or dropped the session for room): the client must send the encapsulated
// key again.
var ErrUnknownSession = errors.New("tee: the worker does not hold this sealing session")

// SealKey is the private key prompts are sealed to; its public half is bound in the evidence.
type SealKey struct {
	priv hpke.PrivateKey
	pub  []byte
}

// GenerateSealKey makes a fresh sealing key. Nodes make one per process start and never store
// it: a sealed prompt can only be opened by the process whose evidence named the key.
func GenerateSealKey() (*SealKey, error) {
	k, err := sealKEM.GenerateKey()
	if err != nil {
		return nil, err
	}
	return &SealKey{priv: k, pub: k.PublicKey().Bytes()}, nil
}

// PublicKey is the encoded public key, as bound by ReportData and sent to peers.
func (k *SealKey) PublicKey() []byte { return k.pub }

// CheckSealPublicKey reports whether p decodes as a sealing public key.
func CheckSealPublicKey(p []byte) error {
	if _, err := sealKEM.NewPublicKey(p); err != nil {
		return fmt.Errorf("tee: bad sealing public key: %v", err)
	}
	return nil
}

// Session is a client's sealing session with one worker; safe for concurrent use. Its sealed
// bodies carry the 1120-byte encapsulated key until the worker has answered one (Confirm):
// the worker keeps the session, so later bodies name it by its 16-byte ID alone.
type Session struct {
	id        [16]byte
	enc       []byte
	aead      cipher.AEAD // safe for concurrent use: it keeps no state between calls
	seq       atomic.Uint64
	confirmed atomic.Bool
	key       [32]byte // the session key, for Disclose
}

// NewSession sets up a session to the worker whose sealing public key is workerKey.
func NewSession(workerKey []byte) (*Session, error) {
	pk, err := sealKEM.NewPublicKey(workerKey)
	if err != nil {
		return nil, fmt.Errorf("tee: bad sealing public key: %v", err)
	}
	enc, sender, err := hpke.NewSender(pk, sealKDF, sealAEAD, []byte(sealInfo))
	if err != nil {
		return nil, err
	}
	key, err := sender.Export(sessionExport, 32)
	if err != nil {
		return nil, err
	}
	aead, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	return &Session{id: sessionID(enc), enc: enc, aead: aead, key: [32]byte(key)}, nil
}

// Confirm records that the worker opened a body of this session and answered: it holds the
// session, and later bodies leave the encapsulated key out.
func (s *Session) Confirm() { s.confirmed.Store(true) }

// Unconfirm makes later bodies carry the encapsulated key again, after the worker said it no
// longer holds the session (ErrUnknownSession).
func (s *Session) Unconfirm() { s.confirmed.Store(false) }

// sessionID names a session by its encapsulated key.
func sessionID(enc []byte) [16]byte {
	h := sha256.Sum256(enc)
	return [16]byte(h[:16])
}

// Seal encrypts one request body. aad binds the plaintext metadata the proxy routes on (request
// id, model), so a sealed body cannot be moved to another request. It returns the sealed body
// and the key the answer comes back under.
func (s *Session) Seal(aad, body []byte) ([]byte, *Answer, error) {
	seq := s.seq.Add(1)
	var enc []byte
	if !s.confirmed.Load() {
		enc = s.enc
	}
	e := fields.Enc{B: make([]byte, 0, len(enc)+len(body)+64)}
	e.Fixed(s.id[:])
	e.Bytes(enc)
	e.Uvarint(seq)
	e.B = s.aead.Seal(e.B, nonce(seq, dirBody, 0), body, aad)
	return e.B, &Answer{aead: s.aead, seq: seq}, nil
}

// Directions in a nonce: the request body, and the answer's chunks.
const (
	dirBody   = 1
	dirAnswer = 2
)

// maxChunks bounds the chunks of one answer, so their index fits its three nonce bytes.
const maxChunks = 1 << 24

// nonce is a message's nonce: 8 bytes of request sequence, a direction byte, 3 bytes of chunk
// index. Each is used once per session key: sequence numbers are never reused (and a worker
// refuses a replayed one).
func nonce(seq uint64, dir byte, i uint64) []byte {
	var n [12]byte
	binary.BigEndian.PutUint64(n[:8], seq)
	n[8] = dir
	n[9], n[10], n[11] = byte(i>>16), byte(i>>8), byte(i)
	return n[:]
}

// sessionAEAD makes a session's AES-256-GCM from its HPKE context (sender or recipient alike).
func sessionAEAD(ctx interface {
	Export(exporterContext string, length int) ([]byte, error)
}) (cipher.AEAD, error) {
	key, err := ctx.Export(sessionExport, 32)
	if err != nil {
		return nil, err
	}
	return newGCM(key)
}

func newGCM(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// Answer seals (worker) or opens (client) the chunks of one answer, in order.
type Answer struct {
	aead cipher.AEAD
	seq  uint64 // the request's sequence number in its session
	n    uint64 // chunks so far
}

func (a *Answer) next() ([]byte, error) {
	if a.n >= maxChunks {
		return nil, fmt.Errorf("%w: answer over %d chunks", ErrSeal, maxChunks)
	}
	a.n++
	return nonce(a.seq, dirAnswer, a.n-1), nil
}

// Seal appends the sealed chunk to dst.
func (a *Answer) Seal(dst, chunk []byte) ([]byte, error) {
	n, err := a.next()
	if err != nil {
		return nil, err
	}
	return a.aead.Seal(dst, n, chunk, nil), nil
}

// Open appends the opened chunk to dst; chunks must be opened in the order they were sealed.
func (a *Answer) Open(dst, sealed []byte) ([]byte, error) {
	n, err := a.next()
	if err != nil {
		return nil, err
	}
	out, err := a.aead.Open(dst, n, sealed, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: answer chunk %d", ErrSeal, a.n-1)
	}
	return out, nil
}

// Opener is a worker's side of sealing: its key and the sessions clients set up with it. Safe
// for concurrent use.
type Opener struct {
	key *SealKey

	mu       sync.Mutex
	sessions map[[16]byte]*openSession
}

type openSession struct {
	aead cipher.AEAD
	used atomic.Int64 // last use, in Unix nanoseconds: the least recently used go first
	mu   sync.Mutex
	top  uint64                    // highest sequence number seen
	seen [replayWindow / 64]uint64 // bit i: top-i was seen
}

// NewOpener returns an opener for key.
func NewOpener(key *SealKey) *Opener {
	return &Opener{key: key, sessions: make(map[[16]byte]*openSession)}
}

// Key returns the sealing key.
func (o *Opener) Key() *SealKey { return o.key }

// Open decrypts a sealed request body made by Session.Seal with the same aad, refusing
// tampered and replayed ones, and returns the body and the answer's sealer.
func (o *Opener) Open(aad, sealed []byte) ([]byte, *Answer, error) {
	d := fields.Dec{B: sealed, Bad: ErrMalformed}
	var id [16]byte
	copy(id[:], d.Fixed("session id", 16))
	enc := d.Bytes("encapsulated key", maxSealedEnc)
	seq := d.Uvarint("sealed sequence")
	if d.Err != nil {
		return nil, nil, d.Err
	}
	if seq == 0 {
		return nil, nil, fmt.Errorf("%w: sequence 0", ErrMalformed)
	}
	s, err := o.session(id, enc)
	if err != nil {
		return nil, nil, err
	}
	s.used.Store(time.Now().UnixNano())
	body, err := s.aead.Open(nil, nonce(seq, dirBody, 0), d.B, aad)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: request body (wrong key, altered, or moved from another request)", ErrSeal)
	}
	if !s.accept(seq) {
		return nil, nil, fmt.Errorf("%w: request %d of this session was already opened, or is too old", ErrSeal, seq)
	}
	return body, &Answer{aead: s.aead, seq: seq}, nil
}

// session finds session id, or sets it up from enc, the encapsulated key it is named after.
func (o *Opener) session(id [16]byte, enc []byte) (*openSession, error) {
	o.mu.Lock()
	s := o.sessions[id]
	o.mu.Unlock()
	if s != nil {
		return s, nil
	}
	if len(enc) == 0 {
		return nil, ErrUnknownSession
	}
	if sessionID(enc) != id {
		return nil, fmt.Errorf("%w: session id does not match its encapsulated key", ErrMalformed)
	}
	r, err := hpke.NewRecipient(enc, o.key.priv, sealKDF, sealAEAD, []byte(sealInfo))
	if err != nil {
		return nil, fmt.Errorf("%w: session: %v", ErrSeal, err)
	}
	aead, err := sessionAEAD(r)
	if err != nil {
		return nil, err
	}
	s = &openSession{aead: aead}
	o.mu.Lock()
	defer o.mu.Unlock()
	if old := o.sessions[id]; old != nil {
		return old, nil // set up concurrently by another request
	}
	if len(o.sessions) >= maxOpenSession {
		o.evictHalf()
	}
	o.sessions[id] = s
	return s, nil
}

// evictHalf drops the least recently used half of the sessions (o.mu held). Their clients get
// ErrUnknownSession once and send the encapsulated key again.
func (o *Opener) evictHalf() {
	used := make([]int64, 0, len(o.sessions))
	for _, s := range o.sessions {
		used = append(used, s.used.Load())
	}
	slices.Sort(used)
	cut := used[len(used)/2]
	for id, s := range o.sessions {
		if s.used.Load() < cut {
			delete(o.sessions, id)
		}
	}
}

// accept records seq as opened, refusing one already opened or too far behind the highest.
func (s *openSession) accept(seq uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq > s.top {
		shift := seq - s.top
		if shift >= replayWindow {
			s.seen = [replayWindow / 64]uint64{}
		} else {
			shiftBits(&s.seen, shift)
		}
		s.top = seq
		s.seen[0] |= 1
		return true
	}
	back := s.top - seq
	if back >= replayWindow {
		return false
	}
	w, b := back/64, back%64
	if s.seen[w]&(1<<b) != 0 {
		return false
	}
	s.seen[w] |= 1 << b
	return true
}

// shiftBits moves every bit of the window n places towards older.
func shiftBits(w *[replayWindow / 64]uint64, n uint64) {
	words, bits := n/64, n%64
	for i := len(w) - 1; i >= 0; i-- {
		var v uint64
		if src := i - int(words); src >= 0 {
			v = w[src] << bits
			if bits > 0 && src-1 >= 0 {
				v |= w[src-1] >> (64 - bits)
			}
		}
		w[i] = v
	}
}
