#!/usr/bin/env bash
# upgrade-delta.sh — the small-box target of upgrades over poor links: on an
# armv7 node (the Pi 3's 32-bit ARM; QEMU TCG, 1 vCPU, 1 GiB; ARCH=arm64 or
# amd64 for others; releases with uncompressed roots, COMPRESSION=zstd for
# the profiles' zstd roots), `keso upgrade` v1 → v2 from a delta and from the whole
# image with the download held to 10 Mbit/s (--max-rate 1250000), slot b
# wiped before each; 2 runs of each, medians. The bound: the delta upgrade
# takes at most twice the full image's download time at that rate. Prints
# the rows for bench/RESULTS.md ("## Deltas").
#
#   bench/upgrade-delta.sh            # ARCH=armv7 RUNS=2 RATE=1250000
set -euo pipefail
cd "$(dirname "$0")/.."
arch=${ARCH:-armv7} runs=${RUNS:-2} rate=${RATE:-1250000} compression=${COMPRESSION:-none}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
KESO_BENCH_ARCH=$arch KESO_BENCH_RATE=$rate KESO_BENCH_COMPRESSION=$compression go test -run '^$' -bench '^BenchmarkUpgradeDelta$' -benchtime "${runs}x" -timeout 90m -v ./test/e2e | tee "$out"
line=$(grep -E '^BenchmarkUpgradeDelta' "$out")
val() { grep -oE "[0-9.]+ $1" <<<"$line" | cut -d' ' -f1; }
echo
echo "$arch node (root compression: $compression), QEMU TCG, 1 vCPU, 1 GiB; download held to $rate bytes/s; medians of $runs runs each;"
echo "\`bench/upgrade-delta.sh\` ($(date -u +%Y-%m-%d), $(nproc) host cores, load average $load_start at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end)."
echo
echo "| image | full download at the rate | delta fetched | delta upgrade (whole command) | ÷ full download (bound 2) | full upgrade (whole command) | peak memory delta / full |"
echo "|---|---|---|---|---|---|---|"
echo "| $(val MiB-image) MiB | $(val s-full-download) s | $(val MiB-delta-fetched) MiB | $(val s-delta-upgrade) s | $(val delta/download) | $(val s-full-upgrade) s | $(val MiB-delta-peak) / $(val MiB-full-peak) MiB |"
