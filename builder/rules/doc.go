// Package rules checks the image design rules (DESIGN.md §1) by code: on a
// Dockerfile, parsed with BuildKit's own parser so line numbers are real, and
// on a built image or index read through go-containerregistry.
//
// Every violation carries a stable rule ID, what is wrong and how to fix it.
//
// # Dockerfile rules
//
// They apply to the stages the target needs (the final stage plus every stage
// reachable through FROM <stage>, COPY --from and RUN --mount from=):
//
//   - syntax-directive: no "# syntax=" directive; the build is offline and
//     uses the built-in frontend.
//   - multi-stage: the final stage COPY --from's at least one build stage; a
//     single-stage build ships its toolchain.
//   - pinned-from: every FROM (and every COPY --from=<image>, RUN
//     --mount=from=<image>) is pinned by @sha256:<64 hex>, unless it is scratch
//     or an earlier stage. Global ARG defaults are expanded first; a variable
//     without a default cannot be verified and is reported.
//   - latest-tag: no reference names the tag latest, even with a digest.
//   - final-base: the final stage (followed through FROM <stage>) is built on
//     gcr.io/distroless/... (not a :debug variant) or scratch.
//   - build-platform: a non-final stage that RUNs anything is FROM
//     --platform=$BUILDPLATFORM (directly or inherited): the builders have no
//     emulation, so every command runs natively and cross-compiles for
//     $TARGETOS/$TARGETARCH. The final stage has no --platform (directly or
//     inherited), or every platform's image would get one platform's base.
//   - final-user: the final stage has an explicit USER, and the last one is
//     65532 or 65532:65532 (not root, not a name, not another UID).
//   - healthcheck: no HEALTHCHECK in the final stage or a stage it is built
//     FROM (HEALTHCHECK NONE is allowed).
//   - build-secret: no ARG/ENV whose name looks secret (TOKEN, SECRET,
//     PASSWORD, PASSWD, PASSPHRASE, API_KEY, PRIVATE_KEY, CREDENTIAL,
//     ACCESS_KEY; names ending _FILE, _PATH or _DIR are allowed, and so is
//     NEXT_PUBLIC_*, which ships to every browser) and no instruction whose
//     text holds a credential-shaped value (GitHub, npm, GitLab and Slack
//     tokens, AWS key IDs, PEM private keys, JWTs, passwords in URLs) or
//     assigns a literal to a secret-named variable. Messages redact the value.
//   - deps-first: in a stage that builds (go build, go install of local
//     packages, npm/yarn/pnpm [run] build, next build), the dependencies are
//     resolved before the source is copied: go.mod copied and go mod download
//     run (or package.json plus a lockfile copied and npm ci/yarn
//     install/pnpm install run; a RUN with a bind mount may bring the
//     manifests itself), or COPY --from a stage that resolved them, or
//     inherited FROM such a stage. A COPY whose sources are not all
//     dependency manifests is "the source".
//   - remote-add: no ADD of a URL or git remote (unpinned, and offline).
//   - final-run: no RUN in the final stage (distroless has no shell).
//
// # Image rules
//
// CheckIndex checks the platform set, then CheckImage on every platform
// manifest (attestation manifests are skipped):
//
//   - index-platforms: the index holds exactly the required platforms, once
//     each (linux/arm64/v8 counts as linux/arm64).
//   - image-platform: the config's os/architecture/variant equals the platform
//     the index lists it under (the amd64-image-labelled-arm64 trap).
//   - image-user: config User is "65532" or "65532:65532".
//   - image-healthcheck: no Healthcheck in the config (NONE is allowed).
//   - image-shell: no sh, bash, ash, dash, zsh, ksh on the bin paths (/bin,
//     /sbin, /usr/bin, /usr/sbin, /usr/local/bin, /usr/local/sbin, /busybox)
//     and no busybox anywhere, in the filesystem that results from applying
//     every layer's whiteouts (.wh.<name> and .wh..wh..opq).
//   - image-package-manager: no apt, apt-get, dpkg, apk, yum, dnf, microdnf,
//     rpm, pip/pip3/pip3.N, npm, npx, yarn, pnpm on the bin paths, same way.
//   - image-secret: no secret in Env (secret name with a value, or a
//     credential-shaped value), Labels, or history CreatedBy/Comment
//     (credential-shaped values, or "NAME=value" for a secret name as BuildKit
//     records build args: RUN |1 NPM_TOKEN=… ). "--mount=type=secret" text
//     is fine.
//   - image-mtime: every tar entry of every layer has mtime <= SourceDateEpoch
//     (one violation naming the first 5 offenders and the count).
//   - image-created: config created == SourceDateEpoch, and no history entry
//     was created after it.
//   - image-layer-order: dependency trees come before application code. A
//     layer "adds a dependency tree" under root R if it adds a file below
//     R/node_modules, R/vendor, R/site-packages or R/.venv. A layer "only adds
//     application code" for R if it adds regular files (or links) under R and
//     none under any dependency tree; for R = "/" files under the system
//     directories (etc, usr, lib, bin, var, …) do not count, so base-image
//     layers never look like application code. A violation is an
//     application-code layer for R that comes before a dependency layer for
//     R: a code change then invalidates the dependency layer too. Layers
//     mixing both (a Next.js standalone output) count as dependency layers.
//
// The image rules need ImageOptions.SourceDateEpoch (the commit time); the
// release plan always has it, so a zero value is an error, not a skipped
// check.
package rules

// Rule IDs. They are stable: tests, allow-lists and docs refer to them.
const (
	RuleSyntaxDirective = "syntax-directive"
	RuleMultiStage      = "multi-stage"
	RulePinnedFrom      = "pinned-from"
	RuleLatestTag       = "latest-tag"
	RuleFinalBase       = "final-base"
	RuleBuildPlatform   = "build-platform"
	RuleFinalUser       = "final-user"
	RuleHealthcheck     = "healthcheck"
	RuleBuildSecret     = "build-secret"
	RuleDepsFirst       = "deps-first"
	RuleRemoteAdd       = "remote-add"
	RuleFinalRun        = "final-run"

	RuleIndexPlatforms      = "index-platforms"
	RuleImagePlatform       = "image-platform"
	RuleImageUser           = "image-user"
	RuleImageHealthcheck    = "image-healthcheck"
	RuleImageShell          = "image-shell"
	RuleImagePackageManager = "image-package-manager"
	RuleImageSecret         = "image-secret"
	RuleImageMtime          = "image-mtime"
	RuleImageCreated        = "image-created"
	RuleImageLayerOrder     = "image-layer-order"
)

// Rules lists every rule ID: the Dockerfile rules, then the image rules, in
// the order of the package documentation.
func Rules() []string {
	return []string{RuleSyntaxDirective, RuleMultiStage, RulePinnedFrom, RuleLatestTag, RuleFinalBase,
		RuleBuildPlatform, RuleFinalUser, RuleHealthcheck, RuleBuildSecret, RuleDepsFirst, RuleRemoteAdd, RuleFinalRun,
		RuleIndexPlatforms, RuleImagePlatform, RuleImageUser, RuleImageHealthcheck, RuleImageShell,
		RuleImagePackageManager, RuleImageSecret, RuleImageMtime, RuleImageCreated, RuleImageLayerOrder}
}
