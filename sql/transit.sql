-- Transit through the real HTTP path: encrypt, decrypt, rewrap, HMAC, one
-- value at a time and in batches.  Ciphertexts are random, so the tests
-- assert their shape and round trips; keys get fresh names on every run so
-- that a persistent Vault gives the same output.
\set VERBOSITY terse
SELECT 'regress_t_' || md5(random()::text || clock_timestamp()::text) AS k \gset
SELECT 'regress_d_' || md5(random()::text || clock_timestamp()::text) AS dk \gset
SELECT 'regress_r_' || md5(random()::text || clock_timestamp()::text) AS rk \gset

-- outcome of a statement: 'ok' or its SQLSTATE and primary message
CREATE FUNCTION pg_temp.outcome(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE q;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, 'regress_[a-z]_[0-9a-f]+', 'KEY');
END
$$;

CREATE TEMP TABLE v (id int, t text, b bytea);
INSERT INTO v VALUES
	(1, 'hello', '\x68656c6c6f'),
	(2, '', ''),
	(3, 'grüße, 你好, 🔐 ok', '\x00ff00fe'),
	(4, NULL, NULL),
	(5, repeat('multi-MB payload ✓ ', 300000), decode(repeat('00ff', 1500000), 'hex'));

-- shape and round trips, text and bytea
SELECT id, left(vault_encrypt(t, :'k'), 9) AS prefix,
       vault_decrypt(vault_encrypt(t, :'k'), :'k') IS NOT DISTINCT FROM t AS text_ok,
       vault_decrypt_bytea(vault_encrypt(b, :'k'), :'k') IS NOT DISTINCT FROM b AS bytea_ok
FROM v ORDER BY id;
SELECT length(t) AS chars, octet_length(b) AS bytes FROM v WHERE id = 5;

-- the same plaintext encrypts differently each time
SELECT vault_encrypt('same', :'k') <> vault_encrypt('same', :'k') AS randomised;

-- NULL in, NULL out
SELECT vault_encrypt(NULL::text, :'k') IS NULL AS a,
       vault_encrypt('x', NULL) IS NULL AS b,
       vault_decrypt(NULL, :'k') IS NULL AS c,
       vault_rewrap(NULL, :'k') IS NULL AS d,
       vault_hmac(NULL::text, :'k') IS NULL AS e;

-- decrypted bytes that are not valid text are an error, never garbage
SELECT pg_temp.outcome(format('SELECT vault_decrypt(vault_encrypt(%L::bytea, %L), %L)', '\xff00', :'k', :'k'));
SELECT pg_temp.outcome(format('SELECT vault_decrypt(vault_encrypt(%L::bytea, %L), %L)', '\xc3', :'k', :'k'));
SELECT vault_decrypt_bytea(vault_encrypt('\xff00'::bytea, :'k'), :'k');

-- wrong key, tampered ciphertext, malformed ciphertext, bad key name
SELECT vault_encrypt('secret', :'k') AS c1 \gset
SELECT vault_encrypt('other', :'rk') IS NOT NULL AS other_key_made;
SELECT pg_temp.outcome(format('SELECT vault_decrypt(%L, %L)', :'c1', :'rk'));
SELECT pg_temp.outcome(format('SELECT vault_decrypt(%L, %L)',
	overlay(:'c1' placing (CASE WHEN substr(:'c1', 20, 1) = 'A' THEN 'B' ELSE 'A' END) from 20 for 1), :'k'));
SELECT pg_temp.outcome(format('SELECT vault_decrypt(%L, %L)', 'not a ciphertext', :'k'));
SELECT pg_temp.outcome(format('SELECT vault_decrypt(%L, %L)', :'c1', 'regress_t_missing_key_0'));
SELECT pg_temp.outcome($q$SELECT vault_encrypt('x', 'bad/key')$q$);
SELECT pg_temp.outcome($q$SELECT vault_encrypt('x', '-bad')$q$);
SELECT pg_temp.outcome($q$SELECT vault_encrypt('x', '')$q$);

-- derived keys: created with a context, need the same context
SELECT vault_encrypt('tenant data', :'dk', 'tenant-1') AS dc \gset
SELECT vault_key_info(:'dk')->'derived' AS derived;
SELECT vault_decrypt(:'dc', :'dk', 'tenant-1') AS same_context;
SELECT pg_temp.outcome(format('SELECT vault_decrypt(%L, %L, %L)', :'dc', :'dk', 'tenant-2'));
SELECT pg_temp.outcome(format('SELECT vault_decrypt(%L, %L)', :'dc', :'dk'));
SELECT vault_key_info(:'k')->'derived' AS not_derived;

