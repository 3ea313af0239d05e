#!/usr/bin/env bash
# Sets up a fresh Debian machine (as root, with Go) for bvrelease and its tests:
# the Debian packages the pipeline and the tests use, and the pinned tools built
# once from tools/ and cached by version (~/.cache/bitvault/tools/<tool>-<version>).
# Idempotent: a second run only checks.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
need=()
for pkg in runc git ca-certificates xz-utils busybox-static postgresql-15; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
"$root/scripts/tools.sh" buildkit trivy trivydb cosign kyverno policy-controller versitygw
# git refuses to read a repository owned by another user (CI clones as root, but be safe).
git config --global --get-all safe.directory 2>/dev/null | grep -qx '\*' || git config --global --add safe.directory '*'
echo "setup: ready (runc $(runc --version | head -1 | awk '{print $3}'), buildkit $(cd "$root/tools/buildkit" && go list -m -f '{{.Version}}' github.com/moby/buildkit))" >&2
