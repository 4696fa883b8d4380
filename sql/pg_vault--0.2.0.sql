/* pg_vault 0.2.0: HashiCorp Vault (Transit, KV v2) from SQL */

\echo Use "CREATE EXTENSION pg_vault" to load this file. \quit

/*
 * Privileges
 * ----------
 * Every function below is revoked from PUBLIC.  The extension creates, if
 * they do not exist yet (see below for when an existing one is refused),
 * NOLOGIN roles that each hold one kind of access:
 *
 *   vault_encryptor   vault_encrypt, vault_encrypt_batch,
 *                     vault_envelope_encrypt, vault_envelope_encrypt_batch
 *   vault_decryptor   vault_decrypt, vault_decrypt_bytea and their batches,
 *                     vault_envelope_decrypt, vault_envelope_decrypt_bytea
 *                     and their batches
 *   vault_hasher      vault_hmac, vault_hmac_batch (blind indexes)
 *   vault_kv_reader   vault_kv, vault_kv_version, vault_kv_list
 *   vault_kv_writer   vault_kv_put
 *   vault_admin       vault_rewrap, vault_rewrap_batch, vault_key_info,
 *                     vault_key_rotate, vault_key_config, vault_token_info,
 *                     vault_envelope_rewrap_keys, vault_envelope_retire_key,
 *                     vault_envelope_delete_key, vault_envelope_key_status
 *
 * No role may read vault_envelope_keys (the wrapped data keys) itself: the
 * envelope functions read and write it as the extension's owner.
 *   vault_credentials vault_db_creds, vault_lease_renew, vault_lease_revoke,
 *                     vault_lease_lookup (see "dynamic database credentials")
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

/*
 * A role of that name that already exists is taken over only when nothing
 * about it can turn the grants below into someone else's privileges: it
 * cannot log in, has no password and no role attributes, is a member of no
 * role, no one but a superuser holds ADMIN on it, it owns and holds nothing
 * in this database (but USAGE on this schema, which an earlier pg_vault
 * here granted), and it has members only if pg_vault made it (the comment
 * it sets).  Otherwise a role made in advance, by a CREATEROLE user say,
 * would silently receive decrypt or credentials access.
 */
DO $$
DECLARE
	marker constant text := 'pg_vault privilege role (made by CREATE EXTENSION pg_vault)';
	r text;
	why text;
BEGIN
	FOREACH r IN ARRAY ARRAY['vault_encryptor', 'vault_decryptor', 'vault_hasher',
							 'vault_kv_reader', 'vault_kv_writer', 'vault_admin',
							 'vault_credentials']
	LOOP
		SELECT CASE
			WHEN a.rolcanlogin THEN 'It can log in'
			WHEN a.rolpassword IS NOT NULL THEN 'It has a password'
			WHEN a.rolsuper OR a.rolcreaterole OR a.rolcreatedb OR a.rolreplication OR a.rolbypassrls
				THEN 'It has role attributes (SUPERUSER, CREATEROLE, CREATEDB, REPLICATION or BYPASSRLS)'
			WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_auth_members m WHERE m.member = a.oid)
				THEN 'It is a member of other roles'
			WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_auth_members m
						 JOIN pg_catalog.pg_authid g ON g.oid = m.member
						 WHERE m.roleid = a.oid AND m.admin_option AND NOT g.rolsuper)
				THEN 'A role other than a superuser holds ADMIN OPTION on it'
			WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_auth_members m WHERE m.roleid = a.oid)
				 AND pg_catalog.shobj_description(a.oid, 'pg_authid') IS DISTINCT FROM marker
				THEN 'It has members, and pg_vault did not make it'
			WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_shdepend d
						 WHERE d.refclassid = 'pg_catalog.pg_authid'::pg_catalog.regclass
						   AND d.refobjid = a.oid AND d.deptype IN ('o', 'a')
						   AND d.dbid IN (0, (SELECT oid FROM pg_catalog.pg_database
											  WHERE datname = pg_catalog.current_database()))
						   AND NOT (d.classid = 'pg_catalog.pg_namespace'::pg_catalog.regclass
									AND d.objid = '@extschema@'::pg_catalog.regnamespace
									AND d.deptype = 'a'))
				THEN 'It owns objects or holds privileges in this database'
		END
		INTO why
		FROM pg_catalog.pg_authid a WHERE a.rolname = r;
		IF NOT FOUND THEN
			EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', r);
			EXECUTE pg_catalog.format('COMMENT ON ROLE %I IS %L', r, marker);
		ELSIF why IS NOT NULL THEN
			RAISE EXCEPTION 'role "%" already exists, and pg_vault cannot take it over', r
				USING ERRCODE = 'duplicate_object',
					  DETAIL = why || '.  pg_vault grants its privileges to this role.',
					  HINT = pg_catalog.format('Drop the role (DROP ROLE %I) or strip it of what the detail names, '
											   'then run CREATE EXTENSION pg_vault again.', r);
		ELSE
			-- fit: from now on pg_vault's own, members and all
			EXECUTE pg_catalog.format('COMMENT ON ROLE %I IS %L', r, marker);
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
LANGUAGE C STRICT STABLE PARALLEL SAFE;
-- STABLE: within a statement the key's latest version does not change, so
-- "WHERE ssn_hmac = vault_hmac('123-45-6789', 'user-data')" computes the HMAC
-- once and uses the blind index's btree.
COMMENT ON FUNCTION vault_hmac(text, text, text) IS
'HMAC of text with a Vault Transit key (vault:vN: form), for blind indexes';

