#!/usr/bin/env bash
# test/columns.sh: encrypted columns at scale, for what pg_regress cannot
# show: how many requests bulk writes make (the audit log of the
# harness's OpenBao), 100,000 rows migrated in place, rotated and rewrapped, the backend
# killed (SIGKILL) in the middle of a rewrap, concurrent UPDATEs during a
# rewrap, a Vault failure in the middle of a bulk INSERT, and the app's
# users table (app/schema.sql) with the app's own INSERT.
#
# Run by test/run, which starts the servers and exports their settings.
set -uo pipefail
source "$(dirname "$0")/lib/summary.sh"

DB=pg_vault_columns_test
WORK=$PGV_RUN/columns-test
ROWS=${PGV_COLUMNS_ROWS:-100000}
KEY=cols_$(openssl rand -hex 6)
RKEY=cols_r_$(openssl rand -hex 6)
CKEY=cols_c_$(openssl rand -hex 6)
BG=()

mkdir -p "$WORK"
chmod 0755 "$WORK"

cleanup() {
	local p
	for p in "${BG[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	vault_api DELETE /_dev/faults >/dev/null
	psql -qX -d postgres -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1
}
trap cleanup EXIT


# q SQL...: run statements in one session, print the results
q() {
	local args=() s
	for s in "$@"; do args+=(-c "$s"); done
	psql -XAtq -v ON_ERROR_STOP=1 -d "$DB" "${args[@]}" 2>&1
}



now() { date +%s.%N; }
rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%.0f", n / (b - a) }'; }

# Transit requests Vault has logged so far (an OpenBao the harness started).
HAVE_AUDIT=0
if [ "${PGV_EXTERNAL_VAULT:-0}" != 1 ] && [ -r "${PGV_AUDIT_FILE:-/nonexistent}" ]; then
	HAVE_AUDIT=1
fi
requests() { grep -c '"type":"request".*"path":"transit/\(encrypt\|decrypt\|rewrap\|hmac\)/' "$PGV_AUDIT_FILE"; }

# mismatches TABLE KEY: rows whose column c does not decrypt to the md5 kept
# apart in TABLE_sums (decrypted 10,000 at a time through the batch API)
mismatches() {
	q "SELECT count(*) FROM (
	     SELECT s.id, d.plain FROM $1_sums s LEFT JOIN (
	       SELECT unnest(array_agg(id ORDER BY id)) AS id,
	              unnest(vault_decrypt_batch(array_agg(c ORDER BY id), '$2')) AS plain
	       FROM $1 GROUP BY id / 10000) d USING (id)
	     WHERE d.plain IS NULL OR md5(d.plain) <> s.sum) m"
}

wait_pg() {
	local i
	for ((i = 0; i < 300; i++)); do
		psql -XAtq -d "$DB" -c 'SELECT 1' >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}

PGOPTIONS="-c client_min_messages=warning" psql -qX -d postgres \
	-c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" >/dev/null
psql -qX -d "$DB" -c 'CREATE EXTENSION pg_vault' >/dev/null
vault_api POST "/v1/transit/keys/$KEY" '{}' >/dev/null
vault_api POST "/v1/transit/keys/$RKEY" '{}' >/dev/null
vault_api POST "/v1/transit/keys/$CKEY" '{}' >/dev/null

# ---- the domain refuses plaintext, with a clear error ----
got=$(psql -XAtq -d "$DB" -v VERBOSITY=default -c "CREATE TABLE d (c vault_ciphertext)" \
	-c "INSERT INTO d VALUES ('123-45-6789')" 2>&1)
if [[ $got == *'ERROR:  value for domain vault_ciphertext violates check constraint "vault_ciphertext_check"'* ]] &&
	[ "$(outcome "INSERT INTO d VALUES ('123-45-6789')")" = 23514 ]; then
	pgv_ok "plaintext into a vault_ciphertext column: 23514, naming the domain"
else
	pgv_not_ok "plaintext into a vault_ciphertext column ($got)"
