package tee

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-tdx-guest/abi"
	pb "github.com/google/go-tdx-guest/proto/tdx"
	testcases "github.com/google/go-tdx-guest/testing"
	"github.com/google/go-tdx-guest/testing/testdata"
	leveldb "github.com/ipfs/go-ds-leveldb"
)

// sampleTime is when the sample quote and go-tdx-guest's Intel-signed sample collateral are all
// valid (the time go-tdx-guest's own tests use). That QE identity and PCK CRL expire 2023-07-08.
var sampleTime = time.Date(2023, time.July, 1, 1, 0, 0, 0, time.UTC)

// countingFetch serves PCS responses keyed by Intel URLs (go-tdx-guest's Intel-signed samples
// unless src is set), counting requests; with fail set it fails every one, like a node offline.
type countingFetch struct {
	src  func(url string) (map[string][]string, []byte, error)
	mu   sync.Mutex
	n    int
	urls []string
	fail bool
}

func (f *countingFetch) get(url string) (map[string][]string, []byte, error) {
	f.mu.Lock()
	f.n++
	f.urls = append(f.urls, url)
	fail := f.fail
	f.mu.Unlock()
	if fail {
		return nil, nil, errors.New("network unreachable (test)")
	}
	if f.src != nil {
		return f.src(url)
	}
	return testcases.TestGetter.Get(url)
}

func (f *countingFetch) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

