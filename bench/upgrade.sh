#!/usr/bin/env bash
# upgrade.sh — how long `keso upgrade` takes inside an amd64 node (QEMU TCG)
# to fetch, verify, write and read back the signed v2 image and write and
# check its dm-verity tree, and how many
# bytes it downloads; 3 runs, medians. Prints the section for
# bench/RESULTS.md ("## Upgrade").
#
#   bench/upgrade.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp)
trap 'rm -f "$out"' EXIT
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
go test -run '^$' -bench '^BenchmarkUpgrade$' -benchtime 3x -timeout 60m ./test/e2e | tee "$out"
line=$(grep -E '^BenchmarkUpgrade' "$out")
val() { grep -oE "[0-9.]+ $1" <<<"$line" | cut -d' ' -f1; }
echo
echo "## Upgrade"
echo
echo "\`keso upgrade\` v1 → v2 inside an amd64 node (QEMU TCG, 1 vCPU, 1 GiB, virtio disk), the signed image"
echo "served over HTTP on the host's loopback through QEMU's user network; medians of 3 runs; \`bench/upgrade.sh\`"
echo "($(date -u +%Y-%m-%d), $(nproc) host cores, load average $load_start at the start)."
echo
echo "| image | downloaded | fetch | verify (sha256 + ed25519 + version) | write slot + sync | read back + compare | dm-verity tree: build + check | whole command |"
echo "|---|---|---|---|---|---|---|---|"
echo "| $(val MiB-image) MiB | $(val MiB-downloaded) MiB | $(val s-fetch) s | $(val s-verify) s | $(val s-write) s | $(val s-readback) s | $(val s-verity-tree) s | $(val s-total) s |"
