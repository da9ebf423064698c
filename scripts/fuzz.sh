#!/usr/bin/env bash
# scripts/fuzz.sh: run every native Go fuzz target of the module, one at a
# time, for a short while each (the quick pass; bench/fuzz.sh is the long one).
#
#   scripts/fuzz.sh                 every target, FUZZTIME (5s) each
#   scripts/fuzz.sh --list          print "<package> <target>" per target and exit
#   FUZZTIME=60s FUZZ_PARALLEL=1 FUZZ_ONLY='pkg/ntp|FuzzParsePublic' scripts/fuzz.sh
#
# Targets are the `func FuzzXxx(f *testing.F)` in *_test.go files, outside
# test/e2e (QEMU). Each runs as
#   go test -run '^$' -fuzz '^FuzzXxx$' -fuzztime $FUZZTIME -parallel $FUZZ_PARALLEL \
#     -fuzzminimizetime $FUZZMINIMIZETIME ./pkg/x
# FUZZMINIMIZETIME (default 5s, go's is 60s) bounds the minimizing of each
# new input: go's minimizer is quadratic in the input's size, and with one
# worker it fuzzes nothing meanwhile (a 2 KiB FAT boot sector or GPT took
# the whole of a 60 s run).
# FUZZ_ONLY, when set, is an extended regexp matched against
# "<package> <target>". One line is printed per target; a failing target is
# named with its crasher (./pkg/x/testdata/fuzz/FuzzXxx/<hash>, which go
# keeps, so that plain `go test ./pkg/x` replays it from then on) and the
# script exits 1 after running the rest. Logs of failures are kept in
# $FUZZ_LOGDIR (default: a temporary directory, printed). Re-running is
# safe: it only adds to the fuzz cache and to testdata on a crash.
set -euo pipefail

cd "$(dirname "$0")/.."
export GOFLAGS="${GOFLAGS:--mod=mod}"
FUZZTIME="${FUZZTIME:-5s}"
FUZZ_PARALLEL="${FUZZ_PARALLEL:-1}"
FUZZMINIMIZETIME="${FUZZMINIMIZETIME:-5s}"
FUZZ_ONLY="${FUZZ_ONLY:-}"

# list prints "<package> <target>" for every fuzz target, sorted.
list() {
	grep -rE --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*\(' . |
		grep -v -E '^\./(test/e2e|vendor)/' |
		sed -E 's|^(.*)/[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]*)\(.*$|\1 \2|' |
		sort -u
}

if [[ "${1:-}" == "--list" ]]; then
	list
	exit 0
fi

logdir="${FUZZ_LOGDIR:-$(mktemp -d "${TMPDIR:-/tmp}/keso-fuzz.XXXXXX")}"
mkdir -p "$logdir"
failed=()
n=0
while read -r pkg name; do
	if [[ -n "$FUZZ_ONLY" ]] && ! grep -qE -- "$FUZZ_ONLY" <<<"$pkg $name"; then
		continue
	fi
	n=$((n + 1))
	log="$logdir/$(tr / _ <<<"${pkg#./}")_$name.log"
	start=$SECONDS
	if go test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" -parallel "$FUZZ_PARALLEL" -fuzzminimizetime "$FUZZMINIMIZETIME" "$pkg" >"$log" 2>&1; then
		stats="$(grep -E '^fuzz: elapsed' "$log" | tail -n 1 | sed -E 's/^fuzz: elapsed: [^,]*, //')"
		printf 'ok    %-22s %-26s %3ss  %s\n' "$pkg" "$name" "$((SECONDS - start))" "$stats"
		continue
	fi
	# The crasher: a new input go wrote, or the seed-corpus file that failed.
	crasher="$(sed -n -E 's|.*Failing input written to (testdata/fuzz/[^ ]*).*|\1|p' "$log" | tail -n 1)"
	if [[ -z "$crasher" ]]; then
		entry="$(sed -n -E "s#.*(seed corpus entry|--- FAIL): $name/([^ ]*).*#\\2#p" "$log" | head -n 1)"
		if [[ -n "$entry" && -f "$pkg/testdata/fuzz/$name/$entry" ]]; then
			crasher="testdata/fuzz/$name/$entry"
		elif [[ -n "$entry" ]]; then
			crasher="(seed $entry, added with f.Add)"
		fi
	fi
	if [[ "$crasher" == testdata/* ]]; then
		crasher="$pkg/$crasher"
	fi
	printf 'FAIL  %-22s %-26s %3ss  crasher: %s  log: %s\n' "$pkg" "$name" "$((SECONDS - start))" "${crasher:-none (build or setup failure)}" "$log"
	grep -E -m 20 -- '--- FAIL|fuzz_test\.go:[0-9]+:|panic:|cannot|error' "$log" | sed 's/^/      /' || true
	failed+=("$pkg $name")
done < <(list)

if ((n == 0)); then
	echo "fuzz: no target matched" >&2
	exit 1
fi
if ((${#failed[@]} > 0)); then
	echo "fuzz: ${#failed[@]} of $n targets failed:" >&2
	printf '  %s\n' "${failed[@]}" >&2
	exit 1
fi
echo "fuzz: $n targets passed ($FUZZTIME each, logs in $logdir)"
