#!/usr/bin/env bash
# initsize.sh — the size of keso-init (built as keso-build builds it:
# static, -trimpath, -s -w, no build id) at two revisions, for each arch,
# and the keso packages it links. Prints a Markdown table.
#
#   bench/initsize.sh OLD_REV [NEW_REV]      (NEW_REV defaults to the work tree)
set -euo pipefail
cd "$(dirname "$0")/.."
old=${1:?usage: bench/initsize.sh OLD_REV [NEW_REV]}
new=${2:-}
tmp=$(mktemp -d)
trap 'git worktree remove --force "$tmp/old" >/dev/null 2>&1 || true; [[ -n "$new" ]] && git worktree remove --force "$tmp/new" >/dev/null 2>&1; rm -rf "$tmp"' EXIT
git worktree add -q --detach "$tmp/old" "$old"
newdir=$PWD
if [[ -n "$new" ]]; then
	git worktree add -q --detach "$tmp/new" "$new"
	newdir=$tmp/new
fi
size() { # dir arch
	(cd "$1" && CGO_ENABLED=0 GOOS=linux GOARCH=$2 GOARM=7 go build -trimpath -buildvcs=false \
		-ldflags "-s -w -buildid=" -o "$tmp/ki" ./cmd/keso-init) && stat -c %s "$tmp/ki"
}
links() { (cd "$1" && go list -deps ./cmd/keso-init | grep -c '^github.com/keso-os/keso/pkg/'); }
image() { (cd "$1" && go list -deps ./cmd/keso-init | grep -cE '/pkg/(image|install)(/|$)' || true); }
echo "| arch | keso-init at $old | at ${new:-the work tree} | change |"
echo "|---|---|---|---|"
for arch in amd64 arm64 arm; do
	a=$(size "$tmp/old" $arch)
	b=$(size "$newdir" $arch)
	echo "| $arch | $a B | $b B | $((b - a)) B ($(awk -v a="$a" -v b="$b" 'BEGIN{printf "%+.1f%%", (b-a)*100/a}')) |"
done
echo
echo "keso packages linked: $(links "$tmp/old") at $old ($(image "$tmp/old") of pkg/image/… and pkg/install), $(links "$newdir") at ${new:-the work tree} ($(image "$newdir") of them)."
