#!/usr/bin/env bash
# test/operations.sh: what an operator sees and relies on.
#   - Vault's audit log names the database role of each call: alice's
#     decrypt through a view carries X-Pgvault-Current-User alice, bob's
#     calls do not;
#   - a backend waiting on Vault shows a wait event in pg_stat_activity;
#   - vault_stat counts a known workload exactly (calls, rows, errors by
#     SQLSTATE, bytes) and vault_stat_reset empties it;
#   - several addresses in vault.addr: failover on a refused connection and
#     on 503s, back to the first once it recovers; the circuit breaker
#     makes a 10,000-row statement fail at once while Vault is away, and
#     lets the first call through after it returns.
#
# Run by test/run, which starts the servers and exports their settings.
set -uo pipefail
source "$(dirname "$0")/lib/summary.sh"

pgv_need_test_env
DB=pg_vault_operations
KEY=user-data
WORK=$PGV_RUN/operations
mkdir -p "$WORK"
chmod 0700 "$WORK"
PROXY_PIDS=()

cleanup() {
	local pid
	for pid in "${PROXY_PIDS[@]}"; do kill "$pid" 2>/dev/null; done
	vault_api DELETE /_dev/faults >/dev/null 2>&1
}
trap cleanup EXIT

PGOPTIONS='-c client_min_messages=warning' psql -XAtq -d postgres \
	-c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" >/dev/null
q 'CREATE EXTENSION pg_vault' >/dev/null

# ---- the audit log names the role ----
if [ -n "${PGV_AUDIT_FILE:-}" ] && [ -r "$PGV_AUDIT_FILE" ]; then
	q "DROP ROLE IF EXISTS alice" "DROP ROLE IF EXISTS bob" \
		"CREATE ROLE alice" "CREATE ROLE bob" \
		"GRANT vault_decryptor TO alice, bob" \
		"CREATE TABLE users (id int PRIMARY KEY, ssn text)" \
		"CREATE TRIGGER enc BEFORE INSERT ON users FOR EACH ROW EXECUTE FUNCTION vault_encrypt_columns('$KEY', 'ssn')" \
		"INSERT INTO users VALUES (1, '111-11-1111'), (2, '222-22-2222')" \
		"CREATE VIEW users_clear AS SELECT id, vault_decrypt(ssn, '$KEY') AS ssn FROM users" \
		"GRANT SELECT ON users_clear TO alice, bob" >/dev/null
	a=$(q "SET application_name = 'pgv-audit'" "SET ROLE alice" "SELECT ssn FROM users_clear WHERE id = 1")
	b=$(q "SET application_name = 'pgv-audit'" "SET ROLE bob" "SELECT ssn FROM users_clear WHERE id = 2")
	expect "alice and bob decrypt through the view" "111-11-1111 222-22-2222" "$a $b"
	# the audit device writes asynchronously to the file: wait for bob's entry
	for ((i = 0; i < 50; i++)); do
		grep -q '"x-pgvault-current-user":\["bob"\]' "$PGV_AUDIT_FILE" 2>/dev/null && break
		sleep 0.1
	done
	counts=$(/usr/bin/python3 - "$PGV_AUDIT_FILE" <<'EOF'
import json, sys
alice = bob = bob_alice = 0
for line in open(sys.argv[1]):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    req = e.get("request") or {}
    if e.get("type") != "request" or "/decrypt/" not in req.get("path", ""):
        continue
    h = {k.lower(): v for k, v in (req.get("headers") or {}).items()}
    if h.get("x-pgvault-application") != ["pgv-audit"]:
        continue
    who = h.get("x-pgvault-current-user")
    if who == ["alice"]:
        alice += 1
        ok = h.get("x-pgvault-database") == ["pg_vault_operations"] and h.get("x-pgvault-pid")
        if not ok:
            alice -= 1000
    elif who == ["bob"]:
        bob += 1
    if who != ["alice"] and "alice" in json.dumps(req):
        bob_alice += 1
print(alice, bob, bob_alice)
EOF
)
	read -r n_alice n_bob n_leak <<<"$counts"
	if [ "${n_alice:-0}" -ge 1 ] && [ "${n_bob:-0}" -ge 1 ] && [ "${n_leak:-1}" = 0 ]; then
		pgv_ok "the audit log has alice on her decrypt ($n_alice entries, with database and pid), bob on his ($n_bob), and alice on none of bob's"
	else
		pgv_not_ok "audit entries: alice $n_alice, bob $n_bob, others naming alice $n_leak"
	fi
