package keyless

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	fulcioapi "github.com/sigstore/fulcio/pkg/api"
	"github.com/sigstore/sigstore/pkg/cryptoutils"

	"github.com/bitvault/bitvault/internal/retry"
)

// CertificateAuthority issues a short-lived code-signing certificate for pub to the holder of
// an OIDC token, given proof (a signature over the token's subject by pub's private key).
type CertificateAuthority interface {
	SigningCert(ctx context.Context, token string, pub crypto.PublicKey, proof []byte) (cert, chain []byte, err error)
}

// PublicFulcio is Sigstore's public-good Fulcio.
const PublicFulcio = fulcioapi.SigstorePublicServerURL

// Fulcio talks to a Fulcio server's /api/v1/signingCert, the endpoint cosign v2 uses, with
// Fulcio's own request type.
type Fulcio struct {
	URL    string
	Client *http.Client
	Retry  retry.Policy
	Notify func(attempt int, err error, wait time.Duration)
}

// SigningCert implements CertificateAuthority.
func (f *Fulcio) SigningCert(ctx context.Context, token string, pub crypto.PublicKey, proof []byte) ([]byte, []byte, error) {
	pubPEM, err := cryptoutils.MarshalPublicKeyToPEM(pub)
	if err != nil {
		return nil, nil, err
	}
	body, err := json.Marshal(fulcioapi.CertificateRequest{
		PublicKey:          fulcioapi.Key{Content: pubPEM, Algorithm: "ecdsa"},
		SignedEmailAddress: proof,
	})
	if err != nil {
		return nil, nil, err
	}
	u, err := url.JoinPath(f.URL, "/api/v1/signingCert")
	if err != nil {
		return nil, nil, fmt.Errorf("Fulcio URL %q: %w", f.URL, err)
	}
	client := f.Client
	if client == nil {
		client = &http.Client{Timeout: 60 * time.Second}
	}
	var certPEM, chainPEM []byte
	err = retry.Do(ctx, f.Retry, "Fulcio certificate request to "+u, f.Notify, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
		if err != nil {
			return retry.Permanent(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if resp.StatusCode != http.StatusCreated {
			return retry.HTTPStatus(resp.StatusCode, fmt.Errorf("Fulcio answered %s: %s", resp.Status, strings.TrimSpace(string(out))))
		}
		leaf, rest := pem.Decode(out)
		if leaf == nil || leaf.Type != "CERTIFICATE" {
			return retry.Permanent(errors.New("Fulcio answered without a PEM certificate"))
		}
		certPEM, chainPEM = pem.EncodeToMemory(leaf), bytes.TrimLeft(rest, "\n")
		return nil
	})
	return certPEM, chainPEM, err
}
