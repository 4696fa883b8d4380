#!/usr/bin/env bash
# test/extension.sh: the pg_vault extension against a live Vault, for what
# pg_regress cannot do from SQL alone: tokens with narrow policies, the
# token file changing under a session, AppRole login, renewal and re-login,
# keep-alive, backend memory, and no secret in the server log.  Through the
# fault proxy (vault/faultproxy, in front of any Vault): slow, failing, cut,
# malformed, truncated and oversized answers; cancel and statement_timeout.
# With an OpenBao the harness started, also: sealed for real (sys/seal, then
# unseal with its key file) and a second, TLS-only OpenBao with a CA made
# here.
#
# Run by test/run, which starts the servers and exports their settings.
set -uo pipefail
source "$(dirname "$0")/lib/summary.sh"

DB=pg_vault_ext_test
WORK=$PGV_RUN/extension-test
OWNER=$(pgv_pg_owner)
KEY=ext_$(openssl rand -hex 6)
KV=regress/ext-$(openssl rand -hex 6)
MARK=PGV-PLAINTEXT-$(openssl rand -hex 8)	# test plaintexts carry this
TLS_DIR=

mkdir -p "$WORK"
chmod 0755 "$WORK"

cleanup() {
	[ -n "$TLS_DIR" ] && pgv_vault_instance_stop "$TLS_DIR"
	vault_api DELETE /_dev/faults >/dev/null
	psql -qX -d postgres -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1
}
trap cleanup EXIT



# a file only the server's user can read
secret_file() {
	(umask 077 && printf '%s' "$2" >"$1")
	chown "$OWNER" "$1"
}




now_ms() { date +%s%3N; }

PGOPTIONS="-c client_min_messages=warning" psql -qX -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" >/dev/null
psql -qX -d "$DB" -c 'CREATE EXTENSION pg_vault' >/dev/null
cp "$PGV_TOKEN_FILE" "$WORK/root-token"
chown "$OWNER" "$WORK/root-token"
chmod 0600 "$WORK/root-token"

# ---- a token whose policy denies the path: 42501 ----
vault_api PUT /v1/sys/policies/acl/pgv-ext-encrypt-only \
	"{\"policy\":\"path \\\"transit/encrypt/$KEY\\\" { capabilities = [\\\"create\\\", \\\"update\\\"] }\"}" >/dev/null
NARROW=$(vault_api POST /v1/auth/token/create '{"policies":["pgv-ext-encrypt-only"],"ttl":"1h"}' | json_get auth.client_token)
secret_file "$WORK/narrow-token" "$NARROW"
expect "a narrow token encrypts" ok \
	"$(outcome "SET vault.token_file = '$WORK/narrow-token'" "SELECT vault_encrypt('$MARK-1', '$KEY')")"
C1=$(q "SELECT vault_encrypt('$MARK-1', '$KEY')")
expect "its policy denies decrypt: 42501" 42501 \
	"$(outcome "SET vault.token_file = '$WORK/narrow-token'" "SELECT vault_decrypt('$C1', '$KEY')")"
expect "and denies KV: 42501" 42501 \
	"$(outcome "SET vault.token_file = '$WORK/narrow-token'" "SELECT vault_kv('$KV/x')")"

# ---- the token file is read again when it changes ----
secret_file "$WORK/switch-token" "$VAULT_TOKEN"
got=$(psql -XAtq -v VERBOSITY=sqlstate -d "$DB" 2>&1 <<-EOF
	SET vault.token_file = '$WORK/switch-token';
	SELECT vault_decrypt('$C1', '$KEY') = '$MARK-1';
	\! install -o "$OWNER" -m 0600 "$WORK/narrow-token" "$WORK/switch-token.new" && mv "$WORK/switch-token.new" "$WORK/switch-token"
	SELECT vault_decrypt('$C1', '$KEY');
	\! install -o "$OWNER" -m 0600 "$WORK/root-token" "$WORK/switch-token.new" && mv "$WORK/switch-token.new" "$WORK/switch-token"
	SELECT vault_decrypt('$C1', '$KEY') = '$MARK-1';
EOF
)
expect "token file followed within one session" "t|ERROR:  42501|t" "$(echo "$got" | paste -sd'|')"