CREATE FUNCTION vault_hmac(input bytea, key text, algorithm text DEFAULT 'sha2-256')
RETURNS text
AS 'MODULE_PATHNAME', $$pg_vault_hmac$$
LANGUAGE C STRICT STABLE PARALLEL SAFE;
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

-- ==== encrypted columns (src/columns.c) ====================================
/*
 * Columns that hold only Vault ciphertexts, filled by a trigger or by the
 * application, found through blind indexes, migrated in place and rewrapped
 * after a key rotation, in batches that commit as they go.
 *
 * The domain.  vault_ciphertext is text that must look like a Transit
 * ciphertext (vault:v<N>:<base64>).  A plaintext is refused with 23514,
 *   value for domain vault_ciphertext violates check constraint "vault_ciphertext_check"
 * Use it for columns the application fills with vault_encrypt() itself.
 *
 * The trigger.  One declaration per table names the key, then each column
 * as column[:blind_index_column][@other_key][!envelope] (!envelope: the
 * column gets envelope ciphertexts, pgv1:, see "envelope encryption"; its
 * blind index is still a Transit HMAC):
 *
 *   CREATE TABLE users (
 *       id            bigserial PRIMARY KEY,
 *       email         text NOT NULL,
 *       ssn           text CHECK (ssn::vault_ciphertext IS NOT NULL OR ssn IS NULL),
 *       ssn_hmac      text,
 *       payment_token text CHECK (payment_token::vault_ciphertext IS NOT NULL OR payment_token IS NULL)
 *   );
 *   CREATE INDEX ON users (ssn_hmac);
 *   CREATE TRIGGER a_vault_encrypt BEFORE INSERT OR UPDATE ON users FOR EACH ROW
 *       EXECUTE FUNCTION vault_encrypt_columns('user-data', 'ssn:ssn_hmac',
 *                                              'payment_token@payment-data');
 *
 *   INSERT INTO users (email, ssn, payment_token) VALUES ('a@example.com', '123-45-6789', 'tok_1');
 *   SELECT id FROM users WHERE ssn_hmac = vault_hmac('123-45-6789', 'user-data');
 *
 * The lookup computes the HMAC once (vault_hmac() is STABLE) and finds the
 * row through the btree index.
 * On INSERT and UPDATE it replaces each plaintext in those columns by its
 * ciphertext and sets the blind index to vault_hmac(plaintext, key).  A
 * value that already is a ciphertext is kept as it is, with the blind index
 * as written: updating other columns, or inserting values encrypted by the
 * application, costs no Vault request.  A NULL column gets a NULL blind
 * index.  Columns are text, varchar or domains over them.
 *
 * PostgreSQL checks a column's domain when the value is assigned, before
 * any BEFORE trigger runs, so a column the trigger encrypts is declared
 * text, and the domain is checked after the trigger by the table constraint
 * above (same SQLSTATE and message).  That constraint also refuses the
 * plaintext when the trigger does not fire (disabled, or
 * session_replication_role = replica).
 *
 * Bulk writes: a multi-row INSERT ... SELECT or VALUES (without RETURNING,
 * ON CONFLICT or check options) and COPY FROM do not pay a request per row.
 * The trigger holds each row with a plaintext back (nothing with a
 * plaintext is written) and every vault.batch_size rows, and at the end of
 * the statement, encrypts them through the batch API and inserts them in
 * one statement; the command tag counts them.  A failure fails the
 * statement, and nothing of it is committed.  Rows go one at a time (still
 * correct, only slower) on partitions, tables with row security,
 * statement-level INSERT triggers or transition tables, for a role without
 * INSERT on the whole table, and when another BEFORE INSERT row trigger
 * fires before this one: triggers fire in name order, hence a_vault_encrypt.
 * UPDATEs go one row at a time.
 *
 * The trigger calls Vault with pg_vault's token, whichever role writes the
 * row: the table's INSERT and UPDATE grants decide who may encrypt through
 * it.  Creating the trigger needs EXECUTE on vault_encrypt_columns()
 * (vault_encryptor).
 *
 * Migration of an existing table whose column holds plaintexts (create the
 * trigger first, so that new writes arrive encrypted; the blind index needs
 * vault_hasher too):
 *
 *   CALL vault_encrypt_column('users', 'ssn', 'user-data', 1000, 'ssn_hmac');
 *   ALTER TABLE users ADD CHECK (ssn::vault_ciphertext IS NOT NULL OR ssn IS NULL);
 *
 * Key rotation:
 *
 *   SELECT vault_key_rotate('user-data');                          -- say 3
 *   CALL vault_rewrap_column('users', 'ssn', 'user-data', 1000, 'ssn_hmac');
 *   SELECT vault_rows_below_version('users', 'ssn', 3);             -- 0
 *   SELECT vault_key_config('user-data', min_decryption_version => 3);
 *
 * Both procedures work in batches of batch_size rows, each encrypted or
 * rewrapped through one batch request and committed; they report progress
 * (at most once every vault.progress_interval, default 1s; 0 for none) and
 * a summary as NOTICEs, and must be CALLed outside a transaction block.
 * Each write is a compare-and-swap on the row's ctid and old value: a row
 * that another session changed meanwhile is left to it and picked up again
 * by the next pass, so no concurrent update is lost.  After a crash or a
 * cancel, CALL again: only rows not done yet are touched.  Blind indexes
 * are HMACs with a key version too (vault:v<N>:...): after a rotation,
 * vault_hmac() gives latest-version HMACs, which match only rows whose
 * blind index was computed with that version.  Given its blind-index
 * column, vault_rewrap_column recomputes it as well (this decrypts inside
 * the server, so the caller needs vault_decryptor and vault_hasher too).
 *
 * A decrypting view for the roles allowed to read plaintexts:
 *
 *   CREATE VIEW users_clear WITH (security_barrier) AS
 *       SELECT id, email, vault_decrypt(ssn, 'user-data') AS ssn FROM users;
 *   GRANT SELECT ON users_clear TO support, auditor;
 *   GRANT vault_decryptor TO auditor;
 *
 * The view reads the table with its owner's rights, but the functions in it
 * run with the reader's: auditor sees plaintexts, support gets 42501
 * (permission denied for function vault_decrypt).
 *
 * Privileges: vault_encrypt_columns() and vault_encrypt_column to
 * vault_encryptor; vault_rewrap_column to vault_admin; the check functions
 * to both; vault_is_ciphertext() and vault_ciphertext_version(), which call
 * no Vault, to every Transit role.  The domain is usable by everyone.
 */

