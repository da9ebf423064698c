#!/usr/bin/env bash
# fetch-inputs.sh — download the Debian packages keso-build unpacks (kernels,
# bootloaders, CA certificates) into a cache folder outside the repo, with
# `apt-get download`.
#
#   scripts/fetch-inputs.sh [ARCH...]      (default: $ARCHES or "amd64 arm64 armv7")
#   KESO_DEBS=/var/cache/keso/debs         (where the .deb files go)
#
# Idempotent: a package whose resolved version is already in the folder is not
# downloaded again. The kernel ABI (linux-image-6.1.0-NN-…) is resolved from the
# metapackage, so security updates are followed (keso-build follows the same
# metapackage, so it also needs the metapackage's .deb). `apt-get update`
# failing on one index (armhf bookworm-security "Mirror sync in progress",
# NOTES.md) does not abort: we check that every package we need resolves.
set -euo pipefail

DEBS=${KESO_DEBS:-/var/cache/keso/debs}
read -r -a arches <<<"${*:-${ARCHES:-amd64 arm64 armv7}}"
mkdir -p "$DEBS"

# Raspberry Pi SD images (arm64, armv7): the Pi's boot firmware and the
# Wi-Fi blobs are in Debian's non-free-firmware component (NOTES.md); U-Boot
# (u-boot-rpi) is in main and per Debian arch.
rpi_pkgs_for() {
  case "$1" in
    arm64) echo "raspi-firmware firmware-brcm80211 u-boot-rpi:arm64" ;;
    armv7) echo "raspi-firmware firmware-brcm80211 u-boot-rpi:armhf" ;;
  esac
}

# Wi-Fi (arm profiles' wifi: block): Debian's wpa_supplicant and the packages
# holding the shared libraries it loads (keso-build ships only those files).
wifi_libs="libc6 libssl3 libnl-3-200 libnl-genl-3-200 libnl-route-3-200 libpcsclite1 libdbus-1-3 libsystemd0 libcap2 libgcrypt20 libgpg-error0 liblz4-1 liblzma5 libzstd1"
wifi_pkgs_for() {
  local d
  case "$1" in
    arm64) d=arm64 ;;
    armv7) d=armhf ;;
    *) return 0 ;;
  esac
  for p in wpasupplicant $wifi_libs; do echo "$p:$d"; done
}

# The admin userland (every profile's `admin:` block, issue #17): bash and
# busybox (static), sudo, and the packages holding the shared libraries and
# PAM modules sudo loads (keso-build ships only those files).
admin_libs="libc6 libpam0g libpam-modules libaudit1 libcap-ng0 libselinux1 libpcre2-8-0 zlib1g libcrypt1"
admin_pkgs_for() {
  local d
  case "$1" in
    amd64|amd64-metal) d=amd64 ;;
    arm64) d=arm64 ;;
    armv7) d=armhf ;;
  esac
  for p in bash-static busybox-static sudo $admin_libs; do echo "$p:$d"; done
}

# Packages per keso arch ("<package>:<debian arch>"; arch-independent ones bare).
# The kernel entry is the metapackage; its Depends names the ABI package.
# The real-node test fixture (test/realnode, never shipped): Debian's
# container runtime, carried into a TEST image with its shared libraries.
realnode_pkgs_for() {
  case "$1" in
    amd64) for p in containerd runc containernetworking-plugins libc6 libseccomp2 iptables libxtables12 libip4tc2 libip6tc2 libnftnl11 libmnl0 libnetfilter-conntrack3 libnfnetlink0; do echo "$p:amd64"; done ;;
  esac
}

pkgs_for() {
  case "$1" in
    amd64) echo "linux-image-cloud-amd64:amd64 systemd-boot-efi:amd64 isolinux syslinux-common ca-certificates" ;;
    arm64) echo "linux-image-arm64:arm64 systemd-boot-efi:arm64 ca-certificates" ;;
    armv7) echo "linux-image-armmp:armhf grub-efi-arm-bin:armhf ca-certificates" ;;
    amd64-metal) echo "linux-image-amd64:amd64 systemd-boot-efi:amd64 isolinux syslinux-common ca-certificates" ;;
    *) echo "fetch-inputs: unknown arch $1 (want amd64, arm64, armv7 or amd64-metal)" >&2; exit 2 ;;
  esac
}