func openLevelDB(tb testing.TB, dir string) *leveldb.Datastore {
	tb.Helper()
	ds, err := leveldb.NewDatastore(dir, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return ds
}

func sampleQuote(tb testing.TB) *pb.QuoteV4 {
	tb.Helper()
	q, err := abi.QuoteToProto(testdata.RawQuote)
	if err != nil {
		tb.Fatal(err)
	}
	return q.(*pb.QuoteV4)
}

func checkSampleClaims(t *testing.T, c Claims, tcb TCBStatus) {
	t.Helper()
	b := sampleQuote(t).GetTdQuoteBody()
	if c.Kind != KindTDX || c.TCB != tcb {
		t.Errorf("kind %v, TCB %v; want tdx, %v", c.Kind, c.TCB, tcb)
	}
	for _, f := range []struct {
		name      string
		got, want []byte
	}{
		{"ReportData", c.ReportData[:], b.GetReportData()},
		{"MRTD", c.MRTD[:], b.GetMrTd()},
		{"MRConfigID", c.MRConfigID[:], b.GetMrConfigId()},
		{"MROwner", c.MROwner[:], b.GetMrOwner()},
		{"MROwnerConfig", c.MROwnerConfig[:], b.GetMrOwnerConfig()},
		{"RTMR0", c.RTMR[0][:], b.GetRtmrs()[0]},
		{"RTMR1", c.RTMR[1][:], b.GetRtmrs()[1]},
		{"RTMR2", c.RTMR[2][:], b.GetRtmrs()[2]},
		{"RTMR3", c.RTMR[3][:], b.GetRtmrs()[3]},
	} {
		if !bytes.Equal(f.got, f.want) {
			t.Errorf("%s = %x, quote has %x", f.name, f.got, f.want)
		}
	}
	// The sample TD is not a debug TD: TDATTRIBUTES 0000004000000000.
	if want := b.GetTdAttributes()[0]&1 == 1; c.Debug != want || c.Debug {
		t.Errorf("Debug = %v, TDATTRIBUTES %x", c.Debug, b.GetTdAttributes())
	}
}

// The sample quote's platform is older than every TCB level in Intel's sample TCB info (CPUSVN
// 03030202020100020000000000000000 and TEE TCB SVN 030004... against levels needing 0505020203010003
// and 030005...), so with Intel's own collateral it can never be UpToDate. fakeIntel signs
// collateral that rates it as a test wants, with a stand-in for Intel's TCB signing key under a
// test root that the verifier trusts beside Intel's real one. The quote and its PCK chain stay
// Intel's.
type fakeIntel struct {
	roots *x509.CertPool
	resp  map[string]testcases.HTTPResponse
}

type fakeRating struct {
	platform string // TCB info status for the sample's SVNs
	qe       string // QE identity status
	qeISVSVN int    // the lowest QE ISVSVN the QE identity lists (the sample's QE has 4)
}

// Validity of the fake collateral: the QE identity expires first.
var (
	fakeTCBInfoNext    = sampleTime.Add(30 * 24 * time.Hour)
	fakeQEIdentityNext = sampleTime.Add(7 * 24 * time.Hour)
)

func newFakeIntel(tb testing.TB, r fakeRating) *fakeIntel {
	tb.Helper()
	must := func(err error) {
		if err != nil {
			tb.Fatal(err)
		}
	}
	rootKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	signKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	name := func(cn string) pkix.Name {
		return pkix.Name{CommonName: cn, Organization: []string{"Not Intel (test)"}}
	}
	rootTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: name("Intel SGX Root CA"),
		NotBefore: sampleTime.AddDate(-1, 0, 0), NotAfter: sampleTime.AddDate(1, 0, 0),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, &rootKey.PublicKey, rootKey)
	must(err)
	root, err := x509.ParseCertificate(rootDER)
	must(err)
	signDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: name("Intel SGX TCB Signing"),
		NotBefore: rootTmpl.NotBefore, NotAfter: rootTmpl.NotAfter, KeyUsage: x509.KeyUsageDigitalSignature,
	}, root, &signKey.PublicKey, rootKey)
	must(err)
	chain := url.QueryEscape(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: signDER})) +
		string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rootDER})))

	// sign wraps a JSON document as PCS does: {"<name>": doc, "signature": hex(r||s)}.
	sign := func(name string, doc any) []byte {
		raw, err := json.Marshal(doc)
		must(err)
		h := sha256.Sum256(raw)
		rr, ss, err := ecdsa.Sign(rand.Reader, signKey, h[:])
		must(err)
		sig := append(rr.FillBytes(make([]byte, 32)), ss.FillBytes(make([]byte, 32))...)
		return []byte(`{"` + name + `":` + string(raw) + `,"signature":"` + hex.EncodeToString(sig) + `"}`)
	}
	svns := func(v ...int) []map[string]int {
		out := make([]map[string]int, 16)
		for i := range out {
			out[i] = map[string]int{"svn": 0}
			if i < len(v) {
				out[i]["svn"] = v[i]
			}
		}
		return out
	}
	tcbInfo := sign("tcbInfo", map[string]any{
		"id": "TDX", "version": 3, "issueDate": sampleTime.Add(-24 * time.Hour), "nextUpdate": fakeTCBInfoNext,
		"fmspc": "50806f000000", "pceId": "0000", "tcbType": 0, "tcbEvaluationDataNumber": 15,
		"tdxModule": map[string]string{"mrsigner": strings.Repeat("00", 48), "attributes": "0000000000000000", "attributesMask": "FFFFFFFFFFFFFFFF"},
		"tcbLevels": []any{map[string]any{
			"tcb": map[string]any{
				"sgxtcbcomponents": svns(3, 3, 2, 2, 2, 1, 0, 2),
				"pcesvn":           11,
				"tdxtcbcomponents": svns(3, 0, 4),
			},
			"tcbDate": "2023-02-15T00:00:00Z", "tcbStatus": r.platform,
		}},
	})
	qeIdentity := sign("enclaveIdentity", map[string]any{
		"id": "TD_QE", "version": 2, "issueDate": sampleTime.Add(-24 * time.Hour), "nextUpdate": fakeQEIdentityNext,
		"tcbEvaluationDataNumber": 15, "miscselect": "00000000", "miscselectMask": "FFFFFFFF",
		"attributes": "11000000000000000000000000000000", "attributesMask": "FBFFFFFFFFFFFFFF0000000000000000",
		"mrsigner": "DC9E2A7C6F948F17474E34A7FC43ED030F7C1563F1BABDDF6340C82E0E54A8C5", "isvprodid": 2,
		"tcbLevels": []any{map[string]any{"tcb": map[string]int{"isvsvn": r.qeISVSVN}, "tcbDate": "2023-02-15T00:00:00Z", "tcbStatus": r.qe}},
	})

	roots := x509.NewCertPool()
	roots.AddCert(root)
	roots.AppendCertsFromPEM([]byte(intelRootPEM)) // the quote's PCK chain still ends in Intel's root
	return &fakeIntel{roots: roots, resp: map[string]testcases.HTTPResponse{
		tcbInfoURL:    {Header: map[string][]string{"Tcb-Info-Issuer-Chain": {chain}}, Body: tcbInfo},
		qeIdentityURL: {Header: map[string][]string{"Sgx-Enclave-Identity-Issuer-Chain": {chain}}, Body: qeIdentity},
	}}
}

