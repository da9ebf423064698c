#!/usr/bin/env bash
# fuzz.sh — the long fuzzing run: every native Go fuzz target of the module
# (as scripts/fuzz.sh --list finds them: func FuzzXxx in *_test.go outside
# test/e2e), one at a time, FUZZTIME each (default 10m; about 4 h for the
# ~25 targets), with -parallel FUZZ_PARALLEL (default 1) workers. Prints the
# section for bench/RESULTS.md ("## Fuzzing"): a Markdown table with one row
# per target, giving the executions, the new interesting inputs (from the last
# `fuzz: elapsed` line of go test -fuzz -v: "new interesting: N (total: M)"),
# and crashes (0, or 1 with the crasher's path: go stops a target at its
# first crash and keeps the input under the package's testdata/fuzz/FuzzXxx/,
# where plain `go test` replays it from then on). Exits 1 if any target
# crashed. The logs stay in FUZZ_LOGDIR (default: a temporary directory).
#
#   bench/fuzz.sh                                 every target, 10 minutes each
#   FUZZTIME=1h FUZZ_ONLY='pkg/initrd' bench/fuzz.sh
#
# FUZZMINIMIZETIME (default 5s) bounds the minimizing of each new input, as
# in scripts/fuzz.sh. On a shared machine keep GOMAXPROCS=1 and FUZZ_PARALLEL=1.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOFLAGS="${GOFLAGS:--mod=mod}"
FUZZTIME="${FUZZTIME:-10m}"
FUZZ_PARALLEL="${FUZZ_PARALLEL:-1}"
FUZZMINIMIZETIME="${FUZZMINIMIZETIME:-5s}"
FUZZ_ONLY="${FUZZ_ONLY:-}"
logdir="${FUZZ_LOGDIR:-$(mktemp -d "${TMPDIR:-/tmp}/keso-fuzz-bench.XXXXXX")}"
mkdir -p "$logdir"
load_start=$(cut -d' ' -f1-3 /proc/loadavg)

rows=()
crashed=0
while read -r pkg name; do
	if [[ -n "$FUZZ_ONLY" ]] && ! grep -qE -- "$FUZZ_ONLY" <<<"$pkg $name"; then
		continue
	fi
	log="$logdir/$(tr / _ <<<"${pkg#./}")_$name.log"
	echo "fuzzing $pkg $name for $FUZZTIME (log $log)" >&2
	crashes=0
	crasher=""
	if ! go test -v -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" -parallel "$FUZZ_PARALLEL" -fuzzminimizetime "$FUZZMINIMIZETIME" "$pkg" >"$log" 2>&1; then
		crashes=1
		crashed=$((crashed + 1))
		crasher="$(sed -n -E 's|.*Failing input written to (testdata/fuzz/[^ ]*).*|\1|p' "$log" | tail -n 1)"
		if [[ -z "$crasher" ]]; then # a seed already in testdata/fuzz fails
			crasher="$(sed -n -E "s#.*seed corpus entry: $name/([^ ]*).*#testdata/fuzz/$name/\\1#p" "$log" | head -n 1)"
		fi
		crasher="${crasher:+$pkg/$crasher}"
		crasher="${crasher:-see $log}"
	fi
	last="$(grep -E '^fuzz: elapsed' "$log" | tail -n 1 || true)"
	execs="$(sed -n -E 's/.*execs: ([0-9]+).*/\1/p' <<<"$last")"
	interesting="$(sed -n -E 's/.*new interesting: ([0-9]+) \(total: ([0-9]+)\).*/\1 (corpus \2)/p' <<<"$last")"
	elapsed="$(sed -n -E 's/^fuzz: elapsed: ([^,]*),.*/\1/p' <<<"$last")"
	rows+=("| \`${pkg#./}\` | \`$name\` | ${elapsed:-–} | ${execs:-–} | ${interesting:-–} | $crashes${crasher:+ ($crasher)} |")
done < <(scripts/fuzz.sh --list)

echo
echo "## Fuzzing"
echo
echo "Native Go fuzzing, each target for $FUZZTIME with -parallel $FUZZ_PARALLEL, -fuzzminimizetime $FUZZMINIMIZETIME (GOMAXPROCS=${GOMAXPROCS:-all}); \`bench/fuzz.sh\`"
echo "($(date -u +%Y-%m-%d), $(nproc) host cores, load average $load_start at the start)."
echo "\"new interesting\" is what this run added to the corpus (the Go cache keeps it between runs)."
echo
echo "| package | target | fuzzed for | execs | new interesting | crashes |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
if ((crashed > 0)); then
	echo "bench/fuzz.sh: $crashed targets crashed" >&2
	exit 1
fi
