#!/usr/bin/env bash
# build.sh — build keso's artifacts for every architecture into dist/<arch>/.
#
#   ./build.sh [--k3s FILE] [keso-build flags...]
#   ARCHES="amd64 arm64 armv7"   which profiles (images/<arch>.yaml) to build
#   K3S=/path/to/k3s             same as --k3s (per-arch: K3S_amd64, K3S_arm64, K3S_armv7)
#   KESO_DEBS=/var/cache/keso/debs   where scripts/fetch-inputs.sh puts the .deb inputs
#   SOURCE_DATE_EPOCH=...        fixed time stamps (default: the last commit's time)
#   SKIP_DEPS=1                  do not run scripts/deps.sh (needs root/apt)
#
# Steps: install host packages (scripts/deps.sh, as root), download the Debian
# inputs (scripts/fetch-inputs.sh), build keso-build for the host, run it per arch.
set -euo pipefail
cd "$(dirname "$0")"

K3S_ARG=${K3S:-}
EXTRA=()
while (($#)); do
  case "$1" in
    --k3s) K3S_ARG=$2; shift 2 ;;
    --k3s=*) K3S_ARG=${1#--k3s=}; shift ;;
    *) EXTRA+=("$1"); shift ;;
  esac
done
read -r -a arches <<<"${ARCHES:-amd64 arm64 armv7}"

if [ "${SKIP_DEPS:-0}" != 1 ]; then
  if [ "$(id -u)" = 0 ]; then
    scripts/deps.sh
  else
    echo "build.sh: not root: skipping scripts/deps.sh (run it with sudo once, or set SKIP_DEPS=1)" >&2
  fi
fi
command -v mksquashfs >/dev/null || {
  echo "build.sh: mksquashfs not found: sudo apt-get install squashfs-tools" >&2; exit 1; }

export KESO_DEBS=${KESO_DEBS:-/var/cache/keso/debs}
scripts/fetch-inputs.sh "${arches[@]}"

mkdir -p bin
go build -trimpath -o bin/keso-build ./cmd/keso-build

rc=0
for a in "${arches[@]}"; do
  var="K3S_$a"
  k3s=${!var:-$K3S_ARG}
  args=(--repo . --out dist --debs "$KESO_DEBS")
  [ -n "$k3s" ] && args+=(--k3s "$k3s")
  if ! bin/keso-build "${args[@]}" "${EXTRA[@]}" "$a"; then
    echo "build.sh: $a failed" >&2
    rc=1
    continue
  fi
  (cd "dist/$a" && sha256sum --quiet -c SHA256SUMS) && echo "build.sh: dist/$a/SHA256SUMS verifies"
done
exit $rc
