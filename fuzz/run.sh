#!/usr/bin/env bash
# fuzz/run.sh: run the libFuzzer targets `make fuzz-build` built in
# fuzz/build/, one after the other, each over its seed corpus
# (fuzz/corpus/TARGET, read only) and the inputs it finds
# (fuzz/build/corpus/TARGET).  Fails when a target finds a crash, a leak,
# undefined behaviour or a broken property; the input is then saved as
# fuzz/build/crashes/TARGET-crash-<sha1> (reproduce: fuzz/build/TARGET FILE).
#
#   fuzz/run.sh [--seconds N | --runs N] [--seed N] [--corpus DIR] [TARGET...]
#
# --seconds bounds each target's time (-max_total_time), --runs its
# executions (-runs); --seed fixes libFuzzer's random seed; --corpus
# puts the inputs found in DIR/TARGET instead (test/fuzz.sh gives an
# empty directory, so that each of its runs starts from the seeds alone).  Without
# TARGET, every fuzz/fuzz_*.c.  The last line is "N passed, N failed"
# (one per target), as test/run expects of a suite.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
seconds=60
runs=
seed=
work=fuzz/build/corpus
targets=()
while [ $# -gt 0 ]; do
	case $1 in
	--seconds) seconds=$2; shift 2 ;;
	--runs) runs=$2; shift 2 ;;
	--seed) seed=$2; shift 2 ;;
	--corpus) work=$2; shift 2 ;;
	-*) echo "usage: $0 [--seconds N | --runs N] [--seed N] [--corpus DIR] [TARGET...]" >&2; exit 2 ;;
	*) targets+=("$1"); shift ;;
	esac
done
if [ ${#targets[@]} -eq 0 ]; then
	for f in fuzz/fuzz_*.c; do
		targets+=("$(basename "$f" .c)")
	done
fi

# Leaks fail a run; a report stops it at once.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

passed=0
failed=0
mkdir -p fuzz/build/crashes
for t in "${targets[@]}"; do
	bin=fuzz/build/$t
	if [ ! -x "$bin" ]; then
		echo "** $t: $bin is not built (make fuzz-build)"
		failed=$((failed + 1))
		continue
	fi
	mkdir -p "$work/$t"
	args=(-artifact_prefix="fuzz/build/crashes/$t-" -print_final_stats=1)
	if [ -n "$runs" ]; then
		args+=(-runs="$runs")
	else
		args+=(-max_total_time="$seconds")
	fi
	[ -n "$seed" ] && args+=(-seed="$seed")
	[ -f "fuzz/$t.dict" ] && args+=(-dict="fuzz/$t.dict")
	echo "== $t ${args[*]}"
	log=fuzz/build/$t.log
	"$bin" "${args[@]}" "$work/$t" "fuzz/corpus/$t" >"$log" 2>&1
	rc=$?
	grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb|INFO: Seed|Done [0-9]+ runs)' "$log"
	if [ $rc -eq 0 ]; then
		echo "ok: $t"
		passed=$((passed + 1))
	else
		echo "** $t failed (exit $rc); the end of its log ($log):"
		tail -n 40 "$log"
		failed=$((failed + 1))
	fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
