#!/usr/bin/env bash
# demo.sh: `make demo`.  The whole system in the foreground, on state kept
# under <repo>/.demo/ so that a second run finds the same keys and data:
#
#   .demo/vault/        OpenBao: its configuration (bao.hcl), raft storage
#                       (data/: keys, secrets, tokens), root token and unseal
#                       key (0600, from the one initialisation), audit log
#                       and log
#   .demo/pgdata        the PostgreSQL cluster; .demo/pg/ its socket and log;
#                       .demo/pg-port the port it keeps across runs
#   .demo/vault-token   the token file the extension reads (vault.token_file)
#   .demo/approle/      the app's AppRole role_id and secret_id
#   .demo/env           VAULT_ADDR, VAULT_TOKEN, PG*, APP_URL (source it)
#
# The Makefile builds first; this script only starts, bootstraps and waits.
# Ctrl-C or SIGTERM stops everything it started.
set -uo pipefail

# Always the demo's own Vault, even from a shell that sourced .demo/env.
unset VAULT_ADDR VAULT_TOKEN

cd "$(dirname "$0")/../.." || exit 1
source test/lib/servers.sh

DEMO=$PGV_REPO/.demo
VAULT_PORT=8200
DEMO_DB=pg_vault_demo

say() { echo "[demo] $*"; }
die() { echo "[demo] $*" >&2; exit 1; }

# A .demo/ from before OpenBao (the retired development server kept a
# state.json) cannot be carried over: its keys lived in that server.  Keep
# it aside, untouched, and start afresh.
if [ -e "$DEMO/vault/state.json" ] && [ ! -d "$DEMO/vault/data" ]; then
	old=$DEMO.devserver-$(date +%Y%m%d%H%M%S)
	mv "$DEMO" "$old"
	say "$DEMO was made by the retired development Vault server; moved to $old, starting afresh"
fi
mkdir -p "$DEMO/vault"
chmod 0700 "$DEMO/vault"

# ---- checks before starting anything ----
if [ "$(id -u)" -eq 0 ] && ! runuser -u postgres -- test -x "$DEMO"; then
	die "the postgres user cannot reach $DEMO, where the demo keeps its cluster.
[demo] Let it traverse every parent directory (for example: chmod o+x $(dirname "$PGV_REPO")),
[demo] or clone the repository under a directory it can enter, such as /srv or /opt."
fi
if [ -s "$DEMO/vault/vault.pid" ] && kill -0 "$(cat "$DEMO/vault/vault.pid")" 2>/dev/null; then
	die "a Vault server from an earlier make demo still runs (pid $(cat "$DEMO/vault/vault.pid")); stop it first: kill $(cat "$DEMO/vault/vault.pid")"
fi
pgv_port_free "$VAULT_PORT" ||
	die "127.0.0.1:$VAULT_PORT is in use by another program; the demo's Vault needs it"
if [ -s "$DEMO/pgdata/postmaster.pid" ] &&
	pgv_as_pg "$PGV_PGBIN/pg_ctl" -D "$DEMO/pgdata" status >/dev/null 2>&1; then
	die "a PostgreSQL from an earlier make demo still runs on $DEMO/pgdata; stop it first:
[demo]   $([ "$(id -u)" -eq 0 ] && echo 'runuser -u postgres -- ')$PGV_PGBIN/pg_ctl -D $DEMO/pgdata stop"
fi

PG_PORT=$(cat "$DEMO/pg-port" 2>/dev/null || true)
if [ -z "$PG_PORT" ] || ! pgv_port_free "$PG_PORT"; then
	[ -n "$PG_PORT" ] && say "port $PG_PORT is taken now; PostgreSQL moves to another one"
	PG_PORT=$(pgv_free_port)
	echo "$PG_PORT" >"$DEMO/pg-port"
fi

trap 'pgv_stop_all' EXIT
trap 'echo; say "stopping"; pgv_stop_all; trap - EXIT; say "stopped"; exit 0' INT TERM

# ---- servers, through the shared fixtures, parameterised for .demo ----
PGV_RUN=$DEMO
PGV_RUN_TEMP=0
# OpenBao is initialised once (root token and unseal key in 0600 files of
# .demo/vault/) and unsealed from that file at every start.
PGV_VAULT_DIR=$DEMO/vault
PGV_VAULT_PORT=$VAULT_PORT
unset PGV_ROOT_TOKEN
PGV_PG_DIR=$DEMO/pg
PGV_PGDATA=$DEMO/pgdata
PGV_PG_PORT=$PG_PORT
PGV_TOKEN_FILE=$DEMO/vault-token
export PGV_RUN PGV_RUN_TEMP

