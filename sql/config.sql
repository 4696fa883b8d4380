-- Settings, privileges, Vault health and token info, and an unreachable
-- server, through the real HTTP path.
\set VERBOSITY terse

CREATE FUNCTION pg_temp.outcome(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE q;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;
GRANT EXECUTE ON FUNCTION pg_temp.outcome(text) TO PUBLIC;

-- health is unauthenticated and reports the server's state
SELECT h->'initialized' AS initialized, h->'sealed' AS sealed, h ? 'version' AS has_version
FROM vault_health() h;

-- token info never carries the token itself
SELECT t ? 'id' AS has_id, t ? 'policies' AS has_policies,
       position(btrim(pg_read_file(current_setting('vault.token_file')), E' \n\r\t') IN t::text) = 0 AS token_absent
FROM vault_token_info() t;

-- the settings, with their visibility
SELECT name, context, vartype,
       CASE WHEN name IN ('vault.addr', 'vault.token_file') THEN '(set by the harness)' ELSE boot_val END AS boot_val
FROM pg_settings WHERE name LIKE 'vault.%' ORDER BY name;
SELECT count(*) AS token_in_show_all FROM pg_settings WHERE name = 'vault.token';
-- 15 and later reserve the vault. prefix (MarkGUCPrefixReserved): an
-- unknown name is 42602; 13 and 14 have no such reservation and take it as
-- a placeholder
SELECT pg_temp.outcome('SET vault.no_such_setting = 1') =
       CASE WHEN current_setting('server_version_num')::int >= 150000
            THEN '42602: invalid configuration parameter name "vault.no_such_setting"'
            ELSE 'ok' END AS unknown_setting_as_documented;
SELECT pg_temp.outcome('SET vault.auth_method = ''kerberos''');
SELECT pg_temp.outcome('SET vault.token = ''bad token''');

-- privileges: nothing for PUBLIC; each role gets one kind of access
SELECT r.rolname, r.rolcanlogin,
       has_function_privilege(r.oid, 'vault_encrypt(text,text,text)', 'EXECUTE') AS enc,
       has_function_privilege(r.oid, 'vault_decrypt(text,text,text)', 'EXECUTE') AS dec,
       has_function_privilege(r.oid, 'vault_hmac(text,text,text)', 'EXECUTE') AS hmac,
       has_function_privilege(r.oid, 'vault_kv(text)', 'EXECUTE') AS kv_read,
       has_function_privilege(r.oid, 'vault_kv_put(text,jsonb,integer)', 'EXECUTE') AS kv_write,
       has_function_privilege(r.oid, 'vault_key_rotate(text)', 'EXECUTE') AS admin,
       has_function_privilege(r.oid, 'vault_health()', 'EXECUTE') AS health
FROM pg_roles r
WHERE r.rolname LIKE 'vault\_%' ORDER BY 1;
SELECT count(*) AS public_grants
FROM pg_proc p, aclexplode(p.proacl) a
WHERE p.proname LIKE 'vault\_%' AND a.grantee = 0;
SELECT count(*) AS functions_without_comment
FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass
JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'pg_vault'
WHERE obj_description(p.oid, 'pg_proc') IS NULL;

-- a non-superuser sees no address, auth or TLS setting and changes none;
-- the refusal's wording differs between versions: 13 and 14 say "must be
-- superuser or a member of pg_read_all_settings to examine", 15 "must be
-- superuser or have privileges of pg_read_all_settings to examine", 16 and
-- later "permission denied to examine"
CREATE FUNCTION pg_temp.examine(q text) RETURNS text LANGUAGE sql AS $$
SELECT regexp_replace(pg_temp.outcome(q),
	'^42501: (must be superuser or (a member|have privileges) of pg_read_all_settings|permission denied) to examine ',
	'42501: may not examine ')
$$;
GRANT EXECUTE ON FUNCTION pg_temp.examine(text) TO PUBLIC;
CREATE ROLE regress_vault_user;
SET ROLE regress_vault_user;
SELECT pg_temp.examine('SHOW vault.addr');
SELECT pg_temp.examine('SHOW vault.token_file');
SELECT pg_temp.examine('SHOW vault.token');
SELECT pg_temp.examine('SHOW vault.ca_file');
SELECT pg_temp.examine('SHOW vault.approle_role_id');
SELECT pg_temp.examine('SELECT current_setting(''vault.addr'')');
SELECT pg_temp.examine('SELECT current_setting(''vault.token_file'')');
SELECT name FROM pg_settings WHERE name LIKE 'vault.%' ORDER BY name;
SELECT pg_temp.outcome('SET vault.addr = ''http://127.0.0.1:1''');
SELECT pg_temp.outcome('SET vault.token_file = ''/tmp/x''');
SELECT pg_temp.outcome('SET vault.tls_skip_verify = on');
SELECT pg_temp.outcome('SET vault.auth_method = approle');
SELECT pg_temp.outcome('SET vault.transit_mount = ''other''');
SELECT pg_temp.outcome('SET vault.batch_size = 10');
SHOW vault.batch_size;
RESET vault.batch_size;
-- and calls nothing without a grant
SELECT pg_temp.outcome('SELECT vault_encrypt(''x'', ''regress_priv'')');
SELECT pg_temp.outcome('SELECT vault_decrypt(''x'', ''regress_priv'')');
SELECT pg_temp.outcome('SELECT vault_kv(''x'')');
SELECT pg_temp.outcome('SELECT vault_health()');
RESET ROLE;

-- granted vault_encryptor: may encrypt, may not decrypt
GRANT vault_encryptor TO regress_vault_user;
SET ROLE regress_vault_user;
SELECT left(vault_encrypt('granted', 'regress_priv'), 6) AS encrypted;
SELECT pg_temp.outcome('SELECT vault_decrypt(vault_encrypt(''granted'', ''regress_priv''), ''regress_priv'')');
RESET ROLE;
GRANT vault_decryptor TO regress_vault_user;
SET ROLE regress_vault_user;
SELECT vault_decrypt(vault_encrypt('granted', 'regress_priv'), 'regress_priv') AS decrypted;
RESET ROLE;
REVOKE vault_encryptor, vault_decryptor FROM regress_vault_user;
DROP ROLE regress_vault_user;

-- an unreachable server: 58V01 after the retries, quickly
SET vault.addr = 'http://127.0.0.1:1';
SET vault.max_retries = 1;
SELECT pg_temp.outcome('SELECT vault_encrypt(''x'', ''regress_priv'')');
SELECT pg_temp.outcome('SELECT vault_health()');
SET vault.addr = 'ftp://127.0.0.1:1';
SELECT pg_temp.outcome('SELECT vault_encrypt(''x'', ''regress_priv'')');
SET vault.addr = 'file:///etc/passwd';
SELECT pg_temp.outcome('SELECT vault_kv(''x'')');
RESET vault.addr;
RESET vault.max_retries;

-- no token configured
SET vault.token_file = '';
SET vault.token = '';
SELECT pg_temp.outcome('SELECT vault_encrypt(''x'', ''regress_priv'')');
SET vault.token_file = '/nonexistent/token';
SELECT pg_temp.outcome('SELECT vault_encrypt(''x'', ''regress_priv'')');
RESET vault.token_file;
RESET vault.token;
SELECT left(vault_encrypt('back', 'regress_priv'), 6) AS works_again;