specs=()
for a in "${arches[@]}"; do
  for p in $(pkgs_for "$a") $(rpi_pkgs_for "$a") $(wifi_pkgs_for "$a") $(admin_pkgs_for "$a") $(realnode_pkgs_for "$a"); do
    [[ " ${specs[*]} " == *" $p "* ]] || specs+=("$p")
  done
done

# non-free-firmware in its own sources file (the main one is never edited).
NFF=/etc/apt/sources.list.d/keso-non-free-firmware.list
needs_nff=0
for s in "${specs[@]}"; do
  case "$s" in raspi-firmware*|firmware-brcm80211*) needs_nff=1 ;; esac
done
if [ "$(id -u)" = 0 ] && ((needs_nff)) && ! [ -e "$NFF" ] &&
   ! grep -rqs 'non-free-firmware' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm non-free-firmware" >"$NFF"
  echo "fetch-inputs: added $NFF (Raspberry Pi firmware, Wi-Fi blobs)"
  FORCE_UPDATE=1
fi

if [ "$(id -u)" = 0 ]; then
  for a in arm64 armhf; do
    if ! dpkg --print-foreign-architectures | grep -qx "$a"; then
      dpkg --add-architecture "$a"; FORCE_UPDATE=1
    fi
  done
fi

# show SPEC... -> "name arch version first-linux-image-dependency" per package (one apt-cache run).
show() {
  apt-cache show --no-all-versions "$@" 2>/dev/null | awk '
    /^Package: /      { name=$2 }
    /^Architecture: / { arch=$2 }
    /^Version: /      { ver=$2 }
    /^Depends: /      { dep=""; n=split(substr($0, 10), d, ","); for (i=1; i<=n; i++) { gsub(/^ +/, "", d[i]); split(d[i], w, " "); if (w[1] ~ /^linux-image-[0-9]/) { dep=w[1]; break } } }
    /^$/              { if (name != "") print name, arch, ver, (dep == "" ? "-" : dep); name=""; dep="" }
    END               { if (name != "") print name, arch, ver, (dep == "" ? "-" : dep) }'
}

resolve_all() { info=$(show "${specs[@]}"); [ "$(wc -l <<<"$info")" -ge "${#specs[@]}" ]; }
if [ "${FORCE_UPDATE:-0}" = 1 ] || ! resolve_all; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -q || echo "fetch-inputs: apt-get update reported errors; continuing (checking packages resolve)" >&2
  else
    echo "fetch-inputs: some packages do not resolve and we are not root; run 'sudo apt-get update'" >&2
  fi
  resolve_all || true
fi

# download NAME ARCH VERSION — apt-get download into $DEBS unless that version is there.
download() {
  local name=$1 arch=$2 ver=$3 file spec
  file="${name}_${ver//:/%3a}_${arch}.deb"
  spec=$name
  [ "$arch" = all ] || spec="$name:$arch"
  if [ -s "$DEBS/$file" ]; then
    echo "fetch-inputs: have $file"
    return
  fi
  echo "fetch-inputs: downloading $spec ($ver)"
  (cd "$DEBS" && apt-get download -q "$spec=$ver" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
  [ -s "$DEBS/$file" ] || { echo "fetch-inputs: download of $spec=$ver failed" >&2; exit 1; }
}

abis=()
for spec in "${specs[@]}"; do
  name=${spec%%:*}
  want_arch=${spec#*:}; [ "$want_arch" = "$spec" ] && want_arch=""
  line=$(awk -v n="$name" -v a="$want_arch" '$1 == n && (a == "" || $2 == a || $2 == "all") { print; exit }' <<<"$info")
  if [ -z "$line" ]; then
    echo "fetch-inputs: package $spec does not resolve (apt-get update? foreign arch added?)" >&2
    exit 1
  fi
  read -r n arch ver dep <<<"$line"
  download "$n" "$arch" "$ver"
  if [[ "$n" == linux-image-* ]]; then
    [ "$dep" != - ] || { echo "fetch-inputs: cannot resolve the kernel ABI package from $spec" >&2; exit 1; }
    abis+=("$dep:$arch")
  fi
done
if ((${#abis[@]})); then
  while read -r n arch ver _; do
    download "$n" "$arch" "$ver"
  done < <(show "${abis[@]}")
fi
echo "fetch-inputs: packages are in $DEBS"