pgv_start_vault || die "OpenBao did not start (log: $DEMO/vault/vault.log)"
pgv_start_pg || die "PostgreSQL did not start (log: $DEMO/pg/postgresql.log)"

# ---- the extension ----
if [ "$(id -u)" -eq 0 ]; then
	make --no-print-directory install PG_CONFIG="$PG_CONFIG" >"$DEMO/install.log" 2>&1 ||
		say "make install failed (see $DEMO/install.log)"
fi
if [ -z "$(psql -XAtq -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$DEMO_DB'")" ]; then
	psql -Xq -d postgres -c "CREATE DATABASE $DEMO_DB" || die "could not create database $DEMO_DB"
fi
# An extension made by an earlier make demo may be of an older version than
# the one just installed: update it in place (tables, triggers and data
# stay), as a release would be updated.
installed=$(psql -XAtq -d "$DEMO_DB" -c "SELECT e.extversion FROM pg_extension e WHERE e.extname = 'pg_vault'
		AND e.extversion IS DISTINCT FROM (SELECT a.default_version FROM pg_available_extensions a
										   WHERE a.name = 'pg_vault')")
if [ -n "$installed" ]; then
	if err=$(psql -Xq -v ON_ERROR_STOP=1 -d "$DEMO_DB" -c 'ALTER EXTENSION pg_vault UPDATE' 2>&1); then
		say "extension pg_vault in $DEMO_DB: updated from $installed to $(psql -XAtq -d "$DEMO_DB" \
			-c "SELECT extversion FROM pg_extension WHERE extname = 'pg_vault'")"
	else
		say "extension pg_vault $installed in $DEMO_DB could not be updated: $(echo "$err" | head -n 1)"
	fi
fi
if err=$(psql -Xq -v ON_ERROR_STOP=1 -d "$DEMO_DB" -c 'CREATE EXTENSION IF NOT EXISTS pg_vault' 2>&1); then
	say "extension pg_vault: created in database $DEMO_DB"
else
	say "extension pg_vault is not installable yet; the demo goes on without it"
	say "  ($(echo "$err" | head -n 1))"
fi

# ---- the app's schema (idempotent) ----
PGOPTIONS='-c client_min_messages=warning' psql -Xq -v ON_ERROR_STOP=1 -d "$DEMO_DB" \
	-f app/schema.sql >/dev/null || say "app/schema.sql could not be applied"

# ---- Vault's keys, secrets, policies and AppRole (idempotent) ----
APP_DB_PORT=$PGPORT APP_DB_NAME=$DEMO_DB bash vault/bootstrap --out "$DEMO/approle" \
	--audit-file "$PGV_AUDIT_FILE" \
	--database-url "postgresql://{{username}}:{{password}}@127.0.0.1:$PGPORT/$DEMO_DB?sslmode=disable" \
	--database-username postgres --database-grant vault_app ||
	die "vault/bootstrap failed"

# ---- sample users, loaded once: plaintexts in, ciphertexts stored ----
# The users table's trigger encrypts ssn and payment_token with the
# bootstrap's keys user-data and payment-data and fills the blind index
# ssn_hmac, in one batch request per key for the whole INSERT.  Nothing is
# inserted unless that trigger is in place.
PGOPTIONS='-c client_min_messages=warning' psql -Xq -v ON_ERROR_STOP=1 -d "$DEMO_DB" >/dev/null <<'SQL' ||
INSERT INTO users (email, name, ssn, payment_token)
SELECT s.email, s.name, s.ssn, s.payment_token
FROM (VALUES
	('john.doe@example.com', 'John Doe', '123-45-6789', 'tok_visa_4242424242424242'),
	('jane.smith@example.com', 'Jane Smith', '987-65-4321', 'tok_mc_5555555555554444'),
	('alex.garcia@example.com', 'Alex Garcia', '555-12-3456', 'tok_amex_378282246310005')
) AS s(email, name, ssn, payment_token)
WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.email = s.email)
  AND EXISTS (SELECT 1 FROM pg_trigger t
              WHERE t.tgrelid = 'users'::regclass AND t.tgname = 'users_vault_encrypt' AND t.tgenabled <> 'D');
SQL
	say "sample users could not be loaded (is the extension installed?)"

