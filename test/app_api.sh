#!/usr/bin/env bash
# app_api.sh: the companion app (app/pg-vault-app) end to end, with a
# connection string for the database (app_dynamic_creds.sh covers Vault's
# dynamic credentials).  Every endpoint and its error answers, the scopes
# (401, 403), the failed-authentication limit (429 with Retry-After, per
# address), the cap on unauthenticated work, masking, the encrypted
# columns as PostgreSQL holds them, Vault and database outages seen by
# /health (from the background check) and /ready (its own round trip),
# the 500 shape, SIGTERM draining, APP_ENV with the per-environment
# secrets and feature flags, credential revocation taking effect at the
# next load (SIGHUP, and the timer), a restart on the same data, and the
# logs searched for the SSN, plaintexts and tokens used.
#
# Nothing here measures time: a change the app notices in the background
# is waited for by polling, with a generous bound.
#
# It runs on a database of its own (pg_vault_app_test) and, unless an
# external Vault is in use, on an OpenBao instance of its own (bootstrapped
# like the run's) so that it can seal and stop it; the database's
# vault.addr points there.  With an external Vault the outage tests skip.
set -uo pipefail
cd "$(dirname "$0")/.."
source test/lib/summary.sh

DB=pg_vault_app_test
WORK=$(mktemp -d)
chmod 0700 "$WORK"
OUT=$WORK/body
HDRS=$WORK/headers
SSN=$(printf '%03d-%02d-%04d' $((RANDOM % 900 + 100)) $((RANDOM % 90 + 10)) $((RANDOM % 9000 + 1000)))
PLAINTEXT="app-test-plaintext-$RANDOM$RANDOM"
PAYMENT="tok_test_$RANDOM$RANDOM"
OWN_VAULT=0
VDIR=
TOKENS=()

cleanup() {
	pgv_stop_app
	local t
	if [ "$OWN_VAULT" = 1 ]; then
		pgv_vault_instance_stop "$VDIR"
	else
		# An external Vault keeps what it is given: take the credentials back.
		for t in "${TOKENS[@]}"; do
			[ -s "$WORK/$t" ] && "$PGV_APP_BIN" --revoke-credential --env production <"$WORK/$t" >/dev/null 2>&1
		done
	fi
	psql -XqAt -d postgres -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1
	rm -rf "$WORK"
}
trap cleanup EXIT

pgv_need_test_env
if [ ! -x "$PGV_APP_BIN" ]; then
	pgv_not_ok "app/pg-vault-app is built (run make)"
	pgv_done
	exit 1
fi

# ---- helpers ----