fi

# ---- bulk INSERT ... SELECT and COPY through the trigger ----
q "CREATE TABLE enc (id bigint PRIMARY KEY, c text CHECK (c::vault_ciphertext IS NOT NULL OR c IS NULL),
                     c_hmac text, note text, n int NOT NULL DEFAULT 0)" \
	"CREATE INDEX enc_c_hmac ON enc (c_hmac)" \
	"CREATE TRIGGER a_vault_encrypt BEFORE INSERT OR UPDATE ON enc FOR EACH ROW
	   EXECUTE FUNCTION vault_encrypt_columns('$KEY', 'c:c_hmac')" \
	"CREATE TABLE enc_sums AS SELECT g AS id, md5('ssn-' || g) AS sum FROM generate_series(1, $ROWS) g" >/dev/null
[ "$HAVE_AUDIT" = 1 ] && r0=$(requests)
t0=$(now)
got=$(q "INSERT INTO enc (id, c, note) SELECT g, 'ssn-' || g, 'row ' || g FROM generate_series(1, $ROWS) g")
t1=$(now)
INSERT_RATE=$(rate "$ROWS" "$t0" "$t1")
expect "INSERT ... SELECT of $ROWS rows through the trigger ($INSERT_RATE rows/s)" "" "$got"
expect "every row stored as a ciphertext with a blind index" "$ROWS|$ROWS|$ROWS" \
	"$(q "SELECT count(*), count(*) FILTER (WHERE vault_is_ciphertext(c)), count(*) FILTER (WHERE vault_is_ciphertext(c_hmac)) FROM enc")"
if [ "$HAVE_AUDIT" = 1 ]; then
	r1=$(requests)
	# one encrypt and one HMAC request per 498 rows: vault.batch_size (1000)
	# within vault.batch_max_strings (1000 JSON strings, OpenBao's limit)
	want=$(((ROWS + 497) / 498 * 2))
	expect "... in $want requests, not $((ROWS * 2))" "$want" "$((r1 - r0))"
fi
expect "every row decrypts to its plaintext" 0 "$(mismatches enc "$KEY")"

seq 1 "$ROWS" | awk '{ printf "%d\tcopied-%d\n", $1 + 10000000, $1 }' >"$WORK/copy.tsv"
chmod 0644 "$WORK/copy.tsv"
[ "$HAVE_AUDIT" = 1 ] && r0=$(requests)
t0=$(now)
got=$(psql -XAt -d "$DB" -c "\\copy enc (id, c) FROM '$WORK/copy.tsv'" 2>&1)
t1=$(now)
expect "COPY of $ROWS rows through the trigger ($(rate "$ROWS" "$t0" "$t1") rows/s): command tag counts them" "COPY $ROWS" "$got"
if [ "$HAVE_AUDIT" = 1 ]; then
	r1=$(requests)
	expect "... in $(((ROWS + 497) / 498 * 2)) requests" "$(((ROWS + 497) / 498 * 2))" "$((r1 - r0))"
fi
expect "the copied rows decrypt to what was copied" "0|$ROWS" \
	"$(q "SELECT count(*) FILTER (WHERE d <> 'copied-' || (id - 10000000)), count(*) FROM (
	        SELECT unnest(array_agg(id ORDER BY id)) AS id, unnest(vault_decrypt_batch(array_agg(c ORDER BY id), '$KEY')) AS d
	        FROM enc WHERE id > 10000000 GROUP BY id / 10000) s")"
q "DELETE FROM enc WHERE id > 10000000" >/dev/null

