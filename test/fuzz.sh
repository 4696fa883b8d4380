#!/usr/bin/env bash
# test/fuzz.sh: the libFuzzer targets of fuzz/ as a suite.  Builds them
# (make fuzz-build: clang, ASan, UBSan) and runs each for a fixed number of
# executions with a fixed seed, from its seed corpus (fuzz/corpus/TARGET)
# and an empty directory for what it finds, so that a run does the same
# work every time; one test per target, failing on any crash, leak,
# undefined behaviour or broken property (fuzz/run.sh prints the input and
# where it saved it).  Without clang and its libFuzzer runtime
# (clang-14, libclang-rt-14-dev) every target is skipped, not passed.
# Needs no server.
#
#   FUZZ_TEST_RUNS   executions per target (default 20000)
set -uo pipefail
source "$(dirname "$0")/lib/summary.sh"

cd "$PGV_REPO" || exit 1
RUNS=${FUZZ_TEST_RUNS:-20000}
targets=()
for f in fuzz/fuzz_*.c; do
	targets+=("$(basename "$f" .c)")
done

work=$(mktemp -d /tmp/pg_vault-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT

# clang, and a libFuzzer runtime it can link
cc=$(command -v clang-14 || command -v clang || true)
echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }' >"$work/probe.c"
if [ -z "$cc" ] || ! "$cc" -fsanitize=fuzzer,address,undefined -o "$work/probe" "$work/probe.c" 2>/dev/null; then
	for t in "${targets[@]}"; do
		pgv_skip "$t: clang with libFuzzer is not installed (apt-get install -y clang-14 libclang-rt-14-dev)"
	done
	pgv_done
	exit 0
fi

if ! make --no-print-directory fuzz-build PG_CONFIG="${PG_CONFIG:-pg_config}" >"$work/build.log" 2>&1; then
	cat "$work/build.log"
	pgv_not_ok "make fuzz-build"
	pgv_done
	exit 1
fi

for t in "${targets[@]}"; do
	pgv_check "$t: $RUNS executions, seed 1, no crash, leak or broken property" \
		bash fuzz/run.sh --runs "$RUNS" --seed 1 --corpus "$work/corpus" "$t"
done
pgv_done
