#!/usr/bin/env bash
# kube-tools.sh — provide a real Kubernetes control plane for keso's
# integration tests: etcd, kube-apiserver and kubectl in ONE folder outside the
# repository, so that KUBEBUILDER_ASSETS (controller-runtime's envtest) can
# point at it.
#
#   scripts/kube-tools.sh              build when missing, print the folder
#   scripts/kube-tools.sh --print-dir  print the folder; exit 1 if incomplete
#
# Idempotent: the folder is versioned (/var/cache/keso/kube-tools/v1.37.2 by
# default, KESO_KUBE_TOOLS_DIR overrides) and reused when all three binaries
# are present and report the expected version. kube-apiserver and kubectl are
# built from Go modules (test/tools, a separate module that pins
# k8s.io/kubernetes v1.37.2); a cold build takes 4–8 min on 2 cores and ~3 GB
# of Go build cache. etcd comes from Debian's etcd-server package
# (scripts/deps.sh) and is copied in.
# Only the LAST line of stdout is the folder; progress goes to stderr.
set -euo pipefail

K8S_VERSION=v1.37.2
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=${KESO_KUBE_TOOLS_DIR:-/var/cache/keso/kube-tools/$K8S_VERSION}

CMDS=(kube-apiserver kubectl kube-controller-manager kube-scheduler kubelet)

complete() {
  local c
  [[ -x $DIR/etcd ]] || return 1
  for c in "${CMDS[@]}"; do [[ -x $DIR/$c ]] || return 1; done
  "$DIR/kube-apiserver" --version 2>/dev/null | grep -qx "Kubernetes $K8S_VERSION" || return 1
  "$DIR/kubelet" --version 2>/dev/null | grep -qx "Kubernetes $K8S_VERSION" || return 1
}

if [[ ${1:-} == --print-dir ]]; then
  if complete; then echo "$DIR"; exit 0; fi
  echo "kube-tools.sh: $DIR is incomplete; run scripts/kube-tools.sh to build it" >&2
  exit 1
fi

if complete; then
  echo "kube-tools.sh: reusing $DIR" >&2
  echo "$DIR"
  exit 0
fi

mkdir -p "$DIR"
# Serialise concurrent callers (two test packages, CI and a developer).
exec 9>"$DIR/.lock"
flock 9
if complete; then echo "$DIR"; exit 0; fi

ETCD=$(command -v etcd || true)
if [[ -z $ETCD ]]; then
  echo "kube-tools.sh: etcd not found; install Debian's etcd-server (scripts/deps.sh does)" >&2
  exit 1
fi
install -m 0755 "$ETCD" "$DIR/etcd.tmp" && mv -f "$DIR/etcd.tmp" "$DIR/etcd"

major=${K8S_VERSION#v}; major=${major%%.*}
minor=${K8S_VERSION#v*.}; minor=${minor%%.*}
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION"
ldflags+=" -X k8s.io/component-base/version.gitMajor=$major -X k8s.io/component-base/version.gitMinor=$minor"
ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"
ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION"
ldflags+=" -X k8s.io/client-go/pkg/version.gitMajor=$major -X k8s.io/client-go/pkg/version.gitMinor=$minor"

cd "$ROOT/test/tools"
start=$SECONDS
# One go build for all of them: they share most packages, and one process
# compiles each package once. Missing binaries only.
todo=()
for cmd in "${CMDS[@]}"; do [[ -x $DIR/$cmd ]] || todo+=("k8s.io/kubernetes/cmd/$cmd"); done
if ((${#todo[@]})); then
  echo "kube-tools.sh: building ${todo[*]##*/} $K8S_VERSION (cold: 15-30 min on 2 cores)" >&2
  tmp=$(mktemp -d "$DIR/.build.XXXXXX")
  CGO_ENABLED=0 GOOS=linux GOARCH=amd64 GOFLAGS=-mod=mod go build -trimpath -ldflags "$ldflags" \
    -o "$tmp/" "${todo[@]}"
  for f in "$tmp"/*; do mv -f "$f" "$DIR/${f##*/}"; done
  rmdir "$tmp"
fi
echo "kube-tools.sh: built in $((SECONDS - start)) s" >&2
if ! complete; then
  echo "kube-tools.sh: $DIR/kube-apiserver does not report Kubernetes $K8S_VERSION" >&2
  exit 1
fi
echo "$DIR"