# req METHOD PATH [TOKEN-NAME|-] [BODY]: $CODE, the body in $OUT, headers in $HDRS.
req() {
	local method=$1 path=$2 tok=${3:--} args
	args=(-s -o "$OUT" -D "$HDRS" -w '%{http_code}' --max-time 60)
	if [ "$method" = HEAD ]; then args+=(--head); else args+=(-X "$method"); fi
	[ "$tok" != - ] && args+=(-H @"$WORK/$tok.hdr")
	[ $# -ge 4 ] && args+=(-H 'Content-Type: application/json' --data-binary "$4")
	CODE=$(curl "${args[@]}" "$APP_URL$path") || CODE=000
}

# jbody EXPR: a Python expression over the answer d (None if not JSON).
jbody() {
	/usr/bin/python3 - "$OUT" "$1" <<-'EOF'
	import json, sys
	try:
	    d = json.load(open(sys.argv[1]))
	except ValueError:
	    d = None
	try:
	    print(bool(eval(sys.argv[2], {"d": d})))
	except Exception:
	    print(False)
	EOF
}

# expect DESCRIPTION CODE [EXPR]
expect() {
	local desc=$1 code=$2 expr=${3:-True}
	if [ "$CODE" = "$code" ] && [ "$(jbody "$expr")" = True ]; then
		pgv_ok "$desc"
	else
		pgv_not_ok "$desc (HTTP $CODE: $(head -c 300 "$OUT"))"
	fi
}

# await DESCRIPTION CODE EXPR METHOD PATH [TOKEN-NAME]: one test, passing
# once a request answers CODE and EXPR (polled, for at most 60 s): for what
# the app learns in the background.
await() {
	local desc=$1 code=$2 expr=$3 i
	shift 3
	for ((i = 0; i < 120; i++)); do
		req "$@"
		[ "$CODE" = "$code" ] && [ "$(jbody "$expr")" = True ] && break
		sleep 0.5
	done
	expect "$desc" "$code" "$expr"
}

header() { # header NAME: the value of a response header
	sed -n "s/^$1: *//Ip" "$HDRS" | tr -d '\r' | head -n 1
}

sql() { psql -XqAt -v ON_ERROR_STOP=1 -d "$DB" -c "$1"; }

# issue NAME SCOPES [ENV]: a credential in $WORK/NAME, its header in NAME.hdr
issue() {
	local env_args=()
	[ -n "${3:-}" ] && env_args=(--env "$3")
	(umask 077 && VAULT_ADDR=$APP_VAULT_ADDR "$PGV_APP_BIN" --issue-credential "$1" --scopes "$2" \
		"${env_args[@]}" >"$WORK/$1" 2>"$WORK/issue.err") || return 1
	(umask 077 && printf 'Authorization: Bearer %s\n' "$(cat "$WORK/$1")" >"$WORK/$1.hdr")
	TOKENS+=("$1")
}

vault_api() { # vault_api METHOD PATH [BODY]: against the suite's Vault
	curl -s -o /dev/null -w '%{http_code}' -X "$1" -H "X-Vault-Token: $VAULT_TOKEN" \
		${3:+--data-binary "$3"} "$APP_VAULT_ADDR/v1/$2"
}

start_app() { pgv_start_app APP_DATABASE_URL="$APP_DSN" APP_DB_POOL_SIZE=2 APP_HEALTH_INTERVAL=1 "$@"; }

# ---- setup: database, Vault, credentials ----

APP_VAULT_ADDR=$VAULT_ADDR
if [ "${PGV_EXTERNAL_VAULT:-0}" != 1 ]; then
	VDIR=$PGV_RUN/app-api-vault
	if APP_VAULT_ADDR=$(PGV_ROOT_TOKEN=$VAULT_TOKEN pgv_vault_instance_start "$VDIR") &&
		VAULT_ADDR=$APP_VAULT_ADDR bash vault/bootstrap >"$WORK/bootstrap.log" 2>&1; then
		OWN_VAULT=1
	else
		cat "$WORK/bootstrap.log" 2>/dev/null
		pgv_not_ok "a Vault instance of the suite's own"
		pgv_done
		exit 1
	fi
fi

psql -XqAt -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" >/dev/null
[ "$OWN_VAULT" = 1 ] && psql -XqAt -d postgres -c "ALTER DATABASE $DB SET vault.addr = '$APP_VAULT_ADDR'" >/dev/null
pgv_check "extension and app/schema.sql applied (twice: idempotent)" \
	bash -c "psql -XqAt -v ON_ERROR_STOP=1 -d $DB -c 'CREATE EXTENSION IF NOT EXISTS pg_vault' &&
		PGOPTIONS='-c client_min_messages=warning' psql -XqAt -v ON_ERROR_STOP=1 -d $DB -f app/schema.sql &&
		PGOPTIONS='-c client_min_messages=warning' psql -XqAt -v ON_ERROR_STOP=1 -d $DB -f app/schema.sql" \
	>/dev/null
# The app runs as an ordinary login role holding only vault_app.
psql -XqAt -d postgres -c "DO \$\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app_test_login') THEN CREATE ROLE app_test_login LOGIN; END IF; END \$\$" \
	-c "GRANT vault_app TO app_test_login" >/dev/null 2>&1
APP_DSN="host=$PGHOST port=$PGPORT dbname=$DB user=app_test_login"

if issue full read,encrypt,decrypt && issue nodecrypt read,encrypt && issue readonly read &&
	issue prodonly read,encrypt,decrypt production; then
	pgv_ok "credentials issued with --issue-credential"
else
	pgv_not_ok "credentials issued with --issue-credential ($(cat "$WORK/issue.err"))"
fi
pgv_check "an issued token is printed once, alone, and is not in the tool's messages" \
	bash -c "[ \$(wc -l <'$WORK/full') = 1 ] && grep -qE '^pva_[0-9a-f]{64}$' '$WORK/full' &&
		! grep -qF \"\$(cat '$WORK/full')\" '$WORK/issue.err'"
pgv_check "the tool refuses unknown scopes" \
	bash -c "! VAULT_ADDR=$APP_VAULT_ADDR '$PGV_APP_BIN' --issue-credential x --scopes read,admin >/dev/null 2>&1"

# ---- start ----

pgv_check "bad configuration: exit status 2" \
	bash -c "APP_ENV=bogus '$PGV_APP_BIN' >/dev/null 2>&1; [ \$? = 2 ]"
start_app APP_READY_INTERVAL_MS=0 || { pgv_not_ok "app starts"; pgv_done; exit 1; }
pgv_ok "app starts and answers"

# ---- unauthenticated endpoints ----

req GET /health
expect "GET /health: 200 healthy, database and vault" 200 \
	'd == {"status": "healthy", "database": "connected", "vault": "connected"}'
req GET /ready
expect "GET /ready: 200 ready, with the credentials loaded" 200 \
	'd == {"status": "ready", "database": "connected", "vault": "connected", "credentials": "loaded"}'
pgv_check "every answer carries X-Request-Id and is JSON" \
	bash -c "grep -qi '^X-Request-Id: [0-9a-f]' '$HDRS' && grep -qi '^Content-Type: application/json' '$HDRS'"
# /health answers from the monitor's state: requests to it run no statement.
health_runs() { curl -s "$APP_URL/metrics" | awk '$1 == "pgv_app_db_statements_total{statement=\"pgv_health\"}" { print $2; f = 1 } END { if (!f) print 0 }'; }
H0=$(health_runs)
for i in $(seq 50); do curl -s -o /dev/null "$APP_URL/health"; done
H1=$(health_runs)
pgv_check "50 requests to /health run no 50 health checks ($H0 -> $H1: the monitor's alone)" \
	bash -c "[ '$H0' -ge 1 ] && [ \$(($H1 - $H0)) -lt 50 ]"
req GET /metrics
pgv_check "GET /metrics: Prometheus text with requests, latency, pool" \
	bash -c "[ '$CODE' = 200 ] && grep -q '^pgv_app_http_requests_total{route=\"/health\",method=\"GET\",status=\"200\"} [1-9]' '$OUT' &&
		grep -q '^pgv_app_http_request_duration_seconds_bucket{route=\"/health\",method=\"GET\",status=\"200\",le=\"+Inf\"} [1-9]' '$OUT' &&
		grep -q '^pgv_app_db_pool_in_use ' '$OUT' && grep -q '^# TYPE pgv_app_db_errors_total counter' '$OUT' &&
		grep -q '^pgv_app_auth_credentials [1-9]' '$OUT' && grep -q '^pgv_app_auth_refreshes_total{outcome=\"ok\"} [1-9]' '$OUT'"
req GET /nowhere
expect "unknown route: 404 JSON" 404 'd == {"error": "not found"}'
req DELETE /api/users
expect "wrong method: 405 JSON" 405 'd == {"error": "method not allowed"}'
pgv_check "405 names the allowed methods" [ "$(header Allow)" = 'POST, GET, HEAD' ]
req HEAD /health
# (curl --head writes the headers where the body would go)
pgv_check "HEAD /health: 200, no body" bash -c "[ '$CODE' = 200 ] && ! grep -q '{' '$OUT'"

# ---- credentials and scopes ----

for route in "GET /api/secret" "GET /api/config" "GET /api/db-status" "GET /api/users" \
	"GET /api/users/1/ssn" "POST /api/users" "POST /api/encrypt" "POST /api/decrypt"; do
	req ${route% *} "${route#* }" - '{}'
	expect "$route without a credential: 401" 401 'd == {"error": "missing bearer credential"}'
done
pgv_check "401 asks for a bearer credential" \
	[ "$(header WWW-Authenticate)" = 'Bearer realm="pg-vault-app"' ]
(umask 077 && printf 'Authorization: Bearer pva_%064d\n' 0 >"$WORK/bogus.hdr")
req GET /api/secret bogus
expect "an unknown credential: 401" 401 'd == {"error": "invalid credential"}'
(umask 077 && printf 'Authorization: Basic dXNlcjpwYXNz\n' >"$WORK/basic.hdr")
req GET /api/secret basic
expect "a non-bearer Authorization: 401" 401
req POST /api/users readonly '{"email":"r@example.com","name":"R"}'
expect "read scope only: POST /api/users is 403" 403 'd == {"error": "insufficient scope", "required_scope": "encrypt"}'
req POST /api/encrypt readonly '{"plaintext":"x"}'
expect "read scope only: POST /api/encrypt is 403" 403
req GET /api/users/1/ssn nodecrypt
expect "no decrypt scope: GET /api/users/<id>/ssn is 403" 403 'd["required_scope"] == "decrypt"'
req POST /api/decrypt nodecrypt '{"ciphertext":"vault:v1:abc"}'
expect "no decrypt scope: POST /api/decrypt is 403" 403

# ---- settings from KV ----

req GET /api/secret readonly
expect "GET /api/secret: host, port, username, database and nothing else" 200 \
	'sorted(d) == ["database", "host", "port", "username"]'
DBPW=$(curl -s -H "X-Vault-Token: $VAULT_TOKEN" "$APP_VAULT_ADDR/v1/secret/data/app/database" |
	/usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["data"]["password"])')
pgv_check "GET /api/secret: the password is nowhere in the answer" \
	bash -c "[ -n '$DBPW' ] && ! grep -qF -- '$DBPW' '$OUT'"
req GET /api/config readonly
expect "GET /api/config without APP_ENV: api_configured, endpoint, no environment, no feature flags" 200 \
	'd["api_configured"] is True and d["endpoint"].startswith("https://") and d["environment"] is None and d["features"] == {} and sorted(d) == ["api_configured", "endpoint", "environment", "features"]'
APIKEY=$(curl -s -H "X-Vault-Token: $VAULT_TOKEN" "$APP_VAULT_ADDR/v1/secret/data/app/api" |
	/usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["data"]["key"])')
pgv_check "GET /api/config: the key is nowhere in the answer" \
	bash -c "[ -n '$APIKEY' ] && ! grep -qF -- '$APIKEY' '$OUT'"
req GET /api/db-status readonly
expect "GET /api/db-status: connected" 200 \
	'd == {"status": "connected", "message": "Database connection successful"}'

# ---- users ----

req POST /api/users nodecrypt "{\"email\":\"alice@example.com\",\"name\":\"Alice\",\"ssn\":\"$SSN\",\"payment_token\":\"$PAYMENT\"}"
expect "POST /api/users: 201, id, first 50 characters of the ciphertext" 201 \
	'd["message"] == "User created successfully" and isinstance(d["user_id"], int) and d["encrypted_ssn"].startswith("vault:v1:") and d["encrypted_ssn"].endswith("...") and len(d["encrypted_ssn"]) == 53'
USER_ID=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["user_id"])' "$OUT" 2>/dev/null || echo 0)
ENC_SHOWN=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["encrypted_ssn"][:50])' "$OUT" 2>/dev/null)
pgv_check "in PostgreSQL: ssn, ssn_hmac and payment_token are Vault ciphertexts" \
	[ "$(sql "SELECT ssn LIKE 'vault:v%' AND ssn_hmac LIKE 'vault:v%' AND payment_token LIKE 'vault:v%' FROM users WHERE id = $USER_ID")" = t ]