# ---- a bulk INSERT's flush is one parallel round ----
# 10 rows a request: 40 held rows are one round of 4 encrypt requests.  The
# proxy holds each until 4 are in it at once (gather), so max_inflight says
# what the trigger did, however busy the machine.
PAR_INS="INSERT INTO enc (id, c) SELECT g, 'par-' || g FROM generate_series(30000001, 30000040) g"
vault_api POST /_dev/faults '{"gather":4,"path_prefix":"transit/encrypt/"}' >/dev/null
got=$(q "SET vault.batch_size = 10" "SET vault.batch_parallel = 4" "$PAR_INS")
expect "a 40-row INSERT through the trigger, 10 rows a request" "" "$got"
expect "... its 4 encrypt requests were in flight at once (vault.batch_parallel)" 4 \
	"$(vault_api GET /_dev/faults | json_get max_inflight)"
vault_api DELETE /_dev/faults >/dev/null
vault_api POST /_dev/faults '{"path_prefix":"transit/encrypt/"}' >/dev/null
got=$(q "SET vault.batch_size = 10" "SET vault.batch_parallel = 1" \
	"INSERT INTO enc (id, c) SELECT g, 'par-' || g FROM generate_series(31000001, 31000040) g")
expect "... with vault.batch_parallel = 1, one at a time" "1" "$(vault_api GET /_dev/faults | json_get max_inflight)"
vault_api DELETE /_dev/faults >/dev/null
expect "the 80 rows decrypt, with their blind indexes" "80|80" \
	"$(q "SELECT count(*) FILTER (WHERE vault_decrypt(c, '$KEY') = 'par-' || id),
	             count(*) FILTER (WHERE c_hmac = vault_hmac('par-' || id, '$KEY'))
	      FROM enc WHERE id > 30000000")"
q "DELETE FROM enc WHERE id > 30000000" >/dev/null

# ---- plaintexts stored out of line (TOAST) before the trigger existed ----
# An UPDATE of another column hands the trigger the stored values as TOAST
# pointers: they are encrypted (Transit with a blind index, and envelope)
# like any other plaintext.
long="(SELECT string_agg(md5(g::text || '-' || i::text), '') FROM generate_series(1, 300) i)"
q "CREATE TABLE toasty (id int PRIMARY KEY, c text, c_hmac text, e text, n int DEFAULT 0)" \
	"INSERT INTO toasty (id, c, e) SELECT g, $long, 'e' || $long FROM generate_series(1, 3) g" >/dev/null
toast=$(q "SELECT reltoastrelid::regclass FROM pg_class WHERE oid = 'toasty'::regclass")
expect "... stored out of line: 6 values in the TOAST table" 6 \
	"$(q "SELECT count(DISTINCT chunk_id) FROM $toast")"
want=$(q "SELECT md5(string_agg(c || e || md5(c), ',' ORDER BY id)) FROM toasty")
q "CREATE TRIGGER a_vault_encrypt BEFORE INSERT OR UPDATE ON toasty FOR EACH ROW
	EXECUTE FUNCTION vault_encrypt_columns('$KEY', 'c:c_hmac', 'e!envelope')" >/dev/null
got=$(q "UPDATE toasty SET n = n + 1")
expect "an UPDATE of another column encrypts the out-of-line plaintexts" "3|3|$want" \
	"$(q "SELECT count(*) FILTER (WHERE vault_is_ciphertext(c)), count(*) FILTER (WHERE e LIKE 'pgv1:%'),
	             md5(string_agg(vault_decrypt(c, '$KEY') || vault_envelope_decrypt(e) || md5(vault_decrypt(c, '$KEY')), ',' ORDER BY id))
	      FROM toasty WHERE c_hmac = vault_hmac(vault_decrypt(c, '$KEY'), '$KEY')")"
q "DROP TABLE toasty" >/dev/null

# ---- updates of other columns: ciphertexts untouched, no request ----
before=$(q "SELECT md5(string_agg(c || c_hmac, ',' ORDER BY id)) FROM enc")
[ "$HAVE_AUDIT" = 1 ] && r0=$(requests)
q "UPDATE enc SET n = n + 1, note = note || '!'" >/dev/null
expect "UPDATE of other columns keeps every ciphertext and blind index" "$before" \
	"$(q "SELECT md5(string_agg(c || c_hmac, ',' ORDER BY id)) FROM enc")"