func (f *fakeIntel) get(url string) (map[string][]string, []byte, error) {
	return (&testcases.Getter{Responses: f.resp}).Get(url)
}

var upToDate = fakeRating{platform: "UpToDate", qe: "UpToDate", qeISVSVN: 4}

func TestTDXVerifySampleWithCollateral(t *testing.T) {
	ds := openLevelDB(t, t.TempDir())
	defer ds.Close()
	fake := newFakeIntel(t, upToDate)
	f := &countingFetch{src: fake.get}
	v := &TDXVerifier{Collateral: NewCollateral(ds, "", f.get, func() time.Time { return sampleTime }), roots: fake.roots}
	c, err := v.Verify(testdata.RawQuote, sampleTime)
	if err != nil {
		t.Fatalf("sample quote: %v", err)
	}
	checkSampleClaims(t, c, TCBUpToDate)
	if n := f.count(); n != 2 { // TCB info, QE identity
		t.Errorf("%d fetches for a cold cache, want 2: %v", n, f.urls)
	}
	if _, err := v.Verify(testdata.RawQuote, sampleTime); err != nil {
		t.Fatal(err)
	}
	if n := f.count(); n != 2 {
		t.Errorf("a warm cache fetched again: %d fetches", n)
	}
}

// With Intel's real sample collateral and CRLs every signature, chain and revocation check
// passes, and the quote is refused on its TCB level alone.
func TestTDXVerifySampleIntelCollateral(t *testing.T) {
	ds := openLevelDB(t, t.TempDir())
	defer ds.Close()
	f := &countingFetch{}
	v := &TDXVerifier{Collateral: NewCollateral(ds, "", f.get, func() time.Time { return sampleTime }), CheckRevocations: true}
	for range 2 {
		_, err := v.Verify(testdata.RawQuote, sampleTime)
		var te *TCBError
		if !errors.As(err, &te) || te.Status != TCBOutOfDate || !errors.Is(err, ErrTCB) ||
			!strings.Contains(err.Error(), "no matching TCB level") {
			t.Fatalf("err = %v, want a TCBError: OutOfDate, no matching TCB level", err)
		}
	}
	if n := f.count(); n != 4 { // TCB info, QE identity, PCK CRL, root CA CRL; the second run is cached
		t.Errorf("%d fetches, want 4: %v", n, f.urls)
	}
}

func TestTDXVerifyTCBStatusFromCollateral(t *testing.T) {
	for _, tc := range []struct {
		r    fakeRating
		want TCBStatus
		what string
	}{
		{fakeRating{platform: "SWHardeningNeeded", qe: "UpToDate", qeISVSVN: 4}, TCBSWHardeningNeeded, "TDX TCB info"},
		{fakeRating{platform: "OutOfDateConfigurationNeeded", qe: "UpToDate", qeISVSVN: 4}, TCBOutOfDateConfigurationNeeded, "TDX TCB info"},
		{fakeRating{platform: "UpToDate", qe: "OutOfDate", qeISVSVN: 4}, TCBOutOfDate, "QE Identity"},
		{fakeRating{platform: "UpToDate", qe: "UpToDate", qeISVSVN: 5}, TCBOutOfDate, "QE Identity"},
	} {
		fake := newFakeIntel(t, tc.r)
		v := &TDXVerifier{Collateral: NewCollateral(nil, "", fake.get, func() time.Time { return sampleTime }), roots: fake.roots}
		_, err := v.Verify(testdata.RawQuote, sampleTime)
		var te *TCBError
		if !errors.As(err, &te) || te.Status != tc.want || !strings.Contains(err.Error(), tc.what) {
			t.Errorf("%+v: err = %v, want a TCBError with %v about the %s", tc.r, err, tc.want, tc.what)
		}
	}
}

