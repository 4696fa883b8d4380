#!/usr/bin/env bash
# test/upgrade.sh: ALTER EXTENSION pg_vault UPDATE from the released 0.1.0.
#
# 0.1.0's install script is taken from git history (commit f69c331, the
# release) and placed in the server's extension directory for the length
# of the suite; the tree keeps no copy.  In database pg_vault_upgrade_old the
# suite creates 0.1.0, an encrypted column (trigger vault_encrypt_columns
# with a blind index, a domain CHECK), rows, a decrypting view and two login
# roles with pg_vault's roles granted, then updates to the default version
# and reads everything back: the stored ciphertexts did not change, every
# row decrypts to its original (directly and through the view), blind-index
# lookups find their rows, the trigger still encrypts new rows, and every
# grant is as before.  Last, it compares the extension's catalog
# (test/lib/ext_catalog.sql) between the updated database and one where the
# default version was created fresh: any difference fails with a diff,
# which is what keeps the upgrade scripts honest.  A control database with
# a changed comment, a revoked grant and an added member shows that the
# comparison sees such differences.
#
# Run by test/run, which starts the servers and exports their settings.
set -uo pipefail
source "$(dirname "$0")/lib/summary.sh"

pgv_need_test_env

RELEASE_COMMIT=f69c331
OLD_VERSION=0.1.0
NEW_VERSION=$(sed -n "s/^default_version[[:space:]]*=[[:space:]]*'\([^']*\)'.*/\1/p" "$PGV_REPO/pg_vault.control")
DB=pg_vault_upgrade_old
NEWDB=pg_vault_upgrade_new
CTLDB=pg_vault_upgrade_control
KEY=upg_$(openssl rand -hex 6)
WORK=$PGV_RUN/upgrade-test
EXTDIR=$("$PG_CONFIG" --sharedir)/extension
OLD_SCRIPT=$EXTDIR/pg_vault--$OLD_VERSION.sql
# Runs of this suite may share the extension directory: a lock per directory
# (held shared while a run uses the file) lets the last one out remove the
# file that a run placed; one that was there before is left alone.
LOCK=/tmp/pg_vault-upgrade-$OLD_VERSION-$(printf '%s' "$EXTDIR" | md5sum | cut -c1-12).lock
PLACED_MARK=$LOCK.placed
N=200

mkdir -p "$WORK"

drop_all() {
	PGOPTIONS='-c client_min_messages=warning' psql -qX -d postgres \
		-c "DROP DATABASE IF EXISTS $DB" -c "DROP DATABASE IF EXISTS $NEWDB" \
		-c "DROP DATABASE IF EXISTS $CTLDB" \
		-c "DROP ROLE IF EXISTS pgv_upg_reader" -c "DROP ROLE IF EXISTS pgv_upg_writer" >/dev/null 2>&1
}

cleanup() {
	drop_all
	# the last run out (no other holds the lock) removes a placed file
	if flock -n -x 9 2>/dev/null && [ -e "$PLACED_MARK" ]; then
		rm -f "$OLD_SCRIPT" "$PLACED_MARK"
	fi
	exec 9>&- 2>/dev/null
}

fail_now() {
	pgv_not_ok "$1"
	pgv_done
	exit 1
}

# ---- 0.1.0's install script, from git history ----
if ! git -C "$PGV_REPO" rev-parse --git-dir >/dev/null 2>&1; then
	fail_now "0.1.0's install script comes from git history (commit $RELEASE_COMMIT), and $PGV_REPO is not a git checkout"
fi
if ! git -C "$PGV_REPO" show "$RELEASE_COMMIT:sql/pg_vault--$OLD_VERSION.sql" >"$WORK/old.sql" 2>"$WORK/git.err"; then
	shallow=$(git -C "$PGV_REPO" rev-parse --is-shallow-repository 2>/dev/null)
	fail_now "0.1.0's install script is not in git history (commit $RELEASE_COMMIT$([ "$shallow" = true ] && echo ': a shallow clone, run git fetch --unshallow'); $(head -n 1 "$WORK/git.err"))"
fi
pgv_ok "0.1.0's install script read from commit $RELEASE_COMMIT ($(wc -l <"$WORK/old.sql") lines)"