if [ "$HAVE_AUDIT" = 1 ]; then
	expect "... and makes no Vault request" 0 "$(($(requests) - r0))"
else
	pgv_skip "request count: needs the audit log of an OpenBao the harness started"
fi
expect "an UPDATE writing a plaintext encrypts it" "new-ssn|t" \
	"$(q "UPDATE enc SET c = 'new-ssn' WHERE id = 1" \
		"SELECT vault_decrypt(c, '$KEY'), c_hmac = vault_hmac('new-ssn', '$KEY') FROM enc WHERE id = 1")"
q "UPDATE enc SET c = vault_encrypt('ssn-1', '$KEY'), c_hmac = vault_hmac('ssn-1', '$KEY') WHERE id = 1" >/dev/null

# ---- blind-index lookup on the big table uses the index ----
q "ANALYZE enc" >/dev/null
plan=$(q "EXPLAIN (COSTS OFF) SELECT id FROM enc WHERE c_hmac = (SELECT vault_hmac('ssn-4242', '$KEY'))")
if [[ $plan == *"Index Scan"* ]] && [ "$(q "SELECT id FROM enc WHERE c_hmac = (SELECT vault_hmac('ssn-4242', '$KEY'))")" = 4242 ]; then
	pgv_ok "blind-index lookup among $ROWS rows: an index scan finds the row"
else
	pgv_not_ok "blind-index lookup ($(echo "$plan" | paste -sd' '))"
fi

# ---- a Vault failure in the middle of a bulk INSERT: nothing of it stays ----
if [ "$HAVE_AUDIT" = 1 ]; then
	vault_api DELETE /_dev/faults >/dev/null
	vault_api POST /_dev/faults '{"latency_ms":300,"path_prefix":"transit/"}' >/dev/null
	r0=$(requests)
	psql -XAtq -v VERBOSITY=sqlstate -d "$DB" -c "SET vault.max_retries = 0" \
		-c "INSERT INTO enc (id, c) SELECT g, 'mid-' || g FROM generate_series(20000001, 20005000) g" \
		>"$WORK/mid.out" 2>&1 &
	mid=$!
	BG+=("$mid")
	for ((i = 0; i < 200; i++)); do
		[ "$(($(requests) - r0))" -ge 2 ] && break
		sleep 0.05
	done
	vault_api POST /_dev/faults '{"fail_next":100,"fail_status":500}' >/dev/null
	wait "$mid"
	BG=()
	vault_api DELETE /_dev/faults >/dev/null
	if grep -q 'ERROR: *58000' "$WORK/mid.out" && [ "$(q "SELECT count(*) FROM enc WHERE id > 20000000")" = 0 ]; then
		pgv_ok "Vault failing after the first batch of a 5000-row INSERT: statement error, no row of it kept"
	else
		pgv_not_ok "failure mid-INSERT ($(cat "$WORK/mid.out"); rows kept: $(q "SELECT count(*) FROM enc WHERE id > 20000000"))"
	fi
else
	pgv_skip "a Vault failure in the middle of a bulk INSERT: needs the audit log of an OpenBao the harness started"
fi

# ---- $ROWS plaintexts migrated in place, rotated, rewrapped; SIGKILL mid-rewrap ----
q "CREATE TABLE big (id bigint PRIMARY KEY, c text, note text)" \
	"INSERT INTO big SELECT g, 'ssn-' || g, 'row ' || g FROM generate_series(1, $ROWS) g" \
	"CREATE TABLE big_sums AS SELECT id, md5(c) AS sum FROM big" >/dev/null
t0=$(now)
got=$(psql -XAtq -d "$DB" -c "SET vault.progress_interval = '1ms'" \
	-c "CALL vault_encrypt_column('big', 'c', '$RKEY', 1000)" 2>&1)
