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

-- the 0.1.0 form, kept for callers of it
CREATE OR REPLACE PROCEDURE vault_column_rewrite(tbl regclass, col name, key text,
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