pgv_check "in PostgreSQL: the answer shows the stored ciphertext's start" \
	[ "$(sql "SELECT left(ssn, 50) FROM users WHERE id = $USER_ID")" = "$ENC_SHOWN" ]
pgv_check "in PostgreSQL: no plaintext SSN or payment token in the table" \
	[ "$(sql "SELECT count(*) FROM users WHERE ssn LIKE '%$SSN%' OR payment_token LIKE '%$PAYMENT%' OR email LIKE '%$SSN%'")" = 0 ]
pgv_check "in PostgreSQL: the blind index is vault_hmac of the SSN" \
	[ "$(psql -XqAt -d "$DB" -c "SELECT ssn_hmac = vault_hmac('$SSN', 'user-data') FROM users WHERE id = $USER_ID")" = t ]
pgv_check "in PostgreSQL: the columns decrypt to what was sent" \
	[ "$(psql -XqAt -d "$DB" -c "SELECT vault_decrypt(ssn, 'user-data') = '$SSN' AND vault_decrypt(payment_token, 'payment-data') = '$PAYMENT' FROM users WHERE id = $USER_ID")" = t ]

req POST /api/users full '{"email":"bob@example.com","name":"Bob","ssn":null}'
expect "POST /api/users without SSN or payment token: 201, encrypted_ssn null" 201 'd["encrypted_ssn"] is None'
BOB_ID=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["user_id"])' "$OUT" 2>/dev/null || echo 0)
pgv_check "in PostgreSQL: NULL stays NULL" \
	[ "$(sql "SELECT ssn IS NULL AND ssn_hmac IS NULL AND payment_token IS NULL FROM users WHERE id = $BOB_ID")" = t ]

