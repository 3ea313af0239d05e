#!/usr/bin/env bash
# Builds the pinned external tools from tools/<name>/go.mod once and caches them by version
# under $BITVAULT_TOOLS_DIR (default ${XDG_CACHE_HOME:-~/.cache}/bitvault/tools/<name>-<version>/,
# where bvrelease looks for them too).
# Usage: scripts/tools.sh [tool...]   (default: every tool the tests and the dry-run need)
# Prints nothing but progress on stderr; exits non-zero when a build fails.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${BITVAULT_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/bitvault/tools}

tool_version() { # module dir, module path
  (cd "$root/tools/$1" && go list -m -f '{{.Version}}' "$2")
}

bin_name() { # [binary=]package → binary (default: the package's last path element)
  case $1 in *=*) echo "${1%%=*}" ;; *) basename "$1" ;; esac
}

build_tool() { # name module-path ldflags-var bin-packages... (each "package" or "binary=package")
  local name=$1 mod=$2 ldvar=$3; shift 3
  local ver; ver=$(tool_version "$name" "$mod")
  local dir="$cache/$name-$ver"
  local missing=0
  for pkg in "$@"; do [ -x "$dir/$(bin_name "$pkg")" ] || missing=1; done
  if [ $missing = 0 ]; then echo "tools: $name $ver cached in $dir" >&2; return 0; fi
  echo "tools: building $name $ver into $dir (first time only; several minutes)" >&2
  mkdir -p "$dir.tmp"
  local ld=""
  [ -n "$ldvar" ] && ld="-X $ldvar=$ver"
  for pkg in "$@"; do
    (cd "$root/tools/$name" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w $ld" -o "$dir.tmp/$(bin_name "$pkg")" "${pkg#*=}")
  done
  rm -rf "$dir"; mv "$dir.tmp" "$dir"
}

want=${*:-buildkit}
for t in $want; do
  case $t in
    buildkit) build_tool buildkit github.com/moby/buildkit github.com/moby/buildkit/version.Version \
                github.com/moby/buildkit/cmd/buildkitd github.com/moby/buildkit/cmd/buildctl ;;
    ko) build_tool ko github.com/google/ko "" github.com/google/ko ;;
    # trivy v0.74 only compiles with GOEXPERIMENT=jsonv2: set for this build alone (a prefix
    # assignment on a function call lasts for that call), never for our own code.
    # 8–17 min cold, ~170 MB.
    trivy) GOEXPERIMENT=jsonv2 build_tool trivy github.com/aquasecurity/trivy \
             github.com/aquasecurity/trivy/pkg/version/app.ver github.com/aquasecurity/trivy/cmd/trivy ;;
    # our OSV → trivy DB builder (tools/trivydb), cached by the trivy-db version it links; after
    # editing tools/trivydb/main.go remove $cache/trivydb-* to rebuild.
    trivydb) build_tool trivydb github.com/aquasecurity/trivy-db "" github.com/bitvault/bitvault/tools/trivydb ;;
    # the upstream cosign CLI, to cross-check our signatures and attestations (tests only);
    # ~2 min, ~98 MB.
    cosign) build_tool cosign github.com/sigstore/cosign/v2 sigs.k8s.io/release-utils/version.gitVersion \
              github.com/sigstore/cosign/v2/cmd/cosign ;;
    # the Kyverno CLI (kubectl-kyverno, installed as `kyverno`), to run policies/ offline.
    # 6–13 min cold on 2 cores (less when the build cache holds the k8s deps), ~265 MB.
    kyverno) build_tool kyverno github.com/kyverno/kyverno github.com/kyverno/kyverno/pkg/version.BuildVersion \
               kyverno=github.com/kyverno/kyverno/cmd/cli/kubectl-kyverno ;;
    # sigstore policy-controller's tester (installed as `policy-tester`), to check the generated
    # ClusterImagePolicy offline (tests only); ~4 min cold.
    policy-controller) build_tool policy-controller github.com/sigstore/policy-controller "" \
               policy-tester=github.com/sigstore/policy-controller/cmd/tester ;;
    # versitygw, the S3 server the service tests run against (service/internal/testsupport/s3test);
    # ~1.5 min cold, ~44 MB.
    versitygw) build_tool versitygw github.com/versity/versitygw main.Version \
                 github.com/versity/versitygw/cmd/versitygw ;;
    *) echo "tools: unknown tool $t (known: buildkit, ko, trivy, trivydb, cosign, kyverno, policy-controller, versitygw)" >&2; exit 2 ;;
  esac
done
