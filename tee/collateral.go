package tee

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cocoon-mesh/cocoon/internal/fields"
	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
)

// IntelPCS is Intel's Provisioning Certification Service, where go-tdx-guest fetches collateral.
const IntelPCS = "https://api.trustedservices.intel.com"

// CollateralRefresh is how long a cached response is served before it is fetched again, even
// when Intel says it is good for longer (TCB info and QE identity for 30 days, CRLs for a
// month to a year): a new TCB recovery or revocation reaches us within a day, and a node that
// cannot reach Intel keeps verifying with its copy until the copy's own nextUpdate.
const CollateralRefresh = 24 * time.Hour

const (
	collateralKeyPrefix = "/cocoon/tee/collateral/"
	recordMagic         = "CCR1"
	// Limits on a cached response. Intel's TCB info is ~20 KiB, its CRLs smaller, its headers
	// a few KiB of URL-encoded certificates; anything larger is served but never stored.
	maxCollateralBody   = 1 << 20
	maxCollateralHeader = 64 << 10
	maxHeaderFields     = 64
	maxHeaderValues     = 16
	// memoSize bounds the in-memory copy: there are a few URLs per platform model (FMSPC).
	memoSize = 256
)

// errCorruptRecord is wrapped by every error decoding a persisted collateral record.
var errCorruptRecord = errors.New("tee: corrupt collateral record")

// Collateral is a cache of Intel's attestation collateral (TCB info, QE identity, CRLs) for
// TDXVerifier: go-tdx-guest asks it for Intel PCS URLs as a trust.HTTPSGetter.
//
// It sends those requests to a base URL of the operator's choice (Intel's PCS or a PCCS),
// persists each response in the datastore with the time it was fetched and the time it
// expires (its nextUpdate), serves a cached response for CollateralRefresh, and when a fetch
// fails serves the cached one until it expires: verification works offline while the cache is
// valid. The cache is not trusted for anything but availability: go-tdx-guest checks Intel's
// signatures and nextUpdate on everything it serves.
type Collateral struct {
	ds    datastore.Datastore
	base  string
	fetch func(url string) (map[string][]string, []byte, error)
	now   func() time.Time

	mu       sync.Mutex
	memo     map[string]*collateralRecord // records known good, by the URL go-tdx-guest asks for
	inflight map[string]*collateralFetch  // one fetch per URL at a time
}

type collateralFetch struct {
	done chan struct{}
	rec  *collateralRecord
	err  error
}

// collateralRecord is one cached response.
type collateralRecord struct {
	URL     string // as go-tdx-guest asked for it (Intel's), whatever base URL served it
	Fetched time.Time
	Expiry  time.Time // the content's own nextUpdate
	Header  map[string][]string
	Body    []byte
}

// NewCollateral returns a cache persisting in ds (nil: memory only) that fetches from baseURL
// (empty: IntelPCS; or a PCCS such as https://pccs.example:8081) with fetch (nil: HTTPFetch(nil)),
// reading the time from now (nil: time.Now).
//
// Only URLs under IntelPCS move to baseURL, path and query kept. The root CA CRL is fetched
// from the address in Intel's root certificate (certificates.trustedservices.intel.com).
func NewCollateral(ds datastore.Datastore, baseURL string, fetch func(url string) (map[string][]string, []byte, error), now func() time.Time) *Collateral {
	if ds == nil {
		ds = dssync.MutexWrap(datastore.NewMapDatastore())
	}
	if fetch == nil {
		fetch = HTTPFetch(nil)
	}
	if now == nil {
		now = time.Now
	}
	return &Collateral{
		ds:       ds,
		base:     strings.TrimRight(baseURL, "/"),
		fetch:    fetch,
		now:      now,
		memo:     make(map[string]*collateralRecord),
		inflight: make(map[string]*collateralFetch),
	}
}

// HTTPFetch returns a fetch function for NewCollateral over hc (nil: a client with a 30 second
// timeout). Anything but 200 OK is an error.
func HTTPFetch(hc *http.Client) func(url string) (map[string][]string, []byte, error) {
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	return func(url string) (map[string][]string, []byte, error) {
		resp, err := hc.Get(url)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, nil, fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxCollateralBody+1))
		if err != nil {
			return nil, nil, fmt.Errorf("GET %s: %w", url, err)
		}
		if len(body) > maxCollateralBody {
			return nil, nil, fmt.Errorf("GET %s: response over %d bytes", url, maxCollateralBody)
		}
		return resp.Header, body, nil
	}
}

