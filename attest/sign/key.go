package sign

import (
	"bytes"
	"context"
	"fmt"

	"github.com/sigstore/cosign/v2/pkg/cosign"
	sigs "github.com/sigstore/cosign/v2/pkg/signature"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/options"
)

type key struct {
	ref string
	sv  signature.SignerVerifier
}

// NewKey returns a signer for a cosign key: a path to an encrypted cosign.key (pass supplies
// the password, e.g. from COSIGN_PASSWORD; cosign.GetPassFromTerm and friends fit), or any
// reference cosign accepts — awskms://, gcpkms://, azurekms://, hashivault://, k8s://,
// pkcs11: — resolved by cosign's own SignerVerifierFromKeyRef. Signatures carry no certificate.
func NewKey(ctx context.Context, ref string, pass func(bool) ([]byte, error)) (Signer, error) {
	sv, err := sigs.SignerVerifierFromKeyRef(ctx, ref, cosign.PassFunc(pass), nil)
	if err != nil {
		return nil, fmt.Errorf("loading signing key %s: %w", ref, err)
	}
	return &key{ref: ref, sv: sv}, nil
}

func (k *key) Identity() string { return "key " + k.ref }

// Policy trusts the key's public half.
func (k *key) Policy() Policy {
	pub, err := k.sv.PublicKey()
	if err != nil {
		return Policy{}
	}
	pem, err := cryptoutils.MarshalPublicKeyToPEM(pub)
	if err != nil {
		return Policy{}
	}
	return Policy{PublicKey: pem, IgnoreTlog: true}
}

func (k *key) Sign(ctx context.Context, payload []byte) (*Signature, error) {
	sig, err := k.sv.SignMessage(bytes.NewReader(payload), options.WithContext(ctx))
	if err != nil {
		return nil, err
	}
	pub, err := k.sv.PublicKey(options.WithContext(ctx))
	if err != nil {
		return nil, err
	}
	return &Signature{Sig: sig, PublicKey: pub}, nil
}
