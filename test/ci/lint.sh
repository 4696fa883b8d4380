#!/usr/bin/env bash
# lint.sh: `make lint`.  cppcheck and clang-tidy over pg_vault's own C:
# the extension (src/, src/common/), the app (app/) and the fault proxy
# the tests put in front of OpenBao (vault/faultproxy/).  Exits 1 when
# either tool reports a finding that test/ci/lint.supp does not list, 2
# when a tool is missing.
#
# clang-tidy's checks are in .clang-tidy (with the reasons for what is off);
# cppcheck runs its warning, portability and performance checks (its style
# checks argue with PostgreSQL's declarations-at-block-top layout).
#
#   PG_CONFIG    pg_config of the PostgreSQL whose headers to use
#   LINT_JOBS    parallel clang-tidy processes (default: number of CPUs)
set -uo pipefail

cd "$(dirname "$0")/../.." || exit 2
ROOT=$(pwd)
PG_CONFIG=${PG_CONFIG:-pg_config}
JOBS=${LINT_JOBS:-$(nproc 2>/dev/null || echo 2)}
SUPP=test/ci/lint.supp

missing=()
for tool in cppcheck clang-tidy; do
	command -v "$tool" >/dev/null || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "lint: ${missing[*]} not installed; install with: apt-get install -y ${missing[*]}" >&2
	exit 2
fi
if ! PG_INC_SERVER=$("$PG_CONFIG" --includedir-server 2>/dev/null) ||
	! PG_INC=$("$PG_CONFIG" --includedir 2>/dev/null); then
	echo "lint: $PG_CONFIG does not run; set PG_CONFIG" >&2
	exit 2
fi

