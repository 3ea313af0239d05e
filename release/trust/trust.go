// Package trust turns bvrelease.yaml's signing and policy sections into what verification
// needs: the Sigstore trusted root (a file, or Sigstore's public-good root through TUF) and
// the admission expectations (identity, issuer, accepted provenance producers, allow-list)
// that the verify command, promotion and keyless signing share.
package trust

import (
	"fmt"
	"os"

	"github.com/sigstore/sigstore-go/pkg/root"

	"github.com/bitvault/bitvault/attest/admission"
	attestscan "github.com/bitvault/bitvault/attest/scan"
	attestsign "github.com/bitvault/bitvault/attest/sign"
	"github.com/bitvault/bitvault/release/config"
)

// TrustedRoot reads a trusted_root.json, or with path "" fetches Sigstore's public-good
// trusted root through its TUF repository (online).
func TrustedRoot(path string) ([]byte, *root.TrustedRoot, error) {
	var data []byte
	if path != "" {
		var err error
		if data, err = os.ReadFile(path); err != nil {
			return nil, nil, fmt.Errorf("trusted root: %w (give a Sigstore trusted_root.json)", err)
		}
	} else {
		pub, err := root.FetchTrustedRoot()
		if err != nil {
			return nil, nil, fmt.Errorf("fetching Sigstore's public-good trusted root: %w (offline: give a trusted root file)", err)
		}
		if data, err = pub.MarshalJSON(); err != nil {
			return nil, nil, err
		}
	}
	tr, err := root.NewTrustedRootFromJSON(data)
	if err != nil {
		return nil, nil, fmt.Errorf("trusted root %s: %w", path, err)
	}
	return data, tr, nil
}

// IgnoreSCT reports whether certificates under tr carry no SCT to check: a private Fulcio
// whose trusted root names no certificate-transparency log issues none.
func IgnoreSCT(tr *root.TrustedRoot) bool { return len(tr.CTLogs()) == 0 }

// Expect is what a release image must satisfy per cfg: signed by signing's identity and
// issuer under its trusted root (trustedRoot overrides signing.trusted_root; both empty: the
// public-good root), provenance from policy.provenance's producers, and a clean scan by the
// repository's allow-list.
func Expect(cfg *config.Config, trustedRoot string) (admission.Expect, error) {
	var e admission.Expect
	sg := cfg.Signing
	if sg.Identity == "" && sg.IdentityRegexp == "" {
		return e, fmt.Errorf("%s: signing: names no identity (identity or identity_regexp, with issuer)", cfg.Path)
	}
	if trustedRoot == "" && sg.TrustedRoot != "" {
		trustedRoot = cfg.Abs(sg.TrustedRoot)
	}
	data, tr, err := TrustedRoot(trustedRoot)
	if err != nil {
		return e, err
	}
	e.Policy = attestsign.Policy{Identity: sg.Identity, IdentityRegexp: sg.IdentityRegexp, Issuer: sg.Issuer, TrustedRoot: data, IgnoreSCT: IgnoreSCT(tr)}
	e.Producers = cfg.Policy.Provenance
	if e.Allow, err = attestscan.LoadAllowList(cfg.Abs(attestscan.DefaultAllowList)); err != nil {
		return e, err
	}
	return e, nil
}