# ---- keep-alive: one connection across calls and transactions ----
got=$(psql -XAtq -d "$DB" 2>&1 <<-EOF
	SELECT pg_backend_pid() AS pid \gset
	\setenv BPID :pid
	SELECT count(vault_encrypt('k' || g, '$KEY')) FROM generate_series(1, 50) g;
	\! ss -tnpH state established "( dport = :${VAULT_ADDR##*:} )" | grep -c "pid=\$BPID,"
	BEGIN; SELECT 1 FROM vault_health(); COMMIT;
	SELECT count(vault_encrypt('k' || g, '$KEY')) FROM generate_series(1, 50) g;
	\! ss -tnpH state established "( dport = :${VAULT_ADDR##*:} )" | grep "pid=\$BPID," | awk '{print \$3}' | sort -u | wc -l
EOF
)
expect "keep-alive: one connection reused across statements" "50|1|1|50|1" "$(echo "$got" | paste -sd'|')"

# ---- backend memory stays flat ----
got=$(psql -XAtq -d "$DB" 2>&1 <<-EOF
	SELECT pg_backend_pid() AS pid \gset
	\setenv BPID :pid
	\set rows 'SELECT count(vault_decrypt(vault_encrypt(:''mark'' || g, :''key''), :''key'')) FROM generate_series(1, :n) g'
	\set batch 'SELECT count(*) FROM (SELECT unnest(vault_decrypt_batch(vault_encrypt_batch(array_agg(:''mark'' || g), :''key''), :''key'')) FROM generate_series(1, 10000) g GROUP BY g % 10) s'
	\set mark '$MARK '
	\set key '$KEY'
	\set n 3000
	:rows; :batch; :rows; :batch;
	\! awk '/RssAnon/ {print \$2}' /proc/\$BPID/status
	:rows; :batch; :rows; :batch;
	\! awk '/RssAnon/ {print \$2}' /proc/\$BPID/status
	:rows; :batch; :rows; :batch;
	\! awk '/RssAnon/ {print \$2}' /proc/\$BPID/status
EOF
)
# Three identical windows: the first warms up (buffers grow to what the
# workload needs), the growth over the third is what a leak would show
# (12,000 calls and 20 batches of 1,000 items a window).  Batches of 1,000,
# not 20,000: arrays of a megabyte go to mmap or the top of the heap, and
# glibc gives them back or keeps them as it sees fit, which moves RssAnon
# by megabytes either way without any leak.  Even so a window moves it by
# up to about 1.5 MB either way (seen: -1464, +1536 kB), so the bound is
# 5 MB: a leak is caught once it exceeds about 430 bytes a call.
before=$(echo "$got" | sed -n 10p)
after=$(echo "$got" | sed -n 15p)
if [[ $before =~ ^[0-9]+$ && $after =~ ^[0-9]+$ ]] && [ $((after - before)) -lt 5120 ]; then
	pgv_ok "backend private memory (RssAnon) flat over an identical window after warm-up: 12000 calls and 20 batches of 1000 ($((after - before)) kB)"
else
	pgv_not_ok "backend RSS flat (got: $(echo "$got" | paste -sd' '))"
fi

# ---- AppRole: login, cached token, renewal, re-login after revocation ----
vault_api POST /v1/sys/auth/approle '{"type":"approle"}' >/dev/null
vault_api PUT /v1/sys/policies/acl/pgv-ext-approle \
	"{\"policy\":\"path \\\"transit/+/$KEY\\\" { capabilities = [\\\"update\\\"] }\\npath \\\"auth/token/*\\\" { capabilities = [\\\"read\\\", \\\"update\\\"] }\"}" >/dev/null