req GET /api/users readonly
expect "GET /api/users: id, name, email only" 200 \
	"any(u == {'id': $USER_ID, 'name': 'Alice', 'email': 'alice@example.com'} for u in d['users']) and all(sorted(u) == ['email', 'id', 'name'] for u in d['users'])"
req GET "/api/users?limit=1&offset=1" readonly
expect "GET /api/users?limit=1&offset=1: the second user" 200 "[u['id'] for u in d['users']] == [$BOB_ID]"
req GET "/api/users?limit=0" readonly
expect "GET /api/users?limit=0: empty list" 200 'd == {"users": []}'
for q in "limit=-1" "limit=abc" "limit=1001" "offset=x" "page=2"; do
	req GET "/api/users?$q" readonly
	expect "GET /api/users?$q: 400" 400 '"error" in d'
done

req GET "/api/users/$USER_ID/ssn" full
expect "GET /api/users/<id>/ssn: masked" 200 "d == {'ssn_masked': '***-**-${SSN: -4}'}"
pgv_check "the masked answer holds only the last four digits" bash -c "! grep -qF -- '${SSN:0:6}' '$OUT'"
req GET "/api/users/$BOB_ID/ssn" full
expect "a user without SSN: 404 SSN not found" 404 'd == {"error": "SSN not found"}'
req GET /api/users/987654321/ssn full
expect "no such user: 404 SSN not found" 404 'd == {"error": "SSN not found"}'
req GET /api/users/12x/ssn full
expect "a user id that is not a number: 400" 400 '"error" in d'

# ---- validation ----

bad_user() { # DESCRIPTION BODY
	req POST /api/users full "$2"
	expect "POST /api/users, $1: 400" 400 'isinstance(d, dict) and list(d) == ["error"]'
}
bad_user "SSN without dashes" '{"email":"c@example.com","name":"C","ssn":"123456789"}'
bad_user "SSN too short" '{"email":"c@example.com","name":"C","ssn":"123-45-678"}'
bad_user "SSN with letters" '{"email":"c@example.com","name":"C","ssn":"12a-45-6789"}'
bad_user "an unknown key" '{"email":"c@example.com","name":"C","admin":true}'
bad_user "a number for a string" '{"email":"c@example.com","name":42}'
bad_user "a missing field" '{"name":"C"}'
bad_user "null for a required field" '{"email":null,"name":"C"}'
bad_user "malformed JSON" '{"email":"c@example.com",'
bad_user "an array" '["c@example.com","C"]'
bad_user "an empty body" ''
bad_user "a duplicate key" '{"email":"c@example.com","name":"C","name":"D"}'
bad_user "not an email" '{"email":"nobody","name":"C"}'
req POST /api/users full '{"email":"c@example.com","name":"C","ssn":"12a-45-6789"}'
pgv_check "a 400 does not echo the rejected value" bash -c "! grep -q '12a-45' '$OUT'"
pgv_check "nothing was inserted by the refused requests" \
	[ "$(sql "SELECT count(*) FROM users WHERE email = 'c@example.com'")" = 0 ]

# ---- encrypt and decrypt ----

req POST /api/encrypt nodecrypt "{\"plaintext\":\"$PLAINTEXT\"}"
expect "POST /api/encrypt: ciphertext with key user-data by default" 200 \
	'd["ciphertext"].startswith("vault:v1:") and d["key_used"] == "user-data" and sorted(d) == ["ciphertext", "key_used"]'
