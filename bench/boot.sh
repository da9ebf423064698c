#!/usr/bin/env bash
# boot.sh — boot time to the k3s handoff for each amd64 boot path (QEMU TCG,
# the k3s stand-in in place of k3s), 3 boots each, medians recorded in
# bench/RESULTS.md under "## Boot". VMs take the machine-wide QEMU slots,
# so this waits for other users' VMs.
#
#   bench/boot.sh            (from the repository root or anywhere)
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
trap 'rm -f "$out"' EXIT
go test -run '^$' -bench '^BenchmarkBoot$' -benchtime 3x -timeout 90m ./test/e2e | tee "$out"

{
  echo "## Boot"
  echo
  echo "QEMU start → \`KESO-K3S-STANDIN\` line on the serial console (the k3s handoff), amd64, TCG"
  echo "software emulation, 1 vCPU, 1 GiB, Debian cloud kernel; 3 timed boots per path after one warm-up"
  echo "boot (the benchmark framework's first N=1 run); \`bench/boot.sh\`"
  echo "($(date -u +%Y-%m-%d), $(nproc) host cores shared with other work; load average $load_start at the"
  echo "start, $(cut -d' ' -f1-3 /proc/loadavg) at the end). Boot times under TCG scale with host load."
  echo
  echo "| path | median (s) | min (s) | max (s) |"
  echo "|---|---|---|---|"
  grep -E '^BenchmarkBoot/' "$out" | while read -r name _n rest; do
    path=${name#BenchmarkBoot/}; path=${path%-*}
    med=$(grep -oE '[0-9.]+ s-median-handoff' <<<"$rest" | cut -d' ' -f1)
    min=$(grep -oE '[0-9.]+ s-min-handoff' <<<"$rest" | cut -d' ' -f1)
    max=$(grep -oE '[0-9.]+ s-max-handoff' <<<"$rest" | cut -d' ' -f1)
    printf '| %s | %.1f | %.1f | %.1f |\n' "$path" "$med" "$min" "$max"
  done
  echo
} > bench/.boot-section.md

# Replace (or append) the "## Boot" section of bench/RESULTS.md.
touch bench/RESULTS.md
python3 - <<'PY'
import re
res = open("bench/RESULTS.md").read()
sec = open("bench/.boot-section.md").read()
m = re.search(r"^## Boot\n.*?(?=^## |\Z)", res, flags=re.S | re.M)
if m:
    res = res[:m.start()] + sec + res[m.end():]
else:
    if res and not res.endswith("\n\n"):
        res = res.rstrip("\n") + "\n\n"
    if not res:
        res = "# Benchmark results\n\n"
    res += sec
open("bench/RESULTS.md", "w").write(res)
PY
rm -f bench/.boot-section.md
echo "bench/RESULTS.md updated"