CREATE DOMAIN vault_ciphertext AS text
	CONSTRAINT vault_ciphertext_check
	CHECK (VALUE OPERATOR(pg_catalog.~) '^vault:v[0-9]{1,9}:[A-Za-z0-9+/]+={0,2}$');
COMMENT ON DOMAIN vault_ciphertext IS
'a Vault Transit ciphertext (vault:v<N>:<base64>); plaintext is refused';

CREATE FUNCTION vault_is_ciphertext(value text)
RETURNS boolean
AS 'MODULE_PATHNAME', $$pg_vault_is_ciphertext$$
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION vault_is_ciphertext(text) IS
'whether a value has the form of a Vault Transit ciphertext, as vault_ciphertext requires';

CREATE FUNCTION vault_ciphertext_version(value text)
RETURNS integer
AS 'MODULE_PATHNAME', $$pg_vault_ciphertext_version$$
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION vault_ciphertext_version(text) IS
'the key version N of a vault:v<N>: ciphertext or HMAC; NULL for anything else';

CREATE FUNCTION vault_encrypt_columns()
RETURNS trigger
AS 'MODULE_PATHNAME', $$pg_vault_encrypt_columns$$
LANGUAGE C;
COMMENT ON FUNCTION vault_encrypt_columns() IS
'BEFORE INSERT OR UPDATE row trigger: vault_encrypt_columns(key, ''column[:blind_index_column][@key]'', ...) encrypts plaintexts, keeps ciphertexts, fills blind indexes; batches multi-row INSERT and COPY';

CREATE FUNCTION vault_column_versions(tbl regclass, col name)
RETURNS TABLE(version integer, rows bigint)
LANGUAGE plpgsql STABLE
AS $fn$
BEGIN
	RETURN QUERY EXECUTE pg_catalog.format(
		'SELECT @extschema@.vault_ciphertext_version(%1$I::text), pg_catalog.count(*) '
		'FROM %2$s WHERE %1$I IS NOT NULL GROUP BY 1 ORDER BY 1 NULLS FIRST',
		col, tbl);
END
$fn$;
COMMENT ON FUNCTION vault_column_versions(regclass, name) IS
'rows of a column per ciphertext key version (NULL: a value that is not a ciphertext), NULLs left out';

