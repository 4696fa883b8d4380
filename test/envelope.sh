#!/usr/bin/env bash
# test/envelope.sh: envelope encryption (src/dek.c, src/aead.c) through the
# real path: data keys made and unwrapped by the harness's OpenBao, values
# encrypted in the backend.  Round trips (text, bytea, NULL, empty,
# contexts, arrays), the pgv1: format, tampering of each part and the
# SQLSTATE of each failure, privileges (the catalog table is nobody's to
# read), rotation with rewrapped data keys and min_decryption_version,
# crypto-shredding of exactly one data key's rows, the cache (cleared by
# vault_cache_clear() and DISCARD ALL, seen through vault_stat), retirement
# after the reserved encryptions, and a core dump of a backend with a warm
# cache that does not hold the data key (while a marker string is found).
#
# Run by test/run, which starts the servers and exports their settings.
set -uo pipefail
source "$(dirname "$0")/lib/summary.sh"

pgv_need_test_env

DB=pg_vault_envelope_test
WORK=$PGV_RUN/envelope-test
KEY=env_$(openssl rand -hex 6)
KEY2=env2_$(openssl rand -hex 6)
BG=()

mkdir -p "$WORK"
chmod 0755 "$WORK"

cleanup() {
	local p
	for p in "${BG[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	rm -f "$WORK"/core.*
	PGOPTIONS='-c client_min_messages=warning' psql -qX -d postgres -c "DROP DATABASE IF EXISTS $DB" \
		-c "DROP ROLE IF EXISTS pgv_env_enc" -c "DROP ROLE IF EXISTS pgv_env_dec" \
		-c "DROP ROLE IF EXISTS pgv_env_admin" >/dev/null 2>&1
}
trap cleanup EXIT
cleanup

PGOPTIONS='-c client_min_messages=warning' psql -qX -d postgres -c "CREATE DATABASE $DB" \
	-c "CREATE ROLE pgv_env_enc" -c "CREATE ROLE pgv_env_dec" -c "CREATE ROLE pgv_env_admin" >/dev/null
psql -qX -d "$DB" -c 'CREATE EXTENSION pg_vault' \
	-c 'GRANT vault_encryptor TO pgv_env_enc' -c 'GRANT vault_decryptor TO pgv_env_dec' \
	-c 'GRANT vault_admin TO pgv_env_admin' >/dev/null
vault_api POST "/v1/transit/keys/$KEY" '{}' >/dev/null
vault_api POST "/v1/transit/keys/$KEY2" '{}' >/dev/null

# datakey calls (creations and unwraps) this backend counted, in one session
DATAKEY_CALLS="SELECT coalesce((SELECT calls FROM vault_stat WHERE operation = 'datakey'), 0)"

# ---- round trips ----
expect "text round trip" "4111111111111111" \
	"$(q "SELECT vault_envelope_decrypt(vault_envelope_encrypt('4111111111111111', '$KEY'))")"
expect "multibyte text round trip" "zürich – 東京" \
	"$(q "SELECT vault_envelope_decrypt(vault_envelope_encrypt('zürich – 東京', '$KEY'))")"
expect "bytea round trip (every byte value)" "t" \
	"$(q "SELECT vault_envelope_decrypt_bytea(vault_envelope_encrypt(b, '$KEY')) = b
	      FROM (SELECT string_agg(set_byte('\\x00'::bytea, 0, g), ''::bytea) AS b FROM generate_series(0, 255) g) s")"
expect "empty string round trip" "|t" \
	"$(q "SELECT vault_envelope_decrypt(c), vault_envelope_decrypt(c) = '' FROM (SELECT vault_envelope_encrypt('', '$KEY') c) s")"
expect "NULL in gives NULL out (encrypt, decrypt, bytea)" "t|t|t" \
	"$(q "SELECT vault_envelope_encrypt(NULL::text, '$KEY') IS NULL, vault_envelope_decrypt(NULL) IS NULL, vault_envelope_decrypt_bytea(NULL) IS NULL")"
expect "1 MB value round trip" "t" \
	"$(q "SELECT vault_envelope_decrypt(vault_envelope_encrypt(v, '$KEY')) = v FROM (SELECT repeat('abcdefgh', 131072) v) s")"
expect "with a context" "secret" \
	"$(q "SELECT vault_envelope_decrypt(vault_envelope_encrypt('secret', '$KEY', 'user:42'), 'user:42')")"
expect "an empty context is a context" "secret" \
	"$(q "SELECT vault_envelope_decrypt(vault_envelope_encrypt('secret', '$KEY', ''), '')")"
