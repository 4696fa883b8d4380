/* pg_vault 0.1.0: HashiCorp Vault (Transit, KV v2) from SQL */

\echo Use "CREATE EXTENSION pg_vault" to load this file. \quit

/*
 * Privileges
 * ----------
 * Every function below is revoked from PUBLIC.  The extension creates, if
 * they do not exist yet, NOLOGIN roles that each hold one kind of access:
 *
 *   vault_encryptor   vault_encrypt, vault_encrypt_batch
 *   vault_decryptor   vault_decrypt, vault_decrypt_bytea and their batches
 *   vault_hasher      vault_hmac, vault_hmac_batch (blind indexes)
 *   vault_kv_reader   vault_kv, vault_kv_version, vault_kv_list
 *   vault_kv_writer   vault_kv_put
 *   vault_admin       vault_rewrap, vault_rewrap_batch, vault_key_info,
 *                     vault_key_rotate, vault_key_config, vault_token_info
 *
 * and vault_health to all of them.  Grant a login role only what it needs:
 *
 *   GRANT vault_encryptor TO app_writer;           -- may encrypt, not decrypt
 *   GRANT vault_encryptor, vault_decryptor TO app_reader;
 *   GRANT vault_kv_reader TO app;
 *
 * Roles are cluster-wide: DROP EXTENSION leaves them in place.  Vault's own
 * policies for the token pg_vault uses still apply on top of these grants:
 * one token serves every database role, so keep it to the keys and paths
 * the database needs.
 */

DO $$
DECLARE
	r text;
BEGIN
	FOREACH r IN ARRAY ARRAY['vault_encryptor', 'vault_decryptor', 'vault_hasher',
							 'vault_kv_reader', 'vault_kv_writer', 'vault_admin']
	LOOP
		IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
			EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', r);
		END IF;
	END LOOP;
END
$$;

-- ---- Transit: one value ----