t1=$(now)
MIGRATE_RATE=$(rate "$ROWS" "$t0" "$t1")
echo "$got" | grep -v ' so far, ' | sed 's/^/# /'
# a batch of 1000 through Vault takes more than 1 ms: a NOTICE after each
pgv_check "vault.progress_interval = 1ms: a progress NOTICE after every batch but the last" \
	[ "$(echo "$got" | grep -c ' rows encrypted so far, about ')" -ge $(((ROWS - 1) / 1000)) ]
expect "vault_encrypt_column migrated $ROWS rows in place ($MIGRATE_RATE rows/s)" "1|$ROWS" \
	"$(q "SELECT * FROM vault_column_versions('big', 'c')")"
expect "a second CALL has nothing to do" "0 rows encrypted, 0 left" \
	"$(psql -XAtq -d "$DB" -c "CALL vault_encrypt_column('big', 'c', '$RKEY', 1000)" 2>&1 | grep -o '[0-9]* rows encrypted, [0-9]* left')"

V2=$(q "SELECT vault_key_rotate('$RKEY')")
expect "after the rotation, every row is below version $V2" "$ROWS" \
	"$(q "SELECT vault_rows_below_version('big', 'c', $V2)")"

# slow each rewrap request down (the fault proxy) so that the kill lands in
# the middle
KILL_OK=0
KILL_BATCH=1000
vault_api POST /_dev/faults '{"latency_ms":40,"path_prefix":"transit/rewrap/"}' >/dev/null
psql -XAtq -d "$DB" -c "SET application_name = 'pgv_columns_rewrap'" \
	-c "CALL vault_rewrap_column('big', 'c', '$RKEY', $KILL_BATCH)" >"$WORK/rewrap1.out" 2>&1 &
rw=$!
BG+=("$rw")
for ((i = 0; i < 600; i++)); do
	done_rows=$(psql -XAtq -d "$DB" -c "SELECT count(*) FROM big WHERE vault_ciphertext_version(c) >= $V2" 2>/dev/null)
	[ "${done_rows:-0}" -ge $((ROWS / 5)) ] && break
	sleep 0.05
done
bpid=$(psql -XAtq -d "$DB" -c "SELECT pid FROM pg_stat_activity WHERE application_name = 'pgv_columns_rewrap'")
if [ -n "$bpid" ] && kill -KILL "$bpid"; then
	wait "$rw"
	BG=()
	if wait_pg; then
		KILL_OK=1
		pgv_ok "backend $bpid killed with SIGKILL mid-rewrap ($done_rows of $ROWS rows done); PostgreSQL is back"
	else
		pgv_not_ok "PostgreSQL did not come back after the SIGKILL"
	fi
else
	wait "$rw"
	BG=()
	pgv_not_ok "could not find the rewrapping backend to kill"
fi
vault_api DELETE /_dev/faults >/dev/null
if [ "$KILL_OK" = 1 ]; then
	split=$(q "SELECT count(*) FILTER (WHERE vault_ciphertext_version(c) < $V2), count(*) FILTER (WHERE vault_ciphertext_version(c) >= $V2), count(*) FROM big")
	IFS='|' read -r old new all <<<"$split"
	if [ "$old" -gt 0 ] && [ "$new" -gt 0 ] && [ "$all" = "$ROWS" ]; then
		pgv_ok "after the crash: $new rows rewrapped, $old still old, none lost"
	else
		pgv_not_ok "after the crash: old/new/all = $split"
	fi
	expect "after the crash every row, old or new, still decrypts to its original" 0 "$(mismatches big "$RKEY")"
fi
t0=$(now)
got=$(psql -XAtq -d "$DB" -c "CALL vault_rewrap_column('big', 'c', '$RKEY', 1000)" 2>&1)
t1=$(now)
echo "$got" | sed 's/^/# /'
expect "the rerun finishes the rewrap ($(rate "${old:-$ROWS}" "$t0" "$t1") rows/s)" 0 \
	"$(q "SELECT vault_rows_below_version('big', 'c', $V2)")"