func TestTDXVerifyOfflineWarmCache(t *testing.T) {
	fake := newFakeIntel(t, upToDate)
	for _, tc := range []struct {
		name    string
		src     func(string) (map[string][]string, []byte, error)
		crls    bool
		verdict func(error) bool // what a verification with valid collateral says
		expires time.Time        // when the first cached response expires
	}{
		{"fake UpToDate collateral", fake.get, false, func(err error) bool { return err == nil }, fakeQEIdentityNext},
		{"Intel collateral and CRLs", nil, true, func(err error) bool { return errors.Is(err, ErrTCB) },
			time.Date(2023, time.July, 8, 7, 24, 59, 0, time.UTC)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			ds := openLevelDB(t, dir)
			v := &TDXVerifier{
				Collateral:       NewCollateral(ds, "", (&countingFetch{src: tc.src}).get, func() time.Time { return sampleTime }),
				CheckRevocations: tc.crls,
				roots:            fake.roots,
			}
			if _, err := v.Verify(testdata.RawQuote, sampleTime); !tc.verdict(err) {
				t.Fatal(err)
			}
			if err := ds.Close(); err != nil {
				t.Fatal(err)
			}

			// A restarted node, offline, with the same datastore.
			ds = openLevelDB(t, dir)
			defer ds.Close()
			offline := &countingFetch{fail: true}
			now := sampleTime
			v.Collateral = NewCollateral(ds, "", offline.get, func() time.Time { return now })
			if _, err := v.Verify(testdata.RawQuote, now); !tc.verdict(err) {
				t.Fatalf("offline with a fresh cache: %v", err)
			}
			if n := offline.count(); n != 0 {
				t.Errorf("fresh cache: %d fetches, want 0", n)
			}

			// Past the refresh interval it tries the network, fails, and serves the valid copy.
			now = sampleTime.Add(2 * CollateralRefresh)
			if _, err := v.Verify(testdata.RawQuote, now); !tc.verdict(err) {
				t.Fatalf("offline with a stale but valid cache: %v", err)
			}
			if offline.count() == 0 {
				t.Error("a cache past its refresh interval did not try to refetch")
			}

			// Past the QE identity's nextUpdate nothing valid is left for it.
			now = tc.expires.Add(time.Minute)
			_, err := v.Verify(testdata.RawQuote, now)
			if !errors.Is(err, ErrTDXCollateral) {
				t.Fatalf("offline with expired collateral: err = %v, want ErrTDXCollateral", err)
			}
			for _, want := range []string{"tdx: collateral", "qe/identity", "expired", "network unreachable"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
		})
	}
}

func TestTDXVerifyNoCollateral(t *testing.T) {
	v := &TDXVerifier{}
	c, err := v.Verify(testdata.RawQuote, sampleTime)
	if err != nil {
		t.Fatal(err)
	}
	checkSampleClaims(t, c, TCBUnknown)
}

// flipped returns the sample quote with one byte changed at the first occurrence of field.
func flipped(t *testing.T, field []byte, delta int) []byte {
	t.Helper()
	q := bytes.Clone(testdata.RawQuote)
	i := bytes.Index(q, field)
	if i < 0 || bytes.Count(q, field) != 1 {
		t.Fatalf("field %x not found exactly once in the quote", field)
	}
	q[i+delta] ^= 0x01
	return q
}

func TestTDXVerifyRejectsTampering(t *testing.T) {
	q := sampleQuote(t)
	b := q.GetTdQuoteBody()
	sd := q.GetSignedData()
	qeReport := sd.GetCertificationData().GetQeReportCertificationData().GetQeReport()
	chain := sd.GetCertificationData().GetQeReportCertificationData().GetPckCertificateChainData().GetPckCertChain()
	// A base64 letter in the PCK leaf certificate's signature, a few lines before its end.
	end := bytes.Index(chain, []byte("-----END CERTIFICATE-----"))
	leafSig := chain[end-40 : end-8]

	for _, tc := range []struct {
		name  string
		quote []byte
		want  error
		words string
	}{
		{"report data", flipped(t, b.GetReportData(), 5), ErrTDXSignature, "tdx: quote signature"},
		{"MRTD", flipped(t, b.GetMrTd(), 0), ErrTDXSignature, "tdx: quote signature"},
		{"RTMR0", flipped(t, b.GetRtmrs()[0], 47), ErrTDXSignature, "tdx: quote signature"},
		{"quote signature", flipped(t, sd.GetSignature(), 10), ErrTDXSignature, "tdx: quote signature"},
		{"QE report", flipped(t, qeReport.GetMrEnclave(), 3), ErrTDXSignature, "QE report"},
		{"PCK leaf certificate", flipped(t, leafSig, 4), ErrTDXChain, "tdx: PCK chain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &countingFetch{}
			v := &TDXVerifier{Collateral: NewCollateral(nil, "", f.get, func() time.Time { return sampleTime })}
			_, err := v.Verify(tc.quote, sampleTime)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.words) {
				t.Fatalf("err = %v, want %v mentioning %q", err, tc.want, tc.words)
			}
			if n := f.count(); n != 0 {
				t.Errorf("a forged quote made the verifier fetch collateral %d times", n)
			}
		})
	}
}

