/*
 * pg_vault.c
 *    Entry point of the pg_vault extension: HashiCorp Vault (Transit, KV v2)
 *    from SQL.  Each area defines its own settings; this file only calls
 *    their init functions and reserves the "vault" prefix.
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"

#include "pg_vault.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

void
_PG_init(void)
{
	if (IsBinaryUpgrade)
		return;

	vault_http_init();
	vault_envelope_init();
	vault_auth_init();
	vault_transit_init();
	vault_kv_init();
	vault_columns_init();
	vault_dek_init();
	vault_redact_init();
	vault_stat_init();

#if PG_VERSION_NUM >= 150000
	MarkGUCPrefixReserved("vault");
#else
	EmitWarningsOnPlaceholders("vault");
#endif
}