CREATE FUNCTION vault_rows_below_version(tbl regclass, col name, version integer)
RETURNS bigint
LANGUAGE plpgsql STABLE STRICT
AS $fn$
DECLARE
	n bigint;
BEGIN
	EXECUTE pg_catalog.format(
		'SELECT pg_catalog.count(*) FROM %2$s WHERE @extschema@.vault_ciphertext_version(%1$I::text) < $1',
		col, tbl) INTO n USING version;
	RETURN n;
END
$fn$;
COMMENT ON FUNCTION vault_rows_below_version(regclass, name, integer) IS
'how many ciphertexts of a column are below a key version: 0 before raising min_decryption_version to it';

-- the 0.1.0 form, kept for callers of it
CREATE PROCEDURE vault_column_rewrite(tbl regclass, col name, key text,
									  batch_size integer, hmac_col name,
									  rewrap boolean)
LANGUAGE plpgsql
AS $proc$
BEGIN
	CALL @extschema@.vault_column_rewrite(tbl, col, key, batch_size, hmac_col,
										  CASE WHEN rewrap THEN 'rewrap' ELSE 'encrypt' END);
END
$proc$;
COMMENT ON PROCEDURE vault_column_rewrite(regclass, name, text, integer, name, boolean) IS
'the batch loop behind vault_encrypt_column and vault_rewrap_column; call those';

CREATE PROCEDURE vault_encrypt_column(tbl regclass, col name, key text,
									  batch_size integer DEFAULT 1000,
									  hmac_col name DEFAULT NULL)
LANGUAGE plpgsql
AS $proc$
BEGIN
	CALL @extschema@.vault_column_rewrite(tbl, col, key, batch_size, hmac_col, false);
END
$proc$;
COMMENT ON PROCEDURE vault_encrypt_column(regclass, name, text, integer, name) IS
'encrypt the plaintexts of a column in place (and fill its blind index), batch_size rows per request and commit; resumable, safe with concurrent writes; CALL outside a transaction block';

CREATE PROCEDURE vault_rewrap_column(tbl regclass, col name, key text,
									 batch_size integer DEFAULT 1000,
									 hmac_col name DEFAULT NULL)
LANGUAGE plpgsql
AS $proc$
BEGIN
	CALL @extschema@.vault_column_rewrite(tbl, col, key, batch_size, hmac_col, true);
END
$proc$;
COMMENT ON PROCEDURE vault_rewrap_column(regclass, name, text, integer, name) IS
'rewrap the ciphertexts of a column below the key''s latest version (and recompute its blind index), batch_size rows per request and commit; resumable, safe with concurrent writes; CALL outside a transaction block';

REVOKE EXECUTE ON FUNCTION
	vault_is_ciphertext(text), vault_ciphertext_version(text),
	vault_encrypt_columns(), vault_column_versions(regclass, name),
	vault_rows_below_version(regclass, name, integer)
FROM PUBLIC;
REVOKE EXECUTE ON PROCEDURE
	vault_column_rewrite(regclass, name, text, integer, name, boolean),
	vault_encrypt_column(regclass, name, text, integer, name),
	vault_rewrap_column(regclass, name, text, integer, name)
FROM PUBLIC;

GRANT EXECUTE ON FUNCTION vault_encrypt_columns() TO vault_encryptor;
GRANT EXECUTE ON PROCEDURE vault_encrypt_column(regclass, name, text, integer, name)
TO vault_encryptor;
GRANT EXECUTE ON PROCEDURE vault_rewrap_column(regclass, name, text, integer, name)
TO vault_admin;
GRANT EXECUTE ON PROCEDURE vault_column_rewrite(regclass, name, text, integer, name, boolean)
TO vault_encryptor, vault_admin;
GRANT EXECUTE ON FUNCTION
	vault_column_versions(regclass, name), vault_rows_below_version(regclass, name, integer)
TO vault_encryptor, vault_admin;
GRANT EXECUTE ON FUNCTION vault_is_ciphertext(text), vault_ciphertext_version(text)
TO vault_encryptor, vault_decryptor, vault_hasher, vault_admin;
-- ==== end of encrypted columns =============================================

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
 * vault_envelope_key_status view to vault_admin; vault_envelope_column_keys
 * to vault_encryptor and vault_admin; vault_envelope_key_id and
 * vault_cache_clear to every Transit role.
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

CREATE FUNCTION vault_envelope_delete_key(dek_id bigint, force boolean DEFAULT false)
RETURNS boolean
AS 'MODULE_PATHNAME', $$pg_vault_envelope_delete_key$$
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION vault_envelope_delete_key(bigint, boolean) IS
'crypto-shred: remove a data key''s wrapped form, so that exactly the values encrypted under it can no longer be decrypted; only a key retired vault.envelope_key_ttl ago, unless force';

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
	vault_envelope_retire_key(bigint), vault_envelope_delete_key(bigint, boolean),
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
	vault_envelope_delete_key(bigint, boolean)