func TestTDXVerifyMalformed(t *testing.T) {
	v := &TDXVerifier{}
	for _, q := range [][]byte{nil, {4, 0}, testdata.RawQuote[:600], make([]byte, MaxEvidenceSize+1)} {
		if _, err := v.Verify(q, sampleTime); !errors.Is(err, ErrMalformed) {
			t.Errorf("%d byte quote: err = %v, want ErrMalformed", len(q), err)
		}
	}
}

// go-tdx-guest v0.3.1's parser panics on quotes whose sizes lie (slice bounds out of range);
// Verify must turn that into an error, or any peer could crash the node.
func TestTDXVerifyParserPanicIsAnError(t *testing.T) {
	q := bytes.Clone(testdata.RawQuote)
	binary.LittleEndian.PutUint32(q[632:], 1) // signed data size, right after header and TD body
	_, err := (&TDXVerifier{}).Verify(q, sampleTime)
	if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "panicked") {
		t.Fatalf("err = %v, want ErrMalformed from a recovered panic", err)
	}
}

func TestTDXVerifyExpiredChain(t *testing.T) {
	v := &TDXVerifier{}
	_, err := v.Verify(testdata.RawQuote, time.Date(2053, time.July, 1, 0, 0, 0, 0, time.UTC))
	if !errors.Is(err, ErrTDXChain) || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("err = %v, want ErrTDXChain saying a certificate expired", err)
	}
}

// Without collateral there is nothing to check revocations with: TCB is unknown, which the
// default policy refuses.
func TestTDXVerifyRevocationsWithoutCollateral(t *testing.T) {
	c, err := (&TDXVerifier{CheckRevocations: true}).Verify(testdata.RawQuote, sampleTime)
	if err != nil {
		t.Fatal(err)
	}
	checkSampleClaims(t, c, TCBUnknown)
}

func TestClassifyCollateralErr(t *testing.T) {
	for _, tc := range []struct {
		msg  string
		want TCBStatus // TCBUnknown: not a TCBError
	}{
		{`TDX TCB info reported by Intel PCS failed TCB status check: TCB Status is not "UpToDate", found "OutOfDate"`, TCBOutOfDate},
		{`TDX TCB info reported by Intel PCS failed TCB status check: TDX Module TCB Status is not "UpToDate", found "SWHardeningNeeded"`, TCBSWHardeningNeeded},
		{`QE Identity reported by Intel PCS failed TCB status check: TCB Status is not "UpToDate", found "Revoked"`, TCBRevoked},
		{`QE Identity reported by Intel PCS failed TCB status check: unable to find latest status of TCB, it is now OutOfDate`, TCBOutOfDate},
		{`TDX TCB info reported by Intel PCS failed TCB status check: TCB Status is not "UpToDate", found "TDRelaunchAdvised"`, TCBUnknown},
		{`could not verify collaterals obtained: tcbInfo has expired`, TCBUnknown},
	} {
		err := classifyCollateralErr(errors.New(tc.msg))
		var te *TCBError
		if tc.want == TCBUnknown {
			if errors.As(err, &te) || !errors.Is(err, ErrTDXCollateral) {
				t.Errorf("%q: got %v, want a plain collateral error", tc.msg, err)
			}
			continue
		}
		if !errors.As(err, &te) || te.Status != tc.want || !errors.Is(err, ErrTCB) {
			t.Errorf("%q: got %#v, want a TCBError with %v", tc.msg, err, tc.want)
			continue
		}
		if !strings.Contains(err.Error(), tc.want.String()) {
			t.Errorf("error %q does not name the status", err)
		}
	}
	err := classifyCollateralErr(errors.New("PCK Leaf certificate in PCK certificate chain was revoked at 2024-01-01"))
	if !errors.Is(err, ErrTDXChain) || !strings.Contains(err.Error(), "revoked") {
		t.Errorf("revoked PCK: %v", err)
	}
}

