/*
 * sys.c
 *    SQL functions that look at Vault itself rather than an engine: the
 *    server's health (unauthenticated) and the token pg_vault uses (minus
 *    the token's id, which is the secret itself).
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "pg_vault.h"

/*
 * SQL function: vault_health() returns jsonb: Vault's sys/health answer,
 * whatever its status (a sealed or standby server still answers).
 */
PG_FUNCTION_INFO_V1(pg_vault_health);
Datum
pg_vault_health(PG_FUNCTION_ARGS)
{
	static const VaultOp op = {"read Vault health", NULL};
	VaultResult res;
	VaultDoc   *doc;
	char	   *json;

	vault_request(&res, VAULT_GET,
				  "sys/health?standbyok=true&perfstandbyok=true",
				  NULL, 0, VAULT_NO_AUTH | VAULT_NO_RETRY | VAULT_KIND(VS_HEALTH));
	doc = vault_doc_parse(&res, &op, VAULT_ACCEPT_ANY);
	json = vault_doc_json(doc, "", NULL);
	vault_doc_free(doc);
	if (json == NULL)
		vault_raise_malformed(&op, "the body is empty");
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(json));
}

/*
 * SQL function: vault_token_info() returns jsonb: lookup-self of the token
 * in use, without its id.
 */
PG_FUNCTION_INFO_V1(pg_vault_token_info);
Datum
pg_vault_token_info(PG_FUNCTION_ARGS)
{
	static const VaultOp op = {"look up the Vault token", NULL};
	static const char *const omit[] = {"id", NULL};
	VaultResult res;
	VaultDoc   *doc;
	char	   *json;

	vault_request(&res, VAULT_GET, "auth/token/lookup-self", NULL, 0,
				  VAULT_RETRY_IDEMPOTENT | VAULT_KIND(VS_TOKEN));
	doc = vault_doc_parse(&res, &op, 0);
	json = vault_doc_json(doc, "data", omit);
	vault_doc_free(doc);
	if (json == NULL)
		vault_raise_malformed(&op, "\"data\" is missing");
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(json));
}
