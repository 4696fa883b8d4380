#!/usr/bin/env bash
# test/approle.sh: AppRole logins do not pile up in Vault.
# Preloaded (the run's cluster has shared_preload_libraries = 'pg_vault'),
# one token per AppRole identity serves every backend: 100 short
# connections and a parallel query log in once between them, and leave at
# most 2 live tokens.  A token revoked behind pg_vault's back is replaced
# once, for every backend.  Without preloading (a cluster of this suite's
# own), each backend logs in for itself and gives its token back when it
# exits: 30 short connections leave none.
#
# Run by test/run, which starts the servers and exports their settings.
set -uo pipefail
source "$(dirname "$0")/lib/summary.sh"

pgv_need_test_env
DB=pg_vault_approle
KEY=user-data
WORK=$PGV_RUN/approle-suite
DIR=$PGV_RUN/approle-cluster
OWNER=$(pgv_pg_owner)
mkdir -p "$WORK"
chown "$OWNER" "$WORK"

cleanup() { pgv_pg_instance_stop "$DIR"; }
trap cleanup EXIT

PGOPTIONS='-c client_min_messages=warning' psql -XAtq -d postgres \
	-c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" >/dev/null
q 'CREATE EXTENSION pg_vault' 'CREATE TABLE t AS SELECT g::text AS x FROM generate_series(1, 20000) g' \
	'ANALYZE t' >/dev/null

vault_api POST /v1/sys/auth/approle '{"type":"approle"}' >/dev/null
vault_api PUT /v1/sys/policies/acl/pgv-approle-suite \
	"{\"policy\": \"path \\\"transit/encrypt/$KEY\\\" { capabilities = [\\\"update\\\"] }\"}" >/dev/null

# role NAME: an AppRole role with a fresh secret_id in $WORK/NAME.secret;
# prints the SET statements that make a session use it
role() {
	local id
	vault_api POST "/v1/auth/approle/role/$1" '{"token_policies":["pgv-approle-suite"],"token_ttl":"1h"}' >/dev/null
	id=$(vault_api GET "/v1/auth/approle/role/$1/role-id" | json_get data.role_id)
	(umask 077 && vault_api POST "/v1/auth/approle/role/$1/secret-id" | json_get data.secret_id >"$WORK/$1.secret")
	chown "$OWNER" "$WORK/$1.secret"
	echo "SET vault.auth_method = approle; SET vault.approle_role_id = '$id'; SET vault.approle_secret_id_file = '$WORK/$1.secret'"
}

# wait_gone APPNAME [PORT]: until no backend of that application_name is left
wait_gone() {
	for ((i = 0; i < 100; i++)); do
		[ "$(psql -XAtq ${2:+-p "$2"} -d postgres -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = '$1'")" = 0 ] && return
		sleep 0.1
	done
}

# ---- preloaded: 100 short connections share one token ----
SETS=$(role pgv-shared)
: >"$WORK/shared.out"
for ((i = 0; i < 100; i++)); do
	psql -XAtq -d "$DB" -c "SET application_name = 'pgv_shared'" -c "$SETS" \
		-c "SELECT vault_encrypt('x', '$KEY') IS NOT NULL" \
		-c "SELECT vault_token_info()->>'accessor'" >>"$WORK/shared.out" 2>&1
done
wait_gone pgv_shared
expect "100 short AppRole connections each encrypted" 100 "$(grep -c '^t$' "$WORK/shared.out")"
logins=$(grep -v '^t$' "$WORK/shared.out" | sort -u | wc -l)
expect "... with one token between them: one login for the cluster" 1 "$logins"
left=$(vault_role_tokens pgv-shared)
if [[ $left =~ ^[0-9]+$ ]] && [ "$left" -ge 1 ] && [ "$left" -le 2 ]; then
	pgv_ok "... and $left live token(s) for the role afterwards (at most 2)"
else
	pgv_not_ok "100 short AppRole connections left '$left' live tokens"
fi

# ---- preloaded: a parallel query's workers take the shared token ----
SETS=$(role pgv-parallel)
plan=$(q "$SETS" 'SET parallel_setup_cost = 0' 'SET parallel_tuple_cost = 0' \
	'SET min_parallel_table_scan_size = 0' 'SET max_parallel_workers_per_gather = 2' \
	"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT count(vault_encrypt(x, '$KEY')) FROM t" \
	"SELECT vault_token_info()->>'accessor'")
launched=$(grep -o 'Workers Launched: [0-9]*' <<<"$plan" | grep -o '[0-9]*$')
if [ "${launched:-0}" -ge 1 ]; then
	pgv_ok "a parallel query ran vault_encrypt in $launched worker(s) and the leader"
	left=$(vault_role_tokens pgv-parallel)
	expect "... on one token: the workers did not log in" 1 "$left"
else
	pgv_not_ok "no parallel worker was launched: $plan"
fi

# ---- preloaded: a revoked token is replaced once, for everyone ----
SETS=$(role pgv-revoked)
first=$(q "$SETS" "SELECT vault_encrypt('x', '$KEY') IS NOT NULL" "SELECT vault_token_info()->>'accessor'" | tail -n 1)
vault_api POST /v1/auth/token/revoke-accessor "{\"accessor\":\"$first\"}" >/dev/null
: >"$WORK/revoked.out"
for ((i = 0; i < 5; i++)); do
	q "$SETS" "SELECT vault_encrypt('x', '$KEY') IS NOT NULL" "SELECT vault_token_info()->>'accessor'" \
		>>"$WORK/revoked.out" &
done
wait
expect "after a revocation, 5 concurrent sessions all encrypted" 5 "$(grep -c '^t$' "$WORK/revoked.out")"
after=$(grep -v '^t$' "$WORK/revoked.out" | sort -u)
if [ "$(wc -l <<<"$after")" = 1 ] && [ "$after" != "$first" ]; then
	pgv_ok "... on one new token (one login replaced the revoked one)"
else
	pgv_not_ok "after a revocation the sessions used: $(echo $after)"
fi

# ---- not preloaded: each backend gives its token back at exit ----
if PORT=$(pgv_pg_instance_start "$DIR") &&
	echo "shared_preload_libraries = ''" >>"$DIR/data/postgresql.auto.conf" &&
	pgv_pg_instance_stop "$DIR" && PORT=$(pgv_pg_instance_start "$DIR") &&
	[ -z "$(psql -XAtq -p "$PORT" -d postgres -c 'SHOW shared_preload_libraries')" ] &&
	psql -XAtq -p "$PORT" -d postgres -c 'CREATE EXTENSION pg_vault' >/dev/null 2>&1; then
	SETS=$(role pgv-exit)
	: >"$WORK/exit.out"
	for ((i = 0; i < 30; i++)); do
		psql -XAtq -p "$PORT" -d postgres -c "SET application_name = 'pgv_exit'" -c "$SETS" \
			-c "SELECT vault_encrypt('x', '$KEY') IS NOT NULL" >>"$WORK/exit.out" 2>&1
	done
	wait_gone pgv_exit "$PORT"
	expect "not preloaded: 30 short AppRole connections each encrypted" 30 "$(grep -c '^t$' "$WORK/exit.out")"
	expect "... and gave their tokens back at exit (revoke-self): none left" 0 "$(vault_role_tokens pgv-exit)"
else
	pgv_not_ok "a cluster without shared_preload_libraries"
fi

PGOPTIONS='-c client_min_messages=warning' psql -XAtq -d postgres -c "DROP DATABASE IF EXISTS $DB" >/dev/null
pgv_done