// The root we embed is the root the sample quote's chain ends in (and go-tdx-guest's).
func TestIntelRootIsSampleChainRoot(t *testing.T) {
	chain := sampleQuote(t).GetSignedData().GetCertificationData().GetQeReportCertificationData().GetPckCertificateChainData().GetPckCertChain()
	var last *pem.Block
	for rest := chain; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		last = b
	}
	ours, _ := pem.Decode([]byte(intelRootPEM))
	if last == nil || !bytes.Equal(last.Bytes, ours.Bytes) {
		t.Fatal("the embedded Intel root differs from the sample chain's root")
	}
	cert, err := x509.ParseCertificate(ours.Bytes)
	if err != nil || cert.Subject.CommonName != "Intel SGX Root CA" {
		t.Fatalf("embedded root: %v %v", cert.Subject, err)
	}
}

func TestNewTDXProviderOutsideTDX(t *testing.T) {
	p, err := NewTDXProvider()
	if err == nil {
		t.Skipf("this machine is a TDX guest (%v): nothing to check", p.Kind())
	}
	for _, want := range []string{"no TDX here", "configfs-tsm", "/dev/tdx_guest", "simulated TEE"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestTDXProviderKind(t *testing.T) {
	var p Provider = &TDXProvider{}
	if p.Kind() != KindTDX {
		t.Fatal(p.Kind())
	}
}

func FuzzTDXVerify(f *testing.F) {
	f.Add(testdata.RawQuote)
	f.Add(testdata.RawQuote[:len(testdata.RawQuote)/2])
	f.Add(testdata.RawQuote[:1100])
	f.Add([]byte{4, 0, 2, 0, 0x81, 0, 0, 0})
	v := &TDXVerifier{}
	f.Fuzz(func(t *testing.T, q []byte) {
		c, err := v.Verify(q, sampleTime)
		if err == nil && (c.Kind != KindTDX || c.TCB != TCBUnknown) {
			t.Fatalf("verified with claims %+v", c)
		}
	})
}

// BenchmarkVerifyTDXWarm verifies the sample quote with every collateral response already
// cached (in leveldb and in memory): "UpToDate" with fake-signed TCB info and QE identity, and
// "IntelCRLs" with Intel's sample collateral and both CRLs, which runs every check and ends
// in the sample platform's TCB refusal.
func BenchmarkVerifyTDXWarm(b *testing.B) {
	fake := newFakeIntel(b, upToDate)
	for _, bc := range []struct {
		name    string
		src     func(string) (map[string][]string, []byte, error)
		crls    bool
		verdict func(error) bool
	}{
		{"UpToDate", fake.get, false, func(err error) bool { return err == nil }},
		{"IntelCRLs", nil, true, func(err error) bool { return errors.Is(err, ErrTCB) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ds := openLevelDB(b, b.TempDir())
			defer ds.Close()
			f := &countingFetch{src: bc.src}
			v := &TDXVerifier{
				Collateral:       NewCollateral(ds, "", f.get, func() time.Time { return sampleTime }),
				CheckRevocations: bc.crls,
				roots:            fake.roots,
			}
			if _, err := v.Verify(testdata.RawQuote, sampleTime); !bc.verdict(err) {
				b.Fatal(err)
			}
			before := f.count()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(testdata.RawQuote, sampleTime); !bc.verdict(err) {
					b.Fatal(err)
				}
			}
			if n := f.count() - before; n != 0 {
				b.Fatalf("%d fetches with a warm cache", n)
			}
		})
	}
}

func BenchmarkVerifyTDXNoCollateral(b *testing.B) {
	v := &TDXVerifier{}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(testdata.RawQuote, sampleTime); err != nil {
			b.Fatal(err)
		}
	}
}
