/*
 * dek_admin.c
 *    The SQL functions that administer envelope encryption's data keys:
 *    rewrap after a Transit key rotation, retire, delete (crypto-shredding).
 *    They change the catalog (dek_catalog.c) and then drop what this
 *    backend's cache (dek.c) holds of the key.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"

#include "pg_vault.h"
#include "dek.h"

/*---- SQL functions: data key administration ----*/

/*
 * SQL function: vault_envelope_rewrap_keys(key text) returns integer.
 * transit/rewrap of every DEK (not deleted) of a Transit key, batch_size at
 * a time: after vault_key_rotate, O(DEKs) work for any number of rows.
 */
PG_FUNCTION_INFO_V1(pg_vault_envelope_rewrap_keys);
Datum
pg_vault_envelope_rewrap_keys(PG_FUNCTION_ARGS)
{
	char	   *key = text_to_cstring(PG_GETARG_TEXT_PP(0));
	VaultOp		op = {"rewrap data keys with Vault key", key};
	VaultDekCatalog ca;
	Oid			types[2] = {TEXTOID, INT8OID};
	Datum		values[2];
	char	   *path;
	int			n,
				done = 0;
	int64	   *ids;
	char	  **wrapped;
	const char **news;
	size_t	   *lens;
	int		   *subs;
	int			per = vault_batch_items();
	char	   *update;

	vault_check_key_name(key);
	path = psprintf("%s/rewrap/%s", vault_dek_transit_mount(), key);
	vault_dek_catalog_begin(&ca);
	values[0] = CStringGetTextDatum(key);
	vault_dek_catalog_exec(psprintf("SELECT id, wrapped_key FROM %s WHERE transit_key OPERATOR(pg_catalog.=) $1 "
						  "AND wrapped_key IS NOT NULL ORDER BY id FOR UPDATE", ca.table),
				 1, types, values, SPI_OK_SELECT);
	n = (int) SPI_processed;
	ids = palloc(sizeof(int64) * Max(n, 1));
	wrapped = palloc(sizeof(char *) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		ids[i] = vault_dek_catalog_int8(i, 1);
		wrapped[i] = vault_dek_catalog_text(i, 2);
	}
	news = palloc(sizeof(char *) * per);
	lens = palloc(sizeof(size_t) * per);
	subs = palloc(sizeof(int) * per);
	update = psprintf("UPDATE %s SET wrapped_key = $1 WHERE id OPERATOR(pg_catalog.=) $2", ca.table);
	types[1] = INT8OID;

	while (done < n)
	{
		int			m = Min(per, n - done);
		StringInfoData body;
		VaultResult res;
		VaultDoc   *doc;

		initStringInfo(&body);
		appendStringInfoString(&body, "{\"batch_input\":[");
		for (int k = 0; k < m; k++)
		{
			VaultJsonWriter w;

			if (k > 0)
				appendStringInfoChar(&body, ',');
			vault_jw_begin(&w, &body);
			vault_jw_string(&w, "ciphertext", wrapped[done + k]);
			vault_jw_end(&w);
			subs[k] = done + k + 1;
		}
		appendStringInfoString(&body, "]}");
		vault_stat_set_rows(m);
		vault_request(&res, VAULT_POST, path, body.data, body.len,
					  VAULT_RETRY_IDEMPOTENT | VAULT_KIND(VS_REWRAP));
		doc = vault_doc_parse(&res, &op, VAULT_ACCEPT_BATCH);
		vault_doc_batch(doc, "ciphertext", m, news, lens, subs, &op);
		for (int k = 0; k < m; k++)
		{
			values[0] = PointerGetDatum(cstring_to_text_with_len(news[k], (int) lens[k]));
			values[1] = Int64GetDatum(ids[done + k]);
			vault_dek_catalog_exec(update, 2, types, values, SPI_OK_UPDATE);
		}
		vault_doc_free(doc);
		pfree(body.data);
		done += m;
	}
	vault_dek_catalog_end(&ca);
	PG_RETURN_INT32(n);
}

/*
 * Retire or delete one DEK.  Deleting removes the wrapped key: every value
 * encrypted under it becomes undecryptable (crypto-shredding), here at
 * once, in other backends once their cached copy expires.  A backend may
 * go on encrypting under a DEK until its cached copy expires, so unless
 * forced, only a DEK retired at least vault.envelope_key_ttl ago may be
 * deleted: otherwise new values could be written under a deleted key.
 */
static bool
dek_set_state(int64 id, bool delete, bool force)
{
	VaultDekCatalog ca;
	Oid			types[2] = {INT8OID, FLOAT8OID};
	Datum		values[2] = {Int64GetDatum(id), Float8GetDatum((double) vault_envelope_key_ttl)};
	uint64		n;

	vault_dek_catalog_begin(&ca);
	if (delete && !force)
	{
		vault_dek_catalog_exec(psprintf("SELECT retired_at IS NOT NULL AND retired_at OPERATOR(pg_catalog.<=) "
							  "(pg_catalog.now() OPERATOR(pg_catalog.-) ($2 OPERATOR(pg_catalog.*) '1 second'::pg_catalog.interval)) "
							  "FROM %s WHERE id OPERATOR(pg_catalog.=) $1 AND deleted_at IS NULL FOR UPDATE",
							  ca.table), 2, types, values, SPI_OK_SELECT);
		if (SPI_processed == 1 && strcmp(vault_dek_catalog_text(0, 1), "t") != 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("data key " INT64_FORMAT " was not retired at least %d s ago", id, vault_envelope_key_ttl),
					 errdetail("Backends may still encrypt under it until their cached copy expires (vault.envelope_key_ttl)."),
					 errhint("Call vault_envelope_retire_key() and delete it once vault.envelope_key_ttl has passed, or pass force => true.")));
	}
	if (delete)
		n = vault_dek_catalog_exec(psprintf("UPDATE %s SET wrapped_key = NULL, deleted_at = pg_catalog.now(), "
								  "retired_at = coalesce(retired_at, pg_catalog.now()) "
								  "WHERE id OPERATOR(pg_catalog.=) $1 AND deleted_at IS NULL", ca.table),
						 1, types, values, SPI_OK_UPDATE);
	else
		n = vault_dek_catalog_exec(psprintf("UPDATE %s SET retired_at = pg_catalog.now() "
								  "WHERE id OPERATOR(pg_catalog.=) $1 AND retired_at IS NULL", ca.table),
						 1, types, values, SPI_OK_UPDATE);
	vault_dek_catalog_end(&ca);
	vault_dek_forget(id, delete);
	return n == 1;
}

/* SQL function: vault_envelope_delete_key(dek_id bigint, force boolean) returns boolean */
PG_FUNCTION_INFO_V1(pg_vault_envelope_delete_key);
Datum
pg_vault_envelope_delete_key(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	PG_RETURN_BOOL(dek_set_state(PG_GETARG_INT64(0), true,
								 !PG_ARGISNULL(1) && PG_GETARG_BOOL(1)));
}

/* SQL function: vault_envelope_retire_key(dek_id bigint) returns boolean */
PG_FUNCTION_INFO_V1(pg_vault_envelope_retire_key);
Datum
pg_vault_envelope_retire_key(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(dek_set_state(PG_GETARG_INT64(0), false, false));
}
