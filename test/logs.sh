#!/usr/bin/env bash
# test/logs.sh: plaintexts never reach the server log (vault.redact_logs).
# A cluster of its own logs as a DBA commonly configures it, and more:
# log_statement = 'all', log_min_duration_statement = 0, the default
# log_min_error_statement = error, bound parameters on errors, auto_explain
# of nested statements.  A distinct marker goes through every kind of
# pg_vault call (each SQL function, the column trigger succeeding and
# failing, COPY succeeding and failing, the column procedure, PREPARE and
# EXECUTE, a DO block, the extended protocol with bound parameters, on
# success and on error); then the whole log is searched for the markers and
# their base64.  A control marker sent with vault.redact_logs = off must be
# found, so the search is known to see what the log holds.
#
# Run by test/run, which starts the servers and exports their settings.
set -uo pipefail
source "$(dirname "$0")/lib/summary.sh"

pgv_need_test_env
DIR=$PGV_RUN/logs-cluster
PORT=
KEY=user-data
M=pgvmark$(openssl rand -hex 6)

cleanup() { pgv_pg_instance_stop "$DIR"; }
trap cleanup EXIT

if ! PORT=$(pgv_pg_instance_start "$DIR"); then
	pgv_not_ok "a cluster for this suite"
	pgv_done
	exit 1
fi

# sql STATEMENT...: on the suite's cluster, errors included in the output
sql() {
	local args=() s
	for s in "$@"; do args+=(-c "$s"); done
	PGOPTIONS='-c client_min_messages=warning' psql -XAtq -p "$PORT" -d postgres "${args[@]}" 2>&1
}

# postgresql.auto.conf is read last, after the harness's block
cat >>"$DIR/data/postgresql.auto.conf" <<'EOF'
shared_preload_libraries = 'pg_vault, auto_explain'
log_statement = 'all'
log_min_duration_statement = 0
log_min_error_statement = error
log_parameter_max_length_on_error = -1
log_error_verbosity = verbose
auto_explain.log_min_duration = 0
auto_explain.log_nested_statements = on
auto_explain.log_verbose = on
EOF
pgv_pg_instance_stop "$DIR"
if ! PORT=$(pgv_pg_instance_start "$DIR") ||
	[ "$(sql 'SHOW auto_explain.log_min_duration')" != 0 ]; then
	pgv_not_ok "the cluster restarted with auto_explain and log_statement = all"
	pgv_done
	exit 1
fi
pgv_ok "a cluster logging every statement, duration, error statement and plan"
LOG=$DIR/postgresql.log

sql 'CREATE EXTENSION pg_vault' \
	'CREATE TABLE people (id int, ssn text, ssn_hmac text)' \
	"CREATE TRIGGER enc BEFORE INSERT OR UPDATE ON people FOR EACH ROW
	   EXECUTE FUNCTION vault_encrypt_columns('$KEY', 'ssn:ssn_hmac')" \
	'CREATE TABLE broken (id int, ssn text)' \
	"CREATE TRIGGER enc BEFORE INSERT ON broken FOR EACH ROW
	   EXECUTE FUNCTION vault_encrypt_columns('no such key', 'ssn')" \
	'CREATE TABLE plain (id int, ssn text, ssn_hmac text)' >/dev/null

n=0
# mark: the next marker (sets MARK)
mark() { n=$((n + 1)); MARK="${M}x${n}y"; }

# each SQL function, one marker each
mark; sql "SELECT vault_encrypt('$MARK', '$KEY') IS NOT NULL" >/dev/null
mark; sql "SELECT vault_encrypt('$MARK'::bytea, '$KEY') IS NOT NULL" >/dev/null
mark; sql "SELECT vault_decrypt(vault_encrypt('$MARK', '$KEY'), '$KEY') IS NOT NULL" >/dev/null
mark; sql "SELECT vault_decrypt_bytea(vault_encrypt('$MARK', '$KEY'), '$KEY') IS NOT NULL" >/dev/null
mark; sql "SELECT vault_rewrap(vault_encrypt('$MARK', '$KEY'), '$KEY') IS NOT NULL" >/dev/null
mark; sql "SELECT vault_hmac('$MARK', '$KEY') IS NOT NULL" >/dev/null
mark; sql "SELECT vault_hmac('$MARK'::bytea, '$KEY') IS NOT NULL" >/dev/null
mark; sql "SELECT cardinality(vault_encrypt_batch(ARRAY['$MARK', '$MARK-b'], '$KEY'))" >/dev/null
mark; sql "SELECT cardinality(vault_decrypt_batch(vault_encrypt_batch(ARRAY['$MARK'], '$KEY'), '$KEY'))" >/dev/null
mark; sql "SELECT cardinality(vault_hmac_batch(ARRAY['$MARK'], '$KEY'))" >/dev/null
mark; sql "SELECT vault_kv_put('pgv-logs/$M', '{\"v\": \"$MARK\"}') IS NOT NULL" >/dev/null
sql "SELECT vault_kv('pgv-logs/$M', 'v')" >/dev/null
mark; sql "SELECT vault_encrypt('$MARK', 'no such key')" >/dev/null
mark; sql "SELECT vault_decrypt('vault:v1:$(printf '%s' "$MARK" | base64)', '$KEY')" >/dev/null
# a value that looks up a row by its plaintext, through the blind index
mark; sql "SELECT count(*) FROM people WHERE ssn_hmac = vault_hmac('$MARK', '$KEY')" >/dev/null
# the trigger, succeeding and failing; UPDATE too
mark; sql "INSERT INTO people VALUES (1, '$MARK')" >/dev/null
mark; sql "UPDATE people SET ssn = '$MARK' WHERE id = 1" >/dev/null
mark; sql "INSERT INTO broken VALUES (1, '$MARK')" >/dev/null
mark; sql "BEGIN; INSERT INTO people VALUES (2, '$MARK'); INSERT INTO people VALUES ('x', 'y'); COMMIT" >/dev/null
# COPY, succeeding and failing (the failing row is quoted in the CONTEXT)
mark
printf '3\t%s\n' "$MARK" | PGOPTIONS='-c client_min_messages=warning' \
	psql -XAtq -p "$PORT" -d postgres -c 'COPY people (id, ssn) FROM STDIN' >/dev/null 2>&1