TO vault_admin;

GRANT EXECUTE ON FUNCTION vault_envelope_key_id(text), vault_cache_clear()
TO vault_encryptor, vault_decryptor, vault_hasher, vault_admin;
/*
 * Envelope columns, through the batch loop of vault_encrypt_column
 * (vault_column_rewrite): plaintexts encrypted in place in envelope form;
 * Transit ciphertexts moved to envelope form and back; and, for a data key
 * suspected compromised, its rows re-encrypted under a fresh one (the key
 * is retired first, so that nothing new is encrypted under it).  Each is
 * resumable and safe with concurrent writes, like vault_encrypt_column;
 * values with a context (pgv1c:) are left as they are.
 */
/*
 * The loop behind vault_encrypt_column, vault_rewrap_column and the
 * envelope procedures (mode: encrypt, rewrap, envelope, reencrypt,
 * to_envelope, to_transit): walks the
 * table in windows of blocks (TID range scans), takes the rows still to do,
 * sends them batch_size at a time through the batch API and writes each
 * result back only where the row still holds the value that was sent,
 * committing after every batch; then counts what is left and makes another
 * pass while passes make progress.
 */
CREATE PROCEDURE vault_column_rewrite(tbl regclass, col name, key text,
									  batch_size integer, hmac_col name,
									  mode text, dek_id bigint DEFAULT NULL)
LANGUAGE plpgsql
AS $proc$
DECLARE
	rewrap boolean := mode = 'rewrap';
	verb text := CASE mode WHEN 'rewrap' THEN 'vault_rewrap_column' WHEN 'encrypt' THEN 'vault_encrypt_column'
		WHEN 'envelope' THEN 'vault_envelope_encrypt_column' WHEN 'reencrypt' THEN 'vault_envelope_reencrypt_column'
		WHEN 'to_envelope' THEN 'vault_column_to_envelope' WHEN 'to_transit' THEN 'vault_column_to_transit' END;
	done_word text := CASE WHEN mode = 'rewrap' THEN 'rewrapped' WHEN mode IN ('encrypt', 'envelope') THEN 'encrypted'
		ELSE 're-encrypted' END;
	rel text;
	target text;
	c name;
	typ oid;
	base oid;
	latest integer;
	pending text;
	count_sql text;
	select_sql text;
	update_sql text;
	per_page double precision;
	remaining bigint;
	left_over bigint;
	done bigint := 0;
	skipped bigint := 0;
	batches bigint := 0;
	passes integer := 0;
	pass_done bigint;
	blocks bigint;
	pos bigint;
	win bigint;
	first_win bigint;
	tids tid[];
	olds text[];
	news text[];
	plains text[];
	macs text[];
	got integer;
	i integer;
	j integer;
	n bigint;
	t0 timestamptz := pg_catalog.clock_timestamp();
	last_report timestamptz := t0;
	-- vault.progress_interval: 0 (or 0s) reports no progress
	progress interval := coalesce(pg_catalog.current_setting('vault.progress_interval', true), '1s')::interval;
	secs double precision;
