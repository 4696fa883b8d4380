-- Dynamic database credentials and leases through the real HTTP path:
-- vault/bootstrap configured database/ with role app-role (1h default TTL,
-- 24h max) against this cluster.  No password is ever printed: only
-- whether it has the expected form.  test/creds.sh logs in with issued
-- credentials, watches a live session through revocation, and greps the
-- server log.
\set VERBOSITY terse

CREATE FUNCTION pg_temp.outcome(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE q;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' ||
		replace(SQLERRM, coalesce(current_setting('regress.lease', true), '-'), 'LEASE');
END
$$;

-- the SQL surface: signatures, results, comments, privileges
SELECT p.oid::regprocedure AS function, pg_get_function_result(p.oid) AS result,
       obj_description(p.oid, 'pg_proc') IS NOT NULL AS commented,
       has_function_privilege('vault_credentials', p.oid, 'EXECUTE') AS credentials,
       has_function_privilege('vault_admin', p.oid, 'EXECUTE') AS admin
FROM pg_proc p
WHERE p.proname IN ('vault_db_creds', 'vault_lease_renew', 'vault_lease_revoke', 'vault_lease_lookup')
ORDER BY 1::text;
SELECT rolcanlogin, has_function_privilege('vault_credentials', 'vault_health()', 'EXECUTE') AS health
FROM pg_roles WHERE rolname = 'vault_credentials';

CREATE ROLE regress_creds_nobody;
SET ROLE regress_creds_nobody;
SELECT pg_temp.outcome($q$SELECT * FROM vault_db_creds('app-role')$q$);
SELECT pg_temp.outcome($q$SELECT vault_lease_revoke('x')$q$);
RESET ROLE;
DROP ROLE regress_creds_nobody;

-- issue: Vault's username template, password rules and lease
SELECT username AS u, lease_id AS lease,
       username ~ '^v-.{0,8}-app-role-[A-Za-z0-9]{20}-[0-9]+$' AND length(username) <= 63 AS username_ok,
       password ~ '^[A-Za-z0-9-]{20}$' AND password ~ '[a-z]' AND password ~ '[A-Z]'
           AND password ~ '[0-9]' AND password ~ '-' AS password_ok,
       lease_id ~ '^database/creds/app-role/[A-Za-z0-9]{24}$' AS lease_ok,
       lease_duration, renewable
FROM vault_db_creds('app-role') \gset
SELECT :'username_ok' AS username_ok, :'password_ok' AS password_ok, :'lease_ok' AS lease_ok,
       :'lease_duration' AS lease_duration, :'renewable' AS renewable;
SELECT set_config('regress.lease', :'lease', false) IS NOT NULL AS lease_set;

-- PostgreSQL has the user, able to log in, valid for an hour: until the
-- lease's end as Vault recorded it (VALID UNTIL is 5 s after it), not
-- measured with this session's clock, which a busy machine may hold up
CREATE FUNCTION pg_temp.lease_span(lease text, since text) RETURNS double precision
LANGUAGE sql AS $$
	SELECT extract(epoch FROM (l->>'expire_time')::timestamptz - (l->>since)::timestamptz)
	FROM vault_lease_lookup(lease) l
$$;
CREATE FUNCTION pg_temp.until_lease_end(lease text, role text) RETURNS boolean
LANGUAGE sql AS $$
	SELECT abs(extract(epoch FROM r.rolvaliduntil - (l->>'expire_time')::timestamptz) - 5) < 2
	FROM pg_roles r, vault_lease_lookup(lease) l WHERE r.rolname = role
$$;
SELECT rolcanlogin, pg_temp.until_lease_end(:'lease', :'u')
       AND abs(pg_temp.lease_span(:'lease', 'issue_time') - 3600) < 2 AS valid_for_1h
FROM pg_roles WHERE rolname = :'u';

-- lookup
SELECT j->>'id' = :'lease' AS same_id, (j->>'ttl')::int BETWEEN 1 AND 3600 AS ttl_1h,
       j->'renewable' AS renewable, j ?& ARRAY['issue_time', 'expire_time', 'last_renewal'] AS times
FROM vault_lease_lookup(:'lease') j;

-- renew by 30 minutes: VALID UNTIL follows
SELECT r->>'lease_id' = :'lease' AS same_id, r->'lease_duration' AS lease_duration, r->'renewable' AS renewable
FROM vault_lease_renew(:'lease', '30 minutes') r;
SELECT pg_temp.until_lease_end(:'lease', :'u')
       AND abs(pg_temp.lease_span(:'lease', 'last_renewal') - 1800) < 2 AS valid_for_30m;

-- renew past max_ttl (24h): capped
SELECT (r->>'lease_duration')::int <= 86400
       AND abs(pg_temp.lease_span(:'lease', 'issue_time') - 86400) < 2 AS capped_at_24h
FROM vault_lease_renew(:'lease', '2 days') r;
SELECT pg_temp.until_lease_end(:'lease', :'u') AS valid_for_24h;

-- without an increment Vault chooses; the lease stays within max_ttl
SELECT (r->>'lease_duration')::int BETWEEN 1 AND 86400 AS renewed
FROM vault_lease_renew(:'lease') r;

-- revoke: the user is gone when it returns; the lease too
SELECT vault_lease_revoke(:'lease');
SELECT count(*) AS users_left FROM pg_roles WHERE rolname = :'u';
SELECT pg_temp.outcome(format('SELECT vault_lease_lookup(%L)', :'lease'));
SELECT pg_temp.outcome(format('SELECT vault_lease_renew(%L)', :'lease'));
-- revoking again is not an error, as in Vault
SELECT pg_temp.outcome(format('SELECT vault_lease_revoke(%L)', :'lease'));

-- errors
SELECT pg_temp.outcome($q$SELECT * FROM vault_db_creds('nosuchrole')$q$);
SELECT count(*) AS users_for_nosuchrole FROM pg_roles WHERE rolname LIKE 'v-%-nosuchro-%';
SELECT pg_temp.outcome($q$SELECT * FROM vault_db_creds('bad/role')$q$);
SELECT pg_temp.outcome($q$SELECT * FROM vault_db_creds('-bad')$q$);
SELECT pg_temp.outcome($q$SELECT * FROM vault_db_creds('')$q$);
SELECT pg_temp.outcome($q$SELECT * FROM vault_db_creds('app-role', '')$q$);
SELECT pg_temp.outcome($q$SELECT * FROM vault_db_creds('app-role', 'a/../b')$q$);
SELECT pg_temp.outcome($q$SELECT * FROM vault_db_creds('app-role', 'no-such-mount')$q$);
SELECT pg_temp.outcome($q$SELECT vault_lease_renew('nope')$q$);
SELECT pg_temp.outcome($q$SELECT vault_lease_renew('nope', '-1 hour')$q$);
SELECT pg_temp.outcome($q$SELECT vault_lease_lookup('nope')$q$);
SELECT pg_temp.outcome($q$SELECT vault_lease_revoke('')$q$);

-- NULL in, nothing out
SELECT count(*) AS no_rows FROM vault_db_creds(NULL);
SELECT count(*) AS no_rows FROM vault_db_creds('app-role', NULL);
SELECT vault_lease_renew(NULL) IS NULL AS renew_null, vault_lease_lookup(NULL) IS NULL AS lookup_null;