vault_api POST /v1/auth/approle/role/pgv-ext '{"token_policies":["pgv-ext-approle"],"token_ttl":"10s","token_max_ttl":"120s"}' >/dev/null
ROLE_ID=$(vault_api GET /v1/auth/approle/role/pgv-ext/role-id | json_get data.role_id)
SECRET_ID=$(vault_api POST /v1/auth/approle/role/pgv-ext/secret-id | json_get data.secret_id)
secret_file "$WORK/secret-id" "$SECRET_ID"
APPROLE_SET="SET vault.auth_method = approle; SET vault.approle_role_id = '$ROLE_ID'; SET vault.approle_secret_id_file = '$WORK/secret-id'"
got=$(psql -XAtq -v VERBOSITY=sqlstate -d "$DB" 2>&1 <<-EOF
	$APPROLE_SET;
	SELECT vault_decrypt(vault_encrypt('$MARK-approle', '$KEY'), '$KEY') = '$MARK-approle';
	SELECT vault_token_info()->>'accessor' AS a1 \gset
	SELECT vault_token_info()->>'accessor' = :'a1' AS cached;
	SELECT pg_sleep(7.5);
	SELECT vault_encrypt('x', '$KEY') IS NOT NULL;
	SELECT vault_token_info()->>'accessor' = :'a1' AS renewed_same_token;
	\setenv A1 :a1
	\! curl -s ${VAULT_CACERT:+--cacert "$VAULT_CACERT"} -o /dev/null -X POST -H "X-Vault-Token: \$VAULT_TOKEN" -d "{\"accessor\":\"\$A1\"}" "\$VAULT_ADDR/v1/auth/token/revoke-accessor"
	SELECT vault_encrypt('x', '$KEY') IS NOT NULL AS after_revoke;
	SELECT vault_token_info()->>'accessor' <> :'a1' AS new_token;
	SELECT (vault_token_info()->'policies') ? 'pgv-ext-approle' AS policy;
EOF
)
expect "AppRole: login, cache, renewal, re-login after revocation" "t|t||t|t|t|t|t" "$(echo "$got" | paste -sd'|')"
secret_file "$WORK/bad-secret-id" "not-the-secret-$MARK"
expect "AppRole: a bad secret_id is refused" 22023 \
	"$(outcome "SET vault.auth_method = approle" "SET vault.approle_role_id = '$ROLE_ID'" \
		"SET vault.approle_secret_id_file = '$WORK/bad-secret-id'" "SELECT vault_encrypt('x', '$KEY')")"
expect "AppRole: no role_id" 28000 \
	"$(outcome "SET vault.auth_method = approle" "SELECT vault_encrypt('x', '$KEY')")"

# (AppRole tokens shared by backends, and given back at exit: test/approle.sh)

# ---- failures at any log level leave no secret in the log ----
q "SET log_min_messages = debug5" "SET vault.token_file = '$WORK/narrow-token'" \
	"CREATE TEMP TABLE s AS SELECT '$MARK-log'::text AS v" \
	"SELECT vault_decrypt(vault_encrypt(v, '$KEY'), '$KEY') FROM s" >/dev/null
q "SET log_min_messages = debug5" "$APPROLE_SET" "SELECT vault_kv('$KV/denied')" >/dev/null
q "SET log_min_messages = debug5" "SELECT vault_encrypt_batch(ARRAY['$MARK-b1', '$MARK-b2'], '$KEY', ARRAY['c'])" >/dev/null

# ---- sealed: the real thing, sys/seal and unseal with the key file ----
fault() { vault_api POST /_dev/faults "$1" >/dev/null; }
fault_left() { vault_api GET /_dev/faults | json_get fail_next; }
clear_faults() { vault_api DELETE /_dev/faults >/dev/null; }
clear_faults
if pgv_need_own_vault "sealing (its unseal key)"; then
	# sealed: 55000; health still answers
	vault_api PUT /v1/sys/seal >/dev/null
	expect "sealed Vault: 55000" 55000 "$(outcome "SET vault.max_retries = 0" "SELECT vault_encrypt('x', '$KEY')")"
	expect "health reports sealed" true "$(q "SELECT vault_health()->>'sealed'")"
	/usr/bin/python3 -c 'import json, sys
print(json.dumps({"key": open(sys.argv[1]).read().strip()}))' "$PGV_UNSEAL_KEY_FILE" |
		curl -s "${CURL_TLS[@]}" -o /dev/null -X PUT --data-binary @- "$VAULT_ADDR/v1/sys/unseal"
	for ((i = 0; i < 100; i++)); do
		[ "$(pgv_vault_health)" = 200 ] && break
		sleep 0.1
	done
	expect "unsealed again" ok "$(outcome "SELECT vault_encrypt('x', '$KEY')")"