BEGIN
	IF verb IS NULL THEN
		RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
			MESSAGE = pg_catalog.format('vault_column_rewrite: unknown mode "%s"', mode);
	END IF;
	IF hmac_col IS NOT NULL AND mode NOT IN ('encrypt', 'rewrap', 'envelope') THEN
		RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
			MESSAGE = pg_catalog.format('%s: the blind index stays as it is (the plaintexts do not change)', verb);
	END IF;
	IF tbl IS NULL OR col IS NULL OR key IS NULL THEN
		RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
			MESSAGE = pg_catalog.format('%s: table, column and key must not be NULL', verb);
	END IF;
	IF batch_size IS NULL OR batch_size < 1 THEN
		RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
			MESSAGE = pg_catalog.format('%s: batch_size must be at least 1', verb);
	END IF;
	IF hmac_col = col THEN
		RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
			MESSAGE = pg_catalog.format('%s: column "%s" cannot be its own blind index', verb, col);
	END IF;
	SELECT pg_catalog.format('%I.%I', ns.nspname, cl.relname), cl.relname
	  INTO rel, target
	  FROM pg_catalog.pg_class cl JOIN pg_catalog.pg_namespace ns ON ns.oid = cl.relnamespace
	 WHERE cl.oid = tbl;
	FOREACH c IN ARRAY ARRAY[col, hmac_col] LOOP
		CONTINUE WHEN c IS NULL;
		SELECT a.atttypid INTO typ FROM pg_catalog.pg_attribute a
		 WHERE a.attrelid = tbl AND a.attname OPERATOR(pg_catalog.=) c
		   AND a.attnum > 0 AND NOT a.attisdropped;
		IF NOT FOUND THEN
			RAISE EXCEPTION USING ERRCODE = 'undefined_column',
				MESSAGE = pg_catalog.format('column "%s" of relation "%s" does not exist', c, target);
		END IF;
		base := typ;
		WHILE (SELECT t.typtype = 'd' FROM pg_catalog.pg_type t WHERE t.oid = base) LOOP
			SELECT t.typbasetype INTO base FROM pg_catalog.pg_type t WHERE t.oid = base;
		END LOOP;
		IF base NOT IN ('pg_catalog.text'::pg_catalog.regtype, 'pg_catalog.varchar'::pg_catalog.regtype) THEN
			RAISE EXCEPTION USING ERRCODE = 'datatype_mismatch',
				MESSAGE = pg_catalog.format('column "%s" of relation "%s" is of type %s, not text',
											c, target, pg_catalog.format_type(typ, NULL));
		END IF;
	END LOOP;

	IF mode = 'reencrypt' THEN
		-- envelope values without a context under one data key
		pending := pg_catalog.format(
			'(pg_catalog.starts_with(%1$I::text, ''pgv1:'') AND @extschema@.vault_envelope_key_id(%1$I::text) OPERATOR(pg_catalog.=) %2$s)',
			col, dek_id);
	ELSIF mode = 'to_envelope' THEN
		pending := pg_catalog.format('pg_catalog.starts_with(%I::text, ''vault:v'')', col);
	ELSIF mode = 'to_transit' THEN
		pending := pg_catalog.format('pg_catalog.starts_with(%I::text, ''pgv1:'')', col);
	ELSIF rewrap THEN
		latest := (@extschema@.vault_key_info(key) OPERATOR(pg_catalog.->>) 'latest_version')::integer;
		pending := pg_catalog.format('@extschema@.vault_ciphertext_version(%I::text) < %s', col, latest);
		IF hmac_col IS NOT NULL THEN
			pending := pg_catalog.format(
				'(%1$s OR (@extschema@.vault_is_ciphertext(%2$I::text) AND '
				'coalesce(@extschema@.vault_ciphertext_version(%3$I::text), 0) < %4$s))',
				pending, col, hmac_col, latest);
		END IF;
	ELSE
		pending := pg_catalog.format(
			'(%1$I IS NOT NULL AND NOT @extschema@.vault_is_ciphertext(%1$I::text))', col);
	END IF;
	count_sql := pg_catalog.format('SELECT pg_catalog.count(*) FROM %s WHERE %s', rel, pending);
	-- the rows of blocks [$1, $2): a TID range scan; before PostgreSQL 14,
	-- which has none, a TID scan of every line pointer those blocks can hold
	IF pg_catalog.current_setting('server_version_num')::integer >= 140000 THEN
		select_sql := pg_catalog.format(
			'SELECT pg_catalog.array_agg(ctid), pg_catalog.array_agg(%I::text) FROM %s '
			'WHERE ctid >= pg_catalog.format(''(%%s,0)'', $1)::tid '
			'AND ctid < pg_catalog.format(''(%%s,0)'', $2)::tid AND %s', col, rel, pending);
	ELSE
		select_sql := pg_catalog.format(
			'SELECT pg_catalog.array_agg(ctid), pg_catalog.array_agg(%I::text) FROM %s '
			'WHERE ctid OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT pg_catalog.format(''(%%s,%%s)'', b, o)::tid '
			'FROM pg_catalog.generate_series($1, $2 - 1) b, pg_catalog.generate_series(1, %s) o)) AND %s',
			col, rel, (pg_catalog.current_setting('block_size')::integer - 24) / 28, pending);
	END IF;
	update_sql := pg_catalog.format(
		'UPDATE %1$s AS t SET %2$I = u.new%3$s '
		'FROM ROWS FROM (pg_catalog.unnest($1::tid[]), pg_catalog.unnest($2::text[]), '
		'pg_catalog.unnest($3::text[]), pg_catalog.unnest($4::text[])) AS u(tid, old, new, mac) '
		'WHERE t.ctid OPERATOR(pg_catalog.=) u.tid AND t.%2$I::text OPERATOR(pg_catalog.=) u.old',
		rel, col,
		CASE WHEN hmac_col IS NULL THEN '' ELSE pg_catalog.format(', %I = u.mac', hmac_col) END);

	EXECUTE count_sql INTO remaining;
	IF rewrap THEN
		IF hmac_col IS NULL THEN
			RAISE NOTICE '%: % rows of %.% below version % (the key''s latest) to rewrap',
				verb, remaining, target, col, latest;
		ELSE
			RAISE NOTICE '%: % rows of %.% below version % (the key''s latest) in the column or its blind index %',
				verb, remaining, target, col, latest, hmac_col;
		END IF;
	ELSE
		RAISE NOTICE '%: % rows of %.% to %', verb, remaining, target, col,
			CASE WHEN mode IN ('encrypt', 'envelope') THEN 'encrypt' ELSE 're-encrypt' END;
	END IF;
	-- ends the caller's transaction: refused at once inside a transaction block
	COMMIT;

	-- a first window of blocks meant to hold about batch_size rows
	SELECT CASE WHEN cl.relpages > 0 AND cl.reltuples > 0 THEN cl.reltuples / cl.relpages END
	  INTO per_page FROM pg_catalog.pg_class cl WHERE cl.oid = tbl;
	first_win := greatest(1, (batch_size / coalesce(per_page, 64))::bigint);

	left_over := remaining;
	WHILE left_over > 0 LOOP
		passes := passes + 1;
		pass_done := 0;
		blocks := pg_catalog.pg_relation_size(tbl) / pg_catalog.current_setting('block_size')::bigint;
		pos := 0;
		win := first_win;
		WHILE pos < blocks LOOP
			EXECUTE select_sql INTO tids, olds USING pos, pos + win;
			pos := pos + win;
			got := coalesce(pg_catalog.cardinality(tids), 0);
			IF got < batch_size / 2 THEN
				win := least(win * 2, 131072);
			ELSIF got > batch_size * 2 THEN
				win := greatest(win / 2, 1);
			END IF;
			i := 1;
			WHILE i <= got LOOP
				j := least(got, i + batch_size - 1);
				macs := NULL;
				IF rewrap THEN
					news := @extschema@.vault_rewrap_batch(olds[i:j], key);
					IF hmac_col IS NOT NULL THEN
						plains := @extschema@.vault_decrypt_batch(news, key);
						macs := @extschema@.vault_hmac_batch(plains, key);
						plains := NULL;
					END IF;
				ELSIF mode = 'envelope' THEN
					news := @extschema@.vault_envelope_encrypt_batch(olds[i:j], key);
					IF hmac_col IS NOT NULL THEN
						macs := @extschema@.vault_hmac_batch(olds[i:j], key);
					END IF;
				ELSIF mode IN ('reencrypt', 'to_envelope') THEN
					IF mode = 'reencrypt' THEN
						plains := @extschema@.vault_envelope_decrypt_batch(olds[i:j]);
					ELSE
						plains := @extschema@.vault_decrypt_batch(olds[i:j], key);
					END IF;
					news := @extschema@.vault_envelope_encrypt_batch(plains, key);
					plains := NULL;
				ELSIF mode = 'to_transit' THEN
					plains := @extschema@.vault_envelope_decrypt_batch(olds[i:j]);
					news := @extschema@.vault_encrypt_batch(plains, key);
					plains := NULL;
				ELSE
					news := @extschema@.vault_encrypt_batch(olds[i:j], key);
					IF hmac_col IS NOT NULL THEN
						macs := @extschema@.vault_hmac_batch(olds[i:j], key);
					END IF;
				END IF;
				EXECUTE update_sql USING tids[i:j], olds[i:j], news, macs;
				GET DIAGNOSTICS n = ROW_COUNT;
				COMMIT;
				done := done + n;
				pass_done := pass_done + n;
				skipped := skipped + (j - i + 1) - n;
				batches := batches + 1;
				i := j + 1;
				IF progress > interval '0' AND pg_catalog.clock_timestamp() - last_report >= progress THEN
					RAISE NOTICE '%: %.%: % rows % so far, about % left',
						verb, target, col, done, done_word, greatest(remaining - done, 0);
					last_report := pg_catalog.clock_timestamp();
				END IF;
			END LOOP;
			olds := NULL;
		END LOOP;
		EXECUTE count_sql INTO left_over;
		-- rows that stay out of reach (changed again and again) wait for a later CALL
		EXIT WHEN pass_done = 0;
	END LOOP;

	secs := greatest(extract(epoch FROM pg_catalog.clock_timestamp() - t0), 0.001);
	RAISE NOTICE USING
		MESSAGE = pg_catalog.format('%s: %s.%s: %s rows %s, %s left',
									verb, target, col, done, done_word, left_over),
		DETAIL = pg_catalog.format('Batches: %s, passes over the table: %s, rows changed by other sessions meanwhile and retried: %s; %s s, %s rows/s.',
								   batches, passes, skipped, pg_catalog.round(secs::numeric, 2),
								   pg_catalog.round((done / secs)::numeric));
	IF left_over > 0 THEN
		RAISE WARNING '%: % rows of %.% are still to do: CALL it again', verb, left_over, target, col;
	END IF;
