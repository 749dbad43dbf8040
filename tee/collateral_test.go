package tee

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	testcases "github.com/google/go-tdx-guest/testing"
	"github.com/google/go-tdx-guest/testing/testdata"
	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
)

const (
	qeIdentityURL = IntelPCS + "/tdx/certification/v4/qe/identity"
	tcbInfoURL    = IntelPCS + "/tdx/certification/v4/tcb?fmspc=50806f000000"
	rootCRLURL    = "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der"
)

func TestCollateralRewrite(t *testing.T) {
	for _, tc := range []struct{ base, url, want string }{
		{"", tcbInfoURL, tcbInfoURL},
		{IntelPCS, tcbInfoURL, tcbInfoURL},
		{"https://pccs.example:8081", tcbInfoURL, "https://pccs.example:8081/tdx/certification/v4/tcb?fmspc=50806f000000"},
		{"https://pccs.example:8081/", qeIdentityURL, "https://pccs.example:8081/tdx/certification/v4/qe/identity"},
		{"https://pccs.example:8081", IntelPCS + "/sgx/certification/v4/pckcrl?ca=platform&encoding=der",
			"https://pccs.example:8081/sgx/certification/v4/pckcrl?ca=platform&encoding=der"},
		{"https://pccs.example:8081", rootCRLURL, rootCRLURL},
		{"https://pccs.example:8081", "https://api.trustedservices.intel.com.evil.example/tcb", "https://api.trustedservices.intel.com.evil.example/tcb"},
	} {
		c := NewCollateral(nil, tc.base, nil, nil)
		if got := c.rewrite(tc.url); got != tc.want {
			t.Errorf("base %q: %s -> %s, want %s", tc.base, tc.url, got, tc.want)
		}
	}
}

// A node pointed at a PCCS asks it, not Intel, for everything but the root CA CRL.
func TestCollateralThroughPCCS(t *testing.T) {
	const pccs = "https://pccs.example:8081"
	var mu sync.Mutex
	var asked []string
	fetch := func(url string) (map[string][]string, []byte, error) {
		mu.Lock()
		asked = append(asked, url)
		mu.Unlock()
		// The sample responses are keyed by Intel's URLs: map the PCCS back.
		if rest, ok := strings.CutPrefix(url, pccs); ok {
			url = IntelPCS + rest
		}
		return testcases.TestGetter.Get(url)
	}
	v := &TDXVerifier{Collateral: NewCollateral(nil, pccs, fetch, func() time.Time { return sampleTime }), CheckRevocations: true}
	// Intel's sample collateral all verifies; only the sample platform's TCB level is refused.
	if _, err := v.Verify(testdata.RawQuote, sampleTime); !errors.Is(err, ErrTCB) {
		t.Fatal(err)
	}
	if len(asked) != 4 {
		t.Fatalf("asked %v", asked)
	}
	for _, u := range asked {
		if !strings.HasPrefix(u, pccs+"/") && u != rootCRLURL {
			t.Errorf("asked %s, not the PCCS", u)
		}
	}
}

func TestCollateralFreshness(t *testing.T) {
	f := &countingFetch{}
	now := sampleTime
	c := NewCollateral(nil, "", f.get, func() time.Time { return now })
	get := func() {
		t.Helper()
		if _, body, err := c.Get(qeIdentityURL); err != nil || !bytes.Equal(body, testdata.QeIdentityBody) {
			t.Fatalf("Get: %v", err)
		}
	}
	get()
	now = sampleTime.Add(CollateralRefresh - time.Minute)
	get()
	if f.count() != 1 {
		t.Fatalf("%d fetches within the refresh interval, want 1", f.count())
	}
	now = sampleTime.Add(CollateralRefresh + time.Minute)
	get()
	if f.count() != 2 {
		t.Fatalf("%d fetches past the refresh interval, want 2", f.count())
	}
	now = sampleTime.Add(-time.Hour) // the clock went back: not fresh, ask again
	get()
	if f.count() != 3 {
		t.Fatalf("%d fetches after the clock went back, want 3", f.count())
	}
}

func TestCollateralCopiesOut(t *testing.T) {
	c := NewCollateral(nil, "", (&countingFetch{}).get, func() time.Time { return sampleTime })
	h, body, err := c.Get(tcbInfoURL)
	if err != nil {
		t.Fatal(err)
	}
	body[0] ^= 0xff
	h["Tcb-Info-Issuer-Chain"][0] = "changed"
	h2, body2, _ := c.Get(tcbInfoURL)
	if !bytes.Equal(body2, testdata.TcbInfoBody) || !reflect.DeepEqual(h2, testcases.TcbInfoHeader) {
		t.Fatal("a caller's changes reached the cache")
	}
}

