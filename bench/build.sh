#!/usr/bin/env bash
# bench/build.sh — keso-build timings from a warm cache, artifact sizes, the
# size of the OS without k3s and kernel modules, and a reproducibility check
# with the real inputs (two builds, same SOURCE_DATE_EPOCH, SHA256SUMS equal).
#
#   bench/build.sh [ARCH...]          (default: amd64 arm64 armv7)
#   K3S=FILE|DIR                      k3s to ship (DIR: k3s, k3s-arm64, k3s-armhf);
#                                     default: the test stand-in built for each arch
# Writes bench/build-results.json and prints a Markdown table. Needs the
# inputs from scripts/fetch-inputs.sh; writes only below $OUT (a temp folder).
set -euo pipefail
cd "$(dirname "$0")/.."
read -r -a arches <<<"${*:-amd64 arm64 armv7}"
OUT=${OUT:-$(mktemp -d /tmp/keso-bench-build.XXXXXX)}
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}
go build -trimpath -o "$OUT/keso-build" ./cmd/keso-build

# The stand-in is a test fixture: keso-build refuses it without --test-fixture.
FIXTURE=()
[ -z "${K3S:-}" ] && FIXTURE=(--test-fixture)

k3s_for() {
  if [ -n "${K3S:-}" ]; then echo "$K3S"; return; fi
  local goarch=$1 goarm=
  [ "$1" = armv7 ] && { goarch=arm; goarm=7; }
  CGO_ENABLED=0 GOOS=linux GOARCH=$goarch GOARM=$goarm go build -trimpath -o "$OUT/k3s-standin-$1" ./test/k3s-standin
  echo "$OUT/k3s-standin-$1"
}

echo "| arch | warm build (s) | squashfs | initrd | vmlinuz | iso | raw (apparent) | OS w/o k3s, modules, kernel (squashfs) | reproducible |"
echo "|---|---|---|---|---|---|---|---|---|"
results=()
for a in "${arches[@]}"; do
  k3s=$(k3s_for "$a")
  # warm-up (fills the cache: unpacked kernel, u-root, Go build cache)
  "$OUT/keso-build" --quiet --repo . --out "$OUT/warm" --k3s "$k3s" "${FIXTURE[@]}" "$a"
  t0=$(date +%s.%N)
  "$OUT/keso-build" --quiet --json --repo . --out "$OUT/a" --k3s "$k3s" "${FIXTURE[@]}" "$a" >"$OUT/$a.json"
  t1=$(date +%s.%N)
  "$OUT/keso-build" --quiet --repo . --out "$OUT/b" --k3s "$k3s" "${FIXTURE[@]}" "$a"
  repro=no
  cmp -s "$OUT/a/$a/SHA256SUMS" "$OUT/b/$a/SHA256SUMS" && repro=yes
  # the OS itself: the root without k3s, kernel modules and /boot, squashed the same way
  rm -rf "$OUT/os-$a"
  unsquashfs -q -n -d "$OUT/os-$a" "$OUT/a/$a/keso-$a.squashfs" >/dev/null
  rm -rf "$OUT/os-$a/usr/local/bin/k3s" "$OUT/os-$a/lib/modules" "$OUT/os-$a/boot"
  mksquashfs "$OUT/os-$a" "$OUT/os-$a.squashfs" -noappend -all-root -no-xattrs -comp zstd -Xcompression-level 3 -b 256K -quiet -no-progress >/dev/null
  size() { stat -c %s "$1" 2>/dev/null || echo 0; }
  mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b/1048576 }'; }
  d="$OUT/a/$a"
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b-a }')
  echo "| $a | $secs | $(mib "$(size "$d/keso-$a.squashfs")") | $(mib "$(size "$d/initrd")") | $(mib "$(size "$d/vmlinuz")") | $( [ -f "$d/keso-$a.iso" ] && mib "$(size "$d/keso-$a.iso")" || echo -) | $(mib "$(size "$d/keso-$a.img")") | $(mib "$(size "$OUT/os-$a.squashfs")") (content $(du -sb "$OUT/os-$a" | awk '{printf "%.1f MiB", $1/1048576}')) | $repro |"
  results+=("{\"arch\":\"$a\",\"warm_seconds\":$secs,\"reproducible\":\"$repro\",\"os_squashfs_bytes\":$(size "$OUT/os-$a.squashfs"),\"manifest\":$(cat "$OUT/$a.json")}")
done
(IFS=,; echo "[${results[*]}]") >bench/build-results.json
echo "per-step timings: bench/build-results.json; artifacts in $OUT"