END
$proc$;
COMMENT ON PROCEDURE vault_column_rewrite(regclass, name, text, integer, name, text, bigint) IS
'the batch loop behind vault_encrypt_column, vault_rewrap_column and the envelope column procedures; call those';

CREATE PROCEDURE vault_envelope_encrypt_column(tbl regclass, col name, key text,
											   batch_size integer DEFAULT 1000,
											   hmac_col name DEFAULT NULL)
LANGUAGE plpgsql
AS $proc$
BEGIN
	CALL @extschema@.vault_column_rewrite(tbl, col, key, batch_size, hmac_col, 'envelope');
END
$proc$;
COMMENT ON PROCEDURE vault_envelope_encrypt_column(regclass, name, text, integer, name) IS
'envelope-encrypt the plaintexts of a column in place (and fill its Transit blind index), batch_size rows per commit; resumable; CALL outside a transaction block';

CREATE PROCEDURE vault_column_to_envelope(tbl regclass, col name, key text,
										  batch_size integer DEFAULT 1000)
LANGUAGE plpgsql
AS $proc$
BEGIN
	CALL @extschema@.vault_column_rewrite(tbl, col, key, batch_size, NULL, 'to_envelope');
END
$proc$;
COMMENT ON PROCEDURE vault_column_to_envelope(regclass, name, text, integer) IS
'move a column''s Transit ciphertexts (vault:vN:) of a key to envelope form under a data key of the same key; resumable; CALL outside a transaction block';