else
	pgv_skip "audit log: this Vault's audit file is not readable here"
fi

# ---- a wait event while waiting on Vault ----
vault_api POST /_dev/faults '{"latency_ms":1500,"path_prefix":"transit/"}' >/dev/null
q "SET application_name = 'pgv-waiting'" "SELECT vault_encrypt('x', '$KEY') IS NOT NULL" >/dev/null &
waiter=$!
seen=
for ((i = 0; i < 100; i++)); do
	seen=$(psql -XAtq -d postgres -c "SELECT wait_event_type || '/' || wait_event FROM pg_stat_activity
		WHERE application_name = 'pgv-waiting' AND state = 'active' AND wait_event IS NOT NULL")
	[ -n "$seen" ] && break
	sleep 0.05
done
wait "$waiter"
vault_api DELETE /_dev/faults >/dev/null
case $seen in
Extension/*) pgv_ok "pg_stat_activity shows a backend waiting on Vault as $seen" ;;
*) pgv_not_ok "no wait event seen while a call waited on Vault (got '$seen')" ;;
esac

# ---- vault_stat counts a known workload ----
got=$(q "SELECT vault_stat_reset()" \
	"SELECT count(vault_encrypt('x' || g, '$KEY')) FROM generate_series(1, 10) g" \
	"SELECT cardinality(vault_encrypt_batch(array_fill('y'::text, ARRAY[50]), '$KEY'))" \
	"SELECT count(vault_decrypt(vault_encrypt('z', '$KEY'), '$KEY')) FROM generate_series(1, 3)" \
	"SELECT vault_decrypt('vault:v1:bm90IGEgY2lwaGVydGV4dA==', '$KEY')" \
	"SELECT operation, calls, rows, errors, errors_by_sqlstate, retries, bytes_sent > 0, bytes_received > 0,
	        total_time_ms >= max_time_ms AND max_time_ms > 0
	   FROM vault_stat WHERE operation IN ('encrypt', 'decrypt', 'hmac') ORDER BY operation" 2>&1 | tail -n 3)
expect "vault_stat: encrypt 14 calls, 63 rows; decrypt 4 calls, 1 error (22023); hmac none" \
	"decrypt|4|4|1|{\"22023\": 1}|0|t|t|t encrypt|14|63|0|{}|0|t|t|t hmac|0|0|0|{}|0|f|f|f" "$(echo $got)"
expect "vault_stat is cluster-wide (pg_vault is preloaded)" t \
	"$(q "SELECT bool_and(cluster_wide) FROM vault_stat")"
expect "vault_stat_reset empties it" 0 \
	"$(q "SELECT vault_stat_reset()" "SELECT sum(calls) FROM vault_stat WHERE operation <> 'health'" | tail -n 1)"
q "CREATE ROLE pgv_ops_nobody" >/dev/null 2>&1
expect "vault_stat is not for everyone: 42501" 42501 \
	"$(outcome "SET ROLE pgv_ops_nobody" "SELECT * FROM vault_stat")"

# ---- several addresses, failover and the circuit breaker ----
# proxy NAME: a fault proxy of this suite's in front of the run's Vault;
# sets PORT_<NAME>.  The same port again when it ran before.
proxy() {
	local name=$1 port_var="PORT_$1" listen pid
	listen=127.0.0.1:${!port_var:-0}
	(umask 077 && printf '%s\n' "$VAULT_TOKEN" >"$WORK/control-token")
	rm -f "$WORK/$name.port"
	"$PGV_PROXY_BIN" --listen "$listen" --port-file "$WORK/$name.port" \
		--upstream "${PGV_BAO_ADDR:-$VAULT_ADDR}" ${VAULT_CACERT:+--cacert "$VAULT_CACERT"} \
		--control-token-file "$WORK/control-token" </dev/null >>"$WORK/$name.log" 2>&1 &
	pid=$!
	PROXY_PIDS+=("$pid")
	eval "PID_$name=$pid"
	for ((i = 0; i < 100; i++)); do
		[ -s "$WORK/$name.port" ] && break
		sleep 0.05
	done
	eval "PORT_$name=$(cat "$WORK/$name.port")"
}
stop_proxy() { local v="PID_$1"; kill "${!v}" 2>/dev/null; wait "${!v}" 2>/dev/null; }
DEAD=$(pgv_free_port)
proxy A
proxy B
A=http://127.0.0.1:$PORT_A
B=http://127.0.0.1:$PORT_B
# settings: ADDRS FAILURES COOLDOWN_MS
settings() { echo "SET vault.addr = '$1'; SET vault.breaker_failures = $2; SET vault.breaker_cooldown_ms = $3; SET vault.max_retries = 0"; }

expect "failover: a refused first address, the second answers" ok \
	"$(outcome "$(settings "http://127.0.0.1:$DEAD, $A" 5 60000)" "SELECT vault_encrypt('x', '$KEY')")"
curl -s -X POST -H "X-Vault-Token: $VAULT_TOKEN" -d '{"fail_next":3,"fail_status":503}' "$A/_dev/faults" >/dev/null
expect "failover: a 503 from the first (sealed, standby), the second answers" ok \
	"$(outcome "$(settings "$A,$B" 5 60000)" "SELECT vault_encrypt('x', '$KEY')")"
expect "... after one request to the first" 2 \
	"$(curl -s -H "X-Vault-Token: $VAULT_TOKEN" "$A/_dev/faults" | json_get fail_next)"
curl -s -X DELETE -H "X-Vault-Token: $VAULT_TOKEN" "$A/_dev/faults" >/dev/null

# A goes away: calls go to B; its breaker opens after 2 failures
stop_proxy A
for ((i = 0; i < 3; i++)); do
	r=$(outcome "$(settings "$A,$B" 2 1000)" "SELECT vault_encrypt('x', '$KEY')")
done
expect "the first address down: calls go to the second" ok "$r"
# A returns; after the cool-down one call probes it, then B goes away
proxy A
sleep 1.2
expect "the first address back: the probe after the cool-down succeeds" ok \
	"$(outcome "$(settings "$A,$B" 2 1000)" "SELECT vault_encrypt('x', '$KEY')")"
stop_proxy B
expect "... and calls are back on the first (the second is gone)" ok \
	"$(outcome "$(settings "$A,$B" 2 1000)" "SELECT vault_encrypt('x', '$KEY')")"

# Vault away: the breaker opens, and a 10,000-row statement fails at once
stop_proxy A
SETS=$(settings "$A" 3 1000)
for ((i = 0; i < 3; i++)); do outcome "$SETS" "SELECT vault_encrypt('x', '$KEY')" >/dev/null; done
q "CREATE TABLE bulk (id int, v text)" \
	"CREATE TRIGGER enc BEFORE INSERT ON bulk FOR EACH ROW EXECUTE FUNCTION vault_encrypt_columns('$KEY', 'v')" >/dev/null
t0=$(date +%s%3N)
got=$(psql -XAtq -v VERBOSITY=verbose -d "$DB" -c "$SETS" \
	-c "INSERT INTO bulk SELECT g, 'v' || g FROM generate_series(1, 10000) g" 2>&1)
t1=$(date +%s%3N)
if [[ $got == *"ERROR:  58V01"* && $got == *"circuit breaker open"* ]]; then
	pgv_ok "Vault away, breaker open: a 10,000-row INSERT fails at once with 58V01 (circuit breaker open; took $((t1 - t0)) ms)"
else
	pgv_not_ok "Vault away: the 10,000-row INSERT said: $got"
fi
expect "... and left no row" 0 "$(q "SELECT count(*) FROM bulk")"
proxy A
sleep 1.2
expect "Vault back: the first call after the cool-down succeeds" ok \
	"$(outcome "$SETS" "SELECT vault_encrypt('x', '$KEY')")"
expect "... and the 10,000 rows go in" 10000 \
	"$(q "$SETS" "INSERT INTO bulk SELECT g, 'v' || g FROM generate_series(1, 10000) g" "SELECT count(*) FROM bulk WHERE vault_is_ciphertext(v)" | tail -n 1)"

PGOPTIONS='-c client_min_messages=warning' psql -XAtq -d postgres -c "DROP DATABASE IF EXISTS $DB" \
	-c "DROP ROLE IF EXISTS alice" -c "DROP ROLE IF EXISTS bob" -c "DROP ROLE IF EXISTS pgv_ops_nobody" >/dev/null
pgv_done
