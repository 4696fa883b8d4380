/* pg_vault 0.1.0 -> 0.2.0: ALTER EXTENSION pg_vault UPDATE TO '0.2.0' */
\echo Use "ALTER EXTENSION pg_vault UPDATE TO '0.2.0'" to load this file. \quit

-- Every object that 0.2.0 adds or changes compared with 0.1.0 (the install
-- script as of commit f69c331) is created here too, in the same words as in
-- pg_vault--0.2.0.sql; test/upgrade.sh checks that an updated 0.1.0 and a
-- fresh 0.2.0 have the same catalog.

-- ==== statistics (src/stat.c) ==============================================
/*
 * One row per kind of Vault call: cluster-wide in shared memory when
 * pg_vault is preloaded (cluster_wide), this backend's own otherwise.
 */
CREATE FUNCTION vault_stat(
	OUT operation text, OUT calls bigint, OUT rows bigint, OUT errors bigint,
	OUT errors_by_sqlstate jsonb, OUT retries bigint, OUT bytes_sent bigint,
	OUT bytes_received bigint, OUT total_time_ms double precision,
	OUT mean_time_ms double precision, OUT max_time_ms double precision,
	OUT cluster_wide boolean, OUT stats_reset timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', $$pg_vault_stat$$
LANGUAGE C VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION vault_stat() IS
'the rows of the vault_stat view';

CREATE VIEW vault_stat AS SELECT * FROM vault_stat();
COMMENT ON VIEW vault_stat IS
'per kind of Vault call: calls, rows, errors by SQLSTATE, retries, bytes, time';

CREATE FUNCTION vault_stat_reset()
RETURNS void
AS 'MODULE_PATHNAME', $$pg_vault_stat_reset$$
LANGUAGE C VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION vault_stat_reset() IS
'sets the counters of vault_stat to zero';

REVOKE ALL ON vault_stat FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION vault_stat(), vault_stat_reset() FROM PUBLIC;
GRANT SELECT ON vault_stat TO vault_admin, pg_read_all_stats;
GRANT EXECUTE ON FUNCTION vault_stat() TO vault_admin, pg_read_all_stats;
GRANT EXECUTE ON FUNCTION vault_stat_reset() TO vault_admin;

-- ==== envelope encryption (src/dek.c, src/aead.c) ==========================
/*
 * Values encrypted in the backend with AES-256-GCM under data keys (DEKs)
 * that Vault's Transit engine made and wrapped: one Vault request per data
 * key instead of one per row.
 *
 *   SELECT vault_envelope_encrypt('4111111111111111', 'payment-data');
 *       -- pgv1:1:<base64 of nonce, ciphertext and tag>
 *   SELECT vault_envelope_decrypt(card) FROM payments;
 *
 * vault_envelope_keys holds each data key only wrapped (vault:vN:...),
 * with its Transit key, creation time, encryptions reserved under it and
 * when it was retired or deleted.  PUBLIC has no access to it; the
 * functions read and write it as its owner.  pg_dump keeps its rows.
 * Unwrapped data keys stay in the memory of the backend that used them,
 * locked and kept out of core dumps, for vault.envelope_key_ttl at most.
 *
 * Privileges: vault_envelope_encrypt and its batch to vault_encryptor;
 * vault_envelope_decrypt, vault_envelope_decrypt_bytea and their batches
 * to vault_decryptor; vault_envelope_rewrap_keys,
 * vault_envelope_retire_key, vault_envelope_delete_key and the
 * vault_envelope_key_status view to vault_admin; vault_envelope_key_id
 * and vault_cache_clear to every Transit role.
 */
CREATE SEQUENCE vault_envelope_keys_id_seq;

CREATE TABLE vault_envelope_keys (
	id bigint PRIMARY KEY DEFAULT pg_catalog.nextval('vault_envelope_keys_id_seq'::pg_catalog.regclass),
	transit_key text NOT NULL,
	wrapped_key text,
	created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	uses_reserved bigint NOT NULL DEFAULT 0,
	retired_at timestamptz,
	deleted_at timestamptz,
	CONSTRAINT vault_envelope_keys_deleted_check CHECK ((deleted_at IS NULL) = (wrapped_key IS NOT NULL))
);
CREATE INDEX vault_envelope_keys_transit_key ON vault_envelope_keys (transit_key, id);
COMMENT ON TABLE vault_envelope_keys IS
'envelope data keys, wrapped by Vault Transit keys; read and written by pg_vault''s functions only';
SELECT pg_catalog.pg_extension_config_dump('vault_envelope_keys', '');
SELECT pg_catalog.pg_extension_config_dump('vault_envelope_keys_id_seq', '');
REVOKE ALL ON vault_envelope_keys, vault_envelope_keys_id_seq FROM PUBLIC;

CREATE VIEW vault_envelope_key_status AS
	SELECT id, transit_key, @extschema@.vault_ciphertext_version(wrapped_key) AS wrapped_version,
		   created_at, uses_reserved, retired_at, deleted_at
	FROM vault_envelope_keys;
COMMENT ON VIEW vault_envelope_key_status IS
'envelope data keys without their wrapped form: Transit key, the key version that wraps each, reservations, retirement, deletion';
REVOKE ALL ON vault_envelope_key_status FROM PUBLIC;
GRANT SELECT ON vault_envelope_key_status TO vault_admin;

CREATE FUNCTION vault_envelope_encrypt(plaintext text, key text, context text DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', $$pg_vault_envelope_encrypt$$
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION vault_envelope_encrypt(text, text, text) IS
'encrypt text locally under a data key wrapped by a Vault Transit key; returns a pgv1: (pgv1c: with a context) ciphertext';

CREATE FUNCTION vault_envelope_encrypt(plaintext bytea, key text, context text DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', $$pg_vault_envelope_encrypt$$
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION vault_envelope_encrypt(bytea, text, text) IS
'encrypt binary data locally under a data key wrapped by a Vault Transit key';

CREATE FUNCTION vault_envelope_decrypt(ciphertext text, context text DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', $$pg_vault_envelope_decrypt$$
LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION vault_envelope_decrypt(text, text) IS
'decrypt an envelope ciphertext to text (the data key named in it is unwrapped by Vault on first use)';

CREATE FUNCTION vault_envelope_decrypt_bytea(ciphertext text, context text DEFAULT NULL)
RETURNS bytea
AS 'MODULE_PATHNAME', $$pg_vault_envelope_decrypt_bytea$$
LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION vault_envelope_decrypt_bytea(text, text) IS
'decrypt an envelope ciphertext to binary data';

CREATE FUNCTION vault_envelope_encrypt_batch(plaintexts text[], key text, contexts text[] DEFAULT NULL)
RETURNS text[]
AS 'MODULE_PATHNAME', $$pg_vault_envelope_encrypt_batch$$
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION vault_envelope_encrypt_batch(text[], text, text[]) IS
'envelope-encrypt an array of text in order, NULLs kept; contexts, if given, has one per element';

CREATE FUNCTION vault_envelope_encrypt_batch(plaintexts bytea[], key text, contexts text[] DEFAULT NULL)
RETURNS text[]
AS 'MODULE_PATHNAME', $$pg_vault_envelope_encrypt_batch$$
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION vault_envelope_encrypt_batch(bytea[], text, text[]) IS
'envelope-encrypt an array of binary values in order, NULLs kept';

CREATE FUNCTION vault_envelope_decrypt_batch(ciphertexts text[], contexts text[] DEFAULT NULL)
RETURNS text[]
AS 'MODULE_PATHNAME', $$pg_vault_envelope_decrypt_batch$$
LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION vault_envelope_decrypt_batch(text[], text[]) IS
'decrypt an array of envelope ciphertexts to text in order, NULLs kept';

CREATE FUNCTION vault_envelope_decrypt_bytea_batch(ciphertexts text[], contexts text[] DEFAULT NULL)
RETURNS bytea[]
AS 'MODULE_PATHNAME', $$pg_vault_envelope_decrypt_bytea_batch$$
LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION vault_envelope_decrypt_bytea_batch(text[], text[]) IS
'decrypt an array of envelope ciphertexts to binary values in order, NULLs kept';

CREATE FUNCTION vault_envelope_key_id(ciphertext text)
RETURNS bigint
AS 'MODULE_PATHNAME', $$pg_vault_envelope_key_id$$
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION vault_envelope_key_id(text) IS
'the data key id of an envelope ciphertext; NULL for anything else (no Vault call)';

CREATE FUNCTION vault_envelope_rewrap_keys(key text)
RETURNS integer
AS 'MODULE_PATHNAME', $$pg_vault_envelope_rewrap_keys$$
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION vault_envelope_rewrap_keys(text) IS
'rewrap every data key of a Vault Transit key under its latest version (after vault_key_rotate); rows are not touched; returns how many';

CREATE FUNCTION vault_envelope_retire_key(dek_id bigint)
RETURNS boolean
AS 'MODULE_PATHNAME', $$pg_vault_envelope_retire_key$$
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION vault_envelope_retire_key(bigint) IS
'stop encrypting under a data key (its values still decrypt); the next encryption makes a new one';

CREATE FUNCTION vault_envelope_delete_key(dek_id bigint)
RETURNS boolean
AS 'MODULE_PATHNAME', $$pg_vault_envelope_delete_key$$
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION vault_envelope_delete_key(bigint) IS
'crypto-shred: remove a data key''s wrapped form, so that exactly the values encrypted under it can no longer be decrypted';

CREATE FUNCTION vault_cache_clear()
RETURNS void
AS 'MODULE_PATHNAME', $$pg_vault_cache_clear$$
LANGUAGE C VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION vault_cache_clear() IS
'wipe the unwrapped envelope data keys this backend holds (DISCARD ALL does too)';

REVOKE EXECUTE ON FUNCTION
	vault_envelope_encrypt(text, text, text), vault_envelope_encrypt(bytea, text, text),
	vault_envelope_decrypt(text, text), vault_envelope_decrypt_bytea(text, text),
	vault_envelope_encrypt_batch(text[], text, text[]), vault_envelope_encrypt_batch(bytea[], text, text[]),
	vault_envelope_decrypt_batch(text[], text[]), vault_envelope_decrypt_bytea_batch(text[], text[]),
	vault_envelope_key_id(text), vault_envelope_rewrap_keys(text),
	vault_envelope_retire_key(bigint), vault_envelope_delete_key(bigint),
	vault_cache_clear()
FROM PUBLIC;

GRANT EXECUTE ON FUNCTION
	vault_envelope_encrypt(text, text, text), vault_envelope_encrypt(bytea, text, text),
	vault_envelope_encrypt_batch(text[], text, text[]), vault_envelope_encrypt_batch(bytea[], text, text[])
TO vault_encryptor;

GRANT EXECUTE ON FUNCTION
	vault_envelope_decrypt(text, text), vault_envelope_decrypt_bytea(text, text),
	vault_envelope_decrypt_batch(text[], text[]), vault_envelope_decrypt_bytea_batch(text[], text[])
TO vault_decryptor;

GRANT EXECUTE ON FUNCTION
	vault_envelope_rewrap_keys(text), vault_envelope_retire_key(bigint),
	vault_envelope_delete_key(bigint)
TO vault_admin;

GRANT EXECUTE ON FUNCTION vault_envelope_key_id(text), vault_cache_clear()
TO vault_encryptor, vault_decryptor, vault_hasher, vault_admin;
-- ==== end of envelope encryption ===========================================