else
	pgv_skip "sealed Vault"
fi

# ---- the fault proxy in front of Vault (vault/faultproxy) ----

# a slow server: statement_timeout and pg_cancel_backend stop the call promptly
fault '{"latency_ms":20000,"path_prefix":"transit/"}'
t0=$(now_ms)
st=$(outcome "SET statement_timeout = '300ms'" "SELECT vault_encrypt('x', '$KEY')")
t1=$(now_ms)
expect "slow server + statement_timeout: 57014" 57014 "$st"
# The answer would take 20 s: ending well before it is the timeout acting,
# however busy the machine (no wall-clock budget of our own).
if [ $((t1 - t0)) -lt 15000 ]; then pgv_ok "statement_timeout ended the 20 s wait ($((t1 - t0)) ms)"; else pgv_not_ok "statement_timeout waited out the answer: $((t1 - t0)) ms"; fi
outcome "SET application_name = 'pgv_cancel_me'" "SELECT vault_encrypt('x', '$KEY')" >"$WORK/cancel.out" &
cpid=$!
# cancel once the call runs (polled: a busy machine may take its time)
for ((i = 0; i < 600; i++)); do
	[ "$(psql -XAtq -d postgres -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgv_cancel_me' AND state = 'active'")" = 1 ] && break
	sleep 0.1
done
t0=$(now_ms)
psql -XAtq -d postgres -c "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'pgv_cancel_me'" >/dev/null
wait $cpid
t1=$(now_ms)
expect "pg_cancel_backend: 57014" 57014 "$(cat "$WORK/cancel.out")"
if [ $((t1 - t0)) -lt 15000 ]; then pgv_ok "cancel ended the 20 s wait ($((t1 - t0)) ms after it)"; else pgv_not_ok "cancel waited out the answer: $((t1 - t0)) ms"; fi
clear_faults

# retries: 503 and 412 are retried; 500 up to vault.max_retries; 400 never
fault '{"fail_next":2,"fail_status":503}'
expect "two 503s, then success" ok "$(outcome "SELECT vault_encrypt('x', '$KEY')")"
fault '{"fail_next":1,"fail_status":412}'
expect "a 412, then success" ok "$(outcome "SELECT vault_encrypt('x', '$KEY')")"
fault '{"fail_next":5,"fail_status":500}'
expect "500s beyond max_retries: 58000" 58000 "$(outcome "SET vault.max_retries = 2" "SELECT vault_encrypt('x', '$KEY')")"
expect "exactly 1 + max_retries attempts" 2 "$(fault_left)"
clear_faults
fault '{"fail_next":3,"fail_status":400}'
expect "400: 22023" 22023 "$(outcome "SELECT vault_encrypt('x', '$KEY')")"
expect "400 is never retried" 2 "$(fault_left)"
clear_faults
# Vault's message longer than the 2000 bytes a detail keeps, the cut
# falling inside a two-byte character: still Vault's 400 (22023), never
# 22021 for the half character (found by fuzz/fuzz_envelope.c)
fault "$(/usr/bin/python3 -c 'import json
print(json.dumps({"fail_next": 2, "fail_status": 400,
                  "fail_body": json.dumps({"errors": ["x" + "\u00e9" * 1500]})}))')"
expect "a long UTF-8 Vault message cut at 2000 bytes: 22023" 22023 "$(outcome "SELECT vault_encrypt('x', '$KEY')")"
got=$(psql -XAtq -d "$DB" -c "SELECT vault_encrypt('x', '$KEY')" 2>&1 >/dev/null | sed -n 's/^DETAIL: .*: x/x/p')
expect "the detail keeps the 999 whole characters that fit" "x$(printf '\u00e9%.0s' $(seq 999))." "$got"
clear_faults
# a real number out of int64's range where an integer belongs: 58V03
# (converting it was undefined behaviour; found by fuzz/fuzz_envelope.c)
for v in 1e19 -9.3e18 1.5; do
	fault "{\"fail_next\":1,\"fail_status\":200,\"fail_body\":\"{\\\"data\\\":{\\\"version\\\":$v}}\"}"
	expect "KV write answered with version $v: 58V03" 58V03 \
		"$(outcome "SELECT vault_kv_put('$KV/fuzz-int', '{\"a\":\"b\"}')")"
	clear_faults