trap cleanup EXIT
drop_all
if ! exec 9>>"$LOCK" || ! flock -x 9; then
	fail_now "lock $LOCK"
fi
if ! cmp -s "$WORK/old.sql" "$OLD_SCRIPT"; then
	if cp "$WORK/old.sql" "$OLD_SCRIPT.tmp.$$" 2>"$WORK/cp.err" && chmod 0644 "$OLD_SCRIPT.tmp.$$" &&
		mv -f "$OLD_SCRIPT.tmp.$$" "$OLD_SCRIPT"; then
		touch "$PLACED_MARK"
	else
		rm -f "$OLD_SCRIPT.tmp.$$"
		fail_now "place $OLD_SCRIPT for the suite: $(head -n 1 "$WORK/cp.err") (needs write access to $EXTDIR, as make install does)"
	fi
fi
flock -s 9
pgv_ok "pg_vault--$OLD_VERSION.sql in $EXTDIR for the length of the suite"

# ---- the C functions 0.1.0 names are still in the shared library ----
LIB=$("$PG_CONFIG" --pkglibdir)/pg_vault.so
grep -oE "'MODULE_PATHNAME',[[:space:]]*(\\\$\\\$|')[A-Za-z0-9_]+" "$WORK/old.sql" |
	sed -E "s/.*(\\\$\\\$|')//" | sort -u >"$WORK/old.symbols"
nm -D --defined-only "$LIB" | awk '{ print $NF }' | sort -u >"$WORK/lib.symbols"
missing=$(comm -23 "$WORK/old.symbols" "$WORK/lib.symbols" | paste -sd' ')
if [ "$(wc -l <"$WORK/old.symbols")" -gt 0 ] && [ -z "$missing" ]; then
	pgv_ok "all $(wc -l <"$WORK/old.symbols") C functions of 0.1.0's script are in $LIB"
else
	pgv_not_ok "C functions of 0.1.0's script missing from $LIB (keep them in the .so): ${missing:-none found in the script}"
fi

# ---- 0.1.0 with an encrypted column, rows, a view, roles ----
vault_api POST "/v1/transit/keys/$KEY" '{}' >/dev/null
psql -qX -d postgres -c "CREATE DATABASE $DB" -c "CREATE DATABASE $NEWDB" -c "CREATE DATABASE $CTLDB" >/dev/null
expect "CREATE EXTENSION pg_vault VERSION '$OLD_VERSION'" "$OLD_VERSION" \
	"$(q "CREATE EXTENSION pg_vault VERSION '$OLD_VERSION'" "SELECT extversion FROM pg_extension WHERE extname = 'pg_vault'")"

# the value row id held when written: every 7th NULL
ORIG="CASE WHEN id % 7 = 0 THEN NULL ELSE 'ssn-' || id END"
setup=$(q "CREATE TABLE people (id int PRIMARY KEY,
	           ssn text CHECK (ssn::vault_ciphertext IS NOT NULL OR ssn IS NULL),
	           ssn_hmac text, note text)" \
	"CREATE INDEX people_ssn_hmac ON people (ssn_hmac)" \
	"CREATE TRIGGER a_vault_encrypt BEFORE INSERT OR UPDATE ON people FOR EACH ROW
	   EXECUTE FUNCTION vault_encrypt_columns('$KEY', 'ssn:ssn_hmac')" \
	"INSERT INTO people (id, ssn, note) SELECT id, $ORIG, 'row ' || id FROM generate_series(1, $N) id" \
	"INSERT INTO people (id, ssn) VALUES ($((N + 1)), 'ssn-$((N + 1))')" \
	"CREATE VIEW people_clear WITH (security_barrier) AS
	   SELECT id, vault_decrypt(ssn, '$KEY') AS ssn FROM people" \
	"CREATE ROLE pgv_upg_reader LOGIN" "GRANT vault_decryptor TO pgv_upg_reader" \
	"GRANT SELECT ON people_clear TO pgv_upg_reader" \
	"CREATE ROLE pgv_upg_writer LOGIN" "GRANT vault_encryptor, vault_hasher TO pgv_upg_writer" \
	"GRANT SELECT, INSERT ON people TO pgv_upg_writer")
