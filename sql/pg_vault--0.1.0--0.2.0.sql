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

-- ==== column procedures ====================================================
-- vault_column_rewrite reports progress every vault.progress_interval
-- (0.1.0: every second, always).
/*
 * The loop behind vault_encrypt_column and vault_rewrap_column: walks the
 * table in windows of blocks (TID range scans), takes the rows still to do,
 * sends them batch_size at a time through the batch API and writes each
 * result back only where the row still holds the value that was sent,
 * committing after every batch; then counts what is left and makes another
 * pass while passes make progress.
 */
CREATE OR REPLACE PROCEDURE vault_column_rewrite(tbl regclass, col name, key text,
									  batch_size integer, hmac_col name,
									  rewrap boolean)
LANGUAGE plpgsql
AS $proc$
DECLARE
	verb text := CASE WHEN rewrap THEN 'vault_rewrap_column' ELSE 'vault_encrypt_column' END;
	done_word text := CASE WHEN rewrap THEN 'rewrapped' ELSE 'encrypted' END;
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

	IF rewrap THEN
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
		RAISE NOTICE '%: % rows of %.% to encrypt', verb, remaining, target, col;
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
COMMENT ON PROCEDURE vault_column_rewrite(regclass, name, text, integer, name, boolean) IS
'the batch loop behind vault_encrypt_column and vault_rewrap_column; call those';
