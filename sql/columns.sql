-- Encrypted columns: the vault_ciphertext domain, the vault_encrypt_columns
-- trigger (row by row and in bulk), blind-index lookups, migration and
-- rewrap procedures, the version checks and a decrypting view.  Keys get
-- fresh names on every run; ciphertexts are random, so the tests show
-- their shape and round trips.
\set VERBOSITY terse
-- the procedures' progress NOTICEs come with time, not rows: none here
SET vault.progress_interval = 0;
SELECT 'regress_c_' || md5(random()::text || clock_timestamp()::text) AS k \gset
SELECT 'regress_p_' || md5(random()::text || clock_timestamp()::text) AS pk \gset

-- outcome of a statement: 'ok' or its SQLSTATE and primary message
CREATE FUNCTION pg_temp.outcome(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE q;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, 'regress_[a-z]_[0-9a-f]+', 'KEY', 'g');
END
$$;

-- rows a statement reported (the command tag's count)
CREATE FUNCTION pg_temp.row_count(q text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
	n bigint;
BEGIN
	EXECUTE q;
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END
$$;

-- ---- the domain and the ciphertext tests ----
SELECT 'vault:v1:AAAA'::vault_ciphertext AS ok, NULL::vault_ciphertext IS NULL AS null_ok;
SELECT pg_temp.outcome($q$SELECT '123-45-6789'::vault_ciphertext$q$);
SELECT pg_temp.outcome($q$SELECT 'vault:v1:'::vault_ciphertext$q$);
SELECT pg_temp.outcome($q$SELECT 'vault:vx:AAAA'::vault_ciphertext$q$);
CREATE TEMP TABLE direct (id int, c vault_ciphertext);
SELECT pg_temp.outcome($q$INSERT INTO direct VALUES (1, 'plaintext')$q$);
SELECT pg_temp.outcome(format('INSERT INTO direct VALUES (1, vault_encrypt(%L, %L))', 'x', :'k'));
SELECT v, vault_is_ciphertext(v) AS is_ct, vault_ciphertext_version(v) AS version,
       vault_is_ciphertext(v) = (v ~ '^vault:v[0-9]{1,9}:[A-Za-z0-9+/]+={0,2}$') AS same_as_domain
FROM unnest(ARRAY['vault:v1:AAAA', 'vault:v12:ab+/cd==', 'vault:v3:abc===', 'vault:v:AAAA',
                  'vault:v1:', 'vault:v1:AA AA', 'Vault:v1:AAAA', 'vault:v1234567890:AA',
                  'vault:v123456789:AA', '', 'hello']) v;
SELECT vault_is_ciphertext(NULL) IS NULL AS strict_null;

-- ---- the trigger: arguments ----
CREATE TABLE people (
	id            bigserial PRIMARY KEY,
	email         text NOT NULL,
	ssn           text CHECK (ssn::vault_ciphertext IS NOT NULL OR ssn IS NULL),
	ssn_hmac      text,
	card          varchar(400) CHECK (card::vault_ciphertext IS NOT NULL OR card IS NULL),
	visits        int NOT NULL DEFAULT 0,
	n             int
);
CREATE INDEX people_ssn_hmac ON people (ssn_hmac);
CREATE TRIGGER bad BEFORE INSERT ON people FOR EACH ROW EXECUTE FUNCTION vault_encrypt_columns('k');
SELECT pg_temp.outcome($q$INSERT INTO people (email) VALUES ('x')$q$);
DROP TRIGGER bad ON people;
CREATE FUNCTION pg_temp.try_trigger(args text, timing text DEFAULT 'BEFORE INSERT', level text DEFAULT 'ROW')
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	r text;
BEGIN
	EXECUTE format('CREATE TRIGGER try %s ON people FOR EACH %s EXECUTE FUNCTION vault_encrypt_columns(%s)',
				   timing, level, args);
	r := pg_temp.outcome($q$INSERT INTO people (email, ssn) VALUES ('x', 'vault:v1:AAAA')$q$);
	EXECUTE 'DROP TRIGGER try ON people';
	DELETE FROM people;
	RETURN r;
END
$$;
SELECT pg_temp.try_trigger($a$'k', 'nope'$a$);
SELECT pg_temp.try_trigger($a$'k', 'visits'$a$);
SELECT pg_temp.try_trigger($a$'k', 'ssn:n'$a$);
SELECT pg_temp.try_trigger($a$'bad/key', 'ssn'$a$);
SELECT pg_temp.try_trigger($a$'k', 'ssn@'$a$);
SELECT pg_temp.try_trigger($a$'k', 'ssn:'$a$);
SELECT pg_temp.try_trigger($a$'k', ':ssn_hmac'$a$);
SELECT pg_temp.try_trigger($a$'k', 'ssn:ssn'$a$);
SELECT pg_temp.try_trigger($a$'k', 'ssn', 'ssn@other'$a$);
SELECT pg_temp.try_trigger($a$'k', 'ssn:ssn_hmac', 'card:ssn_hmac'$a$);
SELECT pg_temp.try_trigger($a$'k', 'ssn'$a$, 'AFTER INSERT');
SELECT pg_temp.try_trigger($a$'k', 'ssn'$a$, 'BEFORE INSERT', 'STATEMENT');
SELECT pg_temp.try_trigger($a$'k', 'ssn', 'card'$a$);
SELECT pg_temp.outcome('SELECT vault_encrypt_columns()');

-- ---- the trigger: one row at a time ----
SELECT 'card@' || :'pk' AS card_spec \gset
CREATE TRIGGER a_vault_encrypt BEFORE INSERT OR UPDATE ON people FOR EACH ROW
	EXECUTE FUNCTION vault_encrypt_columns(:'k', 'ssn:ssn_hmac', :'card_spec');
INSERT INTO people (email, ssn, card) VALUES ('ada@example.com', '123-45-6789', '4111 1111 1111 1111')
RETURNING left(ssn, 9) AS ssn, left(ssn_hmac, 9) AS ssn_hmac, left(card, 9) AS card;
SELECT email, vault_decrypt(ssn, :'k') AS ssn, vault_decrypt(card, :'pk') AS card,
       ssn_hmac = vault_hmac('123-45-6789', :'k') AS hmac_ok
FROM people;

-- a ciphertext is kept as it is, with the blind index as written
SELECT vault_encrypt('987-65-4321', :'k') AS given \gset
INSERT INTO people (email, ssn, ssn_hmac) VALUES ('bob@example.com', :'given', 'as written');
SELECT ssn = :'given' AS kept, ssn_hmac, card IS NULL AS card_null FROM people WHERE email = 'bob@example.com';

-- NULL: NULL blind index; empty and multibyte plaintexts
INSERT INTO people (email, ssn, ssn_hmac) VALUES ('cy@example.com', NULL, 'stale');
INSERT INTO people (email, ssn, card) VALUES ('di@example.com', '', 'grüße 🔐');
SELECT email, ssn IS NULL AS ssn_null, ssn_hmac IS NULL AS hmac_null,
       quote_nullable(vault_decrypt(ssn, :'k')) AS ssn_plain, vault_decrypt(card, :'pk') AS card_plain
FROM people WHERE email IN ('cy@example.com', 'di@example.com') ORDER BY email;

-- UPDATE: of other columns, no Vault request (Vault is unreachable here);
-- of an encrypted column, encrypted again
SELECT ssn AS before_ssn, ssn_hmac AS before_hmac FROM people WHERE email = 'ada@example.com' \gset
SET vault.addr = 'http://127.0.0.1:1';
SET vault.max_retries = 0;
UPDATE people SET visits = visits + 1;
UPDATE people SET ssn = ssn, card = card WHERE email = 'ada@example.com';
SELECT pg_temp.outcome($q$UPDATE people SET ssn = '111-22-3333' WHERE email = 'ada@example.com'$q$);
SELECT pg_temp.outcome($q$INSERT INTO people (email, ssn) SELECT 'many' || g, 'p' || g FROM generate_series(1, 5) g$q$);
RESET vault.addr;
RESET vault.max_retries;
SELECT ssn = :'before_ssn' AS ssn_untouched, ssn_hmac = :'before_hmac' AS hmac_untouched, visits
FROM people WHERE email = 'ada@example.com';
SELECT count(*) AS no_rows_from_failed_insert FROM people WHERE email LIKE 'many%';
UPDATE people SET ssn = '111-22-3333' WHERE email = 'ada@example.com';
SELECT vault_decrypt(ssn, :'k') AS new_ssn, ssn_hmac = vault_hmac('111-22-3333', :'k') AS new_hmac
FROM people WHERE email = 'ada@example.com';
UPDATE people SET ssn = NULL WHERE email = 'ada@example.com';
SELECT ssn IS NULL AND ssn_hmac IS NULL AS cleared FROM people WHERE email = 'ada@example.com';

-- with the trigger disabled, the constraint still refuses the plaintext
ALTER TABLE people DISABLE TRIGGER a_vault_encrypt;
SELECT pg_temp.outcome($q$INSERT INTO people (email, ssn) VALUES ('eve@example.com', '555-55-5555')$q$);
ALTER TABLE people ENABLE TRIGGER a_vault_encrypt;

-- ---- the trigger: many rows at a time ----
TRUNCATE people;
CREATE TEMP TABLE expect (email text, ssn text, card text);
INSERT INTO expect SELECT 'bulk' || g, 'ssn-' || g, CASE WHEN g % 5 <> 0 THEN 'card-' || g END
FROM generate_series(1, 2500) g;
SELECT pg_temp.row_count('INSERT INTO people (email, ssn, card) SELECT email, ssn, card FROM expect') AS inserted;
SET vault.batch_size = 7;
SELECT pg_temp.row_count(format(
	'INSERT INTO people (email, ssn) VALUES (%L, %L), (%L, %L), (%L, NULL), (%L, %L)',
	'v1', 'ssn-v1', 'v2', vault_encrypt('ssn-v2', :'k'), 'v3', 'v4', 'ssn-v4')) AS inserted;
COPY people (email, ssn, card) FROM stdin;
copy1	ssn-c1	card-c1
copy2	\N	card-c2
copy3	ssn-c3	\N
\.
RESET vault.batch_size;
INSERT INTO expect VALUES ('v1', 'ssn-v1', NULL), ('v2', 'ssn-v2', NULL), ('v3', NULL, NULL),
	('v4', 'ssn-v4', NULL), ('copy1', 'ssn-c1', 'card-c1'), ('copy2', NULL, 'card-c2'), ('copy3', 'ssn-c3', NULL);
SELECT count(*) AS rows, count(*) FILTER (WHERE vault_is_ciphertext(ssn)) AS ssn_ct,
       count(*) FILTER (WHERE vault_is_ciphertext(ssn_hmac)) AS hmacs,
       count(*) FILTER (WHERE vault_is_ciphertext(card)) AS card_ct
FROM people;
WITH d AS (
	SELECT unnest(array_agg(email ORDER BY id)) AS email,
	       unnest(vault_decrypt_batch(array_agg(ssn ORDER BY id), :'k')) AS ssn,
	       unnest(vault_decrypt_batch(array_agg(card ORDER BY id), :'pk')) AS card,
	       unnest(array_agg(ssn_hmac ORDER BY id)) AS ssn_hmac
	FROM people
), h AS (
	SELECT unnest(array_agg(email ORDER BY email)) AS email,
	       unnest(vault_hmac_batch(array_agg(ssn ORDER BY email), :'k')) AS ssn_hmac
	FROM expect WHERE ssn IS NOT NULL AND email <> 'v2'
)
SELECT count(*) AS compared,
       count(*) FILTER (WHERE d.ssn IS DISTINCT FROM e.ssn OR d.card IS DISTINCT FROM e.card) AS wrong_values,
       count(*) FILTER (WHERE e.email <> 'v2' AND d.ssn_hmac IS DISTINCT FROM h.ssn_hmac) AS wrong_hmacs,
       bool_and(d.ssn_hmac IS NULL) FILTER (WHERE e.email = 'v2') AS given_ciphertext_no_hmac
FROM expect e JOIN d USING (email) LEFT JOIN h USING (email);

-- held rows are inserted again exactly: identity, generated and dropped
-- columns, defaults; other BEFORE triggers fire once per row either way
CREATE FUNCTION count_firing() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	NEW.fired := NEW.fired + 1;
	RETURN NEW;
END
$$;
CREATE TABLE shaped (
	id      int GENERATED ALWAYS AS IDENTITY,
	gone    text,
	c       text,
	c_len   int GENERATED ALWAYS AS (length(c)) STORED,
	fired   int NOT NULL DEFAULT 0,
	created date DEFAULT '2024-01-01'
);
ALTER TABLE shaped DROP COLUMN gone;
SELECT 'c@' || :'k' AS c_spec \gset
CREATE TRIGGER m_vault_encrypt BEFORE INSERT OR UPDATE ON shaped FOR EACH ROW
	EXECUTE FUNCTION vault_encrypt_columns(:'k', :'c_spec');
CREATE TRIGGER z_count BEFORE INSERT ON shaped FOR EACH ROW EXECUTE FUNCTION count_firing();
SELECT pg_temp.row_count('INSERT INTO shaped (c) SELECT ''v'' || g FROM generate_series(1, 30) g') AS inserted;
-- a BEFORE trigger firing first: rows go one by one, each trigger once
CREATE TRIGGER a_count BEFORE INSERT ON shaped FOR EACH ROW EXECUTE FUNCTION count_firing();
SELECT pg_temp.row_count('INSERT INTO shaped (c) SELECT ''w'' || g FROM generate_series(1, 30) g') AS inserted;
SELECT CASE WHEN id <= 30 THEN 'held back' ELSE 'one by one' END AS path, count(*), min(id), max(id),
       bool_and(d = CASE WHEN id <= 30 THEN 'v' || id ELSE 'w' || (id - 30) END) AS decrypts,
       bool_and(c_len = length(c)) AS generated_ok, bool_and(created = '2024-01-01') AS defaults_ok,
       min(fired) AS min_fired, max(fired) AS max_fired
FROM shaped
JOIN (SELECT unnest(array_agg(id ORDER BY id)) AS id,
             unnest(vault_decrypt_batch(array_agg(c ORDER BY id), :'k')) AS d FROM shaped) x USING (id)
GROUP BY 1 ORDER BY 1;
DROP TABLE shaped;
DROP FUNCTION count_firing();

-- statements that cannot hold rows back still encrypt them, one by one
INSERT INTO people (email, ssn) SELECT 'ret' || g, 'ssn-ret' || g FROM generate_series(1, 3) g
RETURNING email, left(ssn, 6) AS ssn;
CREATE UNIQUE INDEX people_email ON people (email);
INSERT INTO people (email, ssn) VALUES ('ret1', 'dup'), ('oc1', 'ssn-oc1') ON CONFLICT (email) DO NOTHING;
SELECT email, vault_decrypt(ssn, :'k') AS ssn FROM people WHERE email IN ('ret1', 'oc1') ORDER BY email;
-- a failure in the middle of a bulk statement leaves none of its rows
SELECT pg_temp.outcome($q$INSERT INTO people (email, ssn) SELECT 'dup' || g, 'x' || g FROM generate_series(1, 3) g
                          UNION ALL SELECT 'ret2', 'again'$q$);
SELECT count(*) AS none_of_them FROM people WHERE email LIKE 'dup%';

-- ---- blind-index lookup through the btree index ----
-- (the scan nodes of the plan: the rest of it is shown differently by
-- PostgreSQL versions)
ANALYZE people;
SET enable_seqscan = off;
SET enable_bitmapscan = off;
CREATE FUNCTION pg_temp.scans(q text) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
	line text;
BEGIN
	FOR line IN EXECUTE 'EXPLAIN (COSTS OFF) ' || q LOOP
		IF line ~ 'Scan' THEN
			RETURN NEXT btrim(regexp_replace(line, '^\s*->\s*', ''));
		END IF;
	END LOOP;
END
$$;
SELECT pg_temp.scans(format('SELECT email FROM people WHERE ssn_hmac = (SELECT vault_hmac(%L, %L))',
                            'ssn-1234', :'k')) AS plan;
RESET enable_seqscan;
RESET enable_bitmapscan;
SELECT email FROM people WHERE ssn_hmac = (SELECT vault_hmac('ssn-1234', :'k'));

-- ---- migration of plaintexts in place, rotation, rewrap ----
CREATE TABLE legacy (id int PRIMARY KEY, ssn text, ssn_hmac text, note text);
INSERT INTO legacy SELECT g, 'legacy-' || g, NULL, 'n' || g FROM generate_series(1, 300) g;
INSERT INTO legacy VALUES (301, NULL, NULL, 'no ssn'), (302, vault_encrypt('legacy-302', :'k'), NULL, 'already');
SELECT * FROM vault_column_versions('legacy', 'ssn');
CALL vault_encrypt_column('legacy', 'ssn', :'k', 40, 'ssn_hmac');
SELECT * FROM vault_column_versions('legacy', 'ssn');
CALL vault_encrypt_column('legacy', 'ssn', :'k', 40, 'ssn_hmac');
SELECT count(*) FILTER (WHERE d IS DISTINCT FROM CASE WHEN id <= 300 OR id = 302 THEN 'legacy-' || id END) AS wrong,
       count(*) FILTER (WHERE id <= 300 AND ssn_hmac IS NULL) AS missing_hmac
FROM (SELECT unnest(array_agg(id ORDER BY id)) AS id,
             unnest(vault_decrypt_batch(array_agg(ssn ORDER BY id), :'k')) AS d,
             unnest(array_agg(ssn_hmac ORDER BY id)) AS ssn_hmac FROM legacy) s;
ALTER TABLE legacy ADD CHECK (ssn::vault_ciphertext IS NOT NULL OR ssn IS NULL);

SELECT vault_key_rotate(:'k') AS v2 \gset
SELECT vault_rows_below_version('legacy', 'ssn', :v2) AS below_v2;
CALL vault_rewrap_column('legacy', 'ssn', :'k', 64);
SELECT vault_rows_below_version('legacy', 'ssn', :v2) AS below_v2;
SELECT * FROM vault_column_versions('legacy', 'ssn');
-- blind indexes: recomputed when the rewrap is given their column
SELECT count(*) AS hmac_lookup_before FROM legacy WHERE ssn_hmac = (SELECT vault_hmac('legacy-7', :'k'));
CALL vault_rewrap_column('legacy', 'ssn', :'k', 64, 'ssn_hmac');
SELECT vault_rows_below_version('legacy', 'ssn_hmac', :v2) AS hmacs_below_v2;
SELECT id FROM legacy WHERE ssn_hmac = (SELECT vault_hmac('legacy-7', :'k'));
SELECT c->'min_decryption_version' AS min_dec FROM vault_key_config(:'k', min_decryption_version => :v2) c;
SELECT count(*) FILTER (WHERE d IS DISTINCT FROM CASE WHEN id <= 300 OR id = 302 THEN 'legacy-' || id END) AS wrong
FROM (SELECT unnest(array_agg(id ORDER BY id)) AS id,
             unnest(vault_decrypt_batch(array_agg(ssn ORDER BY id), :'k')) AS d FROM legacy) s;

-- procedure arguments and transaction blocks
BEGIN;
CALL vault_rewrap_column('legacy', 'ssn', :'k', 64);
ROLLBACK;
SELECT pg_temp.outcome(format('CALL vault_encrypt_column(%L, %L, %L, 0)', 'legacy', 'ssn', :'k'));
SELECT pg_temp.outcome(format('CALL vault_encrypt_column(%L, %L, %L)', 'legacy', 'nope', :'k'));
SELECT pg_temp.outcome(format('CALL vault_encrypt_column(%L, %L, %L)', 'legacy', 'id', :'k'));
SELECT pg_temp.outcome(format('CALL vault_encrypt_column(%L, %L, %L, 10, %L)', 'legacy', 'ssn', :'k', 'ssn'));
SELECT pg_temp.outcome(format('CALL vault_rewrap_column(%L, %L, %L)', 'nowhere', 'ssn', :'k'));

-- ---- a decrypting view, and who may read it ----
SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_col_auditor;
DROP ROLE IF EXISTS regress_col_support;
RESET client_min_messages;
CREATE ROLE regress_col_auditor;
CREATE ROLE regress_col_support;
GRANT vault_decryptor TO regress_col_auditor;
CREATE VIEW legacy_clear WITH (security_barrier) AS
	SELECT id, vault_decrypt(ssn, :'k') AS ssn FROM legacy;
GRANT SELECT ON legacy_clear TO regress_col_auditor, regress_col_support;
SET ROLE regress_col_auditor;
SELECT id, ssn FROM legacy_clear WHERE id IN (1, 301, 302) ORDER BY id;
SELECT pg_temp.outcome('SELECT * FROM legacy');
RESET ROLE;
SET ROLE regress_col_support;
SELECT pg_temp.outcome('SELECT id, ssn FROM legacy_clear WHERE id = 1');
RESET ROLE;
DROP VIEW legacy_clear;
REVOKE vault_decryptor FROM regress_col_auditor;
DROP ROLE regress_col_auditor;
DROP ROLE regress_col_support;

-- ---- the trigger does for a role only what that role may do itself ----
-- An encrypt-only role with a table of its own and the trigger must not get
-- blind indexes it may not compute (an HMAC oracle over SSNs), and a role
-- that may only INSERT into a table must not get its plaintexts encrypted.
CREATE FUNCTION pg_temp.outcome_hint(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	hint text;
BEGIN
	EXECUTE q;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS hint = PG_EXCEPTION_HINT;
	RETURN SQLSTATE || ': ' || SQLERRM || ' (' || hint || ')';
END
$$;
-- the innermost line of an error's context
CREATE FUNCTION pg_temp.error_context(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	ctx text;
BEGIN
	EXECUTE q;
	RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS ctx = PG_EXCEPTION_CONTEXT;
	RETURN split_part(ctx, E'\n', 1);
END
$$;
SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_col_encryptor;
DROP ROLE IF EXISTS regress_col_writer;
RESET client_min_messages;
CREATE ROLE regress_col_encryptor;
CREATE ROLE regress_col_writer;
GRANT vault_encryptor TO regress_col_encryptor;
SET ROLE regress_col_encryptor;
CREATE TEMP TABLE oracle (x text, h text);
CREATE TRIGGER a_vault_encrypt BEFORE INSERT ON oracle FOR EACH ROW
	EXECUTE FUNCTION vault_encrypt_columns(:'k', 'x:h');
SELECT pg_temp.outcome_hint($q$INSERT INTO oracle (x) VALUES ('123-45-6789')$q$) AS one_row;
-- the refusal's context names the trigger, the table and the key
SELECT replace(pg_temp.error_context($q$INSERT INTO oracle (x) VALUES ('123-45-6789')$q$), :'k', '<key>') AS refusal_context;
SELECT pg_temp.outcome_hint($q$INSERT INTO oracle (x) SELECT 'ssn-' || g FROM generate_series(1, 50) g$q$) AS held_rows;
SELECT count(*) AS rows_kept FROM oracle;
CREATE TEMP TABLE enc_only (x text);
CREATE TRIGGER a_vault_encrypt BEFORE INSERT ON enc_only FOR EACH ROW
	EXECUTE FUNCTION vault_encrypt_columns(:'k', 'x');
SELECT pg_temp.outcome_hint($q$INSERT INTO enc_only VALUES ('123-45-6789')$q$) AS encrypt_without_index;
RESET ROLE;
GRANT vault_hasher TO regress_col_encryptor;
SET ROLE regress_col_encryptor;
SELECT pg_temp.outcome_hint($q$INSERT INTO oracle (x) VALUES ('123-45-6789')$q$) AS with_vault_hasher;
SELECT count(*) AS rows, count(*) FILTER (WHERE vault_is_ciphertext(x) AND vault_is_ciphertext(h)) AS encrypted_and_indexed
FROM oracle;
RESET ROLE;
CREATE TABLE writable (id int, x text);
CREATE TRIGGER a_vault_encrypt BEFORE INSERT ON writable FOR EACH ROW
	EXECUTE FUNCTION vault_encrypt_columns(:'k', 'x');
GRANT INSERT ON writable TO regress_col_writer;
SELECT vault_encrypt('given', :'k') AS given_ct \gset
SET ROLE regress_col_writer;
SELECT pg_temp.outcome_hint($q$INSERT INTO writable VALUES (1, 'plaintext')$q$) AS plaintext_without_vault_encryptor;
SELECT pg_temp.outcome_hint(format('INSERT INTO writable VALUES (2, %L)', :'given_ct')) AS ciphertext_passes;
RESET ROLE;
SELECT id, vault_decrypt(x, :'k') AS x FROM writable ORDER BY id;
DROP TABLE writable, oracle, enc_only;
REVOKE vault_encryptor, vault_hasher FROM regress_col_encryptor;
DROP ROLE regress_col_encryptor;
DROP ROLE regress_col_writer;

DROP TABLE people, legacy;
