package keyless

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/sigstore/cosign/v2/pkg/cosign"
	cbundle "github.com/sigstore/cosign/v2/pkg/cosign/bundle"
	rclient "github.com/sigstore/rekor/pkg/client"
	rgen "github.com/sigstore/rekor/pkg/generated/client"
	"github.com/sigstore/rekor/pkg/generated/models"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/tlog"

	"github.com/bitvault/bitvault/attest/sign"
	"github.com/bitvault/bitvault/internal/retry"
)

// PublicRekor is Sigstore's public-good Rekor.
const PublicRekor = "https://rekor.sigstore.dev"

// Rekor enters signatures in a Rekor v1 log through Rekor's own client and cosign's entry
// builders (hashedrekord for signatures, dsse for attestations), and checks each signed entry
// timestamp against the trusted root's logs before handing the bundle back, so a Rekor that
// the verifiers will not trust fails at signing, not at admission.
type Rekor struct {
	URL     string
	Trusted root.TrustedMaterial // may be nil: the SET is then not checked here
	Retry   retry.Policy
	Notify  func(attempt int, err error, wait time.Duration)

	client *rgen.Rekor
}

var _ sign.TransparencyLog = (*Rekor)(nil)

func (r *Rekor) rekor() (*rgen.Rekor, error) {
	if r.client == nil {
		// Retries are ours (retry.Policy), not the client's.
		c, err := rclient.GetRekorClient(r.URL, rclient.WithRetryCount(0), rclient.WithUserAgent("bvrelease"))
		if err != nil {
			return nil, fmt.Errorf("Rekor client for %s: %w", r.URL, err)
		}
		r.client = c
	}
	return r.client, nil
}

// LogSignature implements sign.TransparencyLog.
func (r *Rekor) LogSignature(ctx context.Context, payload []byte, sig *sign.Signature) (*cbundle.RekorBundle, error) {
	return r.upload(ctx, "signature", func(c *rgen.Rekor) (*models.LogEntryAnon, error) {
		h := sha256.New()
		h.Write(payload)
		return cosign.TLogUpload(ctx, c, sig.Sig, h, sig.Cert)
	})
}

// LogEnvelope implements sign.TransparencyLog.
func (r *Rekor) LogEnvelope(ctx context.Context, envelope []byte, sig *sign.Signature) (*cbundle.RekorBundle, error) {
	return r.upload(ctx, "attestation", func(c *rgen.Rekor) (*models.LogEntryAnon, error) {
		return cosign.TLogUploadDSSEEnvelope(ctx, c, envelope, sig.Cert)
	})
}

func (r *Rekor) upload(ctx context.Context, what string, up func(*rgen.Rekor) (*models.LogEntryAnon, error)) (*cbundle.RekorBundle, error) {
	c, err := r.rekor()
	if err != nil {
		return nil, err
	}
	var b *cbundle.RekorBundle
	err = retry.Do(ctx, r.Retry, "Rekor upload ("+what+") to "+r.URL, r.Notify, func(context.Context) error {
		e, err := up(c)
		if err != nil {
			var coded interface{ Code() int }
			if errors.As(err, &coded) {
				return retry.HTTPStatus(coded.Code(), err)
			}
			return err // network: retry
		}
		if b = cbundle.EntryToBundle(e); b == nil {
			return retry.Permanent(errors.New("Rekor answered without a signed entry timestamp"))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if r.Trusted != nil {
		if err := checkSET(b, r.Trusted); err != nil {
			return nil, fmt.Errorf("Rekor %s: the entry's signed timestamp does not verify under the trusted root (wrong --rekor-url or --trusted-root?): %w", r.URL, err)
		}
	}
	return b, nil
}

// checkSET verifies a bundle's signed entry timestamp against the trusted logs.
func checkSET(b *cbundle.RekorBundle, tm root.TrustedMaterial) error {
	body, ok := b.Payload.Body.(string)
	if !ok {
		return errors.New("bundle body is not a string")
	}
	raw, err := base64Decode(body)
	if err != nil {
		return err
	}
	logID, err := hex.DecodeString(b.Payload.LogID)
	if err != nil {
		return fmt.Errorf("log id: %w", err)
	}
	e, err := tlog.NewEntry(raw, b.Payload.IntegratedTime, b.Payload.LogIndex, logID, b.SignedEntryTimestamp, nil)
	if err != nil {
		return err
	}
	return tlog.VerifySET(e, tm.RekorLogs())
}
