package rules

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ImageOptions says what a built image must match.
type ImageOptions struct {
	Name            string    // artifact name, used in violations and errors
	SourceDateEpoch time.Time // the commit time; every timestamp must equal or precede it (required)
	Platforms       []string  // required platforms of the index, e.g. linux/amd64, linux/arm64 (CheckIndex)
}

// CheckIndex checks that idx holds exactly the required platforms, then runs
// CheckImage on every platform manifest. Attestation manifests (BuildKit's
// unknown/unknown entries) are skipped. The error is for unreadable content.
func CheckIndex(idx v1.ImageIndex, o ImageOptions) ([]Violation, error) {
	if len(o.Platforms) == 0 {
		return nil, fmt.Errorf("check %s: no required platforms given", o.Name)
	}
	if o.SourceDateEpoch.IsZero() {
		return nil, fmt.Errorf("check %s: SourceDateEpoch is required (the commit time from the plan)", o.Name)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("check %s: index manifest: %w", o.Name, err)
	}
	var vs []Violation
	add := func(platform, msg, fix string) {
		vs = append(vs, Violation{Rule: RuleIndexPlatforms, Image: o.Name, Platform: platform, Message: msg, Fix: fix})
	}
	const fix = "build every platform in one BuildKit solve (bvrelease build) so the index is produced, not assembled"

	required := map[string]bool{}
	for _, p := range o.Platforms {
		required[normPlatform(p)] = true
	}
	type entry struct {
		platform string
		digest   v1.Hash
	}
	var images []entry
	seen := map[string]bool{}
	for _, d := range im.Manifests {
		if isAttestation(d) {
			continue
		}
		if d.MediaType.IsIndex() {
			add("", fmt.Sprintf("the index nests another index (%s) instead of listing platform manifests", d.Digest), fix)
			continue
		}
		if d.Platform == nil || d.Platform.OS == "" {
			add("", fmt.Sprintf("manifest %s has no platform in the index", d.Digest), fix)
			continue
		}
		p := normPlatform(platformString(d.Platform.OS, d.Platform.Architecture, d.Platform.Variant))
		switch {
		case seen[p]:
			add(p, "the index lists this platform more than once", fix)
		case !required[p]:
			add(p, fmt.Sprintf("the index has platform %s, which is not required (%s)", p, strings.Join(o.Platforms, ", ")),
				"build exactly the platforms in bvrelease.yaml")
		}
		seen[p] = true
		images = append(images, entry{p, d.Digest})
	}
	for _, p := range slices.Sorted(maps.Keys(required)) {
		if !seen[p] {
			add(p, fmt.Sprintf("the index has no %s manifest", p), fix)
		}
	}
	for _, e := range images {
		img, err := idx.Image(e.digest)
		if err != nil {
			return nil, fmt.Errorf("check %s %s: image %s: %w", o.Name, e.platform, e.digest, err)
		}
		ivs, err := CheckImage(img, e.platform, o)
		if err != nil {
			return nil, err
		}
		vs = append(vs, ivs...)
	}
	return vs, nil
}

func isAttestation(d v1.Descriptor) bool {
	return d.Annotations["vnd.docker.reference.type"] == "attestation-manifest" ||
		d.Platform != nil && d.Platform.OS == "unknown" && d.Platform.Architecture == "unknown"
}

func platformString(os, arch, variant string) string {
	s := os + "/" + arch
	if variant != "" {
		s += "/" + variant
	}
	return s
}

// normPlatform drops the default variant so linux/arm64/v8 equals linux/arm64.
func normPlatform(p string) string {
	parts := strings.Split(p, "/")
	if len(parts) == 3 && parts[1] == "arm64" && parts[2] == "v8" {
		parts = parts[:2]
	}
	return strings.Join(parts, "/")
}

type imageCheck struct {
	o        ImageOptions
	platform string
	vs       []Violation
}

func (c *imageCheck) add(rule, msg, fix string) {
	c.vs = append(c.vs, Violation{Rule: rule, Image: c.o.Name, Platform: c.platform, Message: msg, Fix: fix})
}

