#!/usr/bin/env bash
# delta.sh — what a node fetches to upgrade with a delta (keso-build delta),
# against the full image, for the changes docs/upgrade.md "Deltas" names:
# keso rebuilt with a one-line source change, a k3s-sized binary moved one
# patch release (kubelet v1.37.1 -> v1.37.2, built from Go modules), a
# change to the overlay only, and an unrelated image; each with the root
# squashfs compressed (zstd, the old default) and not compressed (none).
# Then applies each delta as a node does (keso-build delta-apply: time and
# peak memory). Prints the section for bench/RESULTS.md ("## Deltas").
#
#   bench/delta.sh            (OUT=DIR keeps the images; ~15 min warm, a
#                              cold kubelet v1.37.1 build adds ~10-20 min)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${OUT:-$(mktemp -d /tmp/keso-delta.XXXXXX)}
mkdir -p "$OUT"
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}

go build -trimpath -o "$OUT/keso-build" ./cmd/keso-build
CGO_ENABLED=0 go build -trimpath -o "$OUT/k3s-standin" ./test/k3s-standin

# kubelet VERSION: built once from k8s.io/kubernetes Go modules (test/tools
# pins v1.37.2; the other version gets a copy of that module, repinned),
# cached in /var/cache/keso/kubelet/VERSION.
kubelet() {
  local v=$1 dir=/var/cache/keso/kubelet/$1
  if [[ ! -x $dir/kubelet ]]; then
    local mod
    mod=$(mktemp -d)
    cp "$ROOT/test/tools/go.mod" "$ROOT/test/tools/go.sum" "$ROOT/test/tools/tools.go" "$mod/"
    sed -i "s/v1\.37\.2/$v/g; s/v0\.37\.2/v0.${v#v1.}/g" "$mod/go.mod"
    echo "delta.sh: building kubelet $v (cold: 10-20 min on 2 cores)" >&2
    mkdir -p "$dir"
    (cd "$mod" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$v" \
      -o "$dir/kubelet.tmp" k8s.io/kubernetes/cmd/kubelet)
    mv "$dir/kubelet.tmp" "$dir/kubelet"
    rm -rf "$mod"
  fi
  echo "$dir/kubelet"
}

# tree NAME [EDIT]: a copy of this checkout (work tree, not .git) with EDIT run in it.
tree() {
  local d=$OUT/src-$1
  rm -rf "$d"
  mkdir -p "$d"
  tar -C "$ROOT" --exclude=.git --exclude=./dist -cf - . | tar -C "$d" -xf -
  [[ -n ${2:-} ]] && (cd "$d" && eval "$2")
  echo "$d"
}

# build NAME SRC VERSION COMP [EXTRA]: the amd64 upgrade image.
build() {
  local name=$1 src=$2 ver=$3 comp=$4 extra=${5:-}
  sed "s/^compression: .*/compression: $comp/" "$src/images/amd64.yaml" >"$src/images/amd64-$comp.yaml"
  local args=(--quiet --repo "$src" --out "$OUT/out-$name-$comp" --k3s "$OUT/k3s-standin" --test-fixture
    --version "$ver" --outputs squashfs)
  [[ -n $extra ]] && args+=(--extra "$extra")
  "$OUT/keso-build" "${args[@]}" "$src/images/amd64-$comp.yaml"
  cp "$OUT/out-$name-$comp/amd64/keso-$ver-amd64.squashfs" "$OUT/$name-$comp.squashfs"
}

extra_kubelet() {
  local d=$OUT/extra-$1
  mkdir -p "$d/usr/local/bin"
  cp "$(kubelet "$1")" "$d/usr/local/bin/kubelet"
  echo "$d"
}

base=$(tree base)
keso=$(tree keso "sed -i 's/(keso upgrade --switch arms it)/(keso upgrade --switch will arm it)/' pkg/status/status.go")
overlay=$(tree overlay "sed -i '0,/^metadata:/s//metadata:\n  annotations: {keso.io\/note: changed}/' overlay/usr/share/keso/manifests/keso-operator.yaml")
for comp in zstd none; do
  build v1 "$base" 1.0.0 "$comp"
  build keso "$keso" 1.0.1 "$comp"
  build overlay "$overlay" 1.0.1 "$comp"
done
k1=$(extra_kubelet v1.37.1)
k2=$(extra_kubelet v1.37.2)
for comp in zstd none; do
  build k1 "$base" 1.0.0 "$comp" "$k1"
  build k2 "$base" 1.0.1 "$comp" "$k2"
done

row() { # CHANGE COMP FROM TO: images $OUT/FROM.squashfs ("": the delta from nothing), $OUT/TO.squashfs
  local r fetched full zfull from=()
  [[ -n $3 ]] && from=(--from "$OUT/$3.squashfs")
  r=$("$OUT/keso-build" delta-size "${from[@]}" --to "$OUT/$4.squashfs" | head -1)
  fetched=$(grep -oE 'fetches [0-9]+' <<<"$r" | cut -d' ' -f2)
  full=$(stat -c %s "$OUT/$4.squashfs")
  zfull=$(stat -c %s "$OUT/${4%-*}-zstd.squashfs")
  printf '| %s | %s | %.1f MiB | %.1f MiB | %s | %.2f%% | %.2f%% | %s | %s |\n' "$1" "$2" \
    "$(bc -l <<<"$full/1048576")" "$(bc -l <<<"$zfull/1048576")" "$fetched" \
    "$(bc -l <<<"100*$fetched/$full")" "$(bc -l <<<"100*$fetched/$zfull")" \
    "$(hms $((fetched * 8 / 56000)))" "$(hms $((zfull * 8 / 56000)))"
}
hms() { printf '%dh%02dm%02ds' $(($1 / 3600)) $(($1 % 3600 / 60)) $(($1 % 60)); }

echo
echo "## Deltas"
echo
echo "\`keso-build delta-size\` between amd64 upgrade images built by \`bench/delta.sh\` (the k3s stand-in as k3s;"
echo "$(date -u +%Y-%m-%d), $(nproc) host cores, load average $load_start at the start). \"full\" is the image a node"
echo "fetches without a delta; \"today's full\" the zstd image every node fetched before deltas. 56 kbit/s times"
echo "are bytes × 8 / 56,000."
echo
echo "| change | root compression | full image | today's full (zstd) | fetched (bytes) | ÷ full | ÷ today's full | at 56 kbit/s | today's full at 56 kbit/s |"
echo "|---|---|---|---|---|---|---|---|---|"
for comp in zstd none; do
  row "keso rebuilt, one-line change" "$comp" "v1-$comp" "keso-$comp"
  row "kubelet v1.37.1 → v1.37.2 in the root" "$comp" "k1-$comp" "k2-$comp"
  row "overlay file changed" "$comp" "v1-$comp" "overlay-$comp"
done
row "unrelated: a zstd root to an uncompressed one" "zstd → none" v1-zstd keso-none
row "nothing in common: the delta from nothing (full.json)" none "" keso-none

apply() { # CHANGE FROM TO: the node's work, memory to memory (pkg/delta BenchmarkApply)
  local r
  r=$(KESO_DELTA_FROM=$OUT/$2.squashfs KESO_DELTA_TO=$OUT/$3.squashfs \
    go test -run '^$' -bench '^BenchmarkApply$' -benchtime 3x ./pkg/delta | grep '^BenchmarkApply')
  awk -v c="$1" '{ for (i = 2; i < NF; i++) m[$(i+1)] = $i
    printf "| %s | %s MB/s | %.0f ms | %.0f MiB | %.0f MiB |\n", c, m["MB/s"], m["ns/op"]/1e6, m["peak-heap-MiB@GOGC=10"], m["B/op"]/1048576 }' <<<"$r"
}
echo
echo "Applying a delta on this machine (\`go test -bench BenchmarkApply ./pkg/delta\` with the images above, the mean of"
echo "3 runs; no disk: the slot is memory), uncompressed roots:"
echo
echo "| change | image assembled at | per image | peak heap above the images (GOGC=10) | allocated per apply |"
echo "|---|---|---|---|---|"
apply "keso rebuilt, one-line change" v1-none keso-none
apply "kubelet v1.37.1 → v1.37.2 in the root" k1-none k2-none