CREATE PROCEDURE vault_column_to_transit(tbl regclass, col name, key text,
										 batch_size integer DEFAULT 1000)
LANGUAGE plpgsql
AS $proc$
BEGIN
	CALL @extschema@.vault_column_rewrite(tbl, col, key, batch_size, NULL, 'to_transit');
END
$proc$;
COMMENT ON PROCEDURE vault_column_to_transit(regclass, name, text, integer) IS
'move a column''s envelope ciphertexts (pgv1:) to Transit ciphertexts of a key; resumable; CALL outside a transaction block';

CREATE PROCEDURE vault_envelope_reencrypt_column(tbl regclass, col name, dek_id bigint,
												 batch_size integer DEFAULT 1000)
LANGUAGE plpgsql
AS $proc$
DECLARE
	k text;
BEGIN
	SELECT s.transit_key INTO k FROM @extschema@.vault_envelope_key_status s
	 WHERE s.id OPERATOR(pg_catalog.=) dek_id AND s.deleted_at IS NULL;
	IF NOT FOUND THEN
		RAISE EXCEPTION USING ERRCODE = 'undefined_object',
			MESSAGE = pg_catalog.format('vault_envelope_reencrypt_column: no data key %s (or it was deleted)', dek_id);
	END IF;
	PERFORM @extschema@.vault_envelope_retire_key(dek_id);
	CALL @extschema@.vault_column_rewrite(tbl, col, k, batch_size, NULL, 'reencrypt', dek_id);
END
$proc$;
COMMENT ON PROCEDURE vault_envelope_reencrypt_column(regclass, name, bigint, integer) IS
'retire a data key and re-encrypt the column''s values under it with a fresh data key of the same Transit key; resumable; CALL outside a transaction block';

REVOKE EXECUTE ON PROCEDURE
	vault_column_rewrite(regclass, name, text, integer, name, text, bigint),
	vault_envelope_encrypt_column(regclass, name, text, integer, name),
	vault_column_to_envelope(regclass, name, text, integer),
	vault_column_to_transit(regclass, name, text, integer),
	vault_envelope_reencrypt_column(regclass, name, bigint, integer)
FROM PUBLIC;
GRANT EXECUTE ON PROCEDURE vault_column_rewrite(regclass, name, text, integer, name, text, bigint)
TO vault_encryptor, vault_admin;
GRANT EXECUTE ON PROCEDURE vault_envelope_encrypt_column(regclass, name, text, integer, name)
TO vault_encryptor;
GRANT EXECUTE ON PROCEDURE
	vault_column_to_envelope(regclass, name, text, integer),
	vault_column_to_transit(regclass, name, text, integer),
	vault_envelope_reencrypt_column(regclass, name, bigint, integer)
TO vault_admin;
CREATE FUNCTION vault_envelope_column_keys(tbl regclass, col name)
RETURNS TABLE(dek_id bigint, rows bigint)
LANGUAGE plpgsql STABLE
AS $fn$
BEGIN
	RETURN QUERY EXECUTE pg_catalog.format(
		'SELECT @extschema@.vault_envelope_key_id(%1$I::text), pg_catalog.count(*) '
		'FROM %2$s WHERE @extschema@.vault_envelope_key_id(%1$I::text) IS NOT NULL GROUP BY 1 ORDER BY 1',
		col, tbl);
END
$fn$;
COMMENT ON FUNCTION vault_envelope_column_keys(regclass, name) IS
'rows of a column per envelope data key (what crypto-shredding or re-encrypting a data key would touch); other values left out';
REVOKE EXECUTE ON FUNCTION vault_envelope_column_keys(regclass, name) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION vault_envelope_column_keys(regclass, name) TO vault_encryptor, vault_admin;
-- ==== end of envelope encryption ===========================================