# ---- the app: two API credentials issued once, kept in .demo/app-tokens ----
APP_STARTED=
if [ -x "$PGV_APP_BIN" ]; then
	if [ ! -s "$DEMO/app-tokens" ]; then
		(
			umask 077
			all=$("$PGV_APP_BIN" --issue-credential demo --scopes read,encrypt,decrypt) &&
				nodec=$("$PGV_APP_BIN" --issue-credential demo-no-decrypt --scopes read,encrypt) &&
				printf 'export APP_TOKEN=%s\nexport APP_TOKEN_NO_DECRYPT=%s\n' "$all" "$nodec" \
					>"$DEMO/app-tokens"
		) || say "could not issue the app's API credentials"
	fi
	PGV_APP_DIR=$DEMO/app
	if PGV_APP_LISTEN=127.0.0.1:5000 pgv_start_app APP_ENV=development APP_DB_ROLE=app-role \
		"APP_DATABASE_URL=host=127.0.0.1 port=$PGPORT dbname=$DEMO_DB" \
		VAULT_ADDR="$VAULT_ADDR" VAULT_ROLE_ID="$(cat "$DEMO/approle/role_id")" \
		VAULT_SECRET_ID_FILE="$DEMO/approle/secret_id"; then
		APP_STARTED=1
	else
		say "the app did not start (log: $DEMO/app/app.log); the demo goes on without it"
	fi
else
	say "app/pg-vault-app is not built; the demo goes on without it"
fi

(
	umask 077
	cat >"$DEMO/env" <<-EOF
	# pg_vault demo (make demo): source this file
	export VAULT_ADDR=$VAULT_ADDR
	export VAULT_TOKEN=$VAULT_TOKEN
	export PGHOST=$PGHOST
	export PGPORT=$PGPORT
	export PGUSER=$PGUSER
	export PGDATABASE=$DEMO_DB
	export APP_URL=http://127.0.0.1:5000
	EOF
	[ -s "$DEMO/app-tokens" ] && cat "$DEMO/app-tokens" >>"$DEMO/env"
)

echo
echo "pg_vault demo is running (state in $DEMO; Ctrl-C stops it):"
printf '  %-28s %-24s %s\n' \
	"$(pgv_vault_version)" "$VAULT_ADDR" "log $PGV_VAULT_LOG, audit $PGV_AUDIT_FILE" \
	"PostgreSQL $("$PG_CONFIG" --version | sed 's/[^0-9]*\([0-9]*\).*/\1/')" "127.0.0.1:$PGPORT" "database $DEMO_DB, log $PGV_PG_LOG" \
	"AppRole pg-vault-app" "$DEMO/approle/" "role_id, secret_id"
[ -n "$APP_STARTED" ] && printf '  %-28s %-24s %s\n' \
	"app (pg-vault-app)" "http://127.0.0.1:5000" "log $DEMO/app/app.log, pid $PGV_APP_PID"
cat <<EOF

In another shell:
  source $DEMO/env
  curl -s \$VAULT_ADDR/v1/sys/health
  curl -s -H "X-Vault-Token: \$VAULT_TOKEN" \$VAULT_ADDR/v1/secret/data/app/api
  curl -s -H "X-Vault-Token: \$VAULT_TOKEN" -X POST \\
       -d "{\"plaintext\":\"\$(printf 'hello world' | base64)\"}" \$VAULT_ADDR/v1/transit/encrypt/user-data
  psql
  curl -s \$APP_URL/health
  curl -s -H "Authorization: Bearer \$APP_TOKEN" \$APP_URL/api/secret
  curl -s -H "Authorization: Bearer \$APP_TOKEN" -X POST -d '{"email":"ada@example.com","name":"Ada","ssn":"123-45-6789"}' \$APP_URL/api/users
  curl -s -H "Authorization: Bearer \$APP_TOKEN" \$APP_URL/api/users
  curl -s -H "Authorization: Bearer \$APP_TOKEN" \$APP_URL/api/users/1/ssn
  curl -s -H "Authorization: Bearer \$APP_TOKEN_NO_DECRYPT" \$APP_URL/api/users/1/ssn     # 403
  curl -s -H "Authorization: Bearer \$APP_TOKEN" -X POST -d '{"plaintext":"hello"}' \$APP_URL/api/encrypt
EOF

# Wait, waking for signals; leave if a server dies under us.
while kill -0 "$(cat "$PGV_VAULT_DIR/vault.pid" 2>/dev/null)" 2>/dev/null &&
	kill -0 "$(head -n 1 "$PGV_PGDATA/postmaster.pid" 2>/dev/null)" 2>/dev/null; do
	sleep 1 &
	wait $!
done
say "a server stopped unexpectedly (logs: $PGV_VAULT_LOG, $PGV_PG_LOG)"
exit 1
