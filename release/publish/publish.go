// Package publish is the pipeline stage that copies every artifact's index
// from dist/oci to the registry by digest — go-containerregistry uploads only
// the blobs the registry lacks — and then writes the human tags (v<semver>,
// <git-sha>) for all artifacts. Tags are written only after every digest is
// present, so a failure never leaves a release half-tagged. 'latest' is
// refused everywhere.
//
// Registry credentials come from the standard docker configuration and
// credential helpers (authn.DefaultKeychain). In a dry-run the target is a
// go-containerregistry registry embedded in the process on 127.0.0.1, and a
// dirty tree is allowed (nothing leaves the machine); a real publish of a
// dirty tree needs --allow-dirty.
package publish

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/bitvault/bitvault/builder"
	"github.com/bitvault/bitvault/release"
)

// Stage publishes images.
type Stage struct{}

func (Stage) Name() string { return "publish" }

// ValidateTag refuses tags that must never be written.
func ValidateTag(tag string) error {
	if strings.EqualFold(tag, "latest") {
		return errors.New("refusing to write the tag 'latest': it is mutable and says nothing; deploy by digest and tag v<semver> or <git-sha>")
	}
	if _, err := name.NewTag("example.invalid/x:" + tag); err != nil {
		return fmt.Errorf("tag %q: %w", tag, err)
	}
	return nil
}

func (Stage) Run(ctx context.Context, r *release.Release) error {
	if r.Record.Dirty && !r.AllowDirty && !r.DryRun {
		return fmt.Errorf("the work tree is dirty (version %s): commit or stash the changes, or pass --allow-dirty to publish it anyway", r.Record.Version)
	}
	for _, t := range r.Record.Tags {
		if err := ValidateTag(t); err != nil {
			return err
		}
	}
	opts := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)}
	if r.DryRun {
		host, stop, err := StartEmbeddedRegistry()
		if err != nil {
			return err
		}
		r.OnClose(stop)
		r.Record.Registry = host + "/" + r.Config.Project
		r.Logf("publish: dry-run: embedded registry on %s", host)
	}
	lp, err := builder.OpenLayout(r.OCIDir())
	if err != nil {
		return err
	}
	type pushed struct {
		ar  *release.ArtifactRecord
		idx v1.ImageIndex
		ref name.Digest
	}
	var done []pushed
	for _, a := range r.Artifacts() {
		ar := r.Artifact(a.Name)
		if ar.Check == nil || !ar.Check.Passed || ar.Check.Digest != ar.Digest {
			return fmt.Errorf("publish %s: %s has not passed 'check'; run the check stage first", a.Name, ar.Digest)
		}
		idx, desc, err := builder.Index(lp, a.Name)
		if err != nil {
			return fmt.Errorf("publish %s: %w", a.Name, err)
		}
		repo, err := name.NewRepository(r.Record.Registry + "/" + a.Name)
		if err != nil {
			return fmt.Errorf("publish %s: repository %q: %w", a.Name, r.Record.Registry+"/"+a.Name, err)
		}
		ref := repo.Digest(desc.Digest.String())
		if have, err := remote.Head(ref, opts...); err == nil && have.Digest == desc.Digest {
			r.Logf("publish: %s already in the registry", ref)
		} else {
			if err := remote.WriteIndex(ref, idx, opts...); err != nil {
				return fmt.Errorf("publish %s: push %s: %w", a.Name, ref, explain(err, repo.RegistryStr()))
			}
			r.Logf("publish: pushed %s", ref)
		}
		done = append(done, pushed{ar, idx, ref})
	}
	// Every digest is present: now, and only now, the tags.
	for _, p := range done {
		var tags []string
		for _, t := range r.Record.Tags {
			tag := p.ref.Context().Tag(t)
			if err := remote.Tag(tag, p.idx, opts...); err != nil {
				return fmt.Errorf("publish %s: tag %s: %w", p.ar.Name, tag, explain(err, tag.RegistryStr()))
			}
			tags = append(tags, t)
		}
		p.ar.Published = &release.PublishRecord{Repository: p.ref.Context().String(), Reference: p.ref.String(), Tags: tags}
	}
	return nil
}

func explain(err error, reg string) error {
	var te *transport.Error
	if errors.As(err, &te) {
		switch te.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			return fmt.Errorf("%w; the registry refused the credentials: log in with 'docker login %s' or configure a credential helper in ~/.docker/config.json", err, reg)
		}
	}
	var ne net.Error
	var oe *net.OpError
	if errors.As(err, &oe) || errors.As(err, &ne) {
		return fmt.Errorf("%w; the registry %s is unreachable: check the registry in bvrelease.yaml (or --registry) and the network; nothing was tagged", err, reg)
	}
	return err
}

// StartEmbeddedRegistry serves a go-containerregistry registry on 127.0.0.1
// (with the OCI 1.1 referrers API) and returns its host:port and a stop func.
func StartEmbeddedRegistry() (string, func(), error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("embedded registry: %w", err)
	}
	srv := &http.Server{Handler: registry.New(registry.Logger(log.New(io.Discard, "", 0)), registry.WithReferrersSupport(true))}
	go srv.Serve(l)
	return l.Addr().String(), func() { srv.Close() }, nil
}
