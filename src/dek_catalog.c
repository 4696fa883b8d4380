/*
 * dek_catalog.c
 *    Envelope encryption's catalog, vault_envelope_keys, read and written
 *    as the table's owner (so that callers need only EXECUTE on the
 *    functions).  The bottom of the data-key files: it calls neither dek.c
 *    (the cache of unwrapped keys and the hot paths) nor dek_admin.c (the
 *    SQL functions that administer data keys), which both call it.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "pg_vault.h"
#include "dek.h"

#define CATALOG_TABLE	"vault_envelope_keys"

/* Where Transit is mounted (vault.transit_mount). */
const char *
vault_dek_transit_mount(void)
{
	return (vault_transit_mount && vault_transit_mount[0]) ? vault_transit_mount : "transit";
}

/*---- the catalog, as its owner ----*/

/* The schema pg_vault is installed in (get_extension_schema is static before 16). */
static Oid
extension_schema(void)
{
	Oid			ext = get_extension_oid("pg_vault", false);
	Relation	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	Oid			nsp = InvalidOid;

	ScanKeyInit(&key, Anum_pg_extension_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(ext));
	scan = systable_beginscan(rel, ExtensionOidIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
		nsp = ((Form_pg_extension) GETSTRUCT(tup))->extnamespace;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return nsp;
}

void
vault_dek_catalog_begin(VaultDekCatalog *ca)
{
	Oid			nsp = extension_schema();
	Oid			rel = get_relname_relid(CATALOG_TABLE, nsp);
	HeapTuple	tup;
	Oid			owner;

	if (!OidIsValid(rel))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("pg_vault's table %s is missing", CATALOG_TABLE),
				 errhint("ALTER EXTENSION pg_vault UPDATE creates it.")));
	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(rel));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", rel);
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);

	ca->table = psprintf("%s.%s", quote_identifier(get_namespace_name(nsp)),
						 CATALOG_TABLE);
	GetUserIdAndSecContext(&ca->save_user, &ca->save_sec);
	/* an abort restores the caller's identity by itself */
	SetUserIdAndSecContext(owner, ca->save_sec | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
}

void
vault_dek_catalog_end(VaultDekCatalog *ca)
{
	SPI_finish();
	SetUserIdAndSecContext(ca->save_user, ca->save_sec);
	pfree(ca->table);
}

/* Runs a statement with int8/text parameters; returns SPI_processed. */
uint64
vault_dek_catalog_exec(const char *sql, int nargs, Oid *types, Datum *values, int expect)
{
	int			rc = SPI_execute_with_args(sql, nargs, types, values, NULL, false, 0);

	if (rc != expect)
		elog(ERROR, "pg_vault catalog statement failed: %s", SPI_result_code_string(rc));
	return SPI_processed;
}

int64
vault_dek_catalog_int8(int row, int col)
{
	bool		isnull;
	Datum		v = SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col, &isnull);

	return isnull ? 0 : DatumGetInt64(v);
}

char *
vault_dek_catalog_text(int row, int col)
{
	return SPI_getvalue(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col);
}

TimestampTz
vault_dek_catalog_ts(int row, int col)
{
	bool		isnull;
	Datum		v = SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col, &isnull);

	return isnull ? 0 : DatumGetTimestampTz(v);
}
