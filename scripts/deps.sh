#!/usr/bin/env bash
# deps.sh — install the Debian packages keso's build and tests need. Idempotent:
# packages already installed are not touched, and apt-get update runs only when
# something is missing. A transient failure of one index (NOTES.md: armhf
# bookworm-security "Mirror sync in progress") does not abort: we check that the
# packages resolve instead.
set -euo pipefail

PKGS=(
  squashfs-tools xorriso gdisk dosfstools e2fsprogs cpio
  qemu-system-x86 qemu-system-arm qemu-utils ovmf qemu-efi-aarch64 qemu-efi-arm ipxe-qemu
  isolinux syslinux-common systemd-boot-efi u-boot-qemu busybox-static
  cloud-image-utils mtools etcd-server openssh-client iproute2 fdisk
  grub-common tftp-hpa dnsmasq-base ipxe curl ssh-audit
  cryptsetup-bin gcc libc6-dev linux-libc-dev
)

need_arch() {
  local a
  for a in arm64 armhf; do
    dpkg --print-foreign-architectures | grep -qx "$a" || { dpkg --add-architecture "$a"; UPDATE=1; }
  done
}

UPDATE=0
need_arch
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})) || ((UPDATE)); then
  apt-get update -q || echo "deps.sh: apt-get update reported errors; continuing (checking packages resolve)" >&2
fi
if ((${#missing[@]})); then
  echo "deps.sh: installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
if ! command -v kubectl >/dev/null; then
  echo "deps.sh: kubectl missing; it is built with the test API server (scripts/kube-tools.sh)" >&2
fi
