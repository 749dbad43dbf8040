package tee

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/google/go-tdx-guest/abi"
	"github.com/google/go-tdx-guest/client"
	pb "github.com/google/go-tdx-guest/proto/tdx"
	"github.com/google/go-tdx-guest/verify"
	"github.com/google/go-tdx-guest/verify/trust"
)

// What a TDX quote failed, so callers can tell a forged quote from stale collateral.
// Malformed quotes wrap ErrMalformed instead; a TCB below UpToDate is a *TCBError.
var (
	// ErrTDXSignature: the quote or its QE report is not signed by the keys it names.
	ErrTDXSignature = errors.New("tdx: quote signature")
	// ErrTDXChain: the PCK certificate chain does not lead to Intel's root, has expired, or is revoked.
	ErrTDXChain = errors.New("tdx: PCK chain")
	// ErrTDXCollateral: Intel's collateral is unavailable, expired, badly signed, or does not fit the quote.
	ErrTDXCollateral = errors.New("tdx: collateral")
)

// TCBError is a quote that verified except that Intel's collateral rates its TCB below UpToDate.
//
// go-tdx-guest stops at the first level that is not UpToDate (platform, TDX module or QE), so
// the checks after it did not run: the quote is refused whatever the policy's MinTCB says.
type TCBError struct {
	Status TCBStatus // the status Intel's collateral gives
	Detail string    // go-tdx-guest's words: which component the status is for
}

// Error names the status and the component it was found for.
func (e *TCBError) Error() string {
	return fmt.Sprintf("tdx: collateral: TCB status is %v, only UpToDate is accepted (%s)", e.Status, e.Detail)
}

// Is makes a TCBError match ErrTCB, the policy's TCB rejection.
func (e *TCBError) Is(target error) bool { return target == ErrTCB }

// TDXVerifier checks Intel TDX (version 4) quotes against Intel's SGX root CA.
type TDXVerifier struct {
	// Collateral fetches Intel's TCB info, QE identity and CRLs (usually a *Collateral). Nil
	// checks the signatures and PCK chain only, and Claims.TCB is then TCBUnknown.
	Collateral trust.HTTPSGetter
	// CheckRevocations also fetches the PCK and root CA CRLs through Collateral and refuses
	// revoked certificates. Without Collateral it does nothing (and TCB stays TCBUnknown).
	CheckRevocations bool

	roots *x509.CertPool // trust anchors; nil: Intel's SGX root CA only (tests add their own)
}

// Verify checks quote's signature, its QE report, the PCK chain up to Intel's root and, with
// Collateral, Intel's TCB info and QE identity, all at time now; it returns what the quote says.
//
// The signatures and chain are checked before any collateral is fetched, so a forged quote
// never makes this node go to the network (a PCK certificate names the FMSPC to fetch for).
func (v *TDXVerifier) Verify(quote []byte, now time.Time) (Claims, error) {
	if len(quote) > MaxEvidenceSize {
		return Claims{}, fmt.Errorf("%w: TDX quote of %d bytes is over the %d byte limit", ErrMalformed, len(quote), MaxEvidenceSize)
	}
	parsed, err := parseQuote(quote)
	if err != nil {
		return Claims{}, err
	}
	// Our own root pool: with none, go-tdx-guest logs a warning to stdout on every call.
	roots := v.roots
	if roots == nil {
		roots = intelRoots()
	}
	if err := tdxQuote(parsed, &verify.Options{Now: now, TrustedRoots: roots}, ErrMalformed); err != nil {
		return Claims{}, classifyQuoteErr(err)
	}
	c := claimsOf(parsed.GetTdQuoteBody())
	if c.Platform, err = platformOf(parsed); err != nil {
		return Claims{}, err
	}
	if v.Collateral == nil {
		return c, nil
	}
	// go-tdx-guest has no entry point for the collateral checks alone, so this repeats the
	// signature checks; Verifier caches results per evidence digest, so it is paid once a quote.
	err = tdxQuote(parsed, &verify.Options{
		Now:              now,
		TrustedRoots:     roots,
		GetCollateral:    true,
		CheckRevocations: v.CheckRevocations,
		Getter:           v.Collateral,
	}, ErrTDXCollateral)
	if err != nil {
		return Claims{}, classifyCollateralErr(err)
	}
	// go-tdx-guest refuses every status but UpToDate, so passing means UpToDate.
	c.TCB = TCBUpToDate
	return c, nil
}

// parseQuote turns raw bytes into go-tdx-guest's QuoteV4, refusing anything else.
func parseQuote(quote []byte) (q *pb.QuoteV4, err error) {
	defer recoverAs(&err, ErrMalformed, "parsing the quote")
	a, err := abi.QuoteToProto(quote)
	if err != nil {
		return nil, fmt.Errorf("%w: TDX quote: %v", ErrMalformed, err)
	}
	q, ok := a.(*pb.QuoteV4)
	if !ok {
		return nil, fmt.Errorf("%w: TDX quote: unsupported format %T", ErrMalformed, a)
	}
	if q.GetHeader().GetTeeType() != abi.TeeTDX {
		return nil, fmt.Errorf("%w: TDX quote: TEE type %#x is not TDX", ErrMalformed, q.GetHeader().GetTeeType())
	}
	return q, nil
}

