/*
 * kv.c
 *    SQL functions over Vault's KV version 2 engine: read the latest or a
 *    given version of a secret (whole or one field), write a new version
 *    with optional check-and-set, and list the keys under a prefix.
 *
 *    Secrets are JSON objects in Vault and jsonb here.  Values cross the
 *    wire in UTF-8 and are converted from and to the database encoding.
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"

#include "pg_vault.h"

/*---- GUC variables ----*/

char	   *vault_kv_mount = NULL;

static const char *
mount(void)
{
	return (vault_kv_mount && vault_kv_mount[0]) ? vault_kv_mount : "secret";
}

/* "<mount>/<area>/<encoded secret path>" */
static char *
secret_path(const char *area, const char *secret, bool allow_empty)
{
	StringInfoData path;

	initStringInfo(&path);
	appendStringInfo(&path, "%s/%s/", mount(), area);
	vault_append_secret_path(&path, secret, allow_empty);
	return path.data;
}

/*
 * Reads a version (0 = latest) of a secret; raises 42704 when it does not
 * exist or was deleted or destroyed.  Returns a document with data.data.
 */
static VaultDoc *
kv_read(const char *secret, int32 version, const VaultOp *op)
{
	char	   *path = secret_path("data", secret, false);
	VaultResult res;
	VaultDoc   *doc;
	bool		destroyed = false;

	if (version != 0)
	{
		if (version < 1)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("Vault secret versions start at 1")));
		path = psprintf("%s?version=%d", path, version);
	}
	vault_request(&res, VAULT_GET, path, NULL, 0, VAULT_RETRY_IDEMPOTENT | VAULT_KIND(VS_KV_READ));
	doc = vault_doc_parse(&res, op, VAULT_ACCEPT_404);

	if (vault_doc_status(doc) == 404 || !vault_doc_has(doc, "data.data"))
	{
		/* a deleted or destroyed version comes as a 404 with metadata */
		if (vault_doc_has(doc, "data.metadata"))
		{
			(void) vault_doc_bool_opt(doc, "data.metadata.destroyed", &destroyed);
			vault_raise_not_found(op, destroyed ?
								  "That version of the secret was destroyed." :
								  "That version of the secret was deleted.");
		}
		vault_raise_not_found(op, version ?
							  "The secret or that version of it does not exist." :
							  "The secret does not exist.");
	}
	return doc;
}

/* The secret as jsonb; its JSON text is wiped and freed. */
static Datum
json_to_jsonb(char *json)
{
	Datum		d = DirectFunctionCall1(jsonb_in, CStringGetDatum(json));

	explicit_bzero(json, strlen(json));
	pfree(json);
	return d;
}

/* SQL function: vault_kv(path text) returns jsonb */
PG_FUNCTION_INFO_V1(pg_vault_kv);
Datum
pg_vault_kv(PG_FUNCTION_ARGS)
{
	char	   *secret = text_to_cstring(PG_GETARG_TEXT_PP(0));
	VaultOp		op = {"read Vault secret", secret};
	VaultDoc   *doc = kv_read(secret, 0, &op);
	char	   *json = vault_doc_json(doc, "data.data", NULL);

	vault_doc_free(doc);
	return json_to_jsonb(json);
}

/* SQL function: vault_kv_version(path text, version int) returns jsonb */
PG_FUNCTION_INFO_V1(pg_vault_kv_version);
Datum
pg_vault_kv_version(PG_FUNCTION_ARGS)
{
	char	   *secret = text_to_cstring(PG_GETARG_TEXT_PP(0));
	int32		version = PG_GETARG_INT32(1);
	VaultOp		op = {"read Vault secret", secret};
	VaultDoc   *doc = kv_read(secret, version, &op);
	char	   *json = vault_doc_json(doc, "data.data", NULL);

	vault_doc_free(doc);
	return json_to_jsonb(json);
}

/*
 * SQL function: vault_kv(path text, field text) returns text: a string
 * field as is, any other value as JSON, a JSON null as NULL.
 */
