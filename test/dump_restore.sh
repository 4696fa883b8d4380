#!/usr/bin/env bash
# test/dump_restore.sh: a database with encrypted columns survives pg_dump
# and a restore into a new database, where CREATE EXTENSION comes from the
# dump itself.
#
# The source database has table people (trigger vault_encrypt_columns over
# two keys, a blind index, domain CHECKs, rows written through the trigger's
# bulk path and one at a time, some with NULLs), table legacy (plaintexts
# migrated in place by vault_encrypt_column, then given its CHECK and the
# trigger), a decrypting view and a reader role.  It is restored three ways:
# pg_dump -Fc | pg_restore, pg_dump plain | psql, and pg_restore
# --schema-only followed by pg_restore --data-only, which loads the rows
# with the trigger in place and enabled (pg_restore does not disable
# triggers unless told to).  In each restored database: no error, the
# stored rows equal the source's byte for byte (no trigger encrypted a
# ciphertext again, no row lost), every value decrypts to its original,
# blind-index lookups find their rows, new rows are encrypted, the reader
# still reads through the view, and the extension's catalog
# (test/lib/ext_catalog.sql) equals the source's.  With the harness's own
# OpenBao, its audit log shows that no restore sent a Transit encrypt or
# HMAC request.
#
# Run by test/run, which starts the servers and exports their settings.
set -uo pipefail
source "$(dirname "$0")/lib/summary.sh"

pgv_need_test_env

DB=pg_vault_dump_src
TARGETS=(pg_vault_dump_custom pg_vault_dump_plain pg_vault_dump_dataonly)
KEY=dump_$(openssl rand -hex 6)
KEY2=dump2_$(openssl rand -hex 6)
WORK=$PGV_RUN/dump-restore-test
N=300
READER=pgv_dump_reader

mkdir -p "$WORK"

drop_all() {
	local d args=()
	for d in "$DB" "${TARGETS[@]}"; do args+=(-c "DROP DATABASE IF EXISTS $d"); done
	PGOPTIONS='-c client_min_messages=warning' psql -qX -d postgres "${args[@]}" \
		-c "DROP ROLE IF EXISTS $READER" >/dev/null 2>&1
}
trap drop_all EXIT
drop_all

HAVE_AUDIT=0
if [ "${PGV_EXTERNAL_VAULT:-0}" != 1 ] && [ -r "${PGV_AUDIT_FILE:-/nonexistent}" ]; then
	HAVE_AUDIT=1
fi
# Transit encrypt and HMAC requests for this suite's keys logged so far
writes() {
	grep -c "\"type\":\"request\".*\"path\":\"transit/\\(encrypt\\|hmac\\)/\\($KEY\\|$KEY2\\)\"" "$PGV_AUDIT_FILE"
}

vault_api POST "/v1/transit/keys/$KEY" '{}' >/dev/null
vault_api POST "/v1/transit/keys/$KEY2" '{}' >/dev/null

# the originals, as SQL over id: every 5th ssn NULL, every 3rd card NULL
SSN="CASE WHEN id % 5 = 0 THEN NULL ELSE 'ssn-' || id END"
CARD="CASE WHEN id % 3 = 0 THEN NULL ELSE 'card-' || id END"
OLD="CASE WHEN id % 4 = 0 THEN NULL ELSE 'old-' || id END"

