package tee

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-tdx-guest/abi"
	"github.com/google/go-tdx-guest/pcs"
	"github.com/google/go-tdx-guest/testing/testdata"
)

// samplePPID is the PPID in the SGX extensions of the sample quote's PCK leaf certificate.
const samplePPID = "ppid:089ddfdb9c0359c82a3bc7719239574e"

func TestTDXPlatformFromPCK(t *testing.T) {
	c, err := (&TDXVerifier{}).Verify(testdata.RawQuote, sampleTime)
	if err != nil {
		t.Fatal(err)
	}
	if c.Platform != samplePPID {
		t.Fatalf("Platform = %q, want %q", c.Platform, samplePPID)
	}
}

// reissuedSample is the sample quote with its PCK chain replaced by a test chain (root, PCK
// platform CA, PCK leaf named as Intel names them) whose leaf copies the real leaf's extensions
// with the SGX extensions passed through edit, and whose key re-signs the QE report. The TD
// body and its signature stay Intel's. It returns the quote and a pool trusting the test root.
func reissuedSample(t *testing.T, edit func([]asn1.RawValue) []asn1.RawValue) ([]byte, *x509.CertPool) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	q := sampleQuote(t)
	qe := q.GetSignedData().GetCertificationData().GetQeReportCertificationData()
	blk, _ := pem.Decode(qe.GetPckCertificateChainData().GetPckCertChain())
	orig, err := x509.ParseCertificate(blk.Bytes)
	must(err)
	exts := slices.Clone(orig.Extensions)
	for i, e := range exts {
		if e.Id.Equal(pcs.OidSgxExtension) {
			var sgx []asn1.RawValue
			_, err := asn1.Unmarshal(e.Value, &sgx)
			must(err)
			exts[i].Value, err = asn1.Marshal(edit(sgx))
			must(err)
		}
	}
	issue := func(tmpl, parent *x509.Certificate, pub *ecdsa.PublicKey, signer *ecdsa.PrivateKey) *x509.Certificate {
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
		must(err)
		c, err := x509.ParseCertificate(der)
		must(err)
		return c
	}
	keys := make([]*ecdsa.PrivateKey, 3)
	for i := range keys {
		keys[i], err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		must(err)
	}
	ca := func(cn string, serial int64) *x509.Certificate {
		return &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: orig.NotBefore, NotAfter: orig.NotAfter, IsCA: true, BasicConstraintsValid: true,
			KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	}
	rootTmpl := ca("Intel SGX Root CA", 1)
	root := issue(rootTmpl, rootTmpl, &keys[0].PublicKey, keys[0])
	midTmpl := ca("Intel SGX PCK Platform CA", 2)
	midTmpl.SubjectKeyId = orig.AuthorityKeyId // the leaf's copied AKI names this CA
	mid := issue(midTmpl, root, &keys[1].PublicKey, keys[0])
	leaf := issue(&x509.Certificate{SerialNumber: orig.SerialNumber, Subject: orig.Subject,
		NotBefore: orig.NotBefore, NotAfter: orig.NotAfter, ExtraExtensions: exts}, mid, &keys[2].PublicKey, keys[1])

	var chain []byte
	for _, c := range []*x509.Certificate{leaf, mid, root} {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	report, err := abi.EnclaveReportToAbiBytes(qe.GetQeReport())
	must(err)
	h := sha256.Sum256(report)
	r, s, err := ecdsa.Sign(rand.Reader, keys[2], h[:])
	must(err)
	qe.QeReportSignature = append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...)
	delta := uint32(len(chain)) - qe.GetPckCertificateChainData().GetSize()
	qe.PckCertificateChainData.PckCertChain = chain
	qe.PckCertificateChainData.Size += delta
	q.SignedData.CertificationData.Size += delta
	q.SignedDataSize += delta
	raw, err := abi.QuoteToAbiBytes(q)
	must(err)
	pool := x509.NewCertPool()
	pool.AddCert(root)
	return raw, pool
}

// withoutPPID drops the PPID from a PCK certificate's SGX extensions.
func withoutPPID(sgx []asn1.RawValue) []asn1.RawValue {
	return slices.DeleteFunc(sgx, func(v asn1.RawValue) bool {
		var e struct {
			Id    asn1.ObjectIdentifier
			Value asn1.RawValue
		}
		_, err := asn1.Unmarshal(v.FullBytes, &e)
		return err == nil && e.Id.Equal(pcs.OidPPID)
	})
}

// The platform is read from the PCK leaf that verified: a chain that otherwise verifies but
// whose leaf carries no PPID is refused as a chain error, before any collateral is fetched.
func TestTDXPlatformNoPPID(t *testing.T) {
	same, roots := reissuedSample(t, func(sgx []asn1.RawValue) []asn1.RawValue { return sgx })
	c, err := (&TDXVerifier{roots: roots}).Verify(same, sampleTime)
	if err != nil || c.Platform != samplePPID {
		t.Fatalf("reissued chain with the same extensions: Platform %q, err %v", c.Platform, err)
	}
	quote, roots := reissuedSample(t, withoutPPID)
	f := &countingFetch{}
	v := &TDXVerifier{roots: roots, Collateral: NewCollateral(nil, "", f.get, func() time.Time { return sampleTime })}
	_, err = v.Verify(quote, sampleTime)
	if !errors.Is(err, ErrNoPPID) || !errors.Is(err, ErrTDXChain) || !strings.Contains(err.Error(), "no PPID") {
		t.Fatalf("err = %v, want ErrNoPPID (an ErrTDXChain)", err)
	}
	if n := f.count(); n != 0 {
		t.Errorf("a quote without a PPID made the verifier fetch collateral %d times", n)
	}
	// Through the Verifier too: the error survives its cache and the policy.
	ev := Evidence{Kind: KindTDX, Quote: quote}
	if _, err := NewVerifier(Policy{}, &TDXVerifier{roots: roots}).Verify(&ev, [64]byte{}, sampleTime); !errors.Is(err, ErrNoPPID) {
		t.Fatalf("through Verifier: %v", err)
	}
}

func TestPPIDOfZeroOrMissing(t *testing.T) {
	chain := sampleQuote(t).GetSignedData().GetCertificationData().GetQeReportCertificationData().GetPckCertificateChainData().GetPckCertChain()
	blk, _ := pem.Decode(chain)
	leaf, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := ppidOf(leaf); err != nil || p != samplePPID {
		t.Fatalf("sample leaf: %q, %v", p, err)
	}
	zero := *leaf
	zero.Extensions = slices.Clone(leaf.Extensions)
	for i, e := range zero.Extensions {
		if e.Id.Equal(pcs.OidSgxExtension) {
			v := bytes.Clone(e.Value)
			ppid, _ := hex.DecodeString(strings.TrimPrefix(samplePPID, ppidPrefix))
			copy(v[bytes.Index(v, ppid):], make([]byte, 16))
			zero.Extensions[i].Value = v
		}
	}
	if _, err := ppidOf(&zero); !errors.Is(err, ErrNoPPID) {
		t.Fatalf("all-zero PPID: %v, want ErrNoPPID", err)
	}
	garbled := zero
	garbled.Extensions = leaf.Extensions[:2]
	if _, err := ppidOf(&garbled); !errors.Is(err, ErrTDXChain) || errors.Is(err, ErrNoPPID) {
		t.Fatalf("extensions that do not parse: %v, want ErrTDXChain", err)
	}
}
