#!/usr/bin/env bash
# ops.sh: the Makefile's everyday operations on the demo stack.
#
#   ops.sh start     `make demo` in the background: pid in .demo/demo.pid,
#                    output in .demo/demo.log; returns once the stack is up
#   ops.sh stop      stop that `make demo` (SIGTERM to its process group,
#                    which stops Vault, PostgreSQL and the app cleanly)
#   ops.sh status    what runs, where
#   ops.sh health    Vault's and the app's health endpoints (from .demo/env);
#                    non-zero when one is not healthy
#   ops.sh logs      the last lines of every demo log; FOLLOW=1 keeps
#                    following them, LOG_LINES=N shows N lines (default 40)
#   ops.sh kv ARGS   test/ci/vault_kv.py with the demo's VAULT_ADDR and
#                    VAULT_TOKEN, unless both are set already
#
#   START_TIMEOUT    seconds `start` waits for the stack (default 300: the
#                    first start installs packages and builds)
set -uo pipefail

cd "$(dirname "$0")/../.." || exit 2
ROOT=$(pwd)
DEMO=$ROOT/.demo
PIDFILE=$DEMO/demo.pid
LOG=$DEMO/demo.log
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

say() { echo "$*"; }
die() { echo "$*" >&2; exit 1; }

demo_pid() {
	local pid
	pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	echo "$pid"
}

# .demo/env in a subshell-friendly way: only the variables it sets.
load_env() {
	[ -r "$DEMO/env" ] || return 1
	# shellcheck disable=SC1091
	source "$DEMO/env"
}

http_code() {
	curl -s -o "${2:-/dev/null}" -w '%{http_code}' --max-time 5 \
		${VAULT_CACERT:+--cacert "$VAULT_CACERT"} "$1" 2>/dev/null || true
}

redact() {
	local token=
	token=$(sed -n 's/^export VAULT_TOKEN=//p' "$DEMO/env" 2>/dev/null)
	if [ -n "$token" ]; then
		sed -u "s/$(printf '%s' "$token" | sed 's/[][\/.*^$]/\\&/g')/<redacted>/g"
	else
		cat
	fi
}

cmd_start() {
	local pid started deadline=$((SECONDS + ${START_TIMEOUT:-300}))
	if pid=$(demo_pid); then
		say "the demo already runs (pid $pid); make stop first to restart it"
		return 0
	fi
	mkdir -p "$DEMO"
	[ -f "$LOG" ] && mv -f "$LOG" "$LOG.1"
	started=$(date +%s)
	# Its own session and process group, so that stop reaches make, the
	# demo script and the servers it runs, and nothing else.
	setsid make --no-print-directory -C "$ROOT" demo </dev/null >"$LOG" 2>&1 &
	pid=$!
	echo "$pid" >"$PIDFILE"
	say "make demo started in the background (pid $pid, log $LOG); waiting for it to come up"
	while :; do
		if ! kill -0 "$pid" 2>/dev/null; then
			rm -f "$PIDFILE"
			echo "make demo exited during start-up; the end of its log:" >&2
			tail -n 20 "$LOG" | redact >&2
			return 1
		fi
		if grep -q '^pg_vault demo is running' "$LOG" 2>/dev/null &&
			[ "$(stat -c %Y "$DEMO/env" 2>/dev/null || echo 0)" -ge "$started" ]; then
			break
		fi
		if [ "$SECONDS" -ge "$deadline" ]; then
			echo "the demo did not come up within ${START_TIMEOUT:-300}s (log $LOG); stopping it" >&2
			cmd_stop >&2
			return 1
		fi
		sleep 1
	done
	cmd_status
}