expect "two encryptions of one value differ (random nonce)" "f" \
	"$(q "SELECT vault_envelope_encrypt('same', '$KEY') = vault_envelope_encrypt('same', '$KEY')")"
expect "arrays: order and NULLs kept" "{a,NULL,\"\",dd}" \
	"$(q "SELECT vault_envelope_decrypt_batch(vault_envelope_encrypt_batch(ARRAY['a', NULL, '', 'dd'], '$KEY'))")"
expect "arrays with contexts" "{x,y}" \
	"$(q "SELECT vault_envelope_decrypt_batch(vault_envelope_encrypt_batch(ARRAY['x', 'y'], '$KEY', ARRAY['c1', 'c2']), ARRAY['c1', 'c2'])")"
expect "bytea arrays" "{\"\\\\x0001\",NULL}" \
	"$(q "SELECT vault_envelope_decrypt_bytea_batch(vault_envelope_encrypt_batch(ARRAY['\\x0001'::bytea, NULL], '$KEY'))")"
expect "empty array" "{}" "$(q "SELECT vault_envelope_encrypt_batch('{}'::text[], '$KEY')")"
# (numbers in the messages of pg_vault statements reach the client
# redacted, src/redact.c: hence the patterns)
msg=$(q "SELECT vault_envelope_decrypt_batch(vault_envelope_encrypt_batch(ARRAY['x', 'y'], '$KEY', ARRAY['c1', 'c2']), ARRAY['c1', 'zz'])" | head -1)
if [[ $msg == "ERROR:  envelope ciphertext of array element "*" does not match the context given" ]] &&
	[ "$(outcome "SELECT vault_envelope_decrypt_batch(vault_envelope_encrypt_batch(ARRAY['x', 'y'], '$KEY', ARRAY['c1', 'c2']), ARRAY['c1', 'zz'])")" = 22V02 ]; then
	pgv_ok "an array element with the wrong context: 22V02, naming the element"
else
	pgv_not_ok "array element with the wrong context ($msg)"
fi

# ---- format ----
CT=$(q "SELECT vault_envelope_encrypt('format check', '$KEY')")
DEK=$(q "SELECT vault_envelope_key_id('$CT')")
if [[ $CT =~ ^pgv1:[1-9][0-9]*:[A-Za-z0-9+/]+=*$ ]] && [ "$DEK" -ge 1 ]; then
	pgv_ok "format: pgv1:<data key id>:<base64>"
else
	pgv_not_ok "format ($CT)"
fi
# 12-byte nonce + 12 bytes + 16-byte tag = 40 bytes = 56 base64 characters
expect "payload: nonce, ciphertext and tag (40 bytes for 12)" 56 "$(( ${#CT} - ${#DEK} - 6 ))"
CCT=$(q "SELECT vault_envelope_encrypt('format check', '$KEY', 'ctx')")
expect "with a context: pgv1c:, 8 more bytes (a context check)" "pgv1c:$DEK:|64" \
	"$(echo "${CCT%%:*}:$(cut -d: -f2 <<<"$CCT"):")|$(( ${#CCT} - ${#DEK} - 7 ))"
expect "vault_is_ciphertext: envelope and Transit forms, not plaintext" "t|t|f|f" \
	"$(q "SELECT vault_is_ciphertext('$CT'), vault_is_ciphertext('$CCT'), vault_is_ciphertext('pgv1:1:abc'), vault_is_ciphertext('hello')")"
expect "vault_envelope_key_id of a non-envelope value is NULL" "t" \
	"$(q "SELECT vault_envelope_key_id('vault:v1:abcd') IS NULL")"
expect "no plaintext in the catalog: the wrapped key is a Transit ciphertext" "vault:v1:" \
	"$(q "SELECT substr(wrapped_key, 1, 9) FROM vault_envelope_keys WHERE id = $DEK")"

