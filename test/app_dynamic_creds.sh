#!/usr/bin/env bash
# app_dynamic_creds.sh: the companion app with Vault's dynamic database
# credentials: an AppRole login (role pg-vault-app, policy app, as
# vault/bootstrap makes them), credentials from database/creds/app-role,
# the token renewed and replaced by a new login before its max TTL, the
# lease renewed and replaced before its own, every request served while
# credentials change under the pool, and on SIGTERM the token and its
# lease revoked (no generated role left in PostgreSQL).  Also a given
# VAULT_TOKEN (its lease revoked by id) and start-up failures.
#
# TTLs are cut to seconds, so this runs on a Vault instance of its own
# (an OpenBao the harness starts) and skips with an external Vault.
set -uo pipefail
cd "$(dirname "$0")/.."
source test/lib/summary.sh

DB=pg_vault_app_dyn
WORK=$(mktemp -d)
chmod 0700 "$WORK"
OUT=$WORK/body
VDIR=
OWN_VAULT=0

cleanup() {
	pgv_stop_app
	[ "$OWN_VAULT" = 1 ] && pgv_vault_instance_stop "$VDIR"
	psql -XqAt -d postgres -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1
	rm -rf "$WORK"
}
trap cleanup EXIT

pgv_need_test_env
if ! pgv_need_own_vault "short TTLs on a Vault instance of the suite's own"; then
	pgv_skip "dynamic database credentials"
	pgv_done
	exit 0
fi

vault_api() { # vault_api METHOD PATH [BODY]: the HTTP status; the body in $OUT
	curl -s -o "$OUT" -w '%{http_code}' -X "$1" -H "X-Vault-Token: $VAULT_TOKEN" \
		${3:+--data-binary "$3"} "$APP_VAULT_ADDR/v1/$2"
}

generated_roles() {
	psql -XqAt -d postgres -c "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'v-%app-role%'"
}

app_users() {
	psql -XqAt -d postgres -c "SELECT string_agg(DISTINCT usename, ',') FROM pg_stat_activity WHERE application_name = 'pg-vault-app' AND datname = '$DB'"
}

# call METHOD PATH [BODY]: $CODE, the body in $OUT
call() {
	CODE=$(curl -s -o "$OUT" -w '%{http_code}' --max-time 30 -X "$1" -H @"$WORK/full.hdr" \
		${3:+-H 'Content-Type: application/json' --data-binary "$3"} "$APP_URL$2") || CODE=000
}

metric() { # metric NAME{LABELS}: its value, 0 when absent
	curl -s "$APP_URL/metrics" | awk -v m="$1" '$1 == m { print $2; f = 1 } END { if (!f) print 0 }'
}

# ---- a Vault of our own, bootstrapped with the database engine ----

psql -XqAt -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" >/dev/null
psql -XqAt -v ON_ERROR_STOP=1 -d "$DB" -c 'CREATE EXTENSION pg_vault' >/dev/null &&
	PGOPTIONS='-c client_min_messages=warning' psql -XqAt -v ON_ERROR_STOP=1 -d "$DB" -f app/schema.sql >/dev/null
VDIR=$PGV_RUN/app-dyn-vault
if APP_VAULT_ADDR=$(PGV_ROOT_TOKEN=$VAULT_TOKEN pgv_vault_instance_start "$VDIR") &&
	VAULT_ADDR=$APP_VAULT_ADDR bash vault/bootstrap --out "$WORK/approle" \
		--database-url "postgresql://{{username}}:{{password}}@127.0.0.1:$PGPORT/$DB?sslmode=disable" \
		--database-username "$PGUSER" --database-grant vault_app >"$WORK/bootstrap.log" 2>&1; then
	OWN_VAULT=1
	pgv_ok "a Vault instance with the database engine, bootstrapped"
else
	cat "$WORK/bootstrap.log" 2>/dev/null | pgv_redact
	pgv_not_ok "a Vault instance with the database engine, bootstrapped"
	pgv_done
	exit 1