// Get returns the response for url (an Intel PCS URL), from the cache while it is fresh.
func (c *Collateral) Get(url string) (map[string][]string, []byte, error) {
	now := c.now()
	cached := c.load(url)
	if cached != nil && cached.fresh(now) {
		return cached.copyOut()
	}
	rec, err := c.refetch(url, now)
	valid := cached != nil && now.Before(cached.Expiry)
	if err == nil && (!rec.Expiry.IsZero() || !valid) {
		return rec.copyOut()
	}
	if valid {
		// Offline, or the answer was undatable or already expired (a maintenance page, a
		// lagging PCCS): the cached copy is still valid.
		return cached.copyOut()
	}
	if cached != nil {
		return nil, nil, fmt.Errorf("tee: collateral %s: %v, and the cached copy expired at %v", url, err, cached.Expiry.UTC())
	}
	return nil, nil, fmt.Errorf("tee: collateral %s: %v, and nothing is cached", url, err)
}

// rewrite moves an Intel PCS URL onto the base URL.
func (c *Collateral) rewrite(url string) string {
	if c.base == "" || c.base == IntelPCS {
		return url
	}
	if rest, ok := strings.CutPrefix(url, IntelPCS); ok && (rest == "" || rest[0] == '/' || rest[0] == '?') {
		return c.base + rest
	}
	return url
}

func collateralKey(url string) datastore.Key {
	h := sha256.Sum256([]byte(url))
	return datastore.NewKey(collateralKeyPrefix + hex.EncodeToString(h[:]))
}

// load returns the cached record for url, or nil. Records from the datastore are untrusted: one
// that does not decode, names another URL, or whose expiry is not its content's is a miss.
func (c *Collateral) load(url string) *collateralRecord {
	c.mu.Lock()
	rec := c.memo[url]
	c.mu.Unlock()
	if rec != nil {
		return rec
	}
	raw, err := c.ds.Get(context.Background(), collateralKey(url))
	if err != nil {
		return nil
	}
	rec, err = decodeCollateralRecord(raw)
	if err != nil || rec.URL != url {
		return nil
	}
	if exp, ok := collateralExpiry(rec.Body); !ok || !exp.Equal(rec.Expiry) {
		return nil
	}
	c.remember(rec)
	return rec
}

func (c *Collateral) remember(rec *collateralRecord) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.memo) >= memoSize {
		clear(c.memo)
	}
	c.memo[rec.URL] = rec
}

// refetch fetches url once however many verifications ask for it at the same time.
func (c *Collateral) refetch(url string, now time.Time) (*collateralRecord, error) {
	c.mu.Lock()
	if f, ok := c.inflight[url]; ok {
		c.mu.Unlock()
		<-f.done
		return f.rec, f.err
	}
	// A fetch may have finished since the caller looked.
	if r := c.memo[url]; r != nil && r.fresh(now) {
		c.mu.Unlock()
		return r, nil
	}
	f := &collateralFetch{done: make(chan struct{})}
	c.inflight[url] = f
	c.mu.Unlock()

	defer func() {
		c.mu.Lock()
		delete(c.inflight, url)
		c.mu.Unlock()
		close(f.done)
	}()
	f.rec, f.err = c.fetchAndStore(url, now)
	return f.rec, f.err
}

// fetchAndStore fetches url and persists the response when it can tell how long it is valid.
// A response it cannot date, already expired, or too large is served this once, not stored.
func (c *Collateral) fetchAndStore(url string, now time.Time) (*collateralRecord, error) {
	target := c.rewrite(url)
	h, body, err := c.fetch(target)
	if err != nil {
		if target != url {
			return nil, fmt.Errorf("fetch from %s failed: %w", target, err)
		}
		return nil, fmt.Errorf("fetch failed: %w", err)
	}
	rec := &collateralRecord{URL: url, Fetched: now, Header: h, Body: body}
	exp, ok := collateralExpiry(body)
	if !ok || !now.Before(exp) {
		return rec, nil // Expiry stays zero: Get prefers a valid cached copy
	}
	rec.Expiry = exp
	raw, err := rec.encode()
	if err != nil {
		return rec, nil
	}
	// A datastore that fails to write costs only the offline copy; the response is still good.
	_ = c.ds.Put(context.Background(), collateralKey(url), raw)
	// Stored records are handed out concurrently: keep our own copy of what fetch returned.
	h, body, _ = rec.copyOut()
	rec.Header, rec.Body = h, body
	c.remember(rec)
	return rec, nil
}

// fresh says whether rec may be served without asking again. A record from the future (the
// clock went back) is not fresh.
func (r *collateralRecord) fresh(now time.Time) bool {
	return !now.Before(r.Fetched) && now.Before(r.Fetched.Add(CollateralRefresh)) && now.Before(r.Expiry)
}