CT=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ciphertext"])' "$OUT" 2>/dev/null)
req POST /api/decrypt full "{\"ciphertext\":\"$CT\"}"
expect "POST /api/decrypt: the plaintext back" 200 "d == {'plaintext': '$PLAINTEXT'}"
req POST /api/encrypt full "{\"plaintext\":\"$PLAINTEXT\",\"key_name\":\"payment-data\"}"
expect "POST /api/encrypt with key_name payment-data" 200 'd["key_used"] == "payment-data"'
CT2=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ciphertext"])' "$OUT" 2>/dev/null)
req POST /api/decrypt full "{\"ciphertext\":\"$CT2\",\"key_name\":\"payment-data\"}"
expect "POST /api/decrypt with key_name payment-data" 200 "d == {'plaintext': '$PLAINTEXT'}"
req POST /api/decrypt full "{\"ciphertext\":\"$CT2\",\"key_name\":\"user-data\"}"
expect "decrypting with the wrong key: 400" 400 '"error" in d'
req POST /api/encrypt full '{"plaintext":"é ü 日本語 🙂"}'
CT3=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ciphertext"])' "$OUT" 2>/dev/null)
req POST /api/decrypt full "{\"ciphertext\":\"$CT3\"}"
expect "multibyte text round-trips" 200 'd == {"plaintext": "é ü 日本語 🙂"}'
req POST /api/encrypt full '{"plaintext":""}'
CT4=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ciphertext"])' "$OUT" 2>/dev/null)
req POST /api/decrypt full "{\"ciphertext\":\"$CT4\"}"
expect "the empty string round-trips" 200 'd == {"plaintext": ""}'
req POST /api/encrypt full '{"plaintext":"x","key_name":"admin-key"}'
expect "a key the app is not configured for: 400" 400 'd == {"error": "unknown key_name"}'
req POST /api/decrypt full '{"ciphertext":"not-a-ciphertext"}'
expect "a ciphertext not of Vault's form: 400" 400 '"error" in d'
# the extension's own parser (vc_ciphertext_version), as the vault_ciphertext domain has it
for ct in 'vault:v1:not base64!' 'vault:v1:' 'vault:v1234567890:AAAA' 'vault:v1:AAAA==='; do
	req POST /api/decrypt full "{\"ciphertext\":\"$ct\"}"
	expect "'$ct' is not of Vault's form: 400" 400 \
		'd["error"] == "field \"ciphertext\" is not a Vault ciphertext (vault:vN:...)"'
done
req POST /api/decrypt full '{"ciphertext":"vault:v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}'
expect "a tampered ciphertext: 400" 400 '"error" in d'
req POST /api/encrypt full '{"plaintext":5}'
expect "a number for plaintext: 400" 400 '"error" in d'
req POST /api/encrypt full '{"plaintext":"x","extra":"y"}'
expect "an unknown key in /api/encrypt: 400" 400 '"error" in d'

# ---- body size ----

/usr/bin/python3 -c 'import json; s = json.dumps({"plaintext": ""}); print(json.dumps({"plaintext": "x" * (65536 - len(s))}), end="")' >"$WORK/max.json"
/usr/bin/python3 -c 'import json; s = json.dumps({"plaintext": ""}); print(json.dumps({"plaintext": "x" * (65537 - len(s))}), end="")' >"$WORK/over.json"
req POST /api/encrypt full "@$WORK/max.json"
expect "a body of exactly 64 KiB is accepted" 200 '"ciphertext" in d'
req POST /api/encrypt full "@$WORK/over.json"
expect "a body of 64 KiB + 1 (Content-Length): 413" 413 'd == {"error": "request body too large"}'
CODE=$(curl -s -o "$OUT" -w '%{http_code}' -H @"$WORK/full.hdr" -H 'Transfer-Encoding: chunked' \
	--data-binary @"$WORK/over.json" "$APP_URL/api/encrypt") || CODE=000
expect "a chunked body over 64 KiB: 413" 413 'd == {"error": "request body too large"}'

# ---- a 500 says only a request id, which the log carries ----

sql "REVOKE INSERT ON users FROM vault_app"
req POST /api/users full '{"email":"d@example.com","name":"D"}'
expect "a failing statement: 500 with only error and request_id" 500 \
	'sorted(d) == ["error", "request_id"] and d["error"] == "internal error"'
RID=$(header X-Request-Id)
pgv_check "the 500's request_id is the X-Request-Id header" \
	[ "$(jbody "d['request_id'] == '$RID'")" = True ]
pgv_check "the log line of that request carries the id, status 500 and the SQLSTATE" \
	pgv_eventually 30 bash -c "grep -F '\"request_id\":\"$RID\"' '$PGV_APP_LOG' | grep -q '\"status\":500.*\"sqlstate\":\"42501\"'"
sql "GRANT INSERT ON users TO vault_app"

# ---- the database goes away and comes back ----

psql -XqAt -d postgres -c "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'pg-vault-app' AND datname = '$DB'" >/dev/null
sleep 0.2
req GET /api/db-status readonly
expect "connections killed under the pool: the next request reconnects" 200 '"status" in d and d["status"] == "connected"'
req GET /api/users readonly
expect "... and the one after too" 200 '"users" in d'

# ---- Vault sealed, then down ----