func TestCollateralExpiry(t *testing.T) {
	for _, tc := range []struct {
		body []byte
		want time.Time
	}{
		{testdata.TcbInfoBody, time.Date(2023, time.July, 18, 8, 42, 58, 0, time.UTC)},
		{testdata.QeIdentityBody, time.Date(2023, time.July, 8, 7, 24, 59, 0, time.UTC)},
		{testdata.PckCrlBody, time.Date(2023, time.July, 8, 7, 27, 52, 0, time.UTC)},
		{testdata.RootCrlBody, time.Date(2024, time.April, 2, 10, 22, 51, 0, time.UTC)},
	} {
		got, ok := collateralExpiry(tc.body)
		if !ok || !got.Equal(tc.want) {
			t.Errorf("expiry %v %v, want %v", got, ok, tc.want)
		}
	}
	for _, body := range []string{"", "{}", `{"tcbInfo":{}}`, `{"tcbInfo":{"nextUpdate":"soon"}}`, "not a CRL", "{"} {
		if got, ok := collateralExpiry([]byte(body)); ok {
			t.Errorf("%q: expiry %v", body, got)
		}
	}
}

// A response whose validity cannot be read is served but never stored.
func TestCollateralUndatableNotStored(t *testing.T) {
	ds := dssync.MutexWrap(datastore.NewMapDatastore())
	n := 0
	fetch := func(string) (map[string][]string, []byte, error) {
		n++
		return nil, []byte("<html>maintenance</html>"), nil
	}
	c := NewCollateral(ds, "", fetch, func() time.Time { return sampleTime })
	for range 2 {
		if _, body, err := c.Get(qeIdentityURL); err != nil || string(body) != "<html>maintenance</html>" {
			t.Fatal(body, err)
		}
	}
	if n != 2 {
		t.Errorf("%d fetches, want 2 (nothing cached)", n)
	}
	if has, _ := ds.Has(context.Background(), collateralKey(qeIdentityURL)); has {
		t.Error("an undatable response was persisted")
	}
}

// A fetch that answers with something undatable (a maintenance page) does not displace a
// valid cached copy.
func TestCollateralKeepsValidCopyOverUndatable(t *testing.T) {
	now := sampleTime
	broken := false
	fetch := func(url string) (map[string][]string, []byte, error) {
		if broken {
			return nil, []byte("<html>maintenance</html>"), nil
		}
		return testcases.TestGetter.Get(url)
	}
	c := NewCollateral(nil, "", fetch, func() time.Time { return now })
	if _, _, err := c.Get(qeIdentityURL); err != nil {
		t.Fatal(err)
	}
	broken, now = true, sampleTime.Add(2*CollateralRefresh)
	if _, body, err := c.Get(qeIdentityURL); err != nil || !bytes.Equal(body, testdata.QeIdentityBody) {
		t.Fatalf("got %q, %v; want the cached QE identity", body, err)
	}
	now = time.Date(2023, time.July, 9, 0, 0, 0, 0, time.UTC) // past the cached copy's nextUpdate
	if _, body, err := c.Get(qeIdentityURL); err != nil || string(body) != "<html>maintenance</html>" {
		t.Fatalf("got %q, %v; want what the server said, nothing valid being cached", body, err)
	}
}

func TestCollateralOfflineMiss(t *testing.T) {
	c := NewCollateral(nil, "", (&countingFetch{fail: true}).get, func() time.Time { return sampleTime })
	_, _, err := c.Get(qeIdentityURL)
	if err == nil || !strings.Contains(err.Error(), "nothing is cached") || !strings.Contains(err.Error(), qeIdentityURL) {
		t.Fatalf("err = %v", err)
	}
}

