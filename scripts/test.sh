#!/usr/bin/env bash
# Runs the whole test suite: the release toolkit (root module) and the service
# module (the reproducibility gate on the real images is a test in release/pipeline). Tests that need
# BuildKit (root + runc) or the pinned tools (trivy) fail rather than skip when
# BITVAULT_REQUIRE_BUILDKIT=1 / BITVAULT_REQUIRE_TOOLS=1 (the defaults here).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export BITVAULT_REQUIRE_BUILDKIT=${BITVAULT_REQUIRE_BUILDKIT:-1}
export BITVAULT_REQUIRE_TOOLS=${BITVAULT_REQUIRE_TOOLS:-1}
export BITVAULT_REQUIRE_POSTGRES=${BITVAULT_REQUIRE_POSTGRES:-1}
echo "== go vet" >&2
go vet ./...
(cd service && go vet ./...)
echo "== go test (toolkit)" >&2
go test -count=1 -timeout 40m ./...
echo "== go test (service)" >&2
(cd service && go test -count=1 -timeout 10m ./...)