fi
psql -XqAt -d postgres -c "ALTER DATABASE $DB SET vault.addr = '$APP_VAULT_ADDR'" >/dev/null

# Seconds, not hours: the lease is renewed twice and then replaced (max
# 10 s), the token renewed and replaced by a fresh login (max 18 s).
vault_api GET database/roles/app-role >/dev/null
/usr/bin/python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))["data"]
print(json.dumps({"db_name": d["db_name"], "creation_statements": d["creation_statements"],
                  "default_ttl": "4s", "max_ttl": "10s"}))' "$OUT" >"$WORK/role.json"
pgv_check "database role app-role with a 4 s lease (max 10 s)" \
	[ "$(vault_api POST database/roles/app-role "$(cat "$WORK/role.json")")" = 204 ]
pgv_check "AppRole pg-vault-app with a 6 s token (max 18 s)" \
	[ "$(vault_api POST auth/approle/role/pg-vault-app '{"token_policies":["app"],"token_ttl":"6s","token_max_ttl":"18s"}')" = 204 ]

(umask 077 && VAULT_ADDR=$APP_VAULT_ADDR "$PGV_APP_BIN" --issue-credential dyn --scopes read,encrypt,decrypt \
	>"$WORK/full" 2>/dev/null && printf 'Authorization: Bearer %s\n' "$(cat "$WORK/full")" >"$WORK/full.hdr")

APPROLE_ENV=(APP_DB_ROLE=app-role "APP_DATABASE_URL=host=$PGHOST port=$PGPORT dbname=$DB"
	VAULT_ADDR="$APP_VAULT_ADDR" VAULT_ROLE_ID="$(cat "$WORK/approle/role_id")"
	VAULT_SECRET_ID_FILE="$WORK/approle/secret_id" APP_DB_POOL_SIZE=2)

# ---- start-up failures ----

pgv_check "an unreadable secret-id file: exit 1 after APP_STARTUP_TIMEOUT" \
	bash -c "env -u VAULT_TOKEN ${APPROLE_ENV[*]@Q} VAULT_SECRET_ID_FILE=$WORK/missing APP_STARTUP_TIMEOUT=1 \
		APP_LISTEN=127.0.0.1:$(pgv_free_port) '$PGV_APP_BIN' >'$WORK/fail.log' 2>&1; [ \$? = 1 ]"
pgv_check "Vault unreachable at start: exit 1 after APP_STARTUP_TIMEOUT" \
	bash -c "env -u VAULT_TOKEN ${APPROLE_ENV[*]@Q} VAULT_ADDR=http://127.0.0.1:$(pgv_free_port) APP_STARTUP_TIMEOUT=1 \
		APP_LISTEN=127.0.0.1:$(pgv_free_port) '$PGV_APP_BIN' >>'$WORK/fail.log' 2>&1; [ \$? = 1 ]"
pgv_check "APP_DB_ROLE without any Vault token: exit 2" \
	bash -c "env -u VAULT_TOKEN APP_DB_ROLE=app-role '$PGV_APP_BIN' >>'$WORK/fail.log' 2>&1; [ \$? = 2 ]"

# ---- AppRole login and dynamic credentials ----

if ! pgv_start_app "${APPROLE_ENV[@]}"; then
	pgv_not_ok "app starts with AppRole and dynamic credentials"
	pgv_done
	exit 1
fi
pgv_ok "app starts with AppRole and dynamic credentials"
call GET /health
pgv_check "/health: healthy" [ "$CODE" = 200 ]
call POST /api/users '{"email":"dyn@example.com","name":"Dyn","ssn":"321-54-9876"}'
pgv_check "POST /api/users as the generated user: 201" [ "$CODE" = 201 ]
USER_ID=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["user_id"])' "$OUT" 2>/dev/null || echo 0)
call GET "/api/users/$USER_ID/ssn"
pgv_check "GET /api/users/<id>/ssn as the generated user: masked" \
	bash -c "[ '$CODE' = 200 ] && grep -q '9876' '$OUT'"