// copyOut returns copies, so a caller that changes what it got cannot change the cache.
func (r *collateralRecord) copyOut() (map[string][]string, []byte, error) {
	var h map[string][]string
	if r.Header != nil {
		h = make(map[string][]string, len(r.Header))
		for k, v := range r.Header {
			h[k] = slices.Clone(v)
		}
	}
	return h, bytes.Clone(r.Body), nil
}

// collateralExpiry reads when a response stops being valid: nextUpdate of TCB info or QE
// identity JSON, or NextUpdate of a DER CRL.
func collateralExpiry(body []byte) (time.Time, bool) {
	if t := bytes.TrimSpace(body); len(t) > 0 && t[0] == '{' {
		type signed struct {
			NextUpdate time.Time `json:"nextUpdate"`
		}
		var v struct {
			TcbInfo         *signed `json:"tcbInfo"`
			EnclaveIdentity *signed `json:"enclaveIdentity"`
		}
		if json.Unmarshal(t, &v) != nil {
			return time.Time{}, false
		}
		switch {
		case v.TcbInfo != nil && !v.TcbInfo.NextUpdate.IsZero():
			return v.TcbInfo.NextUpdate, true
		case v.EnclaveIdentity != nil && !v.EnclaveIdentity.NextUpdate.IsZero():
			return v.EnclaveIdentity.NextUpdate, true
		}
		return time.Time{}, false
	}
	crl, err := x509.ParseRevocationList(body)
	if err != nil || crl.NextUpdate.IsZero() {
		return time.Time{}, false
	}
	return crl.NextUpdate, true
}

// encode writes the record as: magic, URL, fetch and expiry times (Unix milliseconds), header
// fields sorted by name (name, values), body. One record, one encoding.
func (r *collateralRecord) encode() ([]byte, error) {
	if len(r.Body) > maxCollateralBody || len(r.Header) > maxHeaderFields {
		return nil, fmt.Errorf("%w: response too large to store", errCorruptRecord)
	}
	keys := make([]string, 0, len(r.Header))
	size := 0
	for k, vs := range r.Header {
		keys = append(keys, k)
		if len(vs) > maxHeaderValues {
			return nil, fmt.Errorf("%w: header %q has too many values to store", errCorruptRecord, k)
		}
		size += len(k)
		for _, v := range vs {
			size += len(v)
		}
	}
	if size > maxCollateralHeader {
		return nil, fmt.Errorf("%w: headers too large to store", errCorruptRecord)
	}
	slices.Sort(keys)
	e := fields.Enc{B: make([]byte, 0, len(r.Body)+size+64)}
	e.Fixed([]byte(recordMagic))
	e.Str(r.URL)
	e.Uvarint(uint64(r.Fetched.UnixMilli()))
	e.Uvarint(uint64(r.Expiry.UnixMilli()))
	e.Uvarint(uint64(len(keys)))
	for _, k := range keys {
		e.Str(k)
		e.Uvarint(uint64(len(r.Header[k])))
		for _, v := range r.Header[k] {
			e.Str(v)
		}
	}
	e.Bytes(r.Body)
	return e.B, nil
}

// decodeCollateralRecord reads a record written by encode. Its input is whatever the datastore
// holds: every length is bounded and every error is returned, never panicked.
func decodeCollateralRecord(p []byte) (*collateralRecord, error) {
	d := fields.Dec{B: p, Bad: errCorruptRecord}
	if string(d.Fixed("magic", len(recordMagic))) != recordMagic {
		d.Fail("magic")
	}
	r := &collateralRecord{URL: d.Str("URL", 4096)}
	r.Fetched = time.UnixMilli(int64(d.Uvarint("fetch time")))
	r.Expiry = time.UnixMilli(int64(d.Uvarint("expiry")))
	n := d.Bounded("header count", maxHeaderFields)
	size := 0
	prev := ""
	for i := uint64(0); i < n && d.Err == nil; i++ {
		k := d.Str("header name", maxCollateralHeader)
		if i > 0 && k <= prev {
			d.Fail("header order") // sorted and unique, as encode writes them
		}
		prev = k
		nv := d.Bounded("header value count", maxHeaderValues)
		vs := make([]string, 0, nv)
		size += len(k)
		for j := uint64(0); j < nv && d.Err == nil; j++ {
			v := d.Str("header value", maxCollateralHeader)
			size += len(v)
			vs = append(vs, v)
		}
		if size > maxCollateralHeader {
			d.Fail("header size")
		}
		if r.Header == nil {
			r.Header = make(map[string][]string, n)
		}
		r.Header[k] = vs
	}
	r.Body = bytes.Clone(d.Bytes("body", maxCollateralBody))
	if err := d.Done(); err != nil {
		return nil, err
	}
	return r, nil
}