cmd_stop() {
	local pid i pgbin
	if ! pid=$(demo_pid); then
		rm -f "$PIDFILE"
		say "the demo is not running (no live pid in $PIDFILE)"
		return 0
	fi
	say "stopping the demo (process group $pid)"
	kill -TERM -- "-$pid" 2>/dev/null
	for ((i = 0; i < 600; i++)); do
		kill -0 -- "-$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 -- "-$pid" 2>/dev/null; then
		say "still running after 60s: SIGKILL to process group $pid"
		kill -KILL -- "-$pid" 2>/dev/null
	fi
	# PostgreSQL runs in a session of its own (pg_ctl detaches it): if the
	# demo script could not stop it, stop the demo's cluster here.
	pgbin=$("${PG_CONFIG:-pg_config}" --bindir 2>/dev/null)
	if [ -s "$DEMO/pgdata/postmaster.pid" ] && [ -n "$pgbin" ]; then
		if [ "$(id -u)" -eq 0 ]; then
			(cd /tmp && runuser -u postgres -- "$pgbin/pg_ctl" -D "$DEMO/pgdata" -m fast -w stop) >/dev/null 2>&1
		else
			"$pgbin/pg_ctl" -D "$DEMO/pgdata" -m fast -w stop >/dev/null 2>&1
		fi
	fi
	rm -f "$PIDFILE"
	say "stopped"
}

cmd_status() {
	local pid
	if pid=$(demo_pid); then
		say "demo:        running (make demo pid $pid, log $LOG)"
	else
		say "demo:        not running (make start starts it)"
		return 0
	fi
	(
		load_env || { say "             $DEMO/env is not written yet"; exit 0; }
		pgbin=$("${PG_CONFIG:-pg_config}" --bindir 2>/dev/null)
		say "Vault:       $VAULT_ADDR (sys/health: HTTP $(http_code "$VAULT_ADDR/v1/sys/health"))"
		if [ -x "$pgbin/pg_isready" ] && "$pgbin/pg_isready" -q -h "$PGHOST" -p "$PGPORT"; then
			say "PostgreSQL:  $PGHOST:$PGPORT, database $PGDATABASE (accepting connections)"
		else
			say "PostgreSQL:  $PGHOST:$PGPORT, database $PGDATABASE (not answering)"
		fi
		say "app:         $APP_URL (/health: HTTP $(http_code "$APP_URL/health"))"
		say "environment: source $DEMO/env"
	)
}

cmd_health() {
	(
		load_env || die "no $DEMO/env: is the demo running? (make start)"
		body=$(mktemp)
		trap 'rm -f "$body"' EXIT
		status=0
		code=$(http_code "$VAULT_ADDR/v1/sys/health" "$body")
		say "Vault $VAULT_ADDR/v1/sys/health: HTTP $code $(head -c 300 "$body")"
		[ "$code" = 200 ] || status=1
		code=$(http_code "$APP_URL/health" "$body")
		# The fixtures keep the app's pid in .demo/app/app.pid when the demo
		# runs one (pgv_start_app); without it there is no app to ask.
		if [ "$code" = 000 ] && [ ! -s "$DEMO/app/app.pid" ]; then
			say "app   $APP_URL/health: no app in this demo (no $DEMO/app/app.pid), not checked"
		else
			say "app   $APP_URL/health: HTTP $code $(head -c 300 "$body")"
			[ "$code" = 200 ] || status=1
		fi
		if [ "$status" -eq 0 ]; then say "healthy"; else say "UNHEALTHY"; fi
		exit "$status"
	)
}

cmd_logs() {
	local files=() f
	for f in "$LOG" "$DEMO/vault/vault.log" "$DEMO/pg/postgresql.log" "$DEMO"/app*.log "$DEMO"/app/*.log; do
		[ -f "$f" ] && files+=("$f")
	done
	[ ${#files[@]} -gt 0 ] || die "no demo logs under $DEMO yet (make start)"
	if [ "${FOLLOW:-0}" = 1 ]; then
		tail -n "${LOG_LINES:-40}" -F "${files[@]}" | redact
	else
		tail -n "${LOG_LINES:-40}" "${files[@]}" | redact
	fi
}

cmd_kv() {
	if [ -z "${VAULT_ADDR:-}" ] || [ -z "${VAULT_TOKEN:-}" ]; then
		load_env || die "VAULT_ADDR and VAULT_TOKEN are not set and there is no $DEMO/env (make start)"
		export VAULT_ADDR VAULT_TOKEN
	fi
	"$PY" "$ROOT/test/ci/vault_kv.py" "$@"
}

case ${1:-} in
start | stop | status | health | logs)
	"cmd_$1"
	;;
kv)
	shift
	cmd_kv "$@"
	;;
*)
	die "usage: $0 start|stop|status|health|logs|kv ARGS"
	;;
esac