PG_FUNCTION_INFO_V1(pg_vault_kv_field);
Datum
pg_vault_kv_field(PG_FUNCTION_ARGS)
{
	char	   *secret = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *field = text_to_cstring(PG_GETARG_TEXT_PP(1));
	VaultOp		op = {"read Vault secret", secret};
	VaultDoc   *doc = kv_read(secret, 0, &op);
	char	   *value;
	bool		found;

	value = vault_doc_field_text(doc, "data.data", field, &found);
	vault_doc_free(doc);
	if (!found)
		vault_raise_not_found(&op, psprintf("The secret has no field \"%s\".", field));
	if (value == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(value));
}

/*
 * SQL function: vault_kv_put(path text, data jsonb, cas int) returns the
 * new version.  cas NULL writes unconditionally, 0 only creates, N only
 * replaces version N.
 */
PG_FUNCTION_INFO_V1(pg_vault_kv_put);
Datum
pg_vault_kv_put(PG_FUNCTION_ARGS)
{
	char	   *secret;
	Jsonb	   *data;
	VaultOp		op = {0};
	char	   *path;
	char	   *json;
	char	   *utf8;
	StringInfoData body;
	VaultJsonWriter w;
	VaultResult res;
	VaultDoc   *doc;
	int64		version;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	secret = text_to_cstring(PG_GETARG_TEXT_PP(0));
	data = PG_GETARG_JSONB_P(1);
	op.what = "write Vault secret";
	op.object = secret;

	if (!JB_ROOT_IS_OBJECT(data) || JB_ROOT_IS_SCALAR(data))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("Vault secret data must be a JSON object")));
	path = secret_path("data", secret, false);

	json = JsonbToCString(NULL, &data->root, VARSIZE(data));
	utf8 = pg_server_to_any(json, strlen(json), PG_UTF8);

	initStringInfo(&body);
	vault_jw_begin(&w, &body);
	vault_jw_raw(&w, "data", utf8);
	vault_jw_key(&w, "options");
	if (PG_ARGISNULL(2))
		appendStringInfoString(&body, "{}");
	else
	{
		VaultJsonWriter o;

		if (PG_GETARG_INT32(2) < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("cas must not be negative")));
		vault_jw_begin(&o, &body);
		vault_jw_int(&o, "cas", PG_GETARG_INT32(2));
		vault_jw_end(&o);
	}
	vault_jw_end(&w);

	/* a repeated write would add a version: retry only where Vault did not act */
	vault_request(&res, VAULT_POST, path, body.data, body.len, VAULT_SECRET_BODY | VAULT_KIND(VS_KV_WRITE));
	explicit_bzero(body.data, body.len);
	explicit_bzero(json, strlen(json));

	doc = vault_doc_parse(&res, &op, 0);
	version = vault_doc_int(doc, "data.version", &op);
	vault_doc_free(doc);
	if (version < 1 || version > PG_INT32_MAX)
		vault_raise_malformed(&op, "\"data.version\" is out of range");
	PG_RETURN_INT32((int32) version);
}

/*
 * SQL function: vault_kv_list(prefix text) returns setof text: the keys
 * under prefix, folders ending in "/"; none when there are none.
 */
PG_FUNCTION_INFO_V1(pg_vault_kv_list);
Datum
pg_vault_kv_list(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *prefix = text_to_cstring(PG_GETARG_TEXT_PP(0));
	VaultOp		op = {"list Vault secrets under", prefix};
	char	   *path = secret_path("metadata", prefix, true);
	VaultResult res;
	VaultDoc   *doc;
	char	  **keys;
	int			n;
	int			i;

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);

	vault_request(&res, VAULT_LIST, path, NULL, 0, VAULT_RETRY_IDEMPOTENT | VAULT_KIND(VS_KV_LIST));
	doc = vault_doc_parse(&res, &op, VAULT_ACCEPT_404);
	if (vault_doc_status(doc) == 404)
	{
		vault_doc_free(doc);
		return (Datum) 0;
	}
	n = vault_doc_string_array(doc, "data.keys", &keys, &op);
	vault_doc_free(doc);
	for (i = 0; i < n; i++)
	{
		Datum		value = CStringGetTextDatum(keys[i]);
		bool		isnull = false;

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &value, &isnull);
	}
	return (Datum) 0;
}

void
vault_kv_init(void)
{
	DefineCustomStringVariable("vault.kv_mount",
							   gettext_noop("Path where Vault's KV version 2 engine is mounted."),
							   NULL,
							   &vault_kv_mount, "secret",
							   PGC_SUSET, 0,
							   NULL, NULL, NULL);
}