// Whatever the datastore holds under a collateral key is untrusted: anything that is not a
// record for that URL, dated by its own content, is a miss and gets refetched.
func TestCollateralCorruptRecordIsMiss(t *testing.T) {
	good := &collateralRecord{URL: qeIdentityURL, Fetched: sampleTime, Header: testcases.QeIdentityHeader, Body: testdata.QeIdentityBody}
	good.Expiry, _ = collateralExpiry(good.Body)
	enc := func(r collateralRecord) []byte {
		b, err := r.encode()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	otherURL, laterExpiry, wrongBody := *good, *good, *good
	otherURL.URL = tcbInfoURL
	laterExpiry.Expiry = laterExpiry.Expiry.Add(365 * 24 * time.Hour)
	wrongBody.Body = testdata.TcbInfoBody
	valid := enc(*good)
	flippedMagic := bytes.Clone(valid)
	flippedMagic[0] ^= 1

	for name, raw := range map[string][]byte{
		"garbage":        []byte("\x00\xff garbage"),
		"empty":          {},
		"truncated":      valid[:len(valid)-10],
		"trailing bytes": append(bytes.Clone(valid), 0),
		"bad magic":      flippedMagic,
		"other URL":      enc(otherURL),
		"forged expiry":  enc(laterExpiry),
		"other content":  enc(wrongBody),
	} {
		t.Run(name, func(t *testing.T) {
			ds := dssync.MutexWrap(datastore.NewMapDatastore())
			if err := ds.Put(context.Background(), collateralKey(qeIdentityURL), raw); err != nil {
				t.Fatal(err)
			}
			f := &countingFetch{}
			c := NewCollateral(ds, "", f.get, func() time.Time { return sampleTime })
			_, body, err := c.Get(qeIdentityURL)
			if err != nil || !bytes.Equal(body, testdata.QeIdentityBody) {
				t.Fatalf("Get: %v", err)
			}
			if f.count() != 1 {
				t.Fatalf("%d fetches, want 1: the corrupt record was used", f.count())
			}
			// The refetch replaced it with a good record.
			stored, _ := ds.Get(context.Background(), collateralKey(qeIdentityURL))
			if r, err := decodeCollateralRecord(stored); err != nil || !bytes.Equal(r.Body, testdata.QeIdentityBody) {
				t.Fatalf("stored record after refetch: %v", err)
			}
		})
	}

	// And the good record itself is a hit.
	ds := dssync.MutexWrap(datastore.NewMapDatastore())
	_ = ds.Put(context.Background(), collateralKey(qeIdentityURL), valid)
	f := &countingFetch{fail: true}
	if _, _, err := NewCollateral(ds, "", f.get, func() time.Time { return sampleTime }).Get(qeIdentityURL); err != nil || f.count() != 0 {
		t.Fatalf("a valid record was not served: %v, %d fetches", err, f.count())
	}
}

func TestCollateralRecordRoundTrip(t *testing.T) {
	r := &collateralRecord{
		URL:     tcbInfoURL,
		Fetched: sampleTime,
		Expiry:  sampleTime.Add(30 * 24 * time.Hour),
		Header:  map[string][]string{"B": {"2", "3"}, "A": {"1"}, "Empty": {}},
		Body:    testdata.TcbInfoBody,
	}
	b, err := r.encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeCollateralRecord(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.URL != r.URL || !got.Fetched.Equal(r.Fetched) || !got.Expiry.Equal(r.Expiry) ||
		!reflect.DeepEqual(got.Header, r.Header) || !bytes.Equal(got.Body, r.Body) {
		t.Fatalf("round trip: %+v", got)
	}
	huge := *r
	huge.Body = make([]byte, maxCollateralBody+1)
	if _, err := huge.encode(); err == nil {
		t.Error("a body over the limit was encoded")
	}
}

// Verifications that all miss at once cause one fetch per URL, not one each: whether a
// goroutine arrives while the fetch is in flight or after, it does not fetch again.
func TestCollateralOneFetchAtATime(t *testing.T) {
	started, release := make(chan struct{}, 8), make(chan struct{})
	var mu sync.Mutex
	n := 0
	fetch := func(url string) (map[string][]string, []byte, error) {
		mu.Lock()
		n++
		mu.Unlock()
		started <- struct{}{}
		<-release
		return testcases.TestGetter.Get(url)
	}
	c := NewCollateral(nil, "", fetch, func() time.Time { return sampleTime })
	var wg sync.WaitGroup
	get := func() {
		if _, body, err := c.Get(tcbInfoURL); err != nil || !bytes.Equal(body, testdata.TcbInfoBody) {
			t.Error(err)
		}
	}
	wg.Go(get)
	<-started
	for range 7 {
		wg.Go(get)
	}
	close(release)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if n != 1 {
		t.Fatalf("%d fetches, want 1", n)
	}
}

func TestHTTPFetch(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/tdx/certification/v4/qe/identity":
			w.Header().Set("Sgx-Enclave-Identity-Issuer-Chain", "chain")
			w.Write(testdata.QeIdentityBody)
		case "/big":
			w.Write(make([]byte, maxCollateralBody+1))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	fetch := HTTPFetch(srv.Client())

	c := NewCollateral(nil, srv.URL, fetch, func() time.Time { return sampleTime })
	h, body, err := c.Get(qeIdentityURL)
	if err != nil || !bytes.Equal(body, testdata.QeIdentityBody) || h["Sgx-Enclave-Identity-Issuer-Chain"][0] != "chain" {
		t.Fatalf("Get through a local PCCS: %v", err)
	}
	if _, _, err := fetch(srv.URL + "/tdx/certification/v4/tcb?fmspc=000000000000"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("404: err = %v", err)
	}
	if _, _, err := fetch(srv.URL + "/big"); err == nil {
		t.Error("an oversized response was accepted")
	}
}

func FuzzCollateralRecord(f *testing.F) {
	r := &collateralRecord{URL: tcbInfoURL, Fetched: sampleTime, Expiry: sampleTime.Add(time.Hour),
		Header: testcases.TcbInfoHeader, Body: testdata.TcbInfoBody}
	b, _ := r.encode()
	f.Add(b)
	f.Add(b[:40])
	r.Header = map[string][]string{"A": {}, "B": {"x", "y"}}
	r.Body = nil
	b, _ = r.encode()
	f.Add(b)
	f.Add([]byte(recordMagic))
	f.Fuzz(func(t *testing.T, p []byte) {
		r, err := decodeCollateralRecord(p)
		if err != nil {
			if !errors.Is(err, errCorruptRecord) {
				t.Fatalf("error %v does not wrap errCorruptRecord", err)
			}
			return
		}
		// What decodes re-encodes to the same bytes: one record, one encoding.
		again, err := r.encode()
		if err != nil {
			t.Fatalf("decoded record does not encode: %v", err)
		}
		if !bytes.Equal(again, p) {
			t.Fatalf("re-encoding differs:\n%x\n%x", p, again)
		}
	})
}