# ---- tampering: each part, its SQLSTATE ----
# flip CT's base64 character at offset $1 (within the payload) to another
flip() {
	local s=$1 i=$2 c new
	c=${s:i:1}
	if [ "$c" = A ]; then new=B; else new=A; fi
	echo "${s:0:i}$new${s:i+1}"
}
P=$((6 + ${#DEK}))     # where the base64 starts
expect "a flipped nonce byte: 22V01" 22V01 "$(outcome "SELECT vault_envelope_decrypt('$(flip "$CT" $((P + 2)))')")"
expect "a flipped ciphertext byte: 22V01" 22V01 "$(outcome "SELECT vault_envelope_decrypt('$(flip "$CT" $((P + 20)))')")"
expect "a flipped tag byte: 22V01" 22V01 "$(outcome "SELECT vault_envelope_decrypt('$(flip "$CT" $((P + 50)))')")"
OTHER=$(q "SET vault.envelope_key_max_encryptions = 1" "SELECT vault_envelope_key_id(vault_envelope_encrypt('other dek', '$KEY2'))")
expect "the prefix's data key id changed to another data key: 22V01" 22V01 \
	"$(outcome "SELECT vault_envelope_decrypt('pgv1:$OTHER:${CT#pgv1:*:}')")"
expect "the prefix's data key id changed to an unknown one: 22V04" 22V04 \
	"$(outcome "SELECT vault_envelope_decrypt('pgv1:987654321:${CT#pgv1:*:}')")"
expect "pgv1 turned into pgv1c: 22V02 (context mismatch)" 22V02 \
	"$(outcome "SELECT vault_envelope_decrypt('pgv1c:${CT#pgv1:}', 'x')")"
expect "truncated: 22V03" 22V03 "$(outcome "SELECT vault_envelope_decrypt('${CT:0:20}')")"
expect "not an envelope ciphertext at all: 22V03" 22V03 "$(outcome "SELECT vault_envelope_decrypt('hello')")"
msg=$(psql -XAtq -d "$DB" -c "SELECT vault_envelope_decrypt('$(flip "$CT" $((P + 20)))')" 2>&1)
if [[ $msg == *"failed authentication"* ]] && [[ $msg != *"format check"* ]]; then
	pgv_ok "the tampering error says so and quotes no plaintext"
else
	pgv_not_ok "tampering error ($msg)"
fi

# ---- contexts ----
expect "wrong context: 22V02" 22V02 "$(outcome "SELECT vault_envelope_decrypt('$CCT', 'other')")"
expect "context missing: 22V02" 22V02 "$(outcome "SELECT vault_envelope_decrypt('$CCT')")"
expect "a context where none was used: 22V02" 22V02 "$(outcome "SELECT vault_envelope_decrypt('$CT', 'ctx')")"
expect "a flipped ciphertext byte with the right context: 22V01" 22V01 \
	"$(outcome "SELECT vault_envelope_decrypt('$(flip "$CCT" $((P + 1 + 20)))', 'ctx')")"
expect "the right context decrypts" "format check" "$(q "SELECT vault_envelope_decrypt('$CCT', 'ctx')")"

# ---- privileges ----
expect "vault_encryptor may encrypt" ok \
	"$(outcome "SET ROLE pgv_env_enc" "SELECT vault_envelope_encrypt('p', '$KEY')")"
expect "vault_encryptor cannot decrypt (42501)" 42501 \
	"$(outcome "SET ROLE pgv_env_enc" "SELECT vault_envelope_decrypt('$CT')")"
expect "vault_encryptor cannot read the data key table (42501)" 42501 \
	"$(outcome "SET ROLE pgv_env_enc" "SELECT * FROM vault_envelope_keys")"
expect "vault_decryptor may decrypt" "format check" \
	"$(q "SET ROLE pgv_env_dec" "SELECT vault_envelope_decrypt('$CT')")"
expect "vault_decryptor cannot encrypt, read or change the data key table" "42501|42501|42501" \
	"$(outcome "SET ROLE pgv_env_dec" "SELECT vault_envelope_encrypt('p', '$KEY')")|$(outcome "SET ROLE pgv_env_dec" "SELECT * FROM vault_envelope_keys")|$(outcome "SET ROLE pgv_env_dec" "UPDATE vault_envelope_keys SET retired_at = now()")"
expect "vault_admin cannot read the wrapped keys, but sees their status" "42501|ok" \
	"$(outcome "SET ROLE pgv_env_admin" "SELECT wrapped_key FROM vault_envelope_keys")|$(outcome "SET ROLE pgv_env_admin" "SELECT * FROM vault_envelope_key_status")"
expect "vault_encryptor cannot delete a data key (42501)" 42501 \
	"$(outcome "SET ROLE pgv_env_enc" "SELECT vault_envelope_delete_key($DEK)")"
expect "PUBLIC cannot run the envelope functions" "42501|42501" \
	"$(outcome "CREATE ROLE pgv_env_nobody" "SET ROLE pgv_env_nobody" "SELECT vault_envelope_encrypt('p', '$KEY')")|$(outcome "SET ROLE pgv_env_nobody" "SELECT vault_envelope_decrypt('$CT')")"
q "DROP ROLE pgv_env_nobody" >/dev/null

# ---- the cache: hits touch neither Vault nor the catalog ----
# unwraps SQL...: run the statements in one fresh session; prints their
# results joined by | and then how many datakey calls (unwraps and
# creations, vault_stat) they made
unwraps() {
	local out first last
	out=$(q "$DATAKEY_CALLS" "$@" "$DATAKEY_CALLS")
	first=$(head -1 <<<"$out")
	last=$(tail -1 <<<"$out")
	echo "$(sed '1d;$d' <<<"$out" | paste -sd'|')|unwraps=$((last - first))"
}
expect "a cold backend unwraps once, then 1000 decryptions make no Vault call" "format check|1000|unwraps=1" \
	"$(unwraps "SELECT vault_envelope_decrypt('$CT')" \
		"SELECT count(*) FROM generate_series(1, 1000) g WHERE vault_envelope_decrypt('$CT') = 'format check'")"
expect "vault_cache_clear(): the next decryption unwraps again" "format check||format check|unwraps=2" \
	"$(unwraps "SELECT vault_envelope_decrypt('$CT')" "SELECT vault_cache_clear()" "SELECT vault_envelope_decrypt('$CT')")"
expect "DISCARD ALL: the next decryption unwraps again" "format check|format check|unwraps=2" \
	"$(unwraps "SELECT vault_envelope_decrypt('$CT')" "DISCARD ALL" "SELECT vault_envelope_decrypt('$CT')")"
expect "without either, a second decryption does not" "format check|format check|unwraps=1" \
	"$(unwraps "SELECT vault_envelope_decrypt('$CT')" "SELECT vault_envelope_decrypt('$CT')")"
expect "vault.envelope_key_max_uses = 3: 7 decryptions unwrap 3 times" "7|unwraps=3" \
	"$(unwraps "SET vault.envelope_key_max_uses = 3" "SELECT count(vault_envelope_decrypt('$CT')) FROM generate_series(1, 7)")"
expect "vault.envelope_key_ttl = 1s: used again after 1.2 s, it is unwrapped again" "format check||format check|unwraps=2" \
	"$(unwraps "SET vault.envelope_key_ttl = 1" "SELECT vault_envelope_decrypt('$CT')" "SELECT pg_sleep(1.2)" "SELECT vault_envelope_decrypt('$CT')")"
# catalog reads and writes this transaction made: scans and updated rows of vault_envelope_keys
CAT="SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0) || '/' || n_tup_upd FROM pg_stat_xact_user_tables WHERE relname = 'vault_envelope_keys'"
got=$(q "BEGIN" "SELECT vault_envelope_decrypt('$CT') IS NOT NULL" "SELECT vault_envelope_encrypt('x', '$KEY') IS NOT NULL" "$CAT" \
	"SELECT count(vault_envelope_decrypt('$CT')) FROM generate_series(1, 1000)" \
	"SELECT count(vault_envelope_encrypt('x', '$KEY')) FROM generate_series(1, 1000)" "$CAT" "COMMIT" | paste -sd'|')
IFS='|' read -r _ _ c1 _ _ c2 <<<"$got"
if [ -n "$c1" ] && [ "$c1" = "$c2" ]; then
	pgv_ok "cache hits touch no catalog: 1000 decryptions and 1000 encryptions after a miss, no more scans or updates of vault_envelope_keys ($c1)"
else
	pgv_not_ok "catalog touched on cache hits ($got)"
fi
expect "a non-superuser cannot lengthen the TTL (42501)" 42501 \
	"$(outcome "SET ROLE pgv_env_dec" "SET vault.envelope_key_ttl = 86400")"
expect "5000 encryptions in a cold backend: one unwrap" "5000|unwraps=1" \
	"$(unwraps "SELECT count(vault_envelope_encrypt('v' || g, '$KEY')) FROM generate_series(1, 5000) g")"

# ---- 16 cache slots: least recently used out ----
q "SET vault.envelope_key_max_encryptions = 1" \
	"CREATE TABLE many AS SELECT g, vault_envelope_encrypt('many-' || g, '$KEY2') AS c FROM generate_series(1, 20) g" >/dev/null
expect "20 values under 20 data keys" 20 "$(q "SELECT count(DISTINCT vault_envelope_key_id(c)) FROM many")"
# the batch form decrypts in array order: a, a, a for the first 10, a, a for all 20
FIRST10="(SELECT array_agg(c ORDER BY g) a, array_agg('many-' || g ORDER BY g) b FROM many WHERE g <= 10) s"
ALL20="(SELECT array_agg(c ORDER BY g) a, array_agg('many-' || g ORDER BY g) b FROM many) s"
expect "10 of them decrypted 3 times over in one backend: 10 unwraps (they stay cached)" "t|unwraps=10" \
	"$(unwraps "SELECT vault_envelope_decrypt_batch(a || a || a) = b || b || b FROM $FIRST10")"
expect "all 20 decrypted twice in turn: 40 unwraps (16 slots, the least recently used goes), every value right" "t|unwraps=40" \
	"$(unwraps "SELECT vault_envelope_decrypt_batch(a || a) = b || b FROM $ALL20")"

# ---- reservations and retirement ----
q "SET vault.envelope_key_max_encryptions = 1" "SELECT vault_envelope_encrypt('x', '$KEY')" >/dev/null   # retire the current one
before=$(q "SELECT count(*) FROM vault_envelope_keys WHERE transit_key = '$KEY'")
got=$(q "SET vault.envelope_key_reserve = 10" "SET vault.envelope_key_max_encryptions = 25" \
	"CREATE TEMP TABLE r AS SELECT g, vault_envelope_encrypt('r' || g, '$KEY') AS c FROM generate_series(1, 60) g" \
	"SELECT count(DISTINCT vault_envelope_key_id(c)) FROM r" \
	"SELECT max(n) FROM (SELECT count(*) n FROM r GROUP BY vault_envelope_key_id(c)) s" \
	"SELECT count(*) FROM r WHERE vault_envelope_decrypt(c) = 'r' || g")
expect "max_encryptions 25, reserve 10: 60 encryptions use 3 data keys, at most 25 each, all decrypt" "3|25|60" "$(paste -sd'|' <<<"$got")"
expect "... the used-up data keys are retired, with 25 reserved" "2|25" \
	"$(q "SELECT count(*), max(uses_reserved) FROM vault_envelope_keys WHERE transit_key = '$KEY' AND retired_at IS NOT NULL AND id > (SELECT max(id) FROM vault_envelope_keys WHERE transit_key = '$KEY') - 3")"
expect "... and 3 new rows in the catalog" "$((before + 3))" "$(q "SELECT count(*) FROM vault_envelope_keys WHERE transit_key = '$KEY'")"
r0=$(q "SELECT uses_reserved FROM vault_envelope_keys WHERE transit_key = '$KEY' ORDER BY id DESC LIMIT 1")
got=$(q "SET vault.envelope_key_reserve = 1000" "SELECT count(vault_envelope_encrypt('v' || g, '$KEY')) FROM generate_series(1, 2500) g" \
	"SELECT uses_reserved - $r0 FROM vault_envelope_keys WHERE transit_key = '$KEY' ORDER BY id DESC LIMIT 1")
expect "reservations: 2500 encryptions reserve 3000 uses in 3 updates of 1000, not 2500" "2500|3000" "$(paste -sd'|' <<<"$got")"
expect "a rolled-back first encryption leaves no data key behind that rows could name" "t" \
	"$(q "BEGIN" "SET LOCAL vault.envelope_key_max_encryptions = 1" "SELECT vault_envelope_encrypt('gone', '$KEY2') IS NOT NULL" "ROLLBACK" \
		"SELECT vault_envelope_decrypt(vault_envelope_encrypt('kept', '$KEY2')) = 'kept'" | tail -1)"
expect "vault.envelope_key_max_age: an old data key is retired and a new one made" "t" \
	"$(q "SELECT vault_envelope_key_id(vault_envelope_encrypt('a', '$KEY2'))" "SELECT pg_sleep(1.1)" "SET vault.envelope_key_max_age = 1" \
		"SELECT vault_envelope_key_id(vault_envelope_encrypt('b', '$KEY2')) > (SELECT max(id) FROM vault_envelope_keys WHERE retired_at IS NOT NULL AND transit_key = '$KEY2')" | tail -1)"

# ---- rotation: rewrap the data keys, rows untouched ----
q "CREATE TABLE rot (id int PRIMARY KEY, c text)" \
	"INSERT INTO rot SELECT g, vault_envelope_encrypt('rot-' || g, '$KEY') FROM generate_series(1, 2000) g" \
	"CREATE TABLE rot_before AS SELECT * FROM rot" >/dev/null
NDEK=$(q "SELECT count(*) FROM vault_envelope_keys WHERE transit_key = '$KEY' AND deleted_at IS NULL")
OLD_WRAPPED=$(q "SELECT wrapped_key FROM vault_envelope_keys WHERE transit_key = '$KEY' ORDER BY id LIMIT 1")
V2=$(q "SELECT vault_key_rotate('$KEY')")
rw=$(psql -XAtq -d "$DB" -c "SET ROLE pgv_env_admin" -c "SELECT vault_envelope_rewrap_keys('$KEY')" 2>&1)
expect "vault_envelope_rewrap_keys (as vault_admin) rewraps every data key of the Transit key" "$NDEK" "$rw"
expect "... each now wrapped by version $V2" "$V2" \
	"$(q "SELECT DISTINCT wrapped_version FROM vault_envelope_key_status WHERE transit_key = '$KEY' AND deleted_at IS NULL")"
expect "... and no row changed" 0 "$(q "SELECT count(*) FROM rot JOIN rot_before b USING (id) WHERE rot.c <> b.c")"
q "SELECT vault_key_config('$KEY', min_decryption_version => $V2)" >/dev/null
expect "after min_decryption_version $V2, every old row decrypts in a cold backend" 0 \
	"$(q "SELECT count(*) FROM rot WHERE vault_envelope_decrypt(c) <> 'rot-' || id")"
expect "... while Vault now refuses the data key's old wrapped form" "t" \
	"$(vault_api POST "/v1/transit/decrypt/$KEY" "{\"ciphertext\":\"$OLD_WRAPPED\"}" | /usr/bin/python3 -c 'import json, sys; print("t" if json.load(sys.stdin).get("errors") else "f")')"

# ---- crypto-shredding exactly one data key's rows ----
q "CREATE TABLE shred (id int PRIMARY KEY, c text)" \
	"SET vault.envelope_key_max_encryptions = 100" "SET vault.envelope_key_reserve = 100" \
	"INSERT INTO shred SELECT g, vault_envelope_encrypt('s-' || g, '$KEY2') FROM generate_series(1, 300) g" \
	"GRANT SELECT ON shred TO pgv_env_admin" >/dev/null
VICTIM=$(q "SELECT vault_envelope_key_id(c) FROM shred WHERE id = 150")
expect "vault_envelope_column_keys: 3 data keys of 100 rows each, as vault_admin" "3|100|100" \
	"$(q "SET ROLE pgv_env_admin" "SELECT count(*), min(rows), max(rows) FROM vault_envelope_column_keys('shred', 'c')")"
NV=$(q "SELECT count(*) FROM shred WHERE vault_envelope_key_id(c) = $VICTIM")
expect "the victim data key encrypted 100 of 300 rows" 100 "$NV"
expect "vault_envelope_delete_key of a data key not retired: 55000 (backends may still encrypt under it)" 55000 \
	"$(outcome "SET ROLE pgv_env_admin" "SELECT vault_envelope_delete_key($VICTIM)")"
expect "... nor one retired less than vault.envelope_key_ttl ago" 55000 \
	"$(outcome "SELECT vault_envelope_retire_key($VICTIM)" "SELECT vault_envelope_delete_key($VICTIM)")"
expect "... once retired that long, vault_envelope_delete_key deletes it" t \
	"$(q "SET vault.envelope_key_ttl = 1" "SELECT pg_sleep(1.1)" "SELECT vault_envelope_delete_key($VICTIM)" | tail -1)"
expect "vault_envelope_delete_key(force => true) as vault_admin deletes a data key at once" "t|22V05" \
	"$(q "SET ROLE pgv_env_admin" "SELECT vault_envelope_delete_key($OTHER, force => true)")|$(outcome "SELECT vault_envelope_decrypt(c) FROM many WHERE g = 1" "SELECT vault_envelope_delete_key(vault_envelope_key_id(c), true) FROM many WHERE g = 1" "SELECT vault_envelope_decrypt(c) FROM many WHERE g = 1")"
expect "its rows: 22V05 each, every other row decrypts" "100|200" \
	"$(q "CREATE FUNCTION try_dec(c text) RETURNS text LANGUAGE plpgsql AS \$\$ BEGIN RETURN vault_envelope_decrypt(c); EXCEPTION WHEN SQLSTATE '22V05' THEN RETURN '22V05'; END \$\$" \
		"SELECT count(*) FILTER (WHERE try_dec(c) = '22V05'), count(*) FILTER (WHERE try_dec(c) = 's-' || id) FROM shred")"
expect "the catalog keeps the row, without its wrapped key" "|t" \
	"$(q "SELECT wrapped_key, deleted_at IS NOT NULL FROM vault_envelope_keys WHERE id = $VICTIM")"
msg=$(psql -XAtq -d "$DB" -c "SELECT vault_envelope_decrypt(c) FROM shred WHERE id = 150" 2>&1)
if [[ $(head -1 <<<"$msg") == "ERROR:  envelope ciphertext names data key "*", which was deleted" ]]; then
	pgv_ok "the deleted data key's error says so"
else
	pgv_not_ok "deleted data key error ($msg)"
fi

# ---- columns: migrations between plaintext, Transit and envelope; re-encryption of one data key's rows ----
q "CREATE TABLE mig (id int PRIMARY KEY, c text, c_hmac text)" \
	"INSERT INTO mig (id, c) SELECT g, 'm-' || g FROM generate_series(1, 500) g" >/dev/null
call() { PGOPTIONS='-c client_min_messages=warning' psql -XAtq -v ON_ERROR_STOP=1 -d "$DB" -c "$1" 2>&1; }
expect "vault_envelope_encrypt_column: plaintexts in place, with a Transit blind index" "|500|0|t" \
	"$(call "CALL vault_envelope_encrypt_column('mig', 'c', '$KEY', 100, 'c_hmac')")|$(q "SELECT count(*) FILTER (WHERE c LIKE 'pgv1:%'), count(*) FILTER (WHERE vault_envelope_decrypt(c) <> 'm-' || id) FROM mig" | paste -sd'|')|$(q "SELECT id = 7 FROM mig WHERE c_hmac = vault_hmac('m-7', '$KEY')")"
expect "vault_column_to_transit: every value a Transit ciphertext of the key, same plaintext" "|500|0" \
	"$(call "CALL vault_column_to_transit('mig', 'c', '$KEY', 100)")|$(q "SELECT count(*) FILTER (WHERE c LIKE 'vault:v%'), count(*) FILTER (WHERE vault_decrypt(c, '$KEY') <> 'm-' || id) FROM mig" | paste -sd'|')"
expect "vault_column_to_envelope: and back to envelope form" "|500|0" \
	"$(call "CALL vault_column_to_envelope('mig', 'c', '$KEY', 100)")|$(q "SELECT count(*) FILTER (WHERE c LIKE 'pgv1:%'), count(*) FILTER (WHERE vault_envelope_decrypt(c) <> 'm-' || id) FROM mig" | paste -sd'|')"
SUSPECT=$(q "SELECT vault_envelope_key_id(c) FROM mig WHERE id = 1")
NS=$(q "SELECT count(*) FROM mig WHERE vault_envelope_key_id(c) = $SUSPECT")
expect "vault_envelope_reencrypt_column (as vault_admin with decrypt and encrypt): no row left under the suspect data key ($NS rows)" "|0|0|t" \
	"$(q "GRANT vault_encryptor, vault_decryptor TO pgv_env_admin" "GRANT SELECT, UPDATE ON mig TO pgv_env_admin" >/dev/null
	   PGOPTIONS='-c client_min_messages=warning' psql -XAtq -d "$DB" -c "SET ROLE pgv_env_admin" -c "CALL vault_envelope_reencrypt_column('mig', 'c', $SUSPECT, 100)" 2>&1)|$(q "SELECT count(*) FILTER (WHERE vault_envelope_key_id(c) = $SUSPECT), count(*) FILTER (WHERE vault_envelope_decrypt(c) <> 'm-' || id) FROM mig" | paste -sd'|')|$(q "SELECT retired_at IS NOT NULL FROM vault_envelope_keys WHERE id = $SUSPECT")"
expect "... a second CALL has nothing to do" "0 rows re-encrypted, 0 left" \
	"$(psql -XAtq -d "$DB" -c "CALL vault_envelope_reencrypt_column('mig', 'c', $SUSPECT, 100)" 2>&1 | grep -o '[0-9]* rows re-encrypted, [0-9]* left')"
expect "vault_encryptor may not run the migrations between Transit and envelope (42501)" 42501 \
	"$(outcome "SET ROLE pgv_env_enc" "CALL vault_column_to_transit('mig', 'c', '$KEY', 100)")"

# ---- the column trigger in envelope mode: column[:blind_index][@key]!envelope ----
q "CREATE TABLE trg (id int PRIMARY KEY, card text, card_hmac text, ssn text)" \
	"CREATE TRIGGER a_vault_encrypt BEFORE INSERT OR UPDATE ON trg FOR EACH ROW
	   EXECUTE FUNCTION vault_encrypt_columns('$KEY', 'card:card_hmac!envelope', 'ssn')" \
	"INSERT INTO trg (id, card, ssn) SELECT g, 'card-' || g, 'ssn-' || g FROM generate_series(1, 1200) g" >/dev/null
expect "trigger, 'card:card_hmac!envelope': a bulk INSERT stores envelope values with a Transit blind index; 'ssn' stays Transit" "1200|1200|0|t" \
	"$(q "SELECT count(*) FILTER (WHERE card LIKE 'pgv1:%'), count(*) FILTER (WHERE ssn LIKE 'vault:v%'),
	             count(*) FILTER (WHERE vault_envelope_decrypt(card) <> 'card-' || id),
	             (SELECT id FROM trg WHERE card_hmac = vault_hmac('card-7', '$KEY')) = 7 FROM trg")"
expect "... a one-row UPDATE too, and an envelope value written by the application is kept" "new|t|t" \
	"$(q "UPDATE trg SET card = 'new' WHERE id = 1" "UPDATE trg SET card = '$CT' WHERE id = 2" \
		"SELECT vault_envelope_decrypt(card), card LIKE 'pgv1:%' FROM trg WHERE id = 1" "SELECT card = '$CT' FROM trg WHERE id = 2" | paste -sd'|')"
expect "... a role with vault_encryptor only (no vault_hasher) is refused the blind index (42501)" 42501 \
	"$(outcome "GRANT INSERT ON trg TO pgv_env_enc" "SET ROLE pgv_env_enc" "INSERT INTO trg (id, card) VALUES (5000, 'x')")"
expect "an unknown mode after \"!\" is refused (22023)" 22023 \
	"$(outcome "CREATE TABLE trg2 (c text)" "CREATE TRIGGER t BEFORE INSERT ON trg2 FOR EACH ROW EXECUTE FUNCTION vault_encrypt_columns('$KEY', 'c!fast')" "INSERT INTO trg2 VALUES ('x')")"

# ---- a core dump of a backend with a warm cache holds no data key ----
MARKER=pgvmarker_$(openssl rand -hex 8)
CORE_DEK=$(q "SELECT vault_envelope_key_id(c) FROM rot WHERE id = 1")
WRAPPED=$(q "SELECT wrapped_key FROM vault_envelope_keys WHERE id = $CORE_DEK")
DEK_B64=$(vault_api POST "/v1/transit/decrypt/$KEY" "{\"ciphertext\":\"$WRAPPED\"}" | json_get data.plaintext)
psql -XAtq -d "$DB" -c "SET application_name = 'pgv_env_core'" \
	-c "SELECT count(*) FROM rot WHERE vault_envelope_decrypt(c) = 'rot-' || id" \
	-c "SELECT vault_envelope_encrypt('warm', '$KEY')" \
	-c "SELECT set_config('pgv_env.marker', '$MARKER', false)" \
	-c "SELECT pg_sleep(300)" >/dev/null 2>&1 &
BG+=($!)
PID=
for ((i = 0; i < 300; i++)); do
	PID=$(q "SELECT pid FROM pg_stat_activity WHERE application_name = 'pgv_env_core' AND query LIKE '%pg_sleep%'")
	[ -n "$PID" ] && break
	sleep 0.1
done
if [ -z "$PID" ] || [ ${#DEK_B64} -ne 44 ]; then
	pgv_not_ok "core dump: no warm backend or no data key to look for (pid '$PID', key length ${#DEK_B64})"
else
	flags=$(awk '/^[0-9a-f]+-[0-9a-f]+ /{m=$0} /^VmFlags:.* lo .* dd|^VmFlags:.* dd .* lo/{print m}' "/proc/$PID/smaps" | wc -l)
	pgv_check "the backend has a locked region left out of core dumps (VmFlags lo, dd)" [ "$flags" -ge 1 ]
	if gcore -o "$WORK/core" "$PID" >"$WORK/gcore.log" 2>&1 && [ -s "$WORK/core.$PID" ]; then
		found=$(DEK_B64=$DEK_B64 MARKER=$MARKER /usr/bin/python3 -c '
import base64, mmap, os, sys
key = base64.b64decode(os.environ["DEK_B64"])
with open(sys.argv[1], "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
    print("marker" if m.find(os.environ["MARKER"].encode()) >= 0 else "no-marker",
          "key" if m.find(key) >= 0 else "no-key",
          "half" if m.find(key[:16]) >= 0 or m.find(key[16:]) >= 0 else "no-half",
          "b64" if m.find(os.environ["DEK_B64"].encode()) >= 0 else "no-b64")' "$WORK/core.$PID")
		expect "core dump of a warm backend ($(du -m "$WORK/core.$PID" | cut -f1) MB): marker found, the 32 data-key bytes (or either half, or their base64 from Vault's answer) not" \
			"marker no-key no-half no-b64" "$found"
	else
		pgv_not_ok "gcore of backend $PID ($(tail -3 "$WORK/gcore.log"))"
	fi
	rm -f "$WORK/core.$PID"
	q "SELECT pg_cancel_backend($PID)" >/dev/null
fi
for p in "${BG[@]}"; do wait "$p" 2>/dev/null; done
BG=()
unset DEK_B64

pgv_done
