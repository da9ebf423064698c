#!/usr/bin/env bash
# boot-arm.sh — boot time to the k3s handoff for the arm UEFI boot paths
# (arm64 ISO as a virtio-scsi CD and raw disk under AAVMF, armv7 ISO and raw disk
# under AAVMF32; QEMU TCG, the k3s stand-in in place of k3s), 3 boots each,
# plus the artifact sizes per arch; recorded in bench/RESULTS.md under
# "## arm". VMs take the machine-wide QEMU slots, so this waits for other
# users' VMs.
#
#   bench/boot-arm.sh        (from the repository root or anywhere)
#   BENCH_LOG=FILE bench/boot-arm.sh   (re-render the section from a saved run's output)
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
trap 'rm -f "$out"' EXIT
if [ -n "${BENCH_LOG:-}" ]; then
  cp "$BENCH_LOG" "$out"
  load_start="(see the saved run)"
else
  go test -run '^$' -bench '^BenchmarkBootArm$' -benchtime 3x -timeout 90m -v ./test/e2e | tee "$out"
fi

mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
{
  echo "## arm"
  echo
  echo "QEMU start → \`KESO-K3S-STANDIN\` line (the k3s handoff) through UEFI firmware and the boot loader,"
  echo "TCG software emulation, 1 vCPU, 1 GiB: arm64 \`-M virt -cpu cortex-a57\` with AAVMF and systemd-boot"
  echo "(Debian's generic arm64 kernel), armv7 \`-M virt,highmem=off -cpu cortex-a15\` with AAVMF32 and"
  echo "GRUB (grub-efi-arm-bin's core image and keso's grub.cfg; Debian's armmp zImage). 3 timed boots per path"
  echo "after one warm-up boot; \`bench/boot-arm.sh\` ($(date -u +%Y-%m-%d), $(nproc) host cores shared"
  echo "with other work; load average $load_start at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end)."
  echo
  echo "| path | median (s) | min (s) | max (s) |"
  echo "|---|---|---|---|"
  grep -E '^BenchmarkBootArm/.*s-median-handoff' "$out" | while read -r name _n rest; do
    path=${name#BenchmarkBootArm/}; path=${path%-*}
    med=$(grep -oE '[0-9.]+ s-median-handoff' <<<"$rest" | cut -d' ' -f1)
    min=$(grep -oE '[0-9.]+ s-min-handoff' <<<"$rest" | cut -d' ' -f1)
    max=$(grep -oE '[0-9.]+ s-max-handoff' <<<"$rest" | cut -d' ' -f1)
    printf '| %s | %.1f | %.1f | %.1f |\n' "$path" "$med" "$min" "$max"
  done
  echo
  echo "Artifact sizes (the e2e build: k3s stand-in instead of k3s; raw disks are sparse: apparent / on disk):"
  echo
  echo "| arch | artifact | size | on disk |"
  echo "|---|---|---|---|"
  grep -oE 'ARTIFACT-SIZE .*' "$out" | sort -u | while read -r _ arch name size alloc; do
    printf '| %s | %s | %s | %s |\n' "$arch" "$name" "$(mib "$size")" "$(mib "$alloc")"
  done
  echo
} > bench/.arm-section.md

# Replace (or append) the "## arm" section of bench/RESULTS.md.
touch bench/RESULTS.md
python3 - <<'PY'
import re
res = open("bench/RESULTS.md").read()
sec = open("bench/.arm-section.md").read()
m = re.search(r"^## arm\n.*?(?=^## |\Z)", res, flags=re.S | re.M)
if m:
    res = res[:m.start()] + sec + res[m.end():]
else:
    if res and not res.endswith("\n\n"):
        res = res.rstrip("\n") + "\n\n"
    res += sec
open("bench/RESULTS.md", "w").write(res)
PY
rm -f bench/.arm-section.md
echo "bench/RESULTS.md updated (## arm)"