shopt -s nullglob
EXT_SRCS=(src/*.c src/common/*.c)
PROG_SRCS=(app/*.c vault/faultproxy/*.c)
shopt -u nullglob

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
FINDINGS=$WORK/findings	# TOOL<TAB>CHECKS<TAB>FILE<TAB>the tool's line

# ---- cppcheck ----
run_cppcheck() {
	local out=$1
	shift
	cppcheck --quiet --std=c11 --enable=warning,portability,performance \
		--library=posix --library=gnu --library=libcurl --library=openssl \
		--library="$ROOT/test/ci/cppcheck-jansson.cfg" \
		--inline-suppr --suppress=missingIncludeSystem \
		-D__GNUC__=12 -D__x86_64__ -D__linux__ -j "$JOBS" \
		--template='{file}:{line}:{column}: {severity}: {message} [{id}]' \
		"$@" 2>>"$out" >/dev/null
}

: >"$WORK/cppcheck.out"
[ ${#EXT_SRCS[@]} -gt 0 ] &&
	run_cppcheck "$WORK/cppcheck.out" -Isrc -Isrc/common "-I$PG_INC_SERVER" "-I$PG_INC" "${EXT_SRCS[@]}"
[ ${#PROG_SRCS[@]} -gt 0 ] &&
	run_cppcheck "$WORK/cppcheck.out" -Isrc/common "-I$PG_INC" "${PROG_SRCS[@]}"
# One line per finding: the template prints no notes.
sed -nE 's#^('"$ROOT"'/)?([^: ]+):([0-9]+):([0-9]+): ([a-z]+): .*\[([A-Za-z0-9_]+)\]$#cppcheck\t\6\t\2\t&#p' \
	"$WORK/cppcheck.out" >>"$FINDINGS"
# A line cppcheck printed in another shape (a crash, a bad option) is a failure too.
if grep -vE '^[^ ]+:[0-9]+:[0-9]+: |^ |^$' "$WORK/cppcheck.out" | grep -q .; then
	grep -vE '^[^ ]+:[0-9]+:[0-9]+: |^ |^$' "$WORK/cppcheck.out" | sed 's/^/cppcheck: /' >&2
	printf 'cppcheck\tcppcheck-failed\t-\tcppcheck printed an unexpected message\n' >>"$FINDINGS"
fi

# ---- clang-tidy ----
# Each file's output goes to its own log so that parallel runs do not
# interleave; the header filter keeps findings to our own headers.
filter="^$(printf '%s' "$ROOT" | sed 's/[][\.*^$+?(){}|]/\\&/g')/(src|app|vault)/"
tidy_one() {
	local file=$1 log flags
	log=$WORK/tidy.$(printf '%s' "$file" | tr '/.' '__').log
	case $file in
	src/*) flags=(-std=gnu11 -D_GNU_SOURCE -Isrc -Isrc/common "-I$PG_INC_SERVER" "-I$PG_INC") ;;
	*) flags=(-std=gnu11 -D_GNU_SOURCE -Isrc/common "-I$PG_INC") ;;
	esac
	clang-tidy --quiet --config-file="$ROOT/.clang-tidy" --header-filter="$filter" \
		"$file" -- "${flags[@]}" >"$log" 2>&1
	return 0
}
export -f tidy_one
export WORK ROOT filter PG_INC_SERVER PG_INC
if [ $((${#EXT_SRCS[@]} + ${#PROG_SRCS[@]})) -gt 0 ]; then
	# shellcheck disable=SC2016 # $1 belongs to the inner shell
	printf '%s\0' "${EXT_SRCS[@]}" "${PROG_SRCS[@]}" |
		xargs -0 -n 1 -P "$JOBS" bash -c 'tidy_one "$1"' tidy
fi
for log in "$WORK"/tidy.*.log; do
	[ -e "$log" ] || continue
	sed -nE 's#^('"$ROOT"'/)?([^: ]+):([0-9]+):([0-9]+): (warning|error): .*\[([A-Za-z0-9_.,-]+)\]$#clang-tidy\t\6\t\2\t&#p' "$log"
	# A file clang-tidy could not compile is a failure, whatever it printed.
	grep -q '^Error while processing' "$log" &&
		printf 'clang-tidy\tclang-diagnostic-error\t-\t%s\n' "$(grep -m1 '^Error while processing' "$log")"
done | sort -u >>"$FINDINGS"

# ---- suppressions ----
# Keep a finding unless a line of lint.supp names its tool, one of its
# check names and its file.
used=$WORK/used
: >"$used"
awk -F'\t' -v supp="$SUPP" -v used="$used" '
	BEGIN {
		while ((getline line < supp) > 0) {
			if (line ~ /^[ \t]*(#|$)/)
				continue
			split(line, f, /[ \t]+/)
			key = f[1] SUBSEP f[2] SUBSEP f[3]
			s[key] = line
		}
	}
	{
		n = split($2, checks, ",")
		hit = 0
		for (i = 1; i <= n; i++) {
			key = $1 SUBSEP checks[i] SUBSEP $3
			if (key in s) { hit = 1; print s[key] > used }
		}
		if (hit)
			suppressed++
		else
			print $4
	}
	END { print suppressed + 0 > (used ".count") }
' "$FINDINGS" >"$WORK/report"

suppressed=$(cat "$used.count")
grep -vE '^[[:space:]]*(#|$)' "$SUPP" | while IFS= read -r line; do
	grep -qxF "$line" "$used" || echo "lint: stale suppression (matches nothing now): ${line%%  *}" >&2
done

n=$(grep -c . "$WORK/report")
if [ "$n" -gt 0 ]; then
	sed "s#^$ROOT/##" "$WORK/report"
	echo "lint: $n finding(s) in ${#EXT_SRCS[@]} extension and ${#PROG_SRCS[@]} program file(s) ($suppressed suppressed by $SUPP)"
	echo "lint: rerun one file with: clang-tidy --config-file=.clang-tidy FILE -- <flags above>, or cppcheck FILE"
	exit 1
fi
echo "lint: clean: cppcheck and clang-tidy over ${#EXT_SRCS[@]} extension and ${#PROG_SRCS[@]} program file(s) ($suppressed suppressed by $SUPP)"