done
fault '{"fail_next":1,"fail_status":200,"fail_body":"{\"data\":{\"version\":7.0}}"}'
expect "KV write answered with version 7.0: read as 7" 7 \
	"$(q "SELECT vault_kv_put('$KV/fuzz-int', '{\"a\":\"b\"}')")"
clear_faults
fault '{"fail_next":2,"fail_status":501}'
expect "501: 55000, not retried" "55000 1" "$(outcome "SELECT vault_encrypt('x', '$KEY')") $(fault_left)"
clear_faults
fault '{"fail_next":1,"fail_status":429,"retry_after":1}'
t0=$(now_ms)
st=$(outcome "SELECT vault_encrypt('x', '$KEY')")
t1=$(now_ms)
expect "429 retried" ok "$st"
if [ $((t1 - t0)) -ge 950 ]; then pgv_ok "Retry-After honoured ($((t1 - t0)) ms)"; else pgv_not_ok "Retry-After ignored ($((t1 - t0)) ms)"; fi
fault '{"fail_next":3,"fail_status":429}'
expect "429 beyond max_retries: 53400" 53400 "$(outcome "SET vault.max_retries = 1" "SELECT vault_encrypt('x', '$KEY')")"
clear_faults

# a cut connection is remade; a malformed answer is 58V03, never a crash
got=$(psql -XAtq -d "$DB" 2>&1 <<-EOF
	SELECT vault_encrypt('x', '$KEY') IS NOT NULL;
	\! curl -s ${VAULT_CACERT:+--cacert "$VAULT_CACERT"} -o /dev/null -X POST -H "X-Vault-Token: \$VAULT_TOKEN" -d '{"close_next":1}' "\$VAULT_ADDR/_dev/faults"
	SELECT vault_encrypt('x', '$KEY') IS NOT NULL;
	SELECT vault_encrypt('x', '$KEY') IS NOT NULL;
EOF
)
expect "cut connection: reconnected transparently" "t|t|t" "$(echo "$got" | paste -sd'|')"
fault '{"malformed_next":1}'
expect "truncated JSON: 58V03" 58V03 "$(outcome "SELECT vault_encrypt('x', '$KEY')")"
fault '{"malformed_next":1}'
expect "truncated batch JSON: 58V03" 58V03 "$(outcome "SELECT vault_encrypt_batch(ARRAY['a','b'], '$KEY')")"
expect "the backend survived" ok "$(outcome "SELECT vault_encrypt('x', '$KEY')")"
# a transfer cut short of its Content-Length is a transport failure: an
# encrypt is retried (it is safe to repeat), a creds call would not be
fault '{"truncated_next":1,"path_prefix":"transit/"}'
expect "truncated transfer: retried, then ok" "ok 0" \
	"$(outcome "SELECT vault_encrypt('x', '$KEY')") $(vault_api GET /_dev/faults | json_get truncated_next)"
fault '{"truncated_next":5,"path_prefix":"transit/"}'
expect "truncated transfers beyond max_retries: 58V02" 58V02 \
	"$(outcome "SET vault.max_retries = 1" "SELECT vault_encrypt('x', '$KEY')")"
clear_faults

# response size cap: a real large answer, then an oversized one from the proxy
expect "response above vault.max_response_size: 54000" 54000 \
	"$(outcome "SET vault.max_response_size = '64kB'" "SELECT vault_encrypt(repeat('x', 100000), '$KEY')")"
fault '{"oversize_next":1,"path_prefix":"transit/"}'
expect "a 4 MB answer to a small request, above a 1 MB cap: 54000" 54000 \
	"$(outcome "SET vault.max_response_size = '1MB'" "SELECT vault_encrypt('x', '$KEY')")"
expect "the backend survived it" ok "$(outcome "SELECT vault_encrypt('x', '$KEY')")"
clear_faults