// tdxQuote is verify.TdxQuote, with a panic on hostile input turned into an error wrapping
// blame: a quote comes from a peer, and one bad peer must not bring the node down.
func tdxQuote(q *pb.QuoteV4, opts *verify.Options, blame error) (err error) {
	defer recoverAs(&err, blame, "verifying the quote")
	return verify.TdxQuote(q, opts)
}

// recoverAs turns a panic into an error wrapping blame. go-tdx-guest v0.3.1's parser panics on
// quotes whose size fields lie (slice bounds out of range).
func recoverAs(err *error, blame error, what string) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%w: go-tdx-guest panicked %s: %v", blame, what, r)
	}
}

// go-tdx-guest formats its errors with %v, so only their words tell what failed. These are
// the prefixes of the errors its signature checks (verifyQuote) return, in v0.3.1.
var signaturePrefixes = []string{
	"attestation key in the quote is invalid",
	"unable to convert QuoteV4's signature",
	"could not get message digest",
	"error verifying QE report signature",
	"error verifying QE report data",
}

// classifyQuoteErr names what failed in a verification without collateral: the quote's own
// signatures, or (everything else go-tdx-guest checks then) its PCK certificate chain.
func classifyQuoteErr(err error) error {
	if errors.Is(err, ErrMalformed) {
		return err
	}
	msg := err.Error()
	if errors.Is(err, verify.ErrHashVerificationFail) {
		return fmt.Errorf("%w: the header and TD body do not match the attestation key's signature (%v)", ErrTDXSignature, err)
	}
	for _, p := range signaturePrefixes {
		if strings.HasPrefix(msg, p) {
			return fmt.Errorf("%w: %v", ErrTDXSignature, err)
		}
	}
	return fmt.Errorf("%w: %v", ErrTDXChain, err)
}

// tcbStatusRE matches go-tdx-guest's TCB status refusals (platform, TDX module and QE).
var tcbStatusRE = regexp.MustCompile(`TCB Status is not "UpToDate", found "([A-Za-z]+)"`)

// classifyCollateralErr names what failed once the quote itself verified: a revoked PCK
// chain, a TCB below UpToDate, or the collateral (unavailable, expired, badly signed, or not
// matching the quote).
func classifyCollateralErr(err error) error {
	if errors.Is(err, ErrTDXCollateral) {
		return err
	}
	msg := err.Error()
	if strings.Contains(msg, "in PCK certificate chain was revoked") {
		return fmt.Errorf("%w: revoked: %v", ErrTDXChain, err)
	}
	if m := tcbStatusRE.FindStringSubmatch(msg); m != nil {
		if s, perr := ParseTCBStatus(m[1]); perr == nil {
			return &TCBError{Status: s, Detail: msg}
		}
	}
	// Older than every level Intel lists (Intel's QVL says "TCB level not supported"): go-tdx-guest
	// calls it OutOfDate for the QE; we do the same for the platform.
	if strings.Contains(msg, verify.ErrTcbStatus.Error()) || strings.Contains(msg, "no matching TCB level found") {
		return &TCBError{Status: TCBOutOfDate, Detail: msg + " (older than every TCB level in Intel's collateral)"}
	}
	return fmt.Errorf("%w: %v", ErrTDXCollateral, err)
}

// claimsOf copies the measurements out of a TD quote body whose sizes abi.CheckQuoteV4 checked.
func claimsOf(b *pb.TDQuoteBody) Claims {
	c := Claims{Kind: KindTDX, TCB: TCBUnknown}
	copy(c.ReportData[:], b.GetReportData())
	copy(c.MRTD[:], b.GetMrTd())
	copy(c.MRConfigID[:], b.GetMrConfigId())
	copy(c.MROwner[:], b.GetMrOwner())
	copy(c.MROwnerConfig[:], b.GetMrOwnerConfig())
	for i, r := range b.GetRtmrs() {
		if i < len(c.RTMR) {
			copy(c.RTMR[i][:], r)
		}
	}
	// TDATTRIBUTES is little-endian; bit 0 is DEBUG (the host may read and write TD memory).
	if a := b.GetTdAttributes(); len(a) > 0 && a[0]&1 != 0 {
		c.Debug = true
	}
	return c
}