expect "min_decryption_version raised to $V2" "$V2" \
	"$(q "SELECT vault_key_config('$RKEY', min_decryption_version => $V2)->>'min_decryption_version'")"
expect "every one of the $ROWS rows decrypts to its original (checksums kept apart)" 0 "$(mismatches big "$RKEY")"
expect "no row was lost" "$ROWS" "$(q "SELECT count(*) FROM big")"

# ---- concurrent UPDATEs during a rewrap are all kept ----
CROWS=20000
q "CREATE TABLE conc (id int PRIMARY KEY, c text, n int NOT NULL DEFAULT 0)" \
	"CREATE TRIGGER a_vault_encrypt BEFORE INSERT OR UPDATE ON conc FOR EACH ROW
	   EXECUTE FUNCTION vault_encrypt_columns('$CKEY', 'c')" \
	"INSERT INTO conc (id, c) SELECT g, 'orig-' || g FROM generate_series(1, $CROWS) g" >/dev/null
CV2=$(q "SELECT vault_key_rotate('$CKEY')")
# three writers on disjoint rows, one autocommitted statement each: new
# plaintexts (encrypted by the trigger) and counter increments
/usr/bin/python3 - "$WORK" "$CROWS" <<'PY'
import random, sys
work, rows = sys.argv[1], int(sys.argv[2])
final, counts = {}, {}
for w in range(3):
    rnd = random.Random(w)
    with open(f"{work}/writer{w}.sql", "w") as f:
        for k in range(400):
            i = rnd.randrange(rows // 3) * 3 + w + 1
            if i > rows:
                continue
            if k % 2 == 0:
                v = f"upd-{i}-{w}-{k}"
                f.write(f"UPDATE conc SET c = '{v}' WHERE id = {i};\n")
                final[i] = v
            else:
                f.write(f"UPDATE conc SET n = n + 1 WHERE id = {i};\n")
                counts[i] = counts.get(i, 0) + 1
with open(f"{work}/expected.tsv", "w") as f:
    for i in range(1, rows + 1):
        f.write(f"{i}\t{final.get(i, f'orig-{i}')}\t{counts.get(i, 0)}\n")
PY
chmod 0644 "$WORK/expected.tsv"
CBATCH=200
vault_api POST /_dev/faults '{"latency_ms":40,"path_prefix":"transit/rewrap/"}' >/dev/null
psql -XAtq -v VERBOSITY=default -d "$DB" -c "CALL vault_rewrap_column('conc', 'c', '$CKEY', $CBATCH)" \
	>"$WORK/rewrap2.out" 2>&1 &
rw=$!
BG+=("$rw")
sleep 0.3
wpids=()
for w in 0 1 2; do
	psql -XAtq -v ON_ERROR_STOP=1 -d "$DB" -f "$WORK/writer$w.sql" >"$WORK/writer$w.out" 2>&1 &
	wpids+=($!)
done
wfail=0
for p in "${wpids[@]}"; do wait "$p" || wfail=1; done
still_running=0
kill -0 "$rw" 2>/dev/null && still_running=1
wait "$rw"
BG=()
vault_api DELETE /_dev/faults >/dev/null
sed 's/^/# /' "$WORK/rewrap2.out"
expect "1200 concurrent UPDATEs, all committed, while the rewrap ran" "0 1" "$wfail $still_running"
psql -XAtq -d "$DB" -c "CALL vault_rewrap_column('conc', 'c', '$CKEY', $CBATCH)" >/dev/null 2>&1
expect "no row below version $CV2 left after a second CALL" 0 "$(q "SELECT vault_rows_below_version('conc', 'c', $CV2)")"
expect "every concurrent UPDATE kept: each row holds its last value and its increments" "0|$CROWS" \
	"$(psql -XAtq -d "$DB" -c "CREATE TEMP TABLE want (id int, c text, n int)" \
		-c "\\copy want FROM '$WORK/expected.tsv'" \
		-c "SELECT count(*) FILTER (WHERE d.plain IS DISTINCT FROM w.c OR d.n <> w.n), count(*)
		    FROM want w LEFT JOIN (
		      SELECT unnest(array_agg(id ORDER BY id)) AS id, unnest(array_agg(n ORDER BY id)) AS n,
		             unnest(vault_decrypt_batch(array_agg(c ORDER BY id), '$CKEY')) AS plain
		      FROM conc) d USING (id)" 2>&1)"

# ---- the app's users table: app/schema.sql and the app's own INSERT ----
if PGOPTIONS='-c client_min_messages=warning' psql -XqAt -v ON_ERROR_STOP=1 -d "$DB" -f app/schema.sql >/dev/null 2>&1 &&
	PGOPTIONS='-c client_min_messages=warning' psql -XqAt -v ON_ERROR_STOP=1 -d "$DB" -f app/schema.sql >/dev/null 2>&1; then
	pgv_ok "app/schema.sql applies, twice"
else
	pgv_not_ok "app/schema.sql applies ($(psql -XqAt -v ON_ERROR_STOP=1 -d "$DB" -f app/schema.sql 2>&1 | tail -n 2))"
fi
# the statement app/db.c prepares for POST /api/users
APP_INSERT="INSERT INTO users (email, name, ssn, ssn_hmac, payment_token) VALUES (\$1::text, \$2::text, vault_encrypt(\$3::text, 'user-data'), vault_hmac(\$3::text, 'user-data'), vault_encrypt(\$4::text, 'payment-data')) RETURNING id, ssn"
grep -qF "vault_hmac(\$3::text, 'user-data'), vault_encrypt(\$4::text, 'payment-data'))" app/db.c ||
	echo "# note: app/db.c's user INSERT is no longer the one tested here"
app_insert() {	# app_insert EMAIL NAME SSN TOKEN: the app's statement; prints id|ssn
	psql -XAtq -v ON_ERROR_STOP=1 -d "$DB" -v e="$1" -v n="$2" -v s="$3" -v t="$4" <<-EOF 2>&1
		PREPARE ins(text, text, text, text) AS $APP_INSERT;
		EXECUTE ins(:'e', :'n', :'s', :'t');
	EOF
}
[ "$HAVE_AUDIT" = 1 ] && r0=$(requests)
got=$(app_insert ada@example.com Ada 123-45-6789 tok_ada)
[ "$HAVE_AUDIT" = 1 ] && r1=$(requests)
ct=${got#*|}
expect "the app's INSERT: its ciphertext kept by the trigger, decrypts, blind index matches" "t|123-45-6789|tok_ada|t" \
	"$(q "SELECT ssn = '$ct', vault_decrypt(ssn, 'user-data'), vault_decrypt(payment_token, 'payment-data'),
	        ssn_hmac = vault_hmac('123-45-6789', 'user-data') FROM users WHERE id = ${got%%|*}")"
if [ "$HAVE_AUDIT" = 1 ]; then
	expect "... three requests (its own encrypt, HMAC, encrypt), none from the trigger" 3 "$((r1 - r0))"
fi
expect "plaintext written straight into users: encrypted by the trigger" "t|t|555-12-3456|t" \
	"$(q "INSERT INTO users (email, name, ssn, payment_token) VALUES ('cy@example.com', 'Cy', '555-12-3456', 'tok_cy')" \
		"SELECT vault_is_ciphertext(ssn), vault_is_ciphertext(payment_token), vault_decrypt(ssn, 'user-data'),
		        id = (SELECT id FROM users WHERE ssn_hmac = (SELECT vault_hmac('555-12-3456', 'user-data')))
		 FROM users WHERE email = 'cy@example.com'")"
expect "users refuses a plaintext when the trigger does not fire" 23514 \
	"$(outcome "SET session_replication_role = replica" "INSERT INTO users (email, name, ssn) VALUES ('x@example.com', 'X', '123-45-6789')")"

echo "# rows/s: INSERT through the trigger $INSERT_RATE, migration $MIGRATE_RATE"
pgv_done