mark
printf '4\t%s\nnot-a-number\t%s\n' "$MARK" "$MARK" | PGOPTIONS='-c client_min_messages=warning' \
	psql -XAtq -p "$PORT" -d postgres -c 'COPY people (id, ssn) FROM STDIN' >/dev/null 2>&1
mark
printf '5\t%s\n' "$MARK" | PGOPTIONS='-c client_min_messages=warning' \
	psql -XAtq -p "$PORT" -d postgres -c 'COPY broken (id, ssn) FROM STDIN' >/dev/null 2>&1
# the column procedure over plaintexts already in a table
mark; sql "INSERT INTO plain VALUES (1, '$MARK')" >/dev/null
sql "CALL vault_encrypt_column('plain', 'ssn', '$KEY', 10, 'ssn_hmac')" >/dev/null
# prepared statements and DO blocks
mark; sql "PREPARE ins (int, text) AS INSERT INTO people VALUES (\$1, \$2)" "EXECUTE ins(6, '$MARK')" >/dev/null
mark; sql "DO \$\$BEGIN INSERT INTO people VALUES (7, '$MARK'); END\$\$" >/dev/null
mark; sql "DO \$\$BEGIN PERFORM vault_encrypt('$MARK', 'no such key'); END\$\$" >/dev/null
# the extended protocol: bound parameters, on success and on error
cat >"$DIR/bench.sql" <<'EOF'
SELECT vault_encrypt(:m, 'user-data') IS NOT NULL;
INSERT INTO people VALUES (8, :m);
SELECT vault_encrypt(:m, :badkey);
EOF
mark
"$PGV_PGBIN/pgbench" -n -M extended -t 1 -p "$PORT" -D m="$MARK" \
	-D badkey="no such key" -f "$DIR/bench.sql" postgres >/dev/null 2>&1
LAST=$n

# the control: with redaction off (a superuser's choice) the marker is there
CONTROL=${M}control
sql "SET vault.redact_logs = off" "SELECT vault_encrypt('$CONTROL', '$KEY') IS NOT NULL" >/dev/null
# and a non-superuser cannot turn it off
got=$(sql "CREATE ROLE pgv_logs_user" "SET ROLE pgv_logs_user" "SET vault.redact_logs = off")
pgv_check "a non-superuser cannot set vault.redact_logs (42501)" \
	grep -q 'permission denied to set parameter "vault.redact_logs"' <<<"$got"

pgv_pg_instance_stop "$DIR"			# the log is complete once the server has stopped

pgv_check "the control marker (vault.redact_logs = off) is in the log" grep -q -- "$CONTROL" "$LOG"
pgv_check "statements were logged, with values redacted" grep -q "statement: SELECT vault_encrypt('\[redacted\]', '\[redacted\]')" "$LOG"
pgv_check "bound parameters were logged, redacted" grep -q "parameters: \$1 = '\[redacted\]'" "$LOG"
pgv_check "auto_explain wrote plans of nested statements" grep -q "Query Text:" "$LOG"
pgv_check "failing statements were logged (STATEMENT lines)" grep -q "STATEMENT:  INSERT INTO broken VALUES (\[redacted\], '\[redacted\]')" "$LOG"
pgv_check "COPY's failing row is redacted in its CONTEXT" grep -q 'COPY people, line 2, column id: "\[redacted\]"' "$LOG"

leaks=0
for ((i = 1; i <= LAST; i++)); do
	mk="${M}x${i}y"
	b64=$(printf '%s' "$mk" | base64)
	if grep -n -F -e "$mk" -e "$b64" -e "${b64%%=*}" "$LOG" | grep -v -F -e "$CONTROL" | head -n 3 | grep .; then
		leaks=$((leaks + 1))
		echo "# marker $i ($mk) reached the log (lines above)"
	fi
done
pgv_check "none of the $LAST markers (nor their base64) is in the log" [ "$leaks" = 0 ]
pgv_done
