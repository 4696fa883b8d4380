#!/usr/bin/env bash
# test/creds.sh: dynamic database credentials end to end, SQL -> pg_vault ->
# Vault's database engine -> PostgreSQL, for what pg_regress (sql/creds.sql)
# cannot show from one session: issued credentials log in over TCP, and only
# with their password (database pgv_password_auth, which servers.sh guards
# with scram-sha-256); a rollback does not take them back; renew moves
# VALID UNTIL, capped at max_ttl; revoke drops the user at once while a
# session of it stays connected without privileges; unknown roles, roles
# outside allowed_roles and a database that is down fail cleanly and leave
# no user; membership in vault_credentials is needed; and no issued password
# reaches the server log, even at debug5 with every statement logged, nor
# the generated password OpenBao quotes back in a failed statement's error.
# Through the fault proxy: a 503 is retried and a 500 or a cut connection
# is not (no second user is created).
#
# Run by test/run, which starts the servers and exports their settings.
# Passwords are held in variables only: never printed.
set -uo pipefail
source "$(dirname "$0")/lib/summary.sh"

DB=pg_vault_creds_test
PWDB=pgv_password_auth
WORK=$PGV_RUN/creds-test
SUFFIX=$(openssl rand -hex 4)
MOUNT=pgv-creds-$SUFFIX
TABLE=pgv_creds_$SUFFIX
NOBODY=pgv_creds_nobody_$SUFFIX
DOWN_PASSWORD=pgv-down-pw-$(openssl rand -hex 8)
PASSWORDS=()	# every password issued here, for the log check
LEASES=()		# revoked at the end, whatever happened
LIVE_PID=

mkdir -p "$WORK"
chmod 0755 "$WORK"

cleanup() {
	local l
	exec 3>&- 2>/dev/null
	[ -n "$LIVE_PID" ] && kill "$LIVE_PID" 2>/dev/null
	for l in "${LEASES[@]}"; do
		vault_api PUT /v1/sys/leases/revoke "{\"lease_id\":\"$l\",\"sync\":true}" >/dev/null
	done
	vault_api DELETE /_dev/faults >/dev/null
	vault_api DELETE "/v1/sys/mounts/$MOUNT" >/dev/null
	# users of this test whose lease is unknown (a cut connection)
	for l in $(psql -XAtq -d postgres -c "SELECT quote_ident(rolname) FROM pg_roles WHERE rolname LIKE 'v-%-pgv-allo-%'"); do
		psql -qX -d postgres -c "DROP OWNED BY $l" -c "DROP ROLE $l" >/dev/null 2>&1
	done
	psql -qX -d postgres -c "DROP TABLE IF EXISTS public.$TABLE" -c "DROP ROLE IF EXISTS $NOBODY" \
		-c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1
}
trap cleanup EXIT





# errtext SQL: the error message and detail of a failing statement, kept in
# $WORK/errors too for the log check
errtext() {
	psql -XAtq -d "$DB" -c "$1" 2>&1 >/dev/null | tee -a "$WORK/errors"
}