// intelRootPEM is Intel's SGX Root CA, the trust anchor of every PCK chain; the same
// certificate go-tdx-guest embeds (verify/trusted_root.pem), valid until 2049.
const intelRootPEM = `-----BEGIN CERTIFICATE-----
MIICjzCCAjSgAwIBAgIUImUM1lqdNInzg7SVUr9QGzknBqwwCgYIKoZIzj0EAwIw
aDEaMBgGA1UEAwwRSW50ZWwgU0dYIFJvb3QgQ0ExGjAYBgNVBAoMEUludGVsIENv
cnBvcmF0aW9uMRQwEgYDVQQHDAtTYW50YSBDbGFyYTELMAkGA1UECAwCQ0ExCzAJ
BgNVBAYTAlVTMB4XDTE4MDUyMTEwNDUxMFoXDTQ5MTIzMTIzNTk1OVowaDEaMBgG
A1UEAwwRSW50ZWwgU0dYIFJvb3QgQ0ExGjAYBgNVBAoMEUludGVsIENvcnBvcmF0
aW9uMRQwEgYDVQQHDAtTYW50YSBDbGFyYTELMAkGA1UECAwCQ0ExCzAJBgNVBAYT
AlVTMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEC6nEwMDIYZOj/iPWsCzaEKi7
1OiOSLRFhWGjbnBVJfVnkY4u3IjkDYYL0MxO4mqsyYjlBalTVYxFP2sJBK5zlKOB
uzCBuDAfBgNVHSMEGDAWgBQiZQzWWp00ifODtJVSv1AbOScGrDBSBgNVHR8ESzBJ
MEegRaBDhkFodHRwczovL2NlcnRpZmljYXRlcy50cnVzdGVkc2VydmljZXMuaW50
ZWwuY29tL0ludGVsU0dYUm9vdENBLmRlcjAdBgNVHQ4EFgQUImUM1lqdNInzg7SV
Ur9QGzknBqwwDgYDVR0PAQH/BAQDAgEGMBIGA1UdEwEB/wQIMAYBAf8CAQEwCgYI
KoZIzj0EAwIDSQAwRgIhAOW/5QkR+S9CiSDcNoowLuPRLsWGf/Yi7GSX94BgwTwg
AiEA4J0lrHoMs+Xo5o/sX6O9QWxHRAvZUGOdRQ7cvqRXaqI=
-----END CERTIFICATE-----
`

// intelRoots is a pool holding only Intel's SGX root CA, parsed once and never changed.
var intelRoots = sync.OnceValue(func() *x509.CertPool {
	blk, _ := pem.Decode([]byte(intelRootPEM))
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		panic("tee: Intel's embedded root certificate does not parse: " + err.Error())
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool
})

// TDXProvider produces TDX quotes inside a TD, through configfs-tsm or /dev/tdx_guest.
type TDXProvider struct {
	mu sync.Mutex // one quote at a time: the quoting path is a single device
	qp client.QuoteProvider
}

// NewTDXProvider finds this TD's quoting interface: configfs-tsm (Linux 6.7+), else the older
// /dev/tdx_guest device. Outside a TD it fails, saying so.
func NewTDXProvider() (*TDXProvider, error) {
	var tsmErr error
	qp, err := client.GetQuoteProvider()
	if err == nil {
		if tsmErr = qp.IsSupported(); tsmErr == nil {
			return &TDXProvider{qp: qp}, nil
		}
	} else {
		tsmErr = err
	}
	dev, err := client.OpenDevice()
	if err != nil {
		return nil, fmt.Errorf("tdx: no TDX here: neither configfs-tsm (%v) nor /dev/tdx_guest (%v) is available; this machine is not an Intel TDX guest, use the simulated TEE for development", tsmErr, err)
	}
	dev.Close()
	return &TDXProvider{}, nil
}

// Kind returns KindTDX.
func (p *TDXProvider) Kind() Kind { return KindTDX }

// Attest asks the TDX module for a quote whose report data is reportData.
func (p *TDXProvider) Attest(reportData [64]byte) (Evidence, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var raw []byte
	var err error
	if p.qp != nil {
		raw, err = p.qp.GetRawQuote(reportData)
	} else {
		raw, err = quoteFromDevice(reportData)
	}
	if err != nil {
		return Evidence{}, fmt.Errorf("tdx: getting a quote: %w", err)
	}
	// The quote must carry what we asked for: a mix-up here would bind the wrong keys.
	q, err := parseQuote(raw)
	if err != nil {
		return Evidence{}, fmt.Errorf("tdx: the quote this TD produced does not parse: %w", err)
	}
	if !bytes.Equal(q.GetTdQuoteBody().GetReportData(), reportData[:]) {
		return Evidence{}, errors.New("tdx: the quote this TD produced carries other report data than requested")
	}
	return Evidence{Kind: KindTDX, Quote: raw}, nil
}

// quoteFromDevice gets a quote through /dev/tdx_guest, opened for this one request.
func quoteFromDevice(reportData [64]byte) ([]byte, error) {
	dev, err := client.OpenDevice()
	if err != nil {
		return nil, err
	}
	defer dev.Close()
	return client.GetRawQuote(dev, reportData)
}
