#!/usr/bin/env bash
# realnode.sh — the per-node step times of a real rollout (TestRealNode: two
# amd64 keso VMs under QEMU TCG with a real kubelet v1.37.2 and containerd,
# joined to a real control plane on the host, upgraded 1.0.0 → 2.0.0 by the
# keso operator, staged outside the maintenance window, switched inside):
# staging, then per node drain, Job start, switch, reboot to Ready, commit. One run (the test takes ~25 min); prints the section for
# bench/RESULTS.md ("## Real node").
#
#   bench/realnode.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp)
trap 'rm -f "$out"' EXIT
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
KUBEBUILDER_ASSETS=${KUBEBUILDER_ASSETS:-$(./scripts/kube-tools.sh --print-dir)} \
  go test -count=1 -run '^TestRealNode$' -v -timeout 90m ./test/e2e | tee "$out"
grep -q -- '--- PASS: TestRealNode' "$out" || { echo "realnode.sh: TestRealNode did not pass" >&2; exit 1; }
steps=$(grep -oE '(store-[0-9]+): drain [^;]*' "$out")
ready=$(grep -oE 'both nodes Ready [0-9.ms]+ after the VMs started' "$out" | head -1)
staged=$(grep -oE 'both nodes staged v2 [0-9.ms]+ after the OSVersion was applied' "$out" | head -1)
served=$(grep -oE 'v2 image bytes served: .*' "$out" | head -1)
echo
echo "## Real node"
echo
echo "A rollout of 1.0.0 → 2.0.0 over two amd64 keso VMs (QEMU TCG, 1 vCPU, 2 GiB each, UEFI, raw disk) running a"
echo "real kubelet v1.37.2 and Debian's containerd 1.6.20 (the real-node fixture), joined to etcd + kube-apiserver +"
echo "kube-controller-manager + kube-scheduler v1.37.2 on the host; the keso operator on the host, concurrency 1;"
echo "the signed 2.0.0 image served over HTTP on the host's loopback. One run, \`bench/realnode.sh\`"
echo "($(date -u +%Y-%m-%d), $(nproc) host cores, load average $load_start at the start). Steps are seen by polling"
echo "the API server every 2 s. The OSVersion is applied with its maintenance window closed: both nodes stage"
echo "(their stage Jobs fetch, check and write slot B) with no cordon; then the window is opened. Per node: drain ="
echo "cordon seen → Job created; Job start → its pod Running; switch = pod Running → the VM's reboot (keso upgrade"
echo "arms the staged slot: sha256 and dm-verity check, ESP); reboot to Ready = reboot → Node Ready on 2.0.0;"
echo "commit = Ready → keso.io/committed=true."
echo
echo "Join: $ready. Staging: $staged; $served."
echo
echo "| node | drain | Job start | switch | reboot to Ready | commit | uncordon |"
echo "|---|---|---|---|---|---|---|"
while read -r line; do
  node=${line%%:*}
  line=${line//+/ and }
  f() { grep -oE "$1 [^,;]*" <<<"$line" | sed "s/^$1 //"; }
  echo "| $node | $(f drain) | $(f 'Job start') | $(f switch) | $(f 'reboot to Ready') | $(f commit) | $(f uncordon) |"
done <<<"$steps"
