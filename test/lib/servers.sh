# servers.sh: the one set of server fixtures every pg_vault suite uses.
#
# Source it from bash, then:
#   pgv_install_trap      stop everything on EXIT, INT and TERM
#   pgv_rundir            a fresh run directory under /tmp ($PGV_RUN)
#   pgv_start_vault       the development Vault server (or an external one)
#   pgv_start_pg          a throwaway PostgreSQL cluster configured for it
#   pgv_restart_vault     stop and start the Vault server on the same port
#   pgv_vault_instance_*  further development servers of a suite's own
#   pgv_start_app         the companion app (app/pg-vault-app)
#   pgv_stop_all          stop exactly what was started, remove $PGV_RUN
#   pgv_need_devserver    in a test: false, saying SKIP, with an external Vault
#   pgv_free_port, pgv_port_free PORT, pgv_redact (hide tokens in a stream)
#
# Knobs (set before calling; the demo uses them to keep its state):
#   PGV_VAULT_DIR     where the server's port, pid, log, unseal key, audit
#                     log and state live (default $PGV_RUN/vault)
#   PGV_VAULT_LISTEN  HOST:PORT to listen on (default 127.0.0.1:0, a free port)
#   PGV_VAULT_STATE   state file (default $PGV_VAULT_DIR/state.json, so that
#                     pgv_restart_vault keeps keys, secrets and tokens)
#   PGV_ROOT_TOKEN    root token to use (default: a random one)
#   PGV_VAULT_AUDIT   0: no audit device (default 1: $PGV_VAULT_DIR/audit.log)
#   PGV_PG_DIR        directory for the cluster's socket and log
#                     (default $PGV_RUN/pg)
#   PGV_PGDATA        data directory (default $PGV_PG_DIR/data); an existing
#                     cluster is reused rather than initialised again
#   PGV_PG_PORT       port (default: a free one)
#   PGV_TOKEN_FILE    the file vault.token_file points at
#                     (default $PGV_RUN/vault-token)
#   PG_CONFIG         pg_config of the PostgreSQL to use
#
# With VAULT_ADDR and VAULT_TOKEN both set in the environment, that Vault is
# used instead of starting one, and PGV_EXTERNAL_VAULT=1 tells the suites
# to skip what needs the development server's fault switches.
#
# The Vault server's pid is kept in $PGV_VAULT_DIR/vault.pid, not only in
# PGV_VAULT_PID, so that a test running in a child process can call
# pgv_restart_vault and the parent still stops the right process.