expect "0.1.0: a table with an encrypted column, trigger, blind index, view and roles" "" "$setup"
ROWS=$((N + 1))
NONNULL=$(q "SELECT count(*) FROM generate_series(1, $ROWS) id WHERE $ORIG IS NOT NULL OR id = $ROWS")
expect "0.1.0: the trigger stored ciphertexts and blind indexes" "$ROWS|$NONNULL|$NONNULL" \
	"$(q "SELECT count(*), count(*) FILTER (WHERE vault_is_ciphertext(ssn)),
	             count(*) FILTER (WHERE vault_is_ciphertext(ssn_hmac)) FROM people")"

# what must not change: the stored rows, byte for byte, and every grant
STATE="SELECT md5(string_agg(id || ':' || coalesce(ssn, '-') || ':' || coalesce(ssn_hmac, '-'), ',' ORDER BY id)) FROM people"
before=$(q "$STATE")
q "CREATE TABLE grants_before AS
     SELECT r.rolname, p.oid::regprocedure::text AS fn,
            has_function_privilege(r.oid, p.oid, 'EXECUTE') AS allowed
     FROM pg_roles r, pg_proc p
     WHERE (r.rolname LIKE 'vault\\_%' OR r.rolname LIKE 'pgv\\_upg\\_%')
       AND p.pronamespace = 'public'::regnamespace AND p.proname LIKE 'vault\\_%'" \
	"CREATE TABLE members_before AS
     SELECT m.roleid::regrole::text AS granted, m.member::regrole::text AS member
     FROM pg_auth_members m WHERE m.member::regrole::text LIKE 'pgv\\_upg\\_%'" >/dev/null

# ---- the update ----
expect "ALTER EXTENSION pg_vault UPDATE TO '$NEW_VERSION'" "$NEW_VERSION" \
	"$(q "ALTER EXTENSION pg_vault UPDATE TO '$NEW_VERSION'" "SELECT extversion FROM pg_extension WHERE extname = 'pg_vault'")"

# ---- everything reads back ----
expect "the stored ciphertexts and blind indexes did not change" "$before" "$(q "$STATE")"
expect "every row decrypts to its original (NULLs stay NULL)" "$ROWS|0" \
	"$(q "SELECT count(*), count(*) FILTER (WHERE plain IS DISTINCT FROM CASE WHEN id = $ROWS THEN 'ssn-' || id ELSE $ORIG END)
	      FROM (SELECT unnest(array_agg(id ORDER BY id)) AS id,
	                   unnest(vault_decrypt_batch(array_agg(ssn ORDER BY id), '$KEY')) AS plain
	            FROM people) d")"
expect "through the decrypting view, as a role with vault_decryptor" "$ROWS|0" \
	"$(q "SET ROLE pgv_upg_reader" \
		"SELECT count(*), count(*) FILTER (WHERE ssn IS DISTINCT FROM CASE WHEN id = $ROWS THEN 'ssn-' || id ELSE $ORIG END) FROM people_clear")"
expect "blind-index lookups find their rows" "5|100|$ROWS" \
	"$(q "SELECT id FROM people WHERE ssn_hmac = vault_hmac('ssn-5', '$KEY')" \
		"SELECT id FROM people WHERE ssn_hmac = vault_hmac('ssn-100', '$KEY')" \
		"SELECT id FROM people WHERE ssn_hmac = vault_hmac('ssn-$ROWS', '$KEY')" | paste -sd'|')"
expect "NULL values have NULL blind indexes" 0 \
	"$(q "SELECT count(*) FROM people WHERE ssn IS NULL AND ssn_hmac IS NOT NULL")"
got=$(q "SET ROLE pgv_upg_writer" \
	"INSERT INTO people (id, ssn) VALUES (1001, 'ssn-1001'), (1002, 'ssn-1002')" \
	"INSERT INTO people (id, ssn) VALUES (1003, 'ssn-1003')")
