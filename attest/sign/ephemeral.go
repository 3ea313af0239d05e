package sign

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
)

const (
	// DryRunIdentity is the URI SAN of every dry-run leaf certificate.
	DryRunIdentity = "https://bitvault.dev/dry-run"
	// DryRunIssuer is the OIDC issuer (Fulcio extensions 1.3.6.1.4.1.57264.1.1 and .8) of every
	// dry-run leaf certificate: never a real issuer URL, so never mistakable for a release.
	DryRunIssuer = "dry-run"
	// RootFile is the name of the dry-run CA root certificate NewEphemeral writes into its dir.
	RootFile = "dry-run-root.pem"
	// certValidity: without a transparency log or timestamp, cosign checks the leaf against
	// the current time, so the leaf must outlive the verification that follows the release
	// (verify stage, Kyverno tests) — unlike Fulcio's 10 minutes.
	certValidity = 7 * 24 * time.Hour
)

var (
	oidIssuerV1 = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 1} // raw string
	oidIssuerV2 = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 8} // DER UTF8String
)

type ephemeral struct {
	sv    signature.SignerVerifier
	pub   crypto.PublicKey
	cert  []byte // leaf PEM
	chain []byte // intermediate + root PEM
	root  []byte // root PEM
}

// NewEphemeral returns the dry-run signer: a fresh local CA (root + intermediate) whose one
// leaf certificate, used for every signature of this release, carries the URI SAN
// DryRunIdentity and the Fulcio issuer extensions = DryRunIssuer. The root certificate is
// written to dir/RootFile (PEM) so that verification, Kyverno and `cosign verify
// --certificate-chain` can trust it. Keys live only in memory.
func NewEphemeral(dir string) (Signer, error) {
	now := time.Now().Add(-time.Minute).UTC().Truncate(time.Second)
	rootKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	rootTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{Organization: []string{"bitvault dry-run"}, CommonName: "bitvault dry-run root (ephemeral)"},
		NotBefore:             now,
		NotAfter:              now.Add(certValidity + time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            1,
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	if err != nil {
		return nil, fmt.Errorf("dry-run CA root: %w", err)
	}
	root, _ := x509.ParseCertificate(rootDER)

	interKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	interTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{Organization: []string{"bitvault dry-run"}, CommonName: "bitvault dry-run intermediate (ephemeral)"},
		NotBefore:             now,
		NotAfter:              now.Add(certValidity + time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	interDER, err := x509.CreateCertificate(rand.Reader, interTmpl, root, interKey.Public(), rootKey)
	if err != nil {
		return nil, fmt.Errorf("dry-run CA intermediate: %w", err)
	}
	inter, _ := x509.ParseCertificate(interDER)

	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	san, _ := url.Parse(DryRunIdentity)
	issuerV2, err := asn1.MarshalWithParams(DryRunIssuer, "utf8")
	if err != nil {
		return nil, err
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: serial(),
		NotBefore:    now,
		NotAfter:     now.Add(certValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		URIs:         []*url.URL{san},
		ExtraExtensions: []pkix.Extension{
			{Id: oidIssuerV1, Value: []byte(DryRunIssuer)},
			{Id: oidIssuerV2, Value: issuerV2},
		},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, inter, leafKey.Public(), interKey)
	if err != nil {
		return nil, fmt.Errorf("dry-run leaf certificate: %w", err)
	}

	rootPEM := pemCert(rootDER)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, RootFile), rootPEM, 0o644); err != nil {
		return nil, fmt.Errorf("writing dry-run CA root: %w", err)
	}
	sv, err := signature.LoadECDSASignerVerifier(leafKey, crypto.SHA256)
	if err != nil {
		return nil, err
	}
	return &ephemeral{
		sv:    sv,
		pub:   leafKey.Public(),
		cert:  pemCert(leafDER),
		chain: append(pemCert(interDER), rootPEM...),
		root:  rootPEM,
	}, nil
}

func (e *ephemeral) Identity() string { return "dry-run (ephemeral local CA)" }

// Policy trusts the ephemeral root for the dry-run identity and issuer only.
func (e *ephemeral) Policy() Policy {
	return Policy{Roots: e.root, Identity: DryRunIdentity, Issuer: DryRunIssuer, IgnoreTlog: true}
}

func (e *ephemeral) Sign(ctx context.Context, payload []byte) (*Signature, error) {
	sig, err := e.sv.SignMessage(bytes.NewReader(payload))
	if err != nil {
		return nil, err
	}
	return &Signature{Sig: sig, Cert: e.cert, Chain: e.chain, PublicKey: e.pub}, nil
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err)
	}
	return n
}