PGV_REPO=${PGV_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
PG_CONFIG=${PG_CONFIG:-pg_config}
PGV_PGBIN=${PGV_PGBIN:-$("$PG_CONFIG" --bindir)}
PGV_VAULT_BIN=${PGV_VAULT_BIN:-$PGV_REPO/vault/devserver/vault-dev}
export PGV_REPO PG_CONFIG PGV_PGBIN PGV_VAULT_BIN

pgv_log() { echo "[fixtures] $*" >&2; }

# PostgreSQL refuses to run as root: as root, run its programs as postgres,
# from a directory postgres can read.
pgv_pg_owner() { if [ "$(id -u)" -eq 0 ]; then echo postgres; else id -un; fi; }
pgv_as_pg() {
	if [ "$(id -u)" -eq 0 ]; then
		(cd /tmp && runuser -u postgres -- "$@")
	else
		"$@"
	fi
}

# A port nobody listens on right now.
pgv_free_port() {
	/usr/bin/python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# Is PORT on 127.0.0.1 free to listen on?
pgv_port_free() {
	/usr/bin/python3 -c 'import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)' "$1"
}

pgv_random_token() { echo "hvs.$(openssl rand -hex 24)"; }

# Replace the root token and the AppRole secret_id in a stream: suites' output is
# shown and kept in logs, and must never carry them.
pgv_redact() {
	local args=() s secret_id=
	[ -r "${PGV_APPROLE_DIR:-/nonexistent}/secret_id" ] && secret_id=$(cat "$PGV_APPROLE_DIR/secret_id")
	for s in "${VAULT_TOKEN:-}" "$secret_id"; do
		[ -n "$s" ] && args+=(-e "s/$(printf '%s' "$s" | sed 's/[][\/.*^$]/\\&/g')/<redacted>/g")
	done
	if [ ${#args[@]} -eq 0 ]; then cat; else sed -u "${args[@]}"; fi
}

pgv_rundir() {
	PGV_RUN=$(mktemp -d /tmp/pg_vault.XXXXXX)
	chmod 0755 "$PGV_RUN"	# the postgres user must be able to enter it
	PGV_RUN_TEMP=1
	export PGV_RUN PGV_RUN_TEMP
}

pgv_install_trap() {
	trap 'pgv_stop_all' EXIT
	trap 'pgv_stop_all; trap - EXIT; exit 130' INT
	trap 'pgv_stop_all; trap - EXIT; exit 143' TERM
}

# Exit (in a test script) when the development server's fault switches,
# restarts or files are needed but the Vault in use is an external one.
pgv_need_devserver() {
	if [ "${PGV_EXTERNAL_VAULT:-0}" = 1 ]; then
		echo "SKIP: ${1:-this test} needs the development Vault server (external Vault in use)"
		return 1
	fi
}

# ---- Vault ----

pgv_vault_health() {
	curl -s -o /dev/null -w '%{http_code}' --max-time 2 ${VAULT_CACERT:+--cacert "$VAULT_CACERT"} \
		"$VAULT_ADDR/v1/sys/health" 2>/dev/null || true
}

# Start vault-dev in the background from the exported knobs and wait until
# it reports healthy.  Used for the first start and for restarts.
pgv_vault_launch() {
	local listen=$1 dir=$PGV_VAULT_DIR pid i scheme=http tls=() audit=()
	if [ -n "${PGV_VAULT_TLS_CERT:-}" ]; then
		scheme=https
		tls=(--tls-cert "$PGV_VAULT_TLS_CERT" --tls-key "$PGV_VAULT_TLS_KEY")
	fi
	# PGV_VAULT_AUDIT=0 runs without the audit device (benchmarks)
	[ "${PGV_VAULT_AUDIT:-1}" = 0 ] || audit=(--audit-file "$PGV_AUDIT_FILE")
	rm -f "$dir/port"
	# the root token goes through a 0600 file, never the command line (ps)
	(umask 077 && printf '%s\n' "$VAULT_TOKEN" >"$dir/root-token")
	"$PGV_VAULT_BIN" --addr "$listen" --port-file "$dir/port" \
		--root-token-file "$dir/root-token" --unseal-key-file "$PGV_UNSEAL_KEY_FILE" \
		"${audit[@]}" --state "$PGV_VAULT_STATE" "${tls[@]}" \
		</dev/null >>"$PGV_VAULT_LOG" 2>&1 &
	pid=$!
	echo "$pid" >"$dir/vault.pid"
	PGV_VAULT_PID=$pid
	export PGV_VAULT_PID
	for ((i = 0; i < 300; i++)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			pgv_log "vault-dev exited during start-up; its log:"
			tail -n 20 "$PGV_VAULT_LOG" | pgv_redact >&2
			return 1
		fi
		if [ -s "$dir/port" ]; then
			VAULT_ADDR=$scheme://127.0.0.1:$(cat "$dir/port")
			[ "$(pgv_vault_health)" = 200 ] && { export VAULT_ADDR; return 0; }
		fi
		sleep 0.1
	done
	pgv_log "vault-dev did not become healthy within 30 s; its log:"
	tail -n 20 "$PGV_VAULT_LOG" | pgv_redact >&2
	return 1
}

pgv_start_vault() {
	if [ -n "${VAULT_ADDR:-}" ] && [ -n "${VAULT_TOKEN:-}" ]; then
		PGV_EXTERNAL_VAULT=1
		export PGV_EXTERNAL_VAULT VAULT_ADDR VAULT_TOKEN
		echo "Using the external Vault at $VAULT_ADDR (VAULT_ADDR and VAULT_TOKEN are set); fault-switch tests will skip"
		return 0
	fi
	if [ ! -x "$PGV_VAULT_BIN" ]; then
		pgv_log "$PGV_VAULT_BIN is missing: run make first"
		return 1
	fi
	PGV_EXTERNAL_VAULT=0
	PGV_VAULT_DIR=${PGV_VAULT_DIR:-$PGV_RUN/vault}
	mkdir -p "$PGV_VAULT_DIR"
	chmod 0700 "$PGV_VAULT_DIR"
	PGV_VAULT_STATE=${PGV_VAULT_STATE:-$PGV_VAULT_DIR/state.json}
	PGV_VAULT_LOG=$PGV_VAULT_DIR/vault.log
	PGV_UNSEAL_KEY_FILE=$PGV_VAULT_DIR/unseal-key
	PGV_AUDIT_FILE=$PGV_VAULT_DIR/audit.log
	VAULT_TOKEN=${PGV_ROOT_TOKEN:-$(pgv_random_token)}
	export PGV_EXTERNAL_VAULT PGV_VAULT_DIR PGV_VAULT_STATE PGV_VAULT_LOG \
		PGV_UNSEAL_KEY_FILE PGV_AUDIT_FILE VAULT_TOKEN
	pgv_vault_launch "${PGV_VAULT_LISTEN:-127.0.0.1:0}" || return 1
	echo "vault-dev: $VAULT_ADDR (pid $PGV_VAULT_PID, log $PGV_VAULT_LOG)"
}

pgv_stop_vault() {
	local pid i
	pid=$(cat "${PGV_VAULT_DIR:-/nonexistent}/vault.pid" 2>/dev/null || true)
	[ -n "$pid" ] || return 0
	if kill -TERM "$pid" 2>/dev/null; then
		for ((i = 0; i < 100; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
	rm -f "$PGV_VAULT_DIR/vault.pid"
}

# Same port, same flags, same state file: what survives is what the server
# persisted.
pgv_restart_vault() {
	pgv_need_devserver "restarting Vault" || return 1
	local port=${VAULT_ADDR##*:}
	pgv_stop_vault
	pgv_vault_launch "127.0.0.1:$port"
}

# ---- further development servers, for suites that need their own ----
#
# A suite that restarts a server, serves TLS or reads a fresh audit log
# starts one of these rather than disturbing the run's own.  Each keeps all
# its files (port, pid, log, state, audit log, unseal key) under DIR, runs
# in a subshell so that the caller's VAULT_ADDR, VAULT_TOKEN and PGV_VAULT_*
# stay as they are, and prints its address.  PGV_ROOT_TOKEN must be set
# (and be the same for a restart).  With PGV_VAULT_TLS_CERT and
# PGV_VAULT_TLS_KEY it serves HTTPS, and the readiness check trusts
# VAULT_CACERT.
#
#   pgv_vault_instance_start DIR     start one on a free port
#   pgv_vault_instance_restart DIR   stop it and start it again on the same
#                                    port and state file
#   pgv_vault_instance_stop DIR

pgv_vault_instance_env() {
	PGV_VAULT_DIR=$1
	PGV_VAULT_STATE=$1/state.json
	PGV_VAULT_LOG=$1/vault.log
	PGV_UNSEAL_KEY_FILE=$1/unseal-key
	PGV_AUDIT_FILE=$1/audit.log
	VAULT_TOKEN=${PGV_ROOT_TOKEN:?PGV_ROOT_TOKEN must be set}
}

pgv_vault_instance_start() {
	(
		pgv_vault_instance_env "$1" || exit 1
		mkdir -p "$1" && chmod 0700 "$1" || exit 1
		pgv_vault_launch 127.0.0.1:0 || exit 1
		echo "$VAULT_ADDR"
	)
}

pgv_vault_instance_restart() {
	(
		pgv_vault_instance_env "$1" || exit 1
		local port
		port=$(cat "$1/port") || exit 1
		pgv_stop_vault
		pgv_vault_launch "127.0.0.1:$port" || exit 1
		echo "$VAULT_ADDR"
	)
}

pgv_vault_instance_stop() {
	(
		PGV_VAULT_DIR=$1
		pgv_stop_vault
	)
}

# ---- the companion app ----
#
#   pgv_start_app [NAME=VALUE...]
#       Start app/pg-vault-app in the background with the caller's
#       environment less VAULT_TOKEN (pass VAULT_TOKEN=... to give it one),
#       plus the assignments given, listening on PGV_APP_LISTEN (default a
#       free port on 127.0.0.1); wait until /health answers.  Exports
#       APP_URL, PGV_APP_PID and PGV_APP_LOG (kept, appended to, in
#       PGV_APP_DIR, default $PGV_RUN/app).
#   pgv_stop_app
#       SIGTERM, wait for it to drain and exit; returns its exit status
#       (1 if it had to be killed).  pgv_stop_all calls it first.

PGV_APP_BIN=${PGV_APP_BIN:-$PGV_REPO/app/pg-vault-app}
export PGV_APP_BIN

pgv_start_app() {
	local dir=${PGV_APP_DIR:-$PGV_RUN/app} listen pid i code
	if [ ! -x "$PGV_APP_BIN" ]; then
		pgv_log "$PGV_APP_BIN is missing: run make first"
		return 1
	fi
	mkdir -p "$dir"
	chmod 0700 "$dir"
	listen=${PGV_APP_LISTEN:-127.0.0.1:$(pgv_free_port)}
	PGV_APP_DIR=$dir
	PGV_APP_LOG=$dir/app.log
	env -u VAULT_TOKEN APP_LISTEN="$listen" "$@" "$PGV_APP_BIN" </dev/null >>"$PGV_APP_LOG" 2>&1 &
	pid=$!
	echo "$pid" >"$dir/app.pid"
	PGV_APP_PID=$pid
	APP_URL=http://$listen
	export PGV_APP_DIR PGV_APP_LOG PGV_APP_PID APP_URL
	for ((i = 0; i < 300; i++)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			pgv_log "pg-vault-app exited during start-up; its log:"
			tail -n 20 "$PGV_APP_LOG" | pgv_redact >&2
			rm -f "$dir/app.pid"
			return 1
		fi
		code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$APP_URL/health" 2>/dev/null || true)
		[ -n "$code" ] && [ "$code" != 000 ] && return 0
		sleep 0.1
	done
	pgv_log "pg-vault-app did not answer within 30 s; its log:"
	tail -n 20 "$PGV_APP_LOG" | pgv_redact >&2
	return 1
}

pgv_stop_app() {
	local pid i rc=0
	pid=$(cat "${PGV_APP_DIR:-/nonexistent}/app.pid" 2>/dev/null || true)
	[ -n "$pid" ] || return 0
	if kill -TERM "$pid" 2>/dev/null; then
		for ((i = 0; i < 300; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			kill -KILL "$pid" 2>/dev/null
			rc=1
		fi
	fi
	wait "$pid" 2>/dev/null
	i=$?
	# 127: not this shell's child, its status is not ours to know
	[ "$rc" = 0 ] && [ "$i" != 127 ] && rc=$i
	rm -f "$PGV_APP_DIR/app.pid"
	return "$rc"
}

# ---- PostgreSQL ----

# Write the harness's settings as a marked block at the end of
# postgresql.conf, replacing the block of an earlier start.
pgv_pg_conf() {
	local conf=$PGV_PGDATA/postgresql.conf tmp preload=
	# Loaded at start so that the superuser-only vault.* settings are never
	# readable placeholders in a session that has not used pg_vault yet;
	# only when installed, so that a cluster still starts without it.
	[ -e "$("$PG_CONFIG" --pkglibdir)/pg_vault.so" ] &&
		preload="shared_preload_libraries = 'pg_vault'"
	tmp=$(mktemp)
	sed '/^# pg_vault fixtures: begin/,/^# pg_vault fixtures: end/d' "$conf" >"$tmp"
	cat >>"$tmp" <<-EOF
	# pg_vault fixtures: begin (rewritten at every start)
	listen_addresses = '127.0.0.1'
	port = $PGV_PG_PORT
	unix_socket_directories = '$PGV_PG_DIR'
	fsync = off
	synchronous_commit = off
	full_page_writes = off
	log_min_messages = warning
	log_line_prefix = '%m [%p] %q%u@%d '
	log_statement = 'none'
	# Statements can carry plaintexts; keep them out of the log.
	log_min_error_statement = panic
	$preload
	vault.addr = '$VAULT_ADDR'
	vault.token_file = '$PGV_TOKEN_FILE'
	# pg_vault fixtures: end
	EOF
	cat "$tmp" >"$conf"
	rm -f "$tmp"
}

pgv_start_pg() {
	local owner
	owner=$(pgv_pg_owner)
	PGV_PG_DIR=${PGV_PG_DIR:-$PGV_RUN/pg}
	PGV_PGDATA=${PGV_PGDATA:-$PGV_PG_DIR/data}
	PGV_PG_PORT=${PGV_PG_PORT:-$(pgv_free_port)}
	PGV_PG_LOG=$PGV_PG_DIR/postgresql.log
	PGV_TOKEN_FILE=${PGV_TOKEN_FILE:-$PGV_RUN/vault-token}
	mkdir -p "$PGV_PG_DIR"
	chown "$owner" "$PGV_PG_DIR"
	chmod 0755 "$PGV_PG_DIR"

	(umask 077 && printf '%s' "$VAULT_TOKEN" >"$PGV_TOKEN_FILE")
	chown "$owner" "$PGV_TOKEN_FILE"

	if [ ! -s "$PGV_PGDATA/PG_VERSION" ]; then
		mkdir -p "$PGV_PGDATA"
		chown "$owner" "$PGV_PGDATA"
		chmod 0700 "$PGV_PGDATA"
		if ! pgv_as_pg "$PGV_PGBIN/initdb" -D "$PGV_PGDATA" -U postgres -A trust \
			-E UTF8 --locale=C --no-sync >"$PGV_PG_DIR/initdb.log" 2>&1; then
			pgv_log "initdb failed:"
			cat "$PGV_PG_DIR/initdb.log" >&2
			return 1
		fi
		cat >"$PGV_PGDATA/pg_hba.conf" <<-EOF
		# pg_vault fixtures: trust, on the run directory's socket and 127.0.0.1 only
		local all all trust
		# except database pgv_password_auth over TCP, where suites show that
		# a login really needs its password (test/vault/test_database.py)
		host  pgv_password_auth all 127.0.0.1/32 scram-sha-256
		host  all all 127.0.0.1/32 trust
		EOF
	fi
	pgv_pg_conf
	if ! pgv_as_pg "$PGV_PGBIN/pg_ctl" -D "$PGV_PGDATA" -l "$PGV_PG_LOG" -w -t 60 start >/dev/null; then
		pgv_log "PostgreSQL did not start; its log:"
		tail -n 20 "$PGV_PG_LOG" >&2
		return 1
	fi
	PGV_PG_STARTED=1
	PGV_PG_PID=$(head -n 1 "$PGV_PGDATA/postmaster.pid")
	PGHOST=127.0.0.1
	PGPORT=$PGV_PG_PORT
	PGUSER=postgres
	PGDATABASE=postgres
	export PGHOST PGPORT PGUSER PGDATABASE PGV_PG_DIR PGV_PGDATA PGV_PG_PORT \
		PGV_PG_LOG PGV_PG_PID PGV_TOKEN_FILE
	echo "PostgreSQL: 127.0.0.1:$PGPORT (pid $PGV_PG_PID, data $PGV_PGDATA, log $PGV_PG_LOG)"
}

# By the data directory, not PGV_PG_PID: a suite may have restarted the
# cluster since.
pgv_stop_pg() {
	local pid
	[ "${PGV_PG_STARTED:-0}" = 1 ] || return 0
	pid=$(head -n 1 "$PGV_PGDATA/postmaster.pid" 2>/dev/null || true)
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		pgv_as_pg "$PGV_PGBIN/pg_ctl" -D "$PGV_PGDATA" -m fast -w -t 60 stop >/dev/null 2>&1 ||
			kill -QUIT "$pid" 2>/dev/null || true
	fi
	PGV_PG_STARTED=0
	PGV_PG_PID=
}

# Idempotent: the traps may call it more than once.
pgv_stop_all() {
	pgv_stop_app
	pgv_stop_pg
	[ "${PGV_EXTERNAL_VAULT:-0}" = 1 ] || pgv_stop_vault
	if [ "${PGV_RUN_TEMP:-0}" = 1 ] && [ -d "${PGV_RUN:-}" ]; then
		rm -rf "$PGV_RUN"
		PGV_RUN_TEMP=0
	fi
}