if [ "$OWN_VAULT" = 1 ]; then
	vault_api PUT sys/seal >/dev/null
	req GET /ready
	expect "Vault sealed: /ready 503 at once (its own round trip), vault sealed" 503 \
		'd == {"status": "not ready", "database": "connected", "vault": "sealed", "credentials": "loaded"}'
	await "Vault sealed: /health 503 unhealthy, vault sealed, after the next background check" 503 \
		'd == {"status": "unhealthy", "database": "connected", "vault": "sealed"}' GET /health
	req POST /api/encrypt full '{"plaintext":"x"}'
	expect "Vault sealed: /api/encrypt 503 vault unavailable, with a request id" 503 \
		'd["error"] == "vault unavailable" and "request_id" in d'
	req GET /api/users readonly
	expect "Vault sealed: credentials are still checked from memory" 200 '"users" in d'
	vault_api PUT sys/unseal "{\"key\":\"$(cat "$VDIR/unseal-key")\"}" >/dev/null
	await "Vault unsealed: /health healthy again" 200 '"status" in d and d["status"] == "healthy"' GET /health

	pgv_vault_instance_stop "$VDIR"
	req GET /ready
	expect "Vault down: /ready 503, vault unreachable" 503 'd["vault"] == "unreachable"'
	await "Vault down: /health 503 unhealthy, vault unreachable" 503 \
		'd == {"status": "unhealthy", "database": "connected", "vault": "unreachable"}' GET /health
	req POST /api/encrypt full '{"plaintext":"x"}'
	expect "Vault down: /api/encrypt 503 vault unavailable" 503 'd["error"] == "vault unavailable"'
	req GET /metrics
	pgv_check "Vault errors are counted" \
		grep -q '^pgv_app_vault_errors_total{source="sql",kind="unavailable"} [1-9]' "$OUT"
	PGV_ROOT_TOKEN=$VAULT_TOKEN pgv_vault_instance_restart "$VDIR" >/dev/null
	await "Vault back: /health healthy" 200 '"status" in d and d["status"] == "healthy"' GET /health
	req POST /api/decrypt full "{\"ciphertext\":\"$CT\"}"
	expect "Vault back: earlier ciphertexts still decrypt" 200 "d == {'plaintext': '$PLAINTEXT'}"
else
	pgv_skip "Vault sealed and down (needs an OpenBao of the suite's own)"
fi

# ---- SIGTERM: in-flight requests finish, then exit 0 ----

( (sleep 1.5; printf '{"plaintext":"%s"}' "$PLAINTEXT") |
	curl -s -o "$WORK/drain.out" -w '%{http_code}' -H @"$WORK/full.hdr" -X POST -T - \
		"$APP_URL/api/encrypt" >"$WORK/drain.code" ) &
DRAIN=$!
# SIGTERM once the request is in flight (beside the /metrics request itself)
in_flight() {
	curl -s --max-time 10 "$APP_URL/metrics" |
		awk '$1 == "pgv_app_http_requests_in_flight" && $2 >= 2 {ok = 1} END {exit !ok}'
}
pgv_eventually 30 in_flight
pgv_stop_app
STOP=$?
wait "$DRAIN"
pgv_check "SIGTERM: the request in flight is answered 200" [ "$(cat "$WORK/drain.code")" = 200 ]
pgv_check "SIGTERM: the app exits 0" [ "$STOP" = 0 ]
pgv_check "SIGTERM: no connection is left open after exit" \
	[ "$(psql -XqAt -d postgres -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg-vault-app' AND datname = '$DB'")" = 0 ]

# ---- restart on the same data; APP_ENV ----

# APP_AUTH_REFRESH=3600: here only SIGHUP loads the credentials again.
if start_app APP_ENV=production APP_AUTH_REFRESH=3600; then
	req GET "/api/users/$USER_ID/ssn" full
	expect "after a restart: the same user's SSN, masked" 200 "d == {'ssn_masked': '***-**-${SSN: -4}'}"
	req GET /api/users readonly
	expect "after a restart: the same users" 200 "[u['id'] for u in d['users']][:2] == [$USER_ID, $BOB_ID]"
	req GET /api/secret prodonly
	expect "APP_ENV=production: a credential under app/production/clients is accepted" 200
	req GET /api/secret full
	expect "APP_ENV=production: one under app/clients still is" 200
	req GET /api/secret full
	expect "APP_ENV=production: /api/secret reads secret/production/database" 200 \
		'd["host"] == "db.production.internal" and d["database"] == "pg_vault" and "password" not in d'
	req GET /api/config full
	expect "APP_ENV=production: /api/config reads secret/production/api and the production feature flags" 200 \
		'd["environment"] == "production" and d["endpoint"] == "https://api.example.com/v1" and d["api_configured"] is True and d["features"]["debug_logging"] is False and d["features"]["user_registration"] is True and sorted(d) == ["api_configured", "endpoint", "environment", "features"]'
	if [ "$OWN_VAULT" = 1 ]; then
		vault_api POST secret/data/production/api \
			'{"data":{"key":"prod-key-not-shown","endpoint":"https://api.production.test/v1"}}' >/dev/null
		req GET /api/config full
		expect "APP_ENV=production: /api/config reads the new version of production/api" 200 \
			'd["api_configured"] is True and d["endpoint"] == "https://api.production.test/v1"'
		pgv_check "/api/config: the key is nowhere in the answer" bash -c "! grep -q prod-key-not-shown '$OUT'"
		vault_api DELETE secret/metadata/production/database >/dev/null
		req GET /api/secret full
		expect "APP_ENV=production: /api/secret falls back to app/database without production/database" 200 \
			'"host" in d and d["host"] != "db.production.internal"'
	else
		pgv_skip "APP_ENV KV paths (would write to the external Vault)"
	fi
	VAULT_ADDR=$APP_VAULT_ADDR "$PGV_APP_BIN" --revoke-credential <"$WORK/readonly" >/dev/null 2>&1
	req GET /api/secret readonly
	expect "a revoked credential works until the next load of the credentials (documented)" 200
	kill -HUP "$PGV_APP_PID"
	await "SIGHUP: the revoked credential is refused once the credentials are loaded again" 401 \
		'd == {"error": "invalid credential"}' GET /api/secret readonly
	req GET /api/secret full
	expect "SIGHUP: the other credentials still work" 200
	pgv_stop_app
