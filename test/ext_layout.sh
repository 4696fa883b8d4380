#!/usr/bin/env bash
# ext_layout.sh: the extension's files form layers, no circle, as README's
# Layout says: SQL function -> area -> client.c -> auth.c -> http*.c, with
# envelope.c parsing answers.  Each src/*.c and src/common/*.c is compiled
# on its own; nm says which functions and variables each object defines and
# which it uses from the others (test/lib/layers.sh); a file that uses one
# that uses it back, directly or round a longer circle, fails.  The check is
# shown failing first, on a copy of stat.c that calls up into transit.c.
# Also: the leaves (src/common, stat.c, identity.c) call nothing above
# them, and only the HTTP client's files (http.c, http_conn.c, http_many.c
# and their http.h) include curl.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
source test/lib/summary.sh
source test/lib/layers.sh

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
CFLAGS=(-std=gnu11 -D_GNU_SOURCE -I. -Isrc -I"$("$PG_CONFIG" --includedir-server)" -w)

compiled=1
mkdir -p "$WORK/ext" "$WORK/planted"
for f in src/*.c src/common/*.c; do
	cc "${CFLAGS[@]}" -c "$f" -o "$WORK/ext/$(basename "$f" .c).o" || compiled=0
done
pgv_check "every src/*.c and src/common/*.c compiles on its own" [ "$compiled" = 1 ]

cp "$WORK"/ext/*.o "$WORK/planted/"
{ cat src/stat.c; printf '\nint planted_upcall(void);\nint planted_upcall(void) { return vault_batch_items(); }\n'; } >"$WORK/stat.c"
cc "${CFLAGS[@]}" -c "$WORK/stat.c" -o "$WORK/planted/stat.o"
pgv_check "the check fails on a planted call from stat.c up to transit.c" \
	bash -c "$(declare -f cycles); ! cycles '$WORK/planted' >'$WORK/planted.out'"
pgv_check "... and names the circle" grep -q 'circle: .*stat.c.*transit.c' "$WORK/planted.out"

echo "the extension's files and the files each calls:"
cycles "$WORK/ext"
pgv_check "no circle among the extension's files" [ $? = 0 ]
pgv_check "leaves (src/common, stat.c, identity.c) call nothing of the extension but src/common" \
	bash -c "$(declare -f cycles); cycles '$WORK/ext' | awk '
		\$1 ~ /^(vault_[a-z]+|stat|identity)\\.c\$/ { for (i = 3; i <= NF; i++) if (\$i !~ /^vault_[a-z]+\\.c\$/ && \$i != \"(nothing)\") bad = 1 }
		END { exit bad }'"
pgv_check "only the HTTP client's files include curl" \
	bash -c "[ \"\$(grep -l '#include <curl/\\|#include \"common/compat_curl.h\"' src/*.c src/*.h | paste -sd' ')\" = 'src/http.c src/http_conn.c src/http_many.c src/http.h' ]"
pgv_done