# ---- batches in parallel: vault.batch_parallel requests at once ----
# 40 items, 10 a request: 4 requests.  The proxy holds each encrypt request
# until 4 are in it at once (gather): sent one after another they would
# never meet, so max_inflight says what the client did, whatever the load.
PAR="SET vault.batch_size = 10"
RT="SELECT string_agg(p, ',' ORDER BY o)
	  FROM unnest(vault_decrypt_batch(vault_encrypt_batch(
	       (SELECT array_agg('$MARK-p' || g ORDER BY g) FROM generate_series(1, 40) g), '$KEY'), '$KEY'))
	       WITH ORDINALITY AS t(p, o)"
want=$(seq 1 40 | sed "s/^/$MARK-p/" | paste -sd,)
fault '{"gather":4,"path_prefix":"transit/encrypt/"}'
got=$(q "$PAR" "SET vault.batch_parallel = 4" "$RT")
expect "batch_parallel 4: 40 items round trip, in order" "$want" "$got"
expect "... their 4 requests were in flight at once" 4 "$(vault_api GET /_dev/faults | json_get max_inflight)"
clear_faults
fault '{"path_prefix":"transit/encrypt/"}'
got=$(q "$PAR" "SET vault.batch_parallel = 1" "$RT")
expect "batch_parallel 1: the same result" "$want" "$got"
expect "... one request at a time" 1 "$(vault_api GET /_dev/faults | json_get max_inflight)"
fault '{"gather":2,"path_prefix":"transit/encrypt/"}'
expect "batch_parallel 2: two rounds of two, in order" "$want" \
	"$(q "$PAR" "SET vault.batch_parallel = 2" "$RT")"
clear_faults
expect "vault.batch_parallel is for superusers to set" 42501 \
	"$(outcome "CREATE ROLE pgv_par_$$ NOSUPERUSER" "SET ROLE pgv_par_$$" "SET vault.batch_parallel = 2")"
q "DROP ROLE IF EXISTS pgv_par_$$" >/dev/null
got=$(q "$PAR" "SELECT vault_stat_reset()" \
	"SELECT count(*) FROM unnest(vault_encrypt_batch((SELECT array_agg('$MARK-s' || g) FROM generate_series(1, 40) g), '$KEY'))" \
	"SELECT calls || ' ' || rows FROM vault_stat WHERE operation = 'encrypt'" | tail -n 1)
expect "vault_stat: a parallel round counts each request and its rows" "4 40" "$got"
# one request of the round fails: a 503 is retried on its own, the others
# keep their answers; a 400 fails the statement
fault '{"fail_next":1,"fail_status":503,"path_prefix":"transit/encrypt/"}'
expect "a 503 to one request of a round: retried, round trip intact" "$want 0" \
	"$(q "$PAR" "$RT") $(fault_left)"
fault '{"fail_next":1,"fail_status":400,"path_prefix":"transit/encrypt/"}'
expect "a 400 to one request of a round: 22023" 22023 \
	"$(outcome "$PAR" "SELECT vault_encrypt_batch((SELECT array_agg('x' || g) FROM generate_series(1, 40) g), '$KEY')")"
fault '{"malformed_next":1,"path_prefix":"transit/decrypt/"}'
expect "a malformed answer in a round: 58V03" 58V03 "$(outcome "$PAR" "$RT")"
clear_faults
# a cancel stops a round: every request of it waits 30 s at the proxy, so
# an end within 20 s is the cancel acting, however busy the machine
fault '{"latency_ms":30000,"path_prefix":"transit/encrypt/"}'
t0=$(now_ms)
st=$(outcome "$PAR" "SET statement_timeout = '300ms'" \
	"SELECT vault_encrypt_batch((SELECT array_agg('x' || g) FROM generate_series(1, 40) g), '$KEY')")
t1=$(now_ms)
expect "statement_timeout stops a parallel round: 57014" 57014 "$st"
if [ $((t1 - t0)) -lt 20000 ]; then pgv_ok "... before the 30 s answers ($((t1 - t0)) ms)"; else pgv_not_ok "the round waited out its answers: $((t1 - t0)) ms"; fi
clear_faults
expect "the backend's next round works" "$want" "$(q "$PAR" "$RT")"