CREATE FUNCTION vault_encrypt(plaintext text, key text, context text DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', $$pg_vault_encrypt_text$$
LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION vault_encrypt(text, text, text) IS
'encrypt text with a Vault Transit key; returns a vault:vN: ciphertext (context for derived keys)';

CREATE FUNCTION vault_encrypt(plaintext bytea, key text, context text DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', $$pg_vault_encrypt_bytea$$
LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION vault_encrypt(bytea, text, text) IS
'encrypt binary data with a Vault Transit key; returns a vault:vN: ciphertext';

CREATE FUNCTION vault_decrypt(ciphertext text, key text, context text DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', $$pg_vault_decrypt_text$$
LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION vault_decrypt(text, text, text) IS
'decrypt a Vault Transit ciphertext to text; an error if the result is not valid in the database encoding';

CREATE FUNCTION vault_decrypt_bytea(ciphertext text, key text, context text DEFAULT NULL)
RETURNS bytea
AS 'MODULE_PATHNAME', $$pg_vault_decrypt_bytea$$
LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION vault_decrypt_bytea(text, text, text) IS
'decrypt a Vault Transit ciphertext to binary data';

CREATE FUNCTION vault_rewrap(ciphertext text, key text, context text DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', $$pg_vault_rewrap$$
LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION vault_rewrap(text, text, text) IS
're-encrypt a Vault Transit ciphertext under the key''s latest version without revealing the plaintext';

CREATE FUNCTION vault_hmac(input text, key text, algorithm text DEFAULT 'sha2-256')
RETURNS text
AS 'MODULE_PATHNAME', $$pg_vault_hmac$$
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION vault_hmac(text, text, text) IS
'HMAC of text with a Vault Transit key (vault:vN: form), for blind indexes';

CREATE FUNCTION vault_hmac(input bytea, key text, algorithm text DEFAULT 'sha2-256')
RETURNS text
AS 'MODULE_PATHNAME', $$pg_vault_hmac$$
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION vault_hmac(bytea, text, text) IS
'HMAC of binary data with a Vault Transit key (vault:vN: form)';

-- ---- Transit: arrays, vault.batch_size items per request ----

CREATE FUNCTION vault_encrypt_batch(plaintexts text[], key text, contexts text[] DEFAULT NULL)
RETURNS text[]
AS 'MODULE_PATHNAME', $$pg_vault_encrypt_batch$$
LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION vault_encrypt_batch(text[], text, text[]) IS
'encrypt an array of text in order, NULLs kept; contexts, if given, has one per element';

CREATE FUNCTION vault_encrypt_batch(plaintexts bytea[], key text, contexts text[] DEFAULT NULL)
RETURNS text[]
AS 'MODULE_PATHNAME', $$pg_vault_encrypt_batch$$
LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION vault_encrypt_batch(bytea[], text, text[]) IS
'encrypt an array of binary values in order, NULLs kept';

CREATE FUNCTION vault_decrypt_batch(ciphertexts text[], key text, contexts text[] DEFAULT NULL)
RETURNS text[]
AS 'MODULE_PATHNAME', $$pg_vault_decrypt_batch$$
LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION vault_decrypt_batch(text[], text, text[]) IS
'decrypt an array of ciphertexts to text in order, NULLs kept';

CREATE FUNCTION vault_decrypt_bytea_batch(ciphertexts text[], key text, contexts text[] DEFAULT NULL)
RETURNS bytea[]
AS 'MODULE_PATHNAME', $$pg_vault_decrypt_bytea_batch$$
LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION vault_decrypt_bytea_batch(text[], text, text[]) IS
'decrypt an array of ciphertexts to binary values in order, NULLs kept';

CREATE FUNCTION vault_rewrap_batch(ciphertexts text[], key text, contexts text[] DEFAULT NULL)
RETURNS text[]
AS 'MODULE_PATHNAME', $$pg_vault_rewrap_batch$$
LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION vault_rewrap_batch(text[], text, text[]) IS
'rewrap an array of ciphertexts under the key''s latest version, in order, NULLs kept';

CREATE FUNCTION vault_hmac_batch(inputs text[], key text, algorithm text DEFAULT 'sha2-256')
RETURNS text[]
AS 'MODULE_PATHNAME', $$pg_vault_hmac_batch$$
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION vault_hmac_batch(text[], text, text) IS
'HMACs of an array of text in order, NULLs kept';

CREATE FUNCTION vault_hmac_batch(inputs bytea[], key text, algorithm text DEFAULT 'sha2-256')
RETURNS text[]
AS 'MODULE_PATHNAME', $$pg_vault_hmac_batch$$
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION vault_hmac_batch(bytea[], text, text) IS
'HMACs of an array of binary values in order, NULLs kept';

-- ---- Transit: keys ----

CREATE FUNCTION vault_key_info(key text)
RETURNS jsonb
AS 'MODULE_PATHNAME', $$pg_vault_key_info$$
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION vault_key_info(text) IS
'a Vault Transit key''s settings and versions (no key material)';

CREATE FUNCTION vault_key_rotate(key text)
RETURNS integer
AS 'MODULE_PATHNAME', $$pg_vault_key_rotate$$
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION vault_key_rotate(text) IS
'add a new version to a Vault Transit key; returns the new latest version';

CREATE FUNCTION vault_key_config(key text,
								 min_decryption_version integer DEFAULT NULL,
								 min_encryption_version integer DEFAULT NULL,
								 deletion_allowed boolean DEFAULT NULL,
								 auto_rotate_period interval DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', $$pg_vault_key_config$$
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION vault_key_config(text, integer, integer, boolean, interval) IS
'change a Vault Transit key''s settings (NULL arguments are left as they are); returns the key''s info';

-- ---- KV version 2 ----

CREATE FUNCTION vault_kv(path text)
RETURNS jsonb
AS 'MODULE_PATHNAME', $$pg_vault_kv$$
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION vault_kv(text) IS
'the latest version of a Vault KV v2 secret';

CREATE FUNCTION vault_kv(path text, field text)
RETURNS text
AS 'MODULE_PATHNAME', $$pg_vault_kv_field$$
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION vault_kv(text, text) IS
'one field of the latest version of a Vault KV v2 secret (strings as they are, other values as JSON)';

CREATE FUNCTION vault_kv_version(path text, version integer)
RETURNS jsonb
AS 'MODULE_PATHNAME', $$pg_vault_kv_version$$
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION vault_kv_version(text, integer) IS
'a given version of a Vault KV v2 secret';

CREATE FUNCTION vault_kv_put(path text, data jsonb, cas integer DEFAULT NULL)
RETURNS integer
AS 'MODULE_PATHNAME', $$pg_vault_kv_put$$
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION vault_kv_put(text, jsonb, integer) IS
'write a new version of a Vault KV v2 secret (cas: 0 to create only, N to replace version N); returns the new version';

CREATE FUNCTION vault_kv_list(prefix text DEFAULT '')
RETURNS SETOF text
AS 'MODULE_PATHNAME', $$pg_vault_kv_list$$
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION vault_kv_list(text) IS
'keys under a Vault KV v2 prefix; folders end in "/"';

-- ---- Vault itself ----

CREATE FUNCTION vault_health()
RETURNS jsonb
AS 'MODULE_PATHNAME', $$pg_vault_health$$
LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION vault_health() IS
'Vault''s sys/health answer (unauthenticated): initialized, sealed, standby, version';

CREATE FUNCTION vault_token_info()
RETURNS jsonb
AS 'MODULE_PATHNAME', $$pg_vault_token_info$$
LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION vault_token_info() IS
'lookup-self of the token pg_vault uses: policies, ttl, expiry; never the token itself';

-- ---- privileges ----

REVOKE EXECUTE ON FUNCTION
	vault_encrypt(text, text, text), vault_encrypt(bytea, text, text),
	vault_decrypt(text, text, text), vault_decrypt_bytea(text, text, text),
	vault_rewrap(text, text, text),
	vault_hmac(text, text, text), vault_hmac(bytea, text, text),
	vault_encrypt_batch(text[], text, text[]), vault_encrypt_batch(bytea[], text, text[]),
	vault_decrypt_batch(text[], text, text[]), vault_decrypt_bytea_batch(text[], text, text[]),
	vault_rewrap_batch(text[], text, text[]),
	vault_hmac_batch(text[], text, text), vault_hmac_batch(bytea[], text, text),
	vault_key_info(text), vault_key_rotate(text),
	vault_key_config(text, integer, integer, boolean, interval),
	vault_kv(text), vault_kv(text, text), vault_kv_version(text, integer),
	vault_kv_put(text, jsonb, integer), vault_kv_list(text),
	vault_health(), vault_token_info()
FROM PUBLIC;

GRANT EXECUTE ON FUNCTION
	vault_encrypt(text, text, text), vault_encrypt(bytea, text, text),
	vault_encrypt_batch(text[], text, text[]), vault_encrypt_batch(bytea[], text, text[])
TO vault_encryptor;

GRANT EXECUTE ON FUNCTION
	vault_decrypt(text, text, text), vault_decrypt_bytea(text, text, text),
	vault_decrypt_batch(text[], text, text[]), vault_decrypt_bytea_batch(text[], text, text[])
TO vault_decryptor;

GRANT EXECUTE ON FUNCTION
	vault_hmac(text, text, text), vault_hmac(bytea, text, text),
	vault_hmac_batch(text[], text, text), vault_hmac_batch(bytea[], text, text)
TO vault_hasher;

GRANT EXECUTE ON FUNCTION
	vault_kv(text), vault_kv(text, text), vault_kv_version(text, integer),
	vault_kv_list(text)
TO vault_kv_reader;

GRANT EXECUTE ON FUNCTION vault_kv_put(text, jsonb, integer) TO vault_kv_writer;

GRANT EXECUTE ON FUNCTION
	vault_rewrap(text, text, text), vault_rewrap_batch(text[], text, text[]),
	vault_key_info(text), vault_key_rotate(text),
	vault_key_config(text, integer, integer, boolean, interval),
	vault_token_info()
TO vault_admin;

GRANT EXECUTE ON FUNCTION vault_health()
TO vault_encryptor, vault_decryptor, vault_hasher, vault_kv_reader,
   vault_kv_writer, vault_admin;

DO $$
BEGIN
	EXECUTE pg_catalog.format(
		'GRANT USAGE ON SCHEMA %I TO vault_encryptor, vault_decryptor, vault_hasher, '
		'vault_kv_reader, vault_kv_writer, vault_admin',
		'@extschema@');
END
$$;

-- ==== dynamic database credentials (src/creds.c) ===========================
/*
 * Vault's database secrets engine: short-lived database users that Vault
 * creates on request and drops when their lease is revoked or expires.
 *
 *   vault_credentials  vault_db_creds, vault_lease_renew, vault_lease_revoke,
 *                      vault_lease_lookup (and vault_health)
 *
 * Membership in vault_credentials lets a role obtain any credentials that
 * pg_vault's Vault token may read, and renew or revoke any lease that token
 * may touch: grant it like the database roles those credentials stand for.
 * The token needs "read" on <mount>/creds/<role> and "update" on
 * sys/leases/renew, sys/leases/lookup (both in Vault's default policy) and
 * sys/leases/revoke.
 *
 * The password vault_db_creds returns is a live credential.  pg_vault never
 * writes it into a message, at any log level, and wipes the copies it
 * holds; PostgreSQL logs statement text, never results.  So:
 *   - do not log or print the rows in the calling application;
 *   - do not pass the password into the text of another statement (a
 *     connection string, CREATE USER MAPPING ...): log_statement and
 *     log_min_error_statement would write it to the server log, and
 *     pg_stat_activity shows it while the statement runs;
 *   - do not store it in a table; use SSL between client and server.
 * PostgreSQL also logs the statements Vault runs to create the user, password
 * included, if log_statement is 'ddl' or 'all' for Vault's connection: keep
 * it 'none' for the role Vault connects as, or set the connection's
 * password_authentication to scram-sha-256 (Vault then sends a verifier).
 *
 * Nothing here is transactional: credentials issued in a transaction that
 * rolls back stay valid until their lease is revoked or expires.
 *
 * Revocation runs the Vault role's revocation_statements, or Vault's default
 * revocation (REVOKE of its privileges, then DROP ROLE).  DROP ROLE neither
 * waits for nor terminates the role's open sessions: they stay connected
 * until they disconnect, but whatever needs the role's privileges fails
 * ("permission denied"; current_user raises "invalid role OID"), and no new
 * login succeeds.  A role whose sessions must end at once puts
 *   SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{{name}}';
 * before DROP ROLE in its revocation_statements.
 */

DO $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'vault_credentials') THEN
		CREATE ROLE vault_credentials NOLOGIN;
	END IF;
END
$$;

CREATE FUNCTION vault_db_creds(role text, mount text DEFAULT 'database')
RETURNS TABLE(username text, password text, lease_id text,
			  lease_duration integer, renewable boolean)
AS 'MODULE_PATHNAME', $$pg_vault_db_creds$$
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE ROWS 1;
COMMENT ON FUNCTION vault_db_creds(text, text) IS
'new database credentials from Vault''s database engine (GET <mount>/creds/<role>): username, password, lease_id, lease_duration in seconds, renewable; never log the password';

CREATE FUNCTION vault_lease_renew(lease_id text, increment interval DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', $$pg_vault_lease_renew$$
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION vault_lease_renew(text, interval) IS
'renew a Vault lease by increment (NULL: Vault''s choice), capped at its max TTL; returns {lease_id, lease_duration, renewable, warnings}';

CREATE FUNCTION vault_lease_revoke(lease_id text)
RETURNS void
AS 'MODULE_PATHNAME', $$pg_vault_lease_revoke$$
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION vault_lease_revoke(text) IS
'revoke a Vault lease now (sync): for database credentials, the user is dropped before this returns';

CREATE FUNCTION vault_lease_lookup(lease_id text)
RETURNS jsonb
AS 'MODULE_PATHNAME', $$pg_vault_lease_lookup$$
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION vault_lease_lookup(text) IS
'a Vault lease''s id, issue_time, expire_time, last_renewal, renewable and ttl (seconds left)';

REVOKE EXECUTE ON FUNCTION
	vault_db_creds(text, text), vault_lease_renew(text, interval),
	vault_lease_revoke(text), vault_lease_lookup(text)
FROM PUBLIC;

GRANT EXECUTE ON FUNCTION
	vault_db_creds(text, text), vault_lease_renew(text, interval),
	vault_lease_revoke(text), vault_lease_lookup(text), vault_health()
TO vault_credentials;

DO $$
BEGIN
	EXECUTE pg_catalog.format('GRANT USAGE ON SCHEMA %I TO vault_credentials', '@extschema@');
END
$$;
-- ==== end of dynamic database credentials ==================================