// CheckImage checks one platform manifest's config and layers. platform is the
// platform the index lists it under ("" skips the image-platform rule).
// o.Platforms is not used. The error is for unreadable content.
func CheckImage(img v1.Image, platform string, o ImageOptions) ([]Violation, error) {
	if o.SourceDateEpoch.IsZero() {
		return nil, fmt.Errorf("check %s %s: SourceDateEpoch is required (the commit time from the plan)", o.Name, platform)
	}
	c := &imageCheck{o: o, platform: platform}
	wrap := func(what string, err error) error {
		return fmt.Errorf("check %s %s: %s: %w", o.Name, platform, what, err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, wrap("config", err)
	}
	if cfg == nil {
		return nil, wrap("config", errors.New("image has no config"))
	}
	c.checkPlatform(cfg)
	c.checkUser(cfg)
	c.checkHealthcheck(cfg)
	c.checkSecrets(cfg)
	c.checkCreated(cfg)

	layers, err := img.Layers()
	if err != nil {
		return nil, wrap("layers", err)
	}
	fs, err := walkLayers(layers, o.SourceDateEpoch)
	if err != nil {
		return nil, wrap("", err)
	}
	c.checkBinaries(fs)
	c.checkMtime(fs)
	c.checkLayerOrder(fs)
	return c.vs, nil
}

func (c *imageCheck) checkPlatform(cfg *v1.ConfigFile) {
	if c.platform == "" {
		return
	}
	got := normPlatform(platformString(cfg.OS, cfg.Architecture, cfg.Variant))
	if got != normPlatform(c.platform) {
		c.add(RuleImagePlatform,
			fmt.Sprintf("the config says %s but the index lists the manifest as %s", got, c.platform),
			"build all platforms in one BuildKit solve (FROM --platform=$BUILDPLATFORM only for build stages); never put a retagged single-arch image in the index")
	}
}

func (c *imageCheck) checkUser(cfg *v1.ConfigFile) {
	if p := userProblem(cfg.Config.User); p != "" {
		c.add(RuleImageUser, fmt.Sprintf("config User %q %s", cfg.Config.User, p), "set USER 65532:65532 in the final stage")
	}
}

func (c *imageCheck) checkHealthcheck(cfg *v1.ConfigFile) {
	if h := cfg.Config.Healthcheck; h != nil && !healthcheckNone(h.Test) {
		c.add(RuleImageHealthcheck, "the config has a Healthcheck: Kubernetes probes own liveness and readiness",
			"remove HEALTHCHECK from the Dockerfile (and its bases); declare probes in the Helm chart")
	}
}

func (c *imageCheck) checkSecrets(cfg *v1.ConfigFile) {
	const fix = "pass secrets with RUN --mount=type=secret, never ARG, ENV, LABEL or command text; rotate the leaked secret"
	for _, e := range cfg.Config.Env {
		k, v, _ := strings.Cut(e, "=")
		switch {
		case isSecretName(k) && literalValue(v):
			c.add(RuleImageSecret, fmt.Sprintf("Env %s looks like a secret and has a value", k), fix)
		case secretValue(v) != "":
			c.add(RuleImageSecret, fmt.Sprintf("Env %s holds %s", k, secretValue(v)), fix)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(cfg.Config.Labels)) {
		if w := secretInText(cfg.Config.Labels[k]); w != "" {
			c.add(RuleImageSecret, fmt.Sprintf("Label %s %s", k, w), fix)
		}
	}
	for i, h := range cfg.History {
		for _, f := range []struct{ name, text string }{{"CreatedBy", h.CreatedBy}, {"Comment", h.Comment}} {
			if w := secretInText(f.text); w != "" {
				c.add(RuleImageSecret, fmt.Sprintf("history entry %d %s (%s …) %s", i+1, f.name, firstWord(f.text), w), fix)
				break
			}
		}
	}
}

func firstWord(s string) string {
	f := strings.Fields(s)
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

func (c *imageCheck) checkCreated(cfg *v1.ConfigFile) {
	epoch := c.o.SourceDateEpoch.UTC()
	const fix = "build with SOURCE_DATE_EPOCH set to the commit time (bvrelease build does)"
	if created := cfg.Created.Time; !created.Equal(epoch) {
		c.add(RuleImageCreated, fmt.Sprintf("config created is %s, not SOURCE_DATE_EPOCH %s", fmtTime(created), fmtTime(epoch)), fix)
	}
	var late []int
	for i, h := range cfg.History {
		if h.Created.Time.After(epoch) {
			late = append(late, i+1)
		}
	}
	if len(late) > 0 {
		h := cfg.History[late[0]-1]
		c.add(RuleImageCreated, fmt.Sprintf("%s dated after SOURCE_DATE_EPOCH %s (first: entry %d at %s)",
			plural(len(late), "history entry is", "history entries are"), fmtTime(epoch), late[0], fmtTime(h.Created.Time)), fix)
	}
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "unset"
	}
	return t.UTC().Format(time.RFC3339)
}

const maxListed = 5

func listPaths(ps []string) string {
	out := make([]string, 0, maxListed+1)
	for i, p := range ps {
		if i == maxListed {
			out = append(out, fmt.Sprintf("and %d more", len(ps)-maxListed))
			break
		}
		out = append(out, "/"+p)
	}
	return strings.Join(out, ", ")
}

func (c *imageCheck) checkBinaries(fs *filesystem) {
	shells, pms := fs.forbiddenBinaries()
	if len(shells) > 0 {
		c.add(RuleImageShell, fmt.Sprintf("the final filesystem has a shell: %s", listPaths(shells)),
			"use a distroless (non-debug) or scratch final stage and COPY --from only the artifacts")
	}
	if len(pms) > 0 {
		c.add(RuleImagePackageManager, fmt.Sprintf("the final filesystem has a package manager: %s", listPaths(pms)),
			"install dependencies in a build stage and COPY --from the result into a distroless final stage")
	}
}

func (c *imageCheck) checkMtime(fs *filesystem) {
	if fs.lateCount == 0 {
		return
	}
	var parts []string
	for _, f := range fs.late {
		parts = append(parts, fmt.Sprintf("layer %d /%s (%s)", f.layer+1, f.path, fmtTime(f.mtime)))
	}
	if fs.lateCount > len(fs.late) {
		parts = append(parts, fmt.Sprintf("and %d more", fs.lateCount-len(fs.late)))
	}
	c.add(RuleImageMtime,
		fmt.Sprintf("%s an mtime after SOURCE_DATE_EPOCH %s: %s", plural(fs.lateCount, "file has", "files have"), fmtTime(c.o.SourceDateEpoch), strings.Join(parts, ", ")),
		"export with rewrite-timestamp=true and SOURCE_DATE_EPOCH set to the commit time (bvrelease build does)")
}

func (c *imageCheck) checkLayerOrder(fs *filesystem) {
	for _, p := range fs.layerOrderProblems() {
		c.add(RuleImageLayerOrder,
			fmt.Sprintf("layer %d adds only application code under /%s (%s) before layer %d adds the dependency tree /%s",
				p.app+1, p.root, listPaths(p.appFiles), p.dep+1, cmp.Or(p.depTree, p.root)),
			"COPY the dependency tree (node_modules, vendor, …) into the final stage before the application code")
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