expect "the trigger takes new rows, from a role with vault_encryptor and vault_hasher" "" "$got"
expect "... and encrypts them, with blind indexes" "3|3|1002" \
	"$(q "SELECT count(*) FILTER (WHERE vault_is_ciphertext(ssn)),
	             count(*) FILTER (WHERE vault_decrypt(ssn, '$KEY') = 'ssn-' || id) FROM people WHERE id > 1000" \
		"SELECT id FROM people WHERE ssn_hmac = vault_hmac('ssn-1002', '$KEY')" | paste -sd'|')"
expect "the writer still may not decrypt" 42501 \
	"$(outcome "SET ROLE pgv_upg_writer" "SELECT vault_decrypt(ssn, '$KEY') FROM people WHERE id = 1")"
expect "the plaintext CHECK still holds with the trigger disabled" 23514 \
	"$(outcome "ALTER TABLE people DISABLE TRIGGER a_vault_encrypt" "INSERT INTO people (id, ssn) VALUES (2000, 'ssn-2000')")"
expect "every function grant of pg_vault's roles and the login roles is as before" \
	"$(q "SELECT count(*) FROM grants_before")|0" \
	"$(q "SELECT count(*), count(*) FILTER (WHERE has_function_privilege(rolname, fn::regprocedure, 'EXECUTE') IS DISTINCT FROM allowed)
	      FROM grants_before")"
expect "role memberships are as before" "3|0" \
	"$(q "SELECT (SELECT count(*) FROM members_before),
	             (SELECT count(*) FROM (SELECT granted, member FROM members_before
	                                    EXCEPT SELECT m.roleid::regrole::text, m.member::regrole::text
	                                    FROM pg_auth_members m) gone)" | paste -sd'|')"

# ---- updated catalog = fresh catalog ----
describe() { psql -XAtq -v ON_ERROR_STOP=1 -d "$1" -f "$PGV_REPO/test/lib/ext_catalog.sql" 2>&1; }
psql -qX -d "$NEWDB" -c 'CREATE EXTENSION pg_vault' >/dev/null
describe "$DB" >"$WORK/updated.catalog"
describe "$NEWDB" >"$WORK/fresh.catalog"
if [ "$(grep -c ' | definition: ' "$WORK/fresh.catalog")" -lt 10 ]; then
	pgv_not_ok "the catalog description of a fresh $NEW_VERSION lists its functions (got: $(head -n 3 "$WORK/fresh.catalog"))"
elif diff -u --label "fresh $NEW_VERSION" --label "$OLD_VERSION updated to $NEW_VERSION" \
	"$WORK/fresh.catalog" "$WORK/updated.catalog" >"$WORK/catalog.diff"; then
	pgv_ok "$OLD_VERSION updated and $NEW_VERSION created fresh have the same catalog ($(grep ' | ' "$WORK/fresh.catalog" | cut -d'|' -f1 | sort -u | wc -l) objects described)"
else
	pgv_not_ok "$OLD_VERSION updated and $NEW_VERSION created fresh differ (complete sql/pg_vault--$OLD_VERSION--$NEW_VERSION.sql):"
	cat "$WORK/catalog.diff"
fi

# ---- the comparison sees differences ----
psql -qX -d "$CTLDB" -c 'CREATE EXTENSION pg_vault' \
	-c "COMMENT ON FUNCTION vault_health() IS 'changed by test/upgrade.sh'" \
	-c 'REVOKE EXECUTE ON FUNCTION vault_health() FROM vault_admin' \
	-c 'CREATE FUNCTION pgv_upg_extra() RETURNS int LANGUAGE sql AS $$SELECT 1$$' \
	-c 'ALTER EXTENSION pg_vault ADD FUNCTION pgv_upg_extra()' >/dev/null
describe "$CTLDB" >"$WORK/control.catalog"
diff "$WORK/fresh.catalog" "$WORK/control.catalog" >"$WORK/control.diff"
expect "the comparison sees a changed comment, a revoked grant and an added member" "1|1|1" \
	"$(grep -c "^> function vault_health() | comment: changed by test/upgrade.sh" "$WORK/control.diff")|$(
		grep -c '^< function vault_health() | owner .*vault_admin=X' "$WORK/control.diff")|$(
		grep -c '^> function pgv_upg_extra() | definition: ' "$WORK/control.diff")"

pgv_done
