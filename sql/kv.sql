-- KV version 2 through the real HTTP path.  Paths get a fresh prefix on
-- every run so that a persistent Vault gives the same output.
\set VERBOSITY terse
SELECT 'regress/kv-' || md5(random()::text || clock_timestamp()::text) AS p \gset

CREATE FUNCTION pg_temp.outcome(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE q;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || replace(SQLERRM, current_setting('regress.p'), 'P');
END
$$;
SELECT set_config('regress.p', :'p', false) IS NOT NULL AS prefix_set;

-- write, read whole, read fields
SELECT vault_kv_put(:'p' || '/db', '{"username": "app", "password": "s3cr3t-ü", "port": 5432, "tls": true, "note": null, "tags": ["a", "b"]}') AS v1;
SELECT vault_kv(:'p' || '/db') AS secret;
SELECT vault_kv(:'p' || '/db', 'username') AS username,
       vault_kv(:'p' || '/db', 'password') AS password,
       vault_kv(:'p' || '/db', 'port') AS port,
       vault_kv(:'p' || '/db', 'tls') AS tls,
       vault_kv(:'p' || '/db', 'note') IS NULL AS json_null,
       vault_kv(:'p' || '/db', 'tags') AS tags;

-- versions and check-and-set
SELECT vault_kv_put(:'p' || '/db', '{"username": "app", "password": "rotated"}', 1) AS v2;
SELECT vault_kv(:'p' || '/db', 'password') AS latest,
       vault_kv_version(:'p' || '/db', 1)->>'password' AS first,
       vault_kv_version(:'p' || '/db', 2)->>'password' AS second;
SELECT pg_temp.outcome(format('SELECT vault_kv_put(%L, %L, 1)', :'p' || '/db', '{"x": 1}'));
SELECT pg_temp.outcome(format('SELECT vault_kv_put(%L, %L, 0)', :'p' || '/db', '{"x": 1}'));
SELECT vault_kv_put(:'p' || '/new', '{"x": 1}', 0) AS created_with_cas_0;
SELECT vault_kv_put(:'p' || '/db', '{"username": "app"}') AS v3_unconditional;

-- missing path, version and field
SELECT pg_temp.outcome(format('SELECT vault_kv(%L)', :'p' || '/missing'));
SELECT pg_temp.outcome(format('SELECT vault_kv(%L, %L)', :'p' || '/missing', 'x'));
SELECT pg_temp.outcome(format('SELECT vault_kv(%L, %L)', :'p' || '/db', 'nofield'));
SELECT pg_temp.outcome(format('SELECT vault_kv_version(%L, 99)', :'p' || '/db'));
SELECT pg_temp.outcome(format('SELECT vault_kv_version(%L, 0)', :'p' || '/db'));

-- bad input
SELECT pg_temp.outcome(format('SELECT vault_kv_put(%L, %L)', :'p' || '/arr', '[1, 2]'));
SELECT pg_temp.outcome(format('SELECT vault_kv_put(%L, %L)', :'p' || '/scalar', '"x"'));
SELECT pg_temp.outcome($q$SELECT vault_kv('regress/../sys/health')$q$);
SELECT pg_temp.outcome($q$SELECT vault_kv('')$q$);
SELECT pg_temp.outcome($q$SELECT vault_kv('a//b')$q$);

-- paths with characters that need encoding
SELECT vault_kv_put(:'p' || '/with space?#&', '{"k": "v"}') AS odd_path;
SELECT vault_kv(:'p' || '/with space?#&', 'k') AS odd_path_read;

-- NULL in, NULL out
SELECT vault_kv(NULL) IS NULL AS a, vault_kv(NULL, 'x') IS NULL AS b,
       vault_kv_put(NULL, '{}') IS NULL AS c, vault_kv_put(:'p' || '/x', NULL) IS NULL AS d;

-- listing
SELECT vault_kv_put(:'p' || '/dir/inner', '{"k": 1}') AS nested;
SELECT * FROM vault_kv_list(:'p') ORDER BY 1;
SELECT * FROM vault_kv_list(:'p' || '/dir/') ORDER BY 1;
SELECT count(*) AS none FROM vault_kv_list(:'p' || '/nothing-here');
SELECT (SELECT count(*) FROM vault_kv_list('') k WHERE k = 'regress/') AS root_lists_regress;
