#!/usr/bin/env bash
# security-scan.sh: `make security-scan`.  Two checks, both must pass:
#
#  1. Static analysis by the compiler: every C file of the extension, the app
#     and the fault proxy (vault/faultproxy/) compiled (to nothing) at -O2 with
#     _FORTIFY_SOURCE, the stack protector and GCC's security warnings as
#     errors: format strings (-Wformat=2: a non-literal format with no
#     arguments, %n; not -Wformat-nonliteral, which also flags formats
#     picked from a table of literals),
#     -Wformat-overflow=2, -Wstringop-overflow=4, -Warray-bounds=2,
#     -Wshift-overflow=2, variable-length arrays, trampolines.  These
#     warnings need the optimiser's value ranges, which the everyday -O2
#     build has but does not turn all on.
#  2. Committed secrets: test/ci/secret_scan.py over the work tree (tracked
#     and untracked files that .gitignore does not exclude) and over every
#     line ever added in the git history.
#
#   PG_CONFIG        pg_config of the PostgreSQL whose headers to use
#   SECURITY_CC      compiler (default gcc)
set -uo pipefail

cd "$(dirname "$0")/../.." || exit 2
PG_CONFIG=${PG_CONFIG:-pg_config}
CC=${SECURITY_CC:-gcc}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
status=0

if ! command -v "$CC" >/dev/null; then
	echo "security-scan: $CC not found" >&2
	exit 2
fi
if ! PG_INC_SERVER=$("$PG_CONFIG" --includedir-server 2>/dev/null) ||
	! PG_INC=$("$PG_CONFIG" --includedir 2>/dev/null); then
	echo "security-scan: $PG_CONFIG does not run; set PG_CONFIG" >&2
	exit 2
fi

SEC_FLAGS=(-O2 -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fstack-clash-protection
	-Wall -Wextra -Werror -Wno-unused-parameter -Wno-sign-compare -Wno-missing-field-initializers
	-Wformat=2 -Wno-format-nonliteral -Wformat-security -Wformat-overflow=2 -Wstringop-overflow=4
	-Warray-bounds=2 -Wshift-overflow=2 -Wvla -Wtrampolines -Wimplicit-fallthrough)

shopt -s nullglob
EXT_SRCS=(src/*.c src/common/*.c)
PROG_SRCS=(app/*.c vault/faultproxy/*.c)
shopt -u nullglob

echo "== security-scan: compiler static analysis (${#EXT_SRCS[@]} extension and ${#PROG_SRCS[@]} program files)"
failed=0
for f in "${EXT_SRCS[@]}"; do
	"$CC" -std=gnu11 -fPIC -D_GNU_SOURCE -Isrc -Isrc/common "-I$PG_INC_SERVER" "-I$PG_INC" \
		"${SEC_FLAGS[@]}" -c -o /dev/null "$f" || failed=$((failed + 1))
done
for f in "${PROG_SRCS[@]}"; do
	"$CC" -std=gnu11 -D_GNU_SOURCE -Isrc/common "-I$PG_INC" \
		"${SEC_FLAGS[@]}" -c -o /dev/null "$f" || failed=$((failed + 1))
done
if [ "$failed" -gt 0 ]; then
	echo "security-scan: $failed file(s) fail the hardened compile (see above)"
	status=1
else
	echo "security-scan: hardened compile clean"
fi

echo "== security-scan: committed secrets (work tree and git history)"
"$PY" test/ci/secret_scan.py . || status=1

if [ "$status" -eq 0 ]; then
	echo "security-scan: passed"
else
	echo "security-scan: FAILED"
fi
exit $status
