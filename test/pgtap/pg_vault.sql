-- pgTAP: pg_vault's SQL surface (functions, return types, privileges,
-- roles) and a few behaviours through the real HTTP path.  Run by
-- test/run in a database where pgtap and pg_vault are installed.
\set ON_ERROR_STOP 1
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off

BEGIN;
SELECT plan(41);

SELECT ok(set_config('pgv.key', 'pgtap_' || md5(random()::text), true) IS NOT NULL, 'a fresh key name');

-- the functions and what they return
SELECT has_function('vault_encrypt', ARRAY['text', 'text', 'text'], 'vault_encrypt(text)');
SELECT has_function('vault_encrypt', ARRAY['bytea', 'text', 'text'], 'vault_encrypt(bytea)');
SELECT function_returns('vault_decrypt', ARRAY['text', 'text', 'text'], 'text', 'vault_decrypt returns text');
SELECT function_returns('vault_decrypt_bytea', ARRAY['text', 'text', 'text'], 'bytea', 'vault_decrypt_bytea returns bytea');
SELECT function_returns('vault_rewrap', ARRAY['text', 'text', 'text'], 'text', 'vault_rewrap returns text');
SELECT function_returns('vault_encrypt_batch', ARRAY['text[]', 'text', 'text[]'], 'text[]', 'vault_encrypt_batch returns text[]');
SELECT function_returns('vault_decrypt_bytea_batch', ARRAY['text[]', 'text', 'text[]'], 'bytea[]', 'vault_decrypt_bytea_batch returns bytea[]');
SELECT function_returns('vault_hmac_batch', ARRAY['text[]', 'text', 'text'], 'text[]', 'vault_hmac_batch returns text[]');
SELECT function_returns('vault_kv', ARRAY['text'], 'jsonb', 'vault_kv(path) returns jsonb');
SELECT function_returns('vault_kv', ARRAY['text', 'text'], 'text', 'vault_kv(path, field) returns text');
SELECT function_returns('vault_kv_version', ARRAY['text', 'integer'], 'jsonb', 'vault_kv_version returns jsonb');
SELECT function_returns('vault_kv_put', ARRAY['text', 'jsonb', 'integer'], 'integer', 'vault_kv_put returns the version');
SELECT function_returns('vault_kv_list', ARRAY['text'], 'setof text', 'vault_kv_list returns setof text');
SELECT function_returns('vault_key_rotate', ARRAY['text'], 'integer', 'vault_key_rotate returns the version');
SELECT function_returns('vault_key_config', ARRAY['text', 'integer', 'integer', 'boolean', 'interval'], 'jsonb', 'vault_key_config returns jsonb');
SELECT function_returns('vault_health', ARRAY[]::text[], 'jsonb', 'vault_health returns jsonb');
SELECT function_returns('vault_token_info', ARRAY[]::text[], 'jsonb', 'vault_token_info returns jsonb');

-- the roles and the split of privileges
SELECT ok((SELECT count(*) FROM pg_roles WHERE rolname IN ('vault_encryptor', 'vault_decryptor', 'vault_hasher',
	'vault_kv_reader', 'vault_kv_writer', 'vault_admin') AND NOT rolcanlogin) = 6, 'six NOLOGIN vault roles');
SELECT function_privs_are('vault_encrypt', ARRAY['text', 'text', 'text'], 'public', ARRAY[]::text[], 'PUBLIC cannot encrypt');
SELECT function_privs_are('vault_decrypt', ARRAY['text', 'text', 'text'], 'public', ARRAY[]::text[], 'PUBLIC cannot decrypt');
SELECT function_privs_are('vault_encrypt', ARRAY['text', 'text', 'text'], 'vault_encryptor', ARRAY['EXECUTE'], 'vault_encryptor encrypts');
SELECT function_privs_are('vault_decrypt', ARRAY['text', 'text', 'text'], 'vault_encryptor', ARRAY[]::text[], 'vault_encryptor does not decrypt');
SELECT function_privs_are('vault_decrypt', ARRAY['text', 'text', 'text'], 'vault_decryptor', ARRAY['EXECUTE'], 'vault_decryptor decrypts');
SELECT function_privs_are('vault_encrypt', ARRAY['text', 'text', 'text'], 'vault_decryptor', ARRAY[]::text[], 'vault_decryptor does not encrypt');
SELECT function_privs_are('vault_kv', ARRAY['text'], 'vault_kv_reader', ARRAY['EXECUTE'], 'vault_kv_reader reads KV');
SELECT function_privs_are('vault_kv_put', ARRAY['text', 'jsonb', 'integer'], 'vault_kv_reader', ARRAY[]::text[], 'vault_kv_reader does not write KV');
SELECT function_privs_are('vault_key_rotate', ARRAY['text'], 'vault_admin', ARRAY['EXECUTE'], 'vault_admin rotates keys');
SELECT function_privs_are('vault_key_rotate', ARRAY['text'], 'vault_encryptor', ARRAY[]::text[], 'vault_encryptor does not rotate keys');

-- behaviour through the HTTP path
SELECT is(vault_decrypt(vault_encrypt('pgTAP ✓', current_setting('pgv.key')), current_setting('pgv.key')),
	'pgTAP ✓', 'text round trip');
SELECT is(vault_decrypt_bytea(vault_encrypt('\x00ff'::bytea, current_setting('pgv.key')), current_setting('pgv.key')),
	'\x00ff'::bytea, 'bytea round trip');
SELECT matches(vault_encrypt('x', current_setting('pgv.key')), '^vault:v[0-9]+:[A-Za-z0-9+/]+=*$', 'ciphertext format');
SELECT is(vault_encrypt(NULL::text, current_setting('pgv.key')), NULL, 'NULL in, NULL out');
SELECT is(vault_decrypt_batch(vault_encrypt_batch(ARRAY['a', NULL, 'b'], current_setting('pgv.key')), current_setting('pgv.key')),
	ARRAY['a', NULL, 'b'], 'batch keeps order and NULLs');
SELECT throws_ok(format('SELECT vault_decrypt(%L, %L)', 'vault:v1:AAAA', current_setting('pgv.key')),
	'22023', NULL, 'a bad ciphertext is 22023');
SELECT throws_ok(format('SELECT vault_decrypt(vault_encrypt(%L::bytea, %L), %L)', '\xff', current_setting('pgv.key'), current_setting('pgv.key')),
	'22021', NULL, 'decrypted bytes that are not text are 22021');
SELECT throws_like(format('SELECT vault_decrypt_batch(ARRAY[vault_encrypt(%L, %L), %L], %L)', 'ok', current_setting('pgv.key'), 'bad', current_setting('pgv.key')),
	'%array element 2 failed', 'a failing batch element is named');
SELECT throws_ok(format('SELECT vault_kv(%L)', 'pgtap/does/not/exist/' || md5(random()::text)), '42704', NULL, 'a missing secret is 42704');
SELECT ok(NOT vault_token_info() ? 'id', 'token info has no token id');
SELECT is(vault_health()->>'sealed', 'false', 'health: unsealed');
SELECT throws_ok('SELECT set_config(''vault.addr'', ''http://127.0.0.1:1'', true), vault_health()', '58V01', NULL, 'an unreachable Vault is 58V01, not class 08');

SELECT * FROM finish();
ROLLBACK;
