#!/usr/bin/env bash
# verity.sh — the boot-time cost of dm-verity: the amd64 raw disk booted
# 3 times through UEFI (QEMU TCG, 1 vCPU, 1 GiB); the initrd's measure of
# reading the whole root slot through its dm-verity mapping, beside QEMU
# start → k3s handoff. Prints the section for bench/RESULTS.md.
#
#   bench/verity.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp)
trap 'rm -f "$out"' EXIT
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
go test -run '^$' -bench '^BenchmarkVerityBoot$' -benchtime 3x -timeout 60m ./test/e2e | tee "$out"
line=$(grep -E '^BenchmarkVerityBoot' "$out")
val() { grep -oE "[0-9.]+ $1" <<<"$line" | cut -d' ' -f1; }
echo
echo "## dm-verity at boot"
echo
echo "The amd64 raw disk through UEFI (QEMU TCG, 1 vCPU, 1 GiB); medians of 3 boots; \`bench/verity.sh\`"
echo "($(date -u +%Y-%m-%d), $(nproc) host cores, load average $load_start at the start)."
echo
echo "| root verified | read through dm-verity (initrd) | QEMU start → k3s handoff | share of the boot |"
echo "|---|---|---|---|"
echo "| $(val MiB-verified) MiB | $(val s-verity) s | $(val s-handoff) s | $(val pct-of-boot) % |"