else
	pgv_not_ok "app restarts on the same data"
fi
if start_app APP_ENV=staging APP_AUTH_REFRESH=1; then
	req GET /api/secret prodonly
	expect "APP_ENV=staging: a production credential is refused" 401
	req GET /api/secret full
	expect "APP_ENV=staging: a credential under app/clients is accepted" 200
	req GET /api/config full
	expect "APP_ENV=staging: staging's feature flags" 200 \
		'd["environment"] == "staging" and d["features"]["debug_logging"] is True and d["endpoint"] == "https://api.staging.example.com/v1"'
	issue late read || pgv_not_ok "a credential issued while the app runs"
	await "a credential issued while the app runs works after the next timer load (APP_AUTH_REFRESH=1)" 200 \
		'"host" in d' GET /api/secret late
	VAULT_ADDR=$APP_VAULT_ADDR "$PGV_APP_BIN" --revoke-credential <"$WORK/nodecrypt" >/dev/null 2>&1
	await "the timer: a revoked credential is refused after the next load, without SIGHUP" 401 \
		'd == {"error": "invalid credential"}' GET /api/secret nodecrypt
	pgv_stop_app
else
	pgv_not_ok "app starts with APP_ENV=staging"
fi

# ---- failed authentications: 429 per address; the cap on unauthenticated work ----

PORT=$(pgv_free_port)
if PGV_APP_LISTEN="[::]:$PORT" start_app APP_AUTH_FAIL_BURST=3 APP_AUTH_FAIL_PER_MINUTE=1 \
	APP_MAX_UNAUTHENTICATED=2; then
	APP_URL=http://127.0.0.1:$PORT
	codes=
	for i in 1 2 3; do
		req GET /api/users bogus
		codes="$codes$CODE "
	done
	pgv_check "3 failed authentications from one address (APP_AUTH_FAIL_BURST=3): 401 each" \
		[ "$codes" = "401 401 401 " ]
	req GET /api/users bogus
	expect "the 4th from the same address: 429" 429 'd == {"error": "too many failed authentications"}'
	RA=$(header Retry-After)
	pgv_check "the 429 says when a try is back: Retry-After $RA seconds (one try a minute)" \
		bash -c "[ '$RA' -ge 1 ] && [ '$RA' -le 61 ]"
	req GET /api/users - '{}'
	expect "... a request without a credential from it: 429 too" 429
	req GET /api/users full
	expect "... and one with a valid credential: the address is refused before its credential is looked at" 429
	req GET /health
	expect "... /health, which needs no credential, still answers" 200
	APP_URL=http://[::1]:$PORT
	req GET /api/users full
	expect "another address (::1) is not limited" 200 '"users" in d'
	req GET /api/users bogus
	expect "... and has tries of its own" 401
	req GET /metrics
	pgv_check "refusals are counted by reason (limited, invalid, missing)" \
		bash -c "grep -q '^pgv_app_auth_failures_total{reason=\"limited\"} [2-9]' '$OUT' &&
			grep -q '^pgv_app_auth_failures_total{reason=\"invalid\"} [1-9]' '$OUT'"
	pgv_check "the log says once that 127.0.0.1 went over the limit, and answers 429 without a line each" \
		bash -c "[ \$(grep -c '\"event\":\"auth_rate_limited\".*\"client_address\":\"127.0.0.1\"' '$PGV_APP_LOG') = 1 ] &&
			[ \$(grep -c '\"status\":429' '$PGV_APP_LOG') = 0 ]"

	# Two requests that need no credential, held open by bodies that never
	# end, fill APP_MAX_UNAUTHENTICATED=2.
	SLOW=()
	FDS=()
	for i in 1 2; do
		mkfifo "$WORK/slow$i"
		curl -s -o /dev/null -X GET -T "$WORK/slow$i" "$APP_URL/health" &
		SLOW+=($!)
		exec {fd}>"$WORK/slow$i"
		FDS+=("$fd")
	done
	await "APP_MAX_UNAUTHENTICATED in flight: the next unauthenticated request is 503 server busy" 503 \
		'd == {"error": "server busy"}' GET /nowhere
	pgv_check "... with Retry-After: 1 and Connection: close" \
		bash -c "[ '$(header Retry-After)' = 1 ] && grep -qi '^Connection: close' '$HDRS'"
	req GET /api/users full
	expect "... while a request with a valid credential is served" 200 '"users" in d'
	for fd in "${FDS[@]}"; do exec {fd}>&-; done
	wait "${SLOW[@]}"
	await "once they end, unauthenticated requests are served again" 200 '"status" in d' GET /health
	pgv_stop_app