# ---- TLS: a second OpenBao with a certificate from a CA made here ----
if pgv_need_own_vault "a TLS server of the suite's own"; then
	tls=$WORK/tls
	mkdir -p "$tls"
	openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tls/ca.key" -out "$tls/ca.crt" \
		-days 1 -subj "/CN=pg_vault test CA" 2>/dev/null
	openssl req -newkey rsa:2048 -nodes -keyout "$tls/server.key" -out "$tls/server.csr" \
		-subj "/CN=127.0.0.1" 2>/dev/null
	printf 'subjectAltName=IP:127.0.0.1\n' >"$tls/ext"
	openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.crt" -CAkey "$tls/ca.key" \
		-CAcreateserial -out "$tls/server.crt" -days 1 -extfile "$tls/ext" 2>/dev/null
	chmod 0644 "$tls/ca.crt"
	TLS_DIR=$tls/vault
	TLS_ADDR=$(VAULT_CACERT=$tls/ca.crt \
		PGV_VAULT_TLS_CERT=$tls/server.crt PGV_VAULT_TLS_KEY=$tls/server.key \
		pgv_vault_instance_start "$TLS_DIR")
	# a new OpenBao has no engines: the same transit key there
	curl -s --cacert "$tls/ca.crt" -o /dev/null -X POST -H "X-Vault-Token: $VAULT_TOKEN" \
		-d '{"type":"transit"}' "$TLS_ADDR/v1/sys/mounts/transit"
	curl -s --cacert "$tls/ca.crt" -o /dev/null -X POST -H "X-Vault-Token: $VAULT_TOKEN" \
		"$TLS_ADDR/v1/transit/keys/$KEY"
	expect "TLS: unknown CA refused: 58V01" 58V01 \
		"$(outcome "SET vault.addr = '$TLS_ADDR'" "SELECT vault_encrypt('x', '$KEY')")"
	expect "TLS: verified with vault.ca_file" t \
		"$(q "SET vault.addr = '$TLS_ADDR'" "SET vault.ca_file = '$tls/ca.crt'" \
			"SELECT vault_decrypt(vault_encrypt('$MARK-tls', '$KEY'), '$KEY') = '$MARK-tls'")"
	expect "TLS: a name the certificate lacks is refused: 58V01" 58V01 \
		"$(outcome "SET vault.addr = 'https://localhost:${TLS_ADDR##*:}'" "SET vault.ca_file = '$tls/ca.crt'" \
			"SELECT vault_encrypt('x', '$KEY')")"
	got=$(psql -XAtq -d "$DB" -c "SET vault.addr = '$TLS_ADDR'" -c "SET vault.tls_skip_verify = on" \
		-c "SELECT vault_encrypt('x', '$KEY') IS NOT NULL" 2>&1)
	if [[ $got == *"WARNING:  TLS certificate verification of the Vault server is disabled"* && $got == *t ]]; then
		pgv_ok "TLS: tls_skip_verify works and warns"
	else
		pgv_not_ok "TLS: tls_skip_verify ($got)"
	fi
	pgv_vault_instance_stop "$TLS_DIR"
	TLS_DIR=
else
	pgv_skip "TLS"
fi

# ---- the server log holds no plaintext, token or secret_id ----
if [ -r "${PGV_PG_LOG:-}" ]; then
	leaks=0
	for s in "$MARK" "$VAULT_TOKEN" "$NARROW" "$SECRET_ID" "s3cr3t-ü" "tenant data" "rotate me" "multi-MB payload"; do
		if grep -qF -- "$s" "$PGV_PG_LOG"; then
			leaks=$((leaks + 1))
			echo "# found in the PostgreSQL log: a test secret (${#s} characters)"
		fi
	done
	expect "no test plaintext, token or secret_id in the PostgreSQL log" 0 "$leaks"
	if grep -q "could not" "$PGV_PG_LOG"; then pgv_ok "the log did record the failures"; else pgv_not_ok "no failure was logged: the log check proves nothing"; fi
else
	pgv_skip "PostgreSQL log not readable here"
fi

pgv_done