-- rotation, rewrap and min_decryption_version
SELECT vault_encrypt('rotate me', :'rk') AS r1 \gset
SELECT vault_key_rotate(:'rk') AS v2, vault_key_rotate(:'rk') AS v3;
SELECT left(vault_encrypt('x', :'rk'), 9) AS now_v3;
SELECT vault_decrypt(:'r1', :'rk') AS old_still_readable;
SELECT vault_rewrap(:'r1', :'rk') AS r1b \gset
SELECT left(:'r1b', 9) AS rewrapped, vault_decrypt(:'r1b', :'rk') AS rewrapped_plain;
SELECT c->'min_decryption_version' AS min_dec, c->'latest_version' AS latest
FROM vault_key_config(:'rk', min_decryption_version => 3) c;
SELECT pg_temp.outcome(format('SELECT vault_decrypt(%L, %L)', :'r1', :'rk'));
SELECT vault_decrypt(:'r1b', :'rk') AS v3_readable;
SELECT pg_temp.outcome(format('SELECT vault_key_config(%L, min_decryption_version => 9)', :'rk'));
SELECT pg_temp.outcome($q$SELECT vault_key_info('regress_t_missing_key_0')$q$);

-- HMAC: deterministic per key and algorithm
SELECT vault_hmac('alice@example.com', :'k') = vault_hmac('alice@example.com', :'k') AS stable,
       vault_hmac('alice@example.com', :'k') <> vault_hmac('bob@example.com', :'k') AS distinct_inputs,
       vault_hmac('alice@example.com', :'k', 'sha2-512') <> vault_hmac('alice@example.com', :'k') AS by_algorithm,
       left(vault_hmac('alice@example.com', :'k'), 9) AS prefix,
       vault_hmac('\x616263'::bytea, :'k') = vault_hmac('abc', :'k') AS bytea_form;

-- batches: order and NULLs kept, subscripts kept
SELECT vault_decrypt_batch(vault_encrypt_batch(ARRAY['a', NULL, '', 'ü€', 'z'], :'k'), :'k');
SELECT array_dims(vault_encrypt_batch('[0:2]={x,y,z}'::text[], :'k')) AS dims;
SELECT vault_encrypt_batch('{}'::text[], :'k') AS empty,
       vault_encrypt_batch(NULL::text[], :'k') IS NULL AS null_array,
       vault_encrypt_batch(ARRAY[NULL, NULL]::text[], :'k') AS all_null;
SELECT vault_decrypt_bytea_batch(vault_encrypt_batch(ARRAY['\x00'::bytea, NULL, '\xff00'], :'k'), :'k');
SELECT vault_decrypt_batch(vault_rewrap_batch(vault_encrypt_batch(ARRAY['p', NULL, 'q'], :'rk'), :'rk'), :'rk');
SELECT array_agg(left(c, 9)) FROM unnest(vault_rewrap_batch(ARRAY[:'r1b'], :'rk')) c;
SELECT vault_hmac_batch(ARRAY['alice@example.com', NULL], :'k') = ARRAY[vault_hmac('alice@example.com', :'k'), NULL] AS hmac_batch;
SELECT vault_decrypt_batch(vault_encrypt_batch(ARRAY['p', 'q'], :'dk', ARRAY['tenant-1', 'tenant-2']), :'dk', ARRAY['tenant-1', 'tenant-2']) AS derived_batch;

-- many chunks: vault.batch_size items per request
SET vault.batch_size = 7;
WITH src AS (SELECT array_agg(CASE WHEN g % 10 = 0 THEN NULL ELSE 'row ' || g END ORDER BY g) a FROM generate_series(1, 100) g)
SELECT vault_decrypt_batch(vault_encrypt_batch(a, :'k'), :'k') IS NOT DISTINCT FROM a AS chunked_round_trip FROM src;
RESET vault.batch_size;

-- a failing element names its subscript
SELECT pg_temp.outcome(format('SELECT vault_decrypt_batch(ARRAY[%L, %L, %L], %L)', :'c1', :'c1', 'vault:v1:AAAA', :'k'));
SELECT pg_temp.outcome(format('SELECT vault_decrypt_batch(%L::text[], %L)', '[5:7]={"' || :'c1' || '",NULL,"garbage"}', :'k'));
SELECT pg_temp.outcome(format('SELECT vault_decrypt_batch(ARRAY[%L, vault_encrypt(%L::bytea, %L)], %L)', :'c1', '\xff', :'k', :'k'));
SELECT pg_temp.outcome(format('SELECT vault_encrypt_batch(ARRAY[%L, %L], %L, ARRAY[%L])', 'a', 'b', :'dk', 'c'));
SELECT pg_temp.outcome(format('SELECT vault_encrypt_batch(%L::text[], %L)', '{{a,b},{c,d}}', :'k'));