# issue ROLE [MOUNT]: sets U, P, L, D (lease_duration), R (renewable)
issue() {
	local row
	U= P= L= D= R=
	row=$(psql -XAtq -d "$DB" -c "SELECT username, password, lease_id, lease_duration, renewable
		FROM vault_db_creds('$1'${2:+, '$2'})" 2>>"$WORK/errors")
	IFS='|' read -r U P L D R <<<"$row"
	[ -n "$P" ] && PASSWORDS+=("$P")
	[ -n "$L" ] && LEASES+=("$L")
	[ -n "$U" ] && [ -n "$P" ] && [ -n "$L" ]
}

# login USER PASSWORD DB SQL: a real TCP login, as an application makes it
login() {
	PGPASSWORD=$2 psql -XAtq -h 127.0.0.1 -p "$PGPORT" -U "$1" -d "$3" -c "$4" 2>&1
}

role_count() {	# role_count LIKE-PATTERN
	psql -XAtq -d postgres -c "SELECT count(*) FROM pg_roles WHERE rolname LIKE '$1'"
}

valid_in() {	# valid_in USER: seconds from now to its VALID UNTIL
	psql -XAtq -d postgres -c "SELECT round(extract(epoch FROM rolvaliduntil - now()))::int FROM pg_roles WHERE rolname = '$1'"
}

near() {	# near VALUE TARGET TOLERANCE
	[[ $1 =~ ^-?[0-9]+$ ]] && [ $(($1 - $2)) -le "$3" ] && [ $(($2 - $1)) -le "$3" ]
}

# wait_for FILE PATTERN: up to 10 s for a line matching PATTERN
wait_for() {
	local i
	for ((i = 0; i < 100; i++)); do
		grep -q -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

PGOPTIONS="-c client_min_messages=warning" psql -qX -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" >/dev/null
psql -qX -d "$DB" -c 'CREATE EXTENSION pg_vault' >/dev/null
[ "$(psql -XAtq -d postgres -c "SELECT count(*) FROM pg_database WHERE datname = '$PWDB'")" = 1 ] ||
	psql -qX -d postgres -c "CREATE DATABASE $PWDB" >/dev/null
# app-role's creation statements grant SELECT on the tables that exist then
psql -qX -d postgres -c "CREATE TABLE public.$TABLE (v text)" -c "INSERT INTO public.$TABLE VALUES ('one')" >/dev/null
: >"$WORK/errors"

# ---- issue, and a real login ----
if issue app-role; then
	pgv_ok "vault_db_creds('app-role') issued a user"
else
	pgv_not_ok "vault_db_creds('app-role') issued nothing: $(tail -n 3 "$WORK/errors")"
fi
expect "lease: 1h, renewable, under database/creds/app-role/" "3600 t database/creds/app-role/" \
	"$D $R ${L%/*}/"
expect "the issued user logs in and reads what its creation statements granted" "$U|one" \
	"$(login "$U" "$P" postgres "SELECT current_user, v FROM public.$TABLE")"
expect "it logs in where a password is required ($PWDB, scram-sha-256)" "$U" \
	"$(login "$U" "$P" "$PWDB" "SELECT current_user")"
got=$(login "$U" "wrong-$SUFFIX" "$PWDB" "SELECT current_user")
if [[ $got == *"password authentication failed"* ]]; then
	pgv_ok "a wrong password is refused there: the issued password is what logs in"
else
	pgv_not_ok "a wrong password was not refused on $PWDB ($got)"
fi
FIRST_U=$U FIRST_P=$P FIRST_L=$L

# ---- not transactional ----
row=$(psql -XAtq -d "$DB" -c "BEGIN" -c "SELECT username || '|' || lease_id FROM vault_db_creds('app-role')" \
	-c "ROLLBACK" 2>>"$WORK/errors")
RB_U=${row%%|*} RB_L=${row#*|}
[ -n "$RB_L" ] && LEASES+=("$RB_L")
expect "a rollback does not take the credentials back" 1 "$(role_count "$RB_U")"
q "SELECT vault_lease_revoke('$RB_L')" >/dev/null
expect "vault_lease_revoke does" 0 "$(role_count "$RB_U")"

# ---- a mount of this test's own: short TTLs, allowed_roles, a database that is down ----
CREATE_SQL='["CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '"'"'{{password}}'"'"' VALID UNTIL '"'"'{{expiration}}'"'"';", "GRANT SELECT ON ALL TABLES IN SCHEMA public TO \"{{name}}\";"]'
DEAD_PORT=$(pgv_free_port)
vault_api POST "/v1/sys/mounts/$MOUNT" '{"type":"database"}' >/dev/null
vault_api POST "/v1/$MOUNT/config/pg" "{\"plugin_name\":\"postgresql-database-plugin\",
	\"connection_url\":\"postgresql://{{username}}:{{password}}@127.0.0.1:$PGPORT/postgres?sslmode=disable\",
	\"username\":\"postgres\",\"password\":\"\",\"allowed_roles\":[\"pgv-allowed\", \"pgv-echo\"]}" >/dev/null
vault_api POST "/v1/$MOUNT/config/down" "{\"plugin_name\":\"postgresql-database-plugin\",
	\"connection_url\":\"postgresql://{{username}}:{{password}}@127.0.0.1:$DEAD_PORT/postgres?sslmode=disable\",
	\"username\":\"postgres\",\"password\":\"$DOWN_PASSWORD\",\"allowed_roles\":[\"pgv-down\"],\"verify_connection\":false}" >/dev/null
for role in pgv-allowed pgv-denied; do
	vault_api POST "/v1/$MOUNT/roles/$role" "{\"db_name\":\"pg\",\"default_ttl\":60,\"max_ttl\":120,\"creation_statements\":$CREATE_SQL}" >/dev/null
done
vault_api POST "/v1/$MOUNT/roles/pgv-down" "{\"db_name\":\"down\",\"creation_statements\":$CREATE_SQL}" >/dev/null
# PostgreSQL quotes the value a statement fails on, and OpenBao hands its
# error back verbatim: here that value is the password just generated.
vault_api POST "/v1/$MOUNT/roles/pgv-echo" '{"db_name":"pg","creation_statements":["SELECT '"'"'{{password}}'"'"'::int;"]}' >/dev/null

# ---- renew: VALID UNTIL follows, capped at max_ttl ----
ISSUED=$(date +%s)
if issue pgv-allowed "$MOUNT"; then
	expect "own mount: lease of 60 s" 60 "$D"
	v=$(valid_in "$U")
	if near "$v" 60 10; then pgv_ok "VALID UNTIL about 60 s ahead ($v)"; else pgv_not_ok "VALID UNTIL after issue: $v s, wanted about 60"; fi
	expect "renew by 100 seconds" 100 "$(q "SELECT vault_lease_renew('$L', '100 seconds')->>'lease_duration'")"
	v=$(valid_in "$U")
	if near "$v" 100 10; then pgv_ok "renew moved VALID UNTIL to about 100 s ahead ($v)"; else pgv_not_ok "VALID UNTIL after renew: $v s, wanted about 100"; fi
	r=$(q "SELECT vault_lease_renew('$L', '1 hour')")
	d=$(json_get lease_duration <<<"$r")
	left=$((ISSUED + 120 - $(date +%s)))
	if near "$d" "$left" 3; then pgv_ok "renew by 1 hour capped at max_ttl (120 s from issue): $d s"; else pgv_not_ok "capped renew gave $d s, wanted about $left"; fi
	if [ "${PGV_EXTERNAL_VAULT:-0}" = 1 ]; then
		pgv_skip "the cap's warning (worded as OpenBao words it)"
	elif [[ $r == *'"warnings"'*capped* ]]; then
		pgv_ok "and Vault's warning about the cap is returned"
	else
		pgv_not_ok "no warning about the cap in $r"
	fi
	v=$(valid_in "$U")
	if near "$v" "$((left + 5))" 8; then pgv_ok "VALID UNTIL capped too ($v s ahead)"; else pgv_not_ok "VALID UNTIL after capped renew: $v s, wanted about $((left + 5))"; fi
	expect "the renewed user still logs in" "$U" "$(login "$U" "$P" "$PWDB" "SELECT current_user")"
	q "SELECT vault_lease_revoke('$L')" >/dev/null
else
	pgv_not_ok "own mount: nothing issued: $(tail -n 3 "$WORK/errors")"
fi

# ---- revoke while a session of the user is connected ----
U=$FIRST_U P=$FIRST_P L=$FIRST_L
mkfifo "$WORK/live.fifo"
PGPASSWORD=$P psql -XAtq -h 127.0.0.1 -p "$PGPORT" -U "$U" -d postgres <"$WORK/live.fifo" >"$WORK/live.out" 2>&1 &
LIVE_PID=$!
exec 3>"$WORK/live.fifo"
echo "SELECT 'pid', pg_backend_pid();" >&3
echo "SELECT 'before', v FROM public.$TABLE;" >&3
wait_for "$WORK/live.out" '^before|one'
LIVE_BACKEND=$(sed -n 's/^pid|//p' "$WORK/live.out")
expect "a session of the issued user reads the table" "before|one" "$(grep '^before' "$WORK/live.out")"
got=$(q "SELECT vault_lease_revoke('$L')" "SELECT count(*) FROM pg_roles WHERE rolname = '$U'" \
	"SELECT count(*) FROM pg_stat_activity WHERE pid = '$LIVE_BACKEND'")
expect "revoke: the user is dropped by the time it returns; its session is still there" "|0|1" "$(echo "$got" | paste -sd'|')"
echo "SELECT 'after', v FROM public.$TABLE;" >&3
echo "SELECT 'alive';" >&3
wait_for "$WORK/live.out" '^alive'
if grep -q 'permission denied for table' "$WORK/live.out" && grep -q '^alive' "$WORK/live.out"; then
	pgv_ok "that session stays connected (DROP ROLE neither waits nor terminates) but lost its privileges"
else
	pgv_not_ok "live session after revoke: $(tr '\n' ' ' <"$WORK/live.out")"
fi
exec 3>&-
wait "$LIVE_PID" 2>/dev/null
LIVE_PID=
got=$(login "$U" "$P" postgres "SELECT 1")
if [[ $got == *"does not exist"* ]]; then pgv_ok "no new login with the revoked credentials"; else pgv_not_ok "login after revoke: $got"; fi
expect "lookup of the revoked lease: 22023" 22023 "$(outcome "SELECT vault_lease_lookup('$L')")"

# ---- failures: a clear error and no PostgreSQL role left behind ----
before=$(role_count 'v-%')
expect "unknown Vault role: 22023 (Vault's 400)" 22023 "$(outcome "SELECT * FROM vault_db_creds('nosuchrole')")"
got=$(errtext "SELECT * FROM vault_db_creds('nosuchrole')")
if [[ $got == *'could not get Vault database credentials "database/creds/nosuchrole"'* && $got == *"unknown role: nosuchrole"* ]]; then
	pgv_ok "its message names the path and Vault's reason"
else
	pgv_not_ok "unknown role message: $got"
fi
expect "a role name Vault cannot route: 22023 before any request" 22023 "$(outcome "SELECT * FROM vault_db_creds('no/such')")"
expect "a role outside allowed_roles: 58000 (Vault's 500)" 58000 "$(outcome "SELECT * FROM vault_db_creds('pgv-denied', '$MOUNT')")"
got=$(errtext "SELECT * FROM vault_db_creds('pgv-denied', '$MOUNT')")
if [[ $got == *'is not an allowed role'* ]]; then pgv_ok "its detail says so"; else pgv_not_ok "allowed_roles message: $got"; fi
got=$(errtext "SELECT * FROM vault_db_creds('pgv-echo', '$MOUNT')")
if [[ $got == *'invalid input syntax for type integer: "[redacted]"'* ]]; then
	pgv_ok "a failing statement's quoted value (the new password) is redacted from Vault's message"
else
	pgv_not_ok "password echo: $(sed -E 's/integer: "[^"]*"/integer: "<value>"/' <<<"$got")"
fi
expect "a database that is down: 58000" 58000 "$(outcome "SELECT * FROM vault_db_creds('pgv-down', '$MOUNT')")"
got=$(errtext "SELECT * FROM vault_db_creds('pgv-down', '$MOUNT')")
if [[ $got == *"connection refused"* && $got != *"$DOWN_PASSWORD"* ]]; then
	pgv_ok "its detail says why, without the connection's password"
else
	pgv_not_ok "database down message: $(sed "s/$DOWN_PASSWORD/<password>/g" <<<"$got")"
fi
expect "none of these left a PostgreSQL role" "$before" "$(role_count 'v-%')"

# ---- membership in vault_credentials is needed ----
psql -qX -d postgres -c "CREATE ROLE $NOBODY" >/dev/null
expect "without vault_credentials: 42501" 42501 \
	"$(outcome "SET ROLE $NOBODY" "SELECT * FROM vault_db_creds('app-role')")"
psql -qX -d postgres -c "GRANT vault_credentials TO $NOBODY" >/dev/null
got=$(psql -XAtq -d "$DB" -c "SET ROLE $NOBODY" \
	-c "SELECT lease_id FROM vault_db_creds('app-role')" 2>>"$WORK/errors")
[ -n "$got" ] && LEASES+=("$got")
expect "with it: issue, look up and revoke" "t|" "$(q "SET ROLE $NOBODY" \
	"SELECT vault_lease_lookup('$got') ? 'ttl'" "SELECT vault_lease_revoke('$got')" | paste -sd'|')"

# ---- retries: never a second user for one call ----
# (through the fault proxy, in front of any Vault)
fault() { vault_api POST /_dev/faults "$1" >/dev/null; }
fault_left() { vault_api GET /_dev/faults | json_get fail_next; }
allowed=v-%-pgv-allo-%
n0=$(role_count "$allowed")
fault "{\"fail_next\":2,\"fail_status\":503,\"path_prefix\":\"$MOUNT/creds/\"}"
if issue pgv-allowed "$MOUNT"; then pgv_ok "two 503s (Vault did not act): retried, then issued"; else pgv_not_ok "503s were not retried"; fi
expect "exactly one user for it" $((n0 + 1)) "$(role_count "$allowed")"
vault_api DELETE /_dev/faults >/dev/null
fault "{\"fail_next\":2,\"fail_status\":500,\"path_prefix\":\"$MOUNT/creds/\"}"
expect "a 500 (Vault may have acted): 58000, not retried" "58000 1" \
	"$(outcome "SELECT * FROM vault_db_creds('pgv-allowed', '$MOUNT')") $(fault_left)"
vault_api DELETE /_dev/faults >/dev/null
fault "{\"close_next\":1,\"path_prefix\":\"$MOUNT/creds/\"}"
expect "connection cut after Vault issued: 58V02, not retried" 58V02 \
	"$(outcome "SELECT * FROM vault_db_creds('pgv-allowed', '$MOUNT')")"
expect "so one user was made, not three" $((n0 + 2)) "$(role_count "$allowed")"
vault_api DELETE /_dev/faults >/dev/null
# that user's lease never reached us: cleanup drops it (the lease ends in 60 s)

# ---- no issued password in any log, with everything logged ----
got=$(psql -XAtq -d "$DB" 2>&1 <<-EOF
	SET log_statement = 'all';
	SET log_min_duration_statement = 0;
	SET log_min_messages = debug5;
	SET log_min_error_statement = debug5;
	SET client_min_messages = warning;
	SELECT lease_id AS l, password AS p FROM vault_db_creds('app-role') \gset
	\echo issued :l :p
	SELECT vault_lease_lookup(:'l') IS NOT NULL;
	SELECT vault_lease_renew(:'l', '10 minutes') IS NOT NULL;
	SELECT * FROM vault_db_creds('nosuchrole');
	SELECT * FROM vault_db_creds('pgv-denied', '$MOUNT');
	SELECT * FROM vault_db_creds('pgv-down', '$MOUNT');
	SELECT vault_lease_revoke(:'l');
	SELECT vault_lease_lookup(:'l');
EOF
)
read -r _ l p < <(grep '^issued ' <<<"$got")
[ -n "${l:-}" ] && LEASES+=("$l")
[ -n "${p:-}" ] && PASSWORDS+=("$p")
expect "a session with every statement logged at debug5 issued, looked up and renewed" "t|t" \
	"$(grep -x t <<<"$got" | paste -sd'|')"
if [ -r "${PGV_PG_LOG:-}" ]; then
	if grep -qF "vault_db_creds('[redacted]')" "$PGV_PG_LOG" && grep -q "could not look up Vault lease" "$PGV_PG_LOG"; then
		pgv_ok "the PostgreSQL log has the statements (redacted) and the errors (the check below means something)"
	else
		pgv_not_ok "the PostgreSQL log lacks the logged statements: the check below proves nothing"
	fi
	leaks=0
	for s in "${PASSWORDS[@]}" "$DOWN_PASSWORD"; do
		grep -qF -- "$s" "$PGV_PG_LOG" "$WORK/errors" && leaks=$((leaks + 1))
	done
	expect "none of the ${#PASSWORDS[@]} issued passwords in the PostgreSQL log or any error" 0 "$leaks"
else
	pgv_skip "PostgreSQL log not readable here"
fi
if [ "${PGV_EXTERNAL_VAULT:-0}" != 1 ] && [ -r "${PGV_VAULT_LOG:-}" ]; then
	leaks=0
	for s in "${PASSWORDS[@]}"; do grep -qF -- "$s" "$PGV_VAULT_LOG" && leaks=$((leaks + 1)); done
	expect "nor in the Vault server's log" 0 "$leaks"
fi

pgv_done