# ---- the source database ----
psql -qX -d postgres -c "CREATE DATABASE $DB" >/dev/null
setup=$(q "CREATE EXTENSION pg_vault" \
	"CREATE TABLE people (id int PRIMARY KEY,
	   ssn text CHECK (ssn::vault_ciphertext IS NOT NULL OR ssn IS NULL),
	   ssn_hmac text,
	   card text CHECK (card::vault_ciphertext IS NOT NULL OR card IS NULL),
	   note text)" \
	"CREATE INDEX people_ssn_hmac ON people (ssn_hmac)" \
	"CREATE TRIGGER a_vault_encrypt BEFORE INSERT OR UPDATE ON people FOR EACH ROW
	   EXECUTE FUNCTION vault_encrypt_columns('$KEY', 'ssn:ssn_hmac', 'card@$KEY2')" \
	"INSERT INTO people (id, ssn, card, note) SELECT id, $SSN, $CARD, 'row ' || id FROM generate_series(1, $((N - 1))) id" \
	"INSERT INTO people (id, ssn, card, note) SELECT $N, 'ssn-$N', 'card-$N', 'one row'" \
	"CREATE TABLE legacy (id int PRIMARY KEY, old text, old_hmac text)" \
	"INSERT INTO legacy SELECT id, $OLD FROM generate_series(1, $N) id" \
	"CREATE INDEX legacy_old_hmac ON legacy (old_hmac)" \
	"CREATE VIEW people_clear WITH (security_barrier) AS
	   SELECT id, vault_decrypt(ssn, '$KEY') AS ssn, vault_decrypt(card, '$KEY2') AS card FROM people" \
	"CREATE ROLE $READER LOGIN" "GRANT vault_decryptor TO $READER" \
	"GRANT SELECT ON people_clear TO $READER" \
	"CREATE TABLE env (id int PRIMARY KEY, c text)" \
	"INSERT INTO env SELECT id, vault_envelope_encrypt('env-' || id, '$KEY') FROM generate_series(1, $N) id")
expect "source: tables, trigger over two keys, blind indexes, view, reader" "" "$setup"
# the migration of legacy: in place, then the CHECK and the trigger
migrated=$(psql -XAtq -v ON_ERROR_STOP=1 -d "$DB" \
	-c "CALL vault_encrypt_column('legacy', 'old', '$KEY', 100, 'old_hmac')" \
	-c "ALTER TABLE legacy ADD CHECK (old::vault_ciphertext IS NOT NULL OR old IS NULL)" \
	-c "CREATE TRIGGER a_vault_encrypt BEFORE INSERT OR UPDATE ON legacy FOR EACH ROW
	      EXECUTE FUNCTION vault_encrypt_columns('$KEY', 'old:old_hmac')" 2>&1 >/dev/null)
expect "source: legacy's plaintexts migrated by vault_encrypt_column" "0|$N" \
	"$(q "SELECT count(*) FILTER (WHERE old IS NOT NULL AND NOT vault_is_ciphertext(old)), count(*) FROM legacy")"
[ -n "$migrated" ] && [[ $migrated != *"NOTICE"* ]] && echo "$migrated"
expect "source: every value of people is a ciphertext, every blind index set" "0|0" \
	"$(q "SELECT count(*) FILTER (WHERE ssn IS NOT NULL AND NOT (vault_is_ciphertext(ssn) AND vault_is_ciphertext(ssn_hmac))),
	             count(*) FILTER (WHERE card IS NOT NULL AND NOT vault_is_ciphertext(card)) FROM people" | paste -sd'|')"

if [ "$HAVE_AUDIT" = 1 ]; then
	# the counter the restores are checked with sees the source's requests
	w=$(writes)
	pgv_check "source: the audit log shows its encrypt and HMAC requests ($w)" [ "$w" -gt 0 ]
fi

# what the restores must reproduce, byte for byte
STATE="SELECT (SELECT count(*) || ' ' || md5(string_agg(concat_ws(':', id, coalesce(ssn, '-'), coalesce(ssn_hmac, '-'),
                                                              coalesce(card, '-'), coalesce(note, '-')), ',' ORDER BY id))
               FROM people) || ' / ' ||
              (SELECT count(*) || ' ' || md5(string_agg(concat_ws(':', id, coalesce(old, '-'), coalesce(old_hmac, '-')), ',' ORDER BY id))
               FROM legacy)"
SOURCE_STATE=$(q "$STATE")
expect "source: $N rows in each table" "$N $N" "$(echo "$SOURCE_STATE" | awk '{ print $1, $4 }')"
describe() { psql -XAtq -v ON_ERROR_STOP=1 -d "$1" -f "$PGV_REPO/test/lib/ext_catalog.sql" 2>&1; }
describe "$DB" >"$WORK/source.catalog"

# ---- the dumps ----
if "$PGV_PGBIN/pg_dump" -Fc -f "$WORK/dump.custom" "$DB" 2>"$WORK/dump.err" &&
	"$PGV_PGBIN/pg_dump" -Fp -f "$WORK/dump.sql" "$DB" 2>>"$WORK/dump.err"; then
	pgv_ok "pg_dump, custom and plain format"
