#!/usr/bin/env bash
# fetch-inputs.sh — download the Debian packages keso-build unpacks (kernels,
# bootloaders) into a cache folder outside the repo, with `apt-get download`.
#
#   scripts/fetch-inputs.sh [ARCH...]      (default: $ARCHES or "amd64 arm64 armv7")
#   KESO_DEBS=/var/cache/keso/debs         (where the .deb files go)
#
# Idempotent: a package whose resolved version is already in the folder is not
# downloaded again. The kernel ABI (linux-image-6.1.0-NN-…) is resolved from the
# metapackage, so security updates are followed. `apt-get update` failing on one
# index (armhf bookworm-security "Mirror sync in progress", NOTES.md) does not
# abort: we check that every package we need resolves instead.
set -euo pipefail

DEBS=${KESO_DEBS:-/var/cache/keso/debs}
read -r -a arches <<<"${*:-${ARCHES:-amd64 arm64 armv7}}"
mkdir -p "$DEBS"

debarch() {
  case "$1" in
    amd64) echo amd64 ;; arm64) echo arm64 ;; armv7|arm|armhf) echo armhf ;;
    *) echo "fetch-inputs: unknown arch $1 (want amd64, arm64 or armv7)" >&2; exit 2 ;;
  esac
}

# Packages per keso arch: "<package>:<debian arch>". The kernel entry is the
# metapackage; its Depends names the ABI-versioned image package.
pkgs_for() {
  case "$1" in
    amd64) echo "linux-image-cloud-amd64:amd64 systemd-boot-efi:amd64 isolinux:all syslinux-common:all ca-certificates:all" ;;
    arm64) echo "linux-image-arm64:arm64 systemd-boot-efi:arm64 ca-certificates:all" ;;
    armv7) echo "linux-image-armmp:armhf ca-certificates:all" ;;
  esac
}

if [ "$(id -u)" = 0 ]; then
  for a in arm64 armhf; do
    if ! dpkg --print-foreign-architectures | grep -qx "$a"; then
      dpkg --add-architecture "$a"; FORCE_UPDATE=1
    fi
  done
fi

resolves() { apt-cache show --no-all-versions "$1" >/dev/null 2>&1; }

# Update the package lists only when something does not resolve (or arches were added).
need_update=${FORCE_UPDATE:-0}
for a in "${arches[@]}"; do
  for p in $(pkgs_for "$a"); do
    resolves "${p%:all}" || need_update=1
  done
done
if [ "$need_update" = 1 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -q || echo "fetch-inputs: apt-get update reported errors; continuing (checking packages resolve)" >&2
  else
    echo "fetch-inputs: some packages do not resolve and we are not root; run 'sudo apt-get update'" >&2
  fi
fi

# download PKG[:ARCH] — apt-get download into $DEBS unless that version is there.
download() {
  local spec=$1 name ver arch file
  name=${spec%%:*}
  ver=$(apt-cache show --no-all-versions "$spec" 2>/dev/null | sed -n 's/^Version: //p' | head -1)
  arch=$(apt-cache show --no-all-versions "$spec" 2>/dev/null | sed -n 's/^Architecture: //p' | head -1)
  if [ -z "$ver" ]; then
    echo "fetch-inputs: package $spec does not resolve (apt-get update? foreign arch added?)" >&2
    return 1
  fi
  file="${name}_${ver//:/%3a}_${arch}.deb"
  if [ -s "$DEBS/$file" ]; then
    echo "fetch-inputs: have $file"
  else
    echo "fetch-inputs: downloading $spec ($ver)"
    (cd "$DEBS" && apt-get download -q "$spec=$ver" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
    [ -s "$DEBS/$file" ] || { echo "fetch-inputs: download of $spec failed" >&2; return 1; }
  fi
}

for a in "${arches[@]}"; do
  da=$(debarch "$a")
  for p in $(pkgs_for "$a"); do
    spec=$p
    [ "${p##*:}" = all ] && spec=${p%:all}
    download "$spec"
    case "$p" in
      linux-image-*)
        # metapackage → ABI package (first linux-image-* in Depends)
        abi=$(apt-cache show --no-all-versions "$spec" | sed -n 's/^Depends: //p' | tr ',' '\n' |
          sed -n 's/^ *\(linux-image-[^ ]*\).*/\1/p' | head -1)
        [ -n "$abi" ] || { echo "fetch-inputs: cannot resolve kernel ABI from $spec" >&2; exit 1; }
        download "$abi:$da"
        ;;
    esac
  done
done
echo "fetch-inputs: packages are in $DEBS"
