#!/usr/bin/env bash
# app_layout.sh: the app's files form layers, no circle.  Each app/*.c is
# compiled on its own; nm says which functions and variables each object
# defines and which it uses from the others; a file that uses one that
# uses it back, directly or round a longer circle, fails.  The check is
# shown failing first, on a copy of reply.c that calls up into routes.c.
# Also: .env.example lists exactly the settings the app reads, and
# `make .env` (part of `make setup`) creates .env from it.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
source test/lib/summary.sh
source test/lib/layers.sh

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
CFLAGS=(-std=gnu11 -D_GNU_SOURCE -Isrc/common -I"$("$PG_CONFIG" --includedir)" -w)

compiled=1
mkdir -p "$WORK/app" "$WORK/planted"
for f in app/*.c; do
	cc "${CFLAGS[@]}" -c "$f" -o "$WORK/app/$(basename "$f" .c).o" || compiled=0
done
pgv_check "every app/*.c compiles on its own" [ "$compiled" = 1 ]


cp "$WORK"/app/*.o "$WORK/planted/"
{ cat app/reply.c; printf '\nint planted_upcall(void);\nint planted_upcall(void) { return route_count(); }\n'; } >"$WORK/reply.c"
cc "${CFLAGS[@]}" -Iapp -c "$WORK/reply.c" -o "$WORK/planted/reply.o"
pgv_check "the check fails on a planted call from reply.c up to routes.c" \
	bash -c "$(declare -f cycles); ! cycles '$WORK/planted' >'$WORK/planted.out'"
pgv_check "... and names the circle" grep -q 'circle: .*reply.c' "$WORK/planted.out"

echo "the app's files and the files each calls:"
cycles "$WORK/app"
pgv_check "no circle among the app's files" [ $? = 0 ]
pgv_check "leaves call nothing of the app but the clock and the allocator" \
	bash -c "$(declare -f cycles); cycles '$WORK/app' | awk '\$1 ~ /^(clock|alloc|config|log|metrics|ratelimit|json|reply)\\.c\$/ { for (i = 3; i <= NF; i++) if (\$i != \"clock.c\" && \$i != \"alloc.c\" && \$i != \"(nothing)\") bad = 1 } END { exit bad }'"

# ---- .env.example ----
/usr/bin/python3 - <<-'PY' >"$WORK/env.out"
	import glob, re
	read = set()
	for f in glob.glob("app/*.c"):
	    read |= set(re.findall(r'\b(?:getenv|env_or|env_int|env_bool)\("([A-Z][A-Z0-9_]*)"', open(f).read()))
	listed = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", open(".env.example").read(), re.M))
	print("read, not listed:", " ".join(sorted(read - listed)) or "none")
	print("listed, not read:", " ".join(sorted(listed - read)) or "none")
	print("read: %d" % len(read))
PY
cat "$WORK/env.out"
pgv_check ".env.example lists every setting the app reads, and nothing else" \
	bash -c "grep -qx 'read, not listed: none' '$WORK/env.out' && grep -qx 'listed, not read: none' '$WORK/env.out' &&
		! grep -qx 'read: 0' '$WORK/env.out'"
mkdir -p "$WORK/setup"
cp Makefile .env.example "$WORK/setup/"
(cd "$WORK/setup" && make -s .env >/dev/null 2>&1)
pgv_check "make .env (in make setup) creates .env from .env.example, mode 0600" \
	bash -c "cmp -s '$WORK/setup/.env' .env.example && [ \"\$(stat -c %a '$WORK/setup/.env')\" = 600 ]"
echo "APP_ENV=production" >>"$WORK/setup/.env"
(cd "$WORK/setup" && make -s .env >/dev/null 2>&1)
pgv_check "... and leaves an existing .env alone" grep -qx 'APP_ENV=production' "$WORK/setup/.env"
pgv_check ".env is ignored by git" git check-ignore -q .env
pgv_done