FIRST_USER=$(app_users)
pgv_check "the pool connects as a user Vault generated" \
	grep -q '^v-approle-app-role-' <<<"$FIRST_USER"

# ---- 24 s of requests while the lease and the token turn over ----

fails=0
max_roles=0
users_seen=$FIRST_USER
end=$((SECONDS + 24))
while [ "$SECONDS" -lt "$end" ]; do
	call POST /api/encrypt '{"plaintext":"turnover"}'
	[ "$CODE" = 200 ] || fails=$((fails + 1))
	call GET "/api/users/$USER_ID/ssn"
	[ "$CODE" = 200 ] || fails=$((fails + 1))
	n=$(generated_roles)
	[ "$n" -gt "$max_roles" ] && max_roles=$n
	u=$(app_users)
	[ -n "$u" ] && [[ ",$users_seen," != *",$u,"* ]] && users_seen="$users_seen,$u"
	sleep 0.2
done
pgv_check "every request answered while credentials changed ($fails failed)" [ "$fails" = 0 ]
pgv_check "the pool moved to new generated users ($(tr ',' '\n' <<<"$users_seen" | sort -u | wc -l) seen)" \
	[ "$(tr ',' '\n' <<<"$users_seen" | sort -u | wc -l)" -ge 2 ]
pgv_check "old credentials are revoked: at most 2 generated roles at any time (saw $max_roles)" \
	[ "$max_roles" -le 2 ]
pgv_check "the lease was renewed" [ "$(metric 'pgv_app_vault_lease_events_total{event="lease_renewed"}')" -ge 1 ]
pgv_check "the lease was replaced before its max TTL" \
	[ "$(metric 'pgv_app_vault_lease_events_total{event="credentials_issued"}')" -ge 3 ]
pgv_check "the token was renewed" [ "$(metric 'pgv_app_vault_lease_events_total{event="token_renewed"}')" -ge 1 ]
LOGINS=$(metric 'pgv_app_vault_lease_events_total{event="login"}')
REVOKED=$(metric 'pgv_app_vault_lease_events_total{event="token_revoked"}')
pgv_check "the token was replaced by a new login ($LOGINS logins), the old one revoked ($REVOKED)" \
	bash -c "[ '$LOGINS' -ge 2 ] && [ '$REVOKED' -ge 1 ]"

# ---- SIGTERM: the token and its lease revoked ----

pgv_stop_app
STOP=$?
pgv_check "SIGTERM: exit 0" [ "$STOP" = 0 ]
sleep 0.5
pgv_check "SIGTERM: no generated role left in PostgreSQL" [ "$(generated_roles)" = 0 ]
pgv_check "SIGTERM: no connection left" [ -z "$(app_users)" ]
pgv_check "the secret_id and the root token are not in the app's log" \
	bash -c "! grep -qF -e \"\$(cat '$WORK/approle/secret_id')\" -e \"\$VAULT_TOKEN\" '$PGV_APP_LOG'"

# ---- a given token: the lease revoked by id ----

if pgv_start_app "${APPROLE_ENV[@]}" VAULT_ROLE_ID= VAULT_SECRET_ID_FILE= VAULT_TOKEN="$VAULT_TOKEN"; then
	call GET /api/db-status
	pgv_check "VAULT_TOKEN and dynamic credentials: db-status connected" [ "$CODE" = 200 ]
	pgv_check "VAULT_TOKEN: one generated role" [ "$(generated_roles)" = 1 ]
	pgv_stop_app
	sleep 0.5
	pgv_check "VAULT_TOKEN: on SIGTERM the lease is revoked by id" [ "$(generated_roles)" = 0 ]
else
	pgv_not_ok "app starts with VAULT_TOKEN and dynamic credentials"
fi

pgv_done