else
	pgv_not_ok "pg_dump: $(cat "$WORK/dump.err")"
fi
expect "the dump creates the extension itself" 1 \
	"$(grep -c '^CREATE EXTENSION IF NOT EXISTS pg_vault ' "$WORK/dump.sql")"

# restore TARGET COMMAND...: into a new database TARGET; errors to $WORK/TARGET.err
restore() {
	local target=$1 r0=0
	shift
	psql -qX -d postgres -c "CREATE DATABASE $target TEMPLATE template0" >/dev/null
	[ "$HAVE_AUDIT" = 1 ] && r0=$(writes)
	if "$@" >"$WORK/$target.out" 2>"$WORK/$target.err" && ! grep -qiE '(^|: )error' "$WORK/$target.err"; then
		pgv_ok "$target: restored without an error"
	else
		pgv_not_ok "$target: restore failed: $(head -n 5 "$WORK/$target.err")"
	fi
	if [ "$HAVE_AUDIT" = 1 ]; then
		expect "$target: the restore sent no Transit encrypt or HMAC request" 0 "$(($(writes) - r0))"
	fi
}

# check TARGET: the restored database keeps working
check() {
	local t=$1 d
	DB=$t
	expect "$t: extension pg_vault created by the restore" "$(q "SELECT default_version FROM pg_available_extensions WHERE name = 'pg_vault'")" \
		"$(q "SELECT extversion FROM pg_extension WHERE extname = 'pg_vault'")"
	expect "$t: the stored rows equal the source's, byte for byte (no ciphertext encrypted again, no row lost)" \
		"$SOURCE_STATE" "$(q "$STATE")"
	expect "$t: every value decrypts to its original, NULLs stay NULL" "$N|0|$N|0" \
		"$(q "SELECT count(*), count(*) FILTER (WHERE s IS DISTINCT FROM CASE WHEN id = $N THEN 'ssn-' || id ELSE $SSN END
	                                            OR c IS DISTINCT FROM CASE WHEN id = $N THEN 'card-' || id ELSE $CARD END)
	          FROM (SELECT unnest(array_agg(id ORDER BY id)) AS id,
	                       unnest(vault_decrypt_batch(array_agg(ssn ORDER BY id), '$KEY')) AS s,
	                       unnest(vault_decrypt_batch(array_agg(card ORDER BY id), '$KEY2')) AS c FROM people) p" \
			"SELECT count(*), count(*) FILTER (WHERE o IS DISTINCT FROM $OLD)
	          FROM (SELECT unnest(array_agg(id ORDER BY id)) AS id,
	                       unnest(vault_decrypt_batch(array_agg(old ORDER BY id), '$KEY')) AS o FROM legacy) l" |
			paste -sd'|')"
	expect "$t: NULL values have NULL blind indexes" "0|0" \
		"$(q "SELECT count(*) FROM people WHERE ssn IS NULL AND ssn_hmac IS NOT NULL" \
			"SELECT count(*) FROM legacy WHERE old IS NULL AND old_hmac IS NOT NULL" | paste -sd'|')"
	expect "$t: blind-index lookups find their rows" "7|$N|9" \
		"$(q "SET enable_seqscan = off" \
			"SELECT id FROM people WHERE ssn_hmac = vault_hmac('ssn-7', '$KEY')" \
			"SELECT id FROM people WHERE ssn_hmac = vault_hmac('ssn-$N', '$KEY')" \
			"SELECT id FROM legacy WHERE old_hmac = vault_hmac('old-9', '$KEY')" | paste -sd'|')"
	expect "$t: the triggers encrypt new rows" "t|t|t|card-5001|1" \
		"$(q "INSERT INTO people (id, ssn, card) VALUES (5001, 'ssn-5001', 'card-5001'), (5002, NULL, 'card-5002')" \
			"INSERT INTO legacy (id, old) VALUES (5001, 'old-5001')" \
			"SELECT vault_is_ciphertext(ssn) AND vault_decrypt(ssn, '$KEY') = 'ssn-5001' FROM people WHERE id = 5001" \
			"SELECT vault_is_ciphertext(card) AND ssn_hmac IS NULL FROM people WHERE id = 5002" \
			"SELECT vault_decrypt(old, '$KEY') = 'old-5001' FROM legacy WHERE old_hmac = vault_hmac('old-5001', '$KEY')" \
			"SELECT vault_decrypt(card, '$KEY2') FROM people WHERE id = 5001" \
			"SELECT count(*) FROM people WHERE ssn_hmac = vault_hmac('ssn-5001', '$KEY')" | paste -sd'|')"
	# COPY, as a restore loads rows, goes through the trigger too
	expect "$t: COPY FROM of a plaintext is encrypted by the trigger" "COPY 1|t" \
		"$(printf '5003\tssn-5003\n' | psql -XAtq -d "$t" -c "COPY people (id, ssn) FROM STDIN" -c "SELECT 'COPY ' || count(*) FROM people WHERE id = 5003" 2>&1 | paste -sd'|')|$(
			q "SELECT vault_decrypt(ssn, '$KEY') = 'ssn-5003' AND ssn_hmac = vault_hmac('ssn-5003', '$KEY') FROM people WHERE id = 5003")"
	expect "$t: the CHECKs refuse a plaintext with the trigger disabled" 23514 \
		"$(outcome "ALTER TABLE legacy DISABLE TRIGGER a_vault_encrypt" "INSERT INTO legacy (id, old) VALUES (6000, 'old-6000')")"
	# envelope values: their data keys are in vault_envelope_keys (a
	# configuration table of the extension), which the dump carries
	expect "$t: every envelope value decrypts (data keys restored), new encryptions work" "$N|0|t" \
		"$(q "SELECT count(*), count(*) FILTER (WHERE vault_envelope_decrypt(c) IS DISTINCT FROM 'env-' || id) FROM env" \
			"SELECT vault_envelope_key_id(vault_envelope_encrypt('x', '$KEY', 'new')) >= (SELECT max(vault_envelope_key_id(c)) FROM env)" |
			paste -sd'|')"
	expect "$t: the reader still reads through the view" "$N|0" \
		"$(q "SET ROLE $READER" \
			"SELECT count(*), count(*) FILTER (WHERE ssn IS DISTINCT FROM CASE WHEN id = $N THEN 'ssn-' || id ELSE $SSN END)
	          FROM people_clear WHERE id <= $N")"
	describe "$t" >"$WORK/$t.catalog"
	if diff -u --label "$DB_SOURCE" --label "$t" "$WORK/source.catalog" "$WORK/$t.catalog" >"$WORK/$t.diff"; then
		pgv_ok "$t: the extension's catalog equals the source's"
	else
		pgv_not_ok "$t: the extension's catalog differs from the source's:"
		cat "$WORK/$t.diff"
	fi
	DB=$DB_SOURCE
}
DB_SOURCE=$DB

restore pg_vault_dump_custom "$PGV_PGBIN/pg_restore" --exit-on-error -d pg_vault_dump_custom "$WORK/dump.custom"
check pg_vault_dump_custom

restore pg_vault_dump_plain psql -X -q -v ON_ERROR_STOP=1 -d pg_vault_dump_plain -f "$WORK/dump.sql"
check pg_vault_dump_plain

# the schema first, then the rows with every trigger in place and enabled
schema_then_data() {
	local target=$1 armed
	"$PGV_PGBIN/pg_restore" --exit-on-error --schema-only -d "$target" "$WORK/dump.custom" || return 1
	armed=$(psql -XAtq -d "$target" -c "SELECT count(*) FROM pg_trigger
	                                    WHERE tgname = 'a_vault_encrypt' AND tgenabled = 'O'")
	[ "$armed" = 2 ] || { echo "ERROR: $armed triggers enabled before the data, not 2" >&2; return 1; }
	"$PGV_PGBIN/pg_restore" --exit-on-error --data-only -d "$target" "$WORK/dump.custom"
}
restore pg_vault_dump_dataonly schema_then_data pg_vault_dump_dataonly
check pg_vault_dump_dataonly

pgv_done