else
	pgv_not_ok "app starts listening on [::] (IPv4 and IPv6)"
fi

# ---- behind a reverse proxy: APP_TRUSTED_PROXIES and X-Forwarded-For ----
# 127.0.0.1 stands for the proxy; ::1 for a client that reaches the app
# directly.  Each client named by the proxy has its own tries.

# xreq TOKEN-NAME X-FORWARDED-FOR...: GET /api/users with those headers
xreq() {
	local tok=$1 args=(-s -o "$OUT" -D "$HDRS" -w '%{http_code}' --max-time 60) h
	shift
	for h in "$@"; do args+=(-H "X-Forwarded-For: $h"); done
	CODE=$(curl "${args[@]}" -H @"$WORK/$tok.hdr" "$APP_URL/api/users") || CODE=000
}
PORT=$(pgv_free_port)
if PGV_APP_LISTEN="[::]:$PORT" start_app APP_AUTH_FAIL_BURST=2 APP_AUTH_FAIL_PER_MINUTE=1 \
	APP_TRUSTED_PROXIES="127.0.0.0/8, 192.0.2.10"; then
	APP_URL=http://127.0.0.1:$PORT
	xreq bogus 203.0.113.5
	c1=$CODE
	xreq bogus 203.0.113.5
	pgv_check "through a trusted proxy: 2 failures of client 203.0.113.5 (burst 2): 401 each" \
		[ "$c1 $CODE" = "401 401" ]
	xreq bogus 203.0.113.5
	expect "... its 3rd: 429" 429
	xreq bogus 203.0.113.6
	expect "another client behind the same proxy has tries of its own: 401" 401
	xreq full "203.0.113.5, 192.0.2.10"
	expect "two trusted hops (a CDN, then the proxy): still client 203.0.113.5, 429" 429
	xreq full "198.51.100.9, 203.0.113.5"
	expect "a client that writes an address in front of the proxy's is still itself: 429" 429
	xreq full 198.51.100.7 203.0.113.5
	expect "two X-Forwarded-For headers are read as one list: 429" 429
	xreq bogus "203.0.113.5, garbage"
	expect "a malformed entry ends the walk at the proxy's own address (which has tries): 401" 401
	APP_URL=http://[::1]:$PORT
	xreq full 203.0.113.5
	expect "from an address that is not a trusted proxy, X-Forwarded-For is ignored: 200" 200 '"users" in d'
	pgv_stop_app
else
	pgv_not_ok "app starts with APP_TRUSTED_PROXIES"
fi
APP_TRUSTED_PROXIES="10.0.0.0/8, proxy.example" "$PGV_REPO/app/pg-vault-app" >"$WORK/badproxy.out" 2>&1 </dev/null
rc=$?
pgv_check "a bad APP_TRUSTED_PROXIES stops the app at start, naming the entry (exit 2)" \
	bash -c "[ $rc = 2 ] && grep -q 'APP_TRUSTED_PROXIES: .*proxy.example.* is not an IP address' '$WORK/badproxy.out'"

# ---- logs ----

pgv_check "app log: every line is JSON with ts, level and event" \
	/usr/bin/python3 -c '
import json, sys
for line in open(sys.argv[1]):
    d = json.loads(line)
    assert {"ts", "level", "event"} <= set(d), line
' "$PGV_APP_LOG"
pgv_check "app log: request lines carry request_id, method, route, status, latency_ms" \
	/usr/bin/python3 -c '
import json, sys
n = 0
for line in open(sys.argv[1]):
    d = json.loads(line)
    if d["event"] == "request":
        assert {"request_id", "method", "route", "status", "latency_ms"} <= set(d), line
        n += 1
assert n > 50, n
' "$PGV_APP_LOG"
leaks=0
for s in "$SSN" "$PLAINTEXT" "$PAYMENT" "$DBPW" "$APIKEY" "$VAULT_TOKEN"; do
	[ -n "$s" ] || continue
	grep -qF -- "$s" "$PGV_APP_LOG" && leaks=$((leaks + 1))
	grep -qF -- "$s" "$PGV_PG_LOG" && leaks=$((leaks + 1))
done
for t in "${TOKENS[@]}"; do
	grep -qF -- "$(cat "$WORK/$t")" "$PGV_APP_LOG" && leaks=$((leaks + 1))
	grep -qF -- "$(cat "$WORK/$t")" "$PGV_PG_LOG" && leaks=$((leaks + 1))
	grep -qF -- "$(tr -d '\n' <"$WORK/$t" | sha256sum | cut -c1-64)" "$PGV_APP_LOG" && leaks=$((leaks + 1))
done
pgv_check "the SSN, plaintexts, payment token, secrets and tokens are in neither the app's nor PostgreSQL's log" \
	[ "$leaks" = 0 ]
pgv_check "a dump of the database holds no plaintext SSN or payment token" \
	bash -c "pg_dump -d $DB >'$WORK/dump.sql' && ! grep -qF -e '$SSN' -e '$PAYMENT' '$WORK/dump.sql'"

pgv_done
