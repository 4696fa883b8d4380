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
