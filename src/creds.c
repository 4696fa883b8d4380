/*
 * creds.c
 *    SQL functions over Vault's database secrets engine and its leases:
 *    vault_db_creds has Vault create a short-lived database user
 *    (GET <mount>/creds/<role>) and returns it with its lease, and
 *    vault_lease_renew, vault_lease_revoke and vault_lease_lookup act on
 *    that lease, or any other, through sys/leases.
 *
 *    The issued password is a secret like a token: no message names it,
 *    and the copies this code controls are wiped once the result row is
 *    built (the HTTP response buffer, the string in the parsed document,
 *    the converted copies here).  The row itself then belongs to
 *    PostgreSQL, which sends it to the client and frees it without wiping.
 *
 *    Issuing credentials is not idempotent: the request is retried only
 *    where Vault cannot have acted on it, so a retry never creates a second
 *    user.  When Vault did issue credentials that cannot be returned (a
 *    response missing a field, a value the database encoding cannot hold),
 *    their lease is revoked before the error is raised, so that no database
 *    user outlives the call unseen.  Nothing here is transactional: a
 *    rollback does not revoke what was issued.
 */
#include "postgres.h"

#include "common/string.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "pg_vault.h"

/* What vault_db_creds returns, server-encoded and palloc'd. */
typedef struct IssuedCreds
{
	char	   *username;
	char	   *password;
	char	   *lease_id;
	int32		lease_duration;
	bool		renewable;
	char	   *raw_lease_id;	/* as Vault sent it, for a revocation */
} IssuedCreds;

static void
wipe_string(char *s)
{
	if (s != NULL)
		explicit_bzero(s, strlen(s));
}

/*
 * The lease_id argument of the sys/leases calls.  Lease ids go in the
 * request body, never in the path, so any non-empty text may be sent.
 */
static char *
lease_arg(text *arg)
{
	char	   *s = text_to_cstring(arg);

	if (s[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("Vault lease_id must not be empty")));
	return s;
}

/* A request body {"lease_id": id, ...} opened in *w; the caller ends it. */
static void
begin_lease_body(StringInfo body, VaultJsonWriter *w, const char *lease_id)
{
	char	   *utf8 = pg_server_to_any(lease_id, strlen(lease_id), PG_UTF8);

	initStringInfo(body);
	vault_jw_begin(w, body);
	vault_jw_string(w, "lease_id", utf8);
}

/* An interval as whole seconds for Vault, months counting 30 days. */
static int64
interval_seconds(const Interval *iv, const char *what)
{
	int64		secs;

	secs = iv->time / USECS_PER_SEC +
		((int64) iv->month * DAYS_PER_MONTH + iv->day) * SECS_PER_DAY;
	if (secs < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be negative", what)));
	return secs;
}

/*
 * A string field of the document as a palloc'd server-encoded copy, or
 * NULL with *problem set.  Problems are described by the field's name
 * only, never its value.  A conversion that could fail (and whose error
 * would quote the bytes) is not attempted: jansson's strings are valid
 * UTF-8, so only non-ASCII text for a database in another encoding is
 * refused, with *encoding set.
 */
static char *
take_string(VaultDoc *doc, const char *path, const char **problem,
			bool *encoding)
{
	size_t		len;
	const char *s = vault_doc_string_opt(doc, path, &len);
	int			dbenc = GetDatabaseEncoding();
	char	   *copy;
	char	   *conv;

	if (s == NULL)
	{
		*problem = psprintf("\"%s\" is missing or not a string", path);
		return NULL;
	}
	if (len == 0 || memchr(s, '\0', len) != NULL)
	{
		*problem = psprintf("\"%s\" is empty or contains a NUL character", path);
		return NULL;
	}
	copy = pnstrdup(s, len);
	if (dbenc != PG_UTF8 && dbenc != PG_SQL_ASCII && !pg_is_ascii(copy))
	{
		wipe_string(copy);
		*encoding = true;
		*problem = psprintf("\"%s\" holds characters outside ASCII, which this database's encoding may not represent", path);
		return NULL;
	}
	conv = pg_any_to_server(copy, (int) len, PG_UTF8);
	if (conv != copy)
	{
		wipe_string(copy);
		pfree(copy);
	}
	return conv;
}

/*
 * Reads the credentials out of a creds/:role answer.  Returns NULL, or a
 * description of what is wrong (with *encoding set when it is the
 * database encoding rather than the response).  Whatever was taken is in
 * *c either way, for the caller to wipe.
 */
static const char *
take_creds(VaultDoc *doc, IssuedCreds *c, bool *encoding)
{
	const char *problem = NULL;
	const char *raw;
	int64		duration;

	memset(c, 0, sizeof(*c));
	*encoding = false;

	raw = vault_doc_string_opt(doc, "lease_id", NULL);
	if (raw != NULL && raw[0] != '\0')
		c->raw_lease_id = pstrdup(raw);

	c->lease_id = take_string(doc, "lease_id", &problem, encoding);
	if (problem)
		return problem;
	c->username = take_string(doc, "data.username", &problem, encoding);
	if (problem)
		return problem;
	c->password = take_string(doc, "data.password", &problem, encoding);
	if (problem)
		return problem;
	if (!vault_doc_int_opt(doc, "lease_duration", &duration) ||
		duration < 0 || duration > PG_INT32_MAX)
		return "\"lease_duration\" is missing or out of range";
	c->lease_duration = (int32) duration;
	if (!vault_doc_bool_opt(doc, "renewable", &c->renewable))
		return "\"renewable\" is missing or not a boolean";
	return NULL;
}

/*
 * Revokes credentials that were issued but cannot be returned.  The
 * outcome is not reported: the error about to be raised says more, and
 * an unrevoked lease still ends at its TTL.
 */
static void
revoke_unreturned(const char *raw_lease_id)
{
	StringInfoData body;
	VaultJsonWriter w;
	VaultResult res;

	initStringInfo(&body);
	vault_jw_begin(&w, &body);
	vault_jw_string(&w, "lease_id", raw_lease_id);
	vault_jw_bool(&w, "sync", true);
	vault_jw_end(&w);
	vault_request(&res, VAULT_PUT, "sys/leases/revoke", body.data, body.len,
				  VAULT_RETRY_IDEMPOTENT | VAULT_KIND(VS_LEASE));
}

/* Parses a response that carries a password, wiping the raw body after. */
static VaultDoc *
parse_secret_response(const VaultResult *res, const VaultOp *op)
{
	VaultDoc   *volatile doc = NULL;

	PG_TRY();
	{
		doc = vault_doc_parse(res, op, 0);
	}
	PG_CATCH();
	{
		vault_http_wipe_response();
		PG_RE_THROW();
	}
	PG_END_TRY();
	vault_http_wipe_response();
	return doc;
}

/*
 * SQL function: vault_db_creds(role text, mount text) returns table
 * (username, password, lease_id, lease_duration, renewable): one row of
 * new credentials from <mount>/creds/<role>.
 */
PG_FUNCTION_INFO_V1(pg_vault_db_creds);
Datum
pg_vault_db_creds(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *role = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *mount = text_to_cstring(PG_GETARG_TEXT_PP(1));
	StringInfoData path;
	VaultOp		op = {0};
	VaultResult res;
	VaultDoc   *doc;
	IssuedCreds c;
	const char *problem;
	bool		encoding;
	Datum		values[5];
	bool		nulls[5] = {false, false, false, false, false};
	text	   *password;

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);

	vault_check_role_name(role);
	initStringInfo(&path);
	vault_append_mount_path(&path, mount);
	appendStringInfo(&path, "/creds/%s", role);
	op.what = "get Vault database credentials";
	op.object = path.data;
	op.scrub_quotes = true;

	vault_request(&res, VAULT_GET, path.data, NULL, 0, VAULT_KIND(VS_CREDS));
	doc = parse_secret_response(&res, &op);

	problem = take_creds(doc, &c, &encoding);
	vault_doc_wipe_string(doc, "data.password");
	vault_doc_free(doc);

	if (problem != NULL)
	{
		wipe_string(c.password);
		if (c.raw_lease_id != NULL)
			revoke_unreturned(c.raw_lease_id);
		if (encoding)
			ereport(ERROR,
					(errcode(ERRCODE_UNTRANSLATABLE_CHARACTER),
					 errmsg("could not return the credentials Vault issued for \"%s\"", path.data),
					 errdetail("The answer's %s.", problem),
					 errhint("Use a database encoded in UTF8, or an ASCII password policy in Vault.  pg_vault asked Vault to revoke the lease.")));
		vault_raise_malformed(&op, problem);
	}

	values[0] = CStringGetTextDatum(c.username);
	password = cstring_to_text(c.password);
	values[1] = PointerGetDatum(password);
	values[2] = CStringGetTextDatum(c.lease_id);
	values[3] = Int32GetDatum(c.lease_duration);
	values[4] = BoolGetDatum(c.renewable);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);

	explicit_bzero(VARDATA(password), VARSIZE(password) - VARHDRSZ);
	wipe_string(c.password);
	return (Datum) 0;
}

/*
 * SQL function: vault_lease_renew(lease_id text, increment interval)
 * returns jsonb {lease_id, lease_duration, renewable[, warnings]}.  A NULL
 * increment lets Vault choose (the TTL granted last time); Vault caps the
 * result at the lease's max TTL and says so in warnings.
 */
PG_FUNCTION_INFO_V1(pg_vault_lease_renew);
Datum
pg_vault_lease_renew(PG_FUNCTION_ARGS)
{
	char	   *lease_id;
	VaultOp		op = {0};
	StringInfoData body;
	StringInfoData out;
	VaultJsonWriter w;
	VaultResult res;
	VaultDoc   *doc;
	char	   *renewed;
	char	   *warnings;
	int64		duration;
	bool		renewable = false;
	bool		found;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	lease_id = lease_arg(PG_GETARG_TEXT_PP(0));
	op.what = "renew Vault lease";
	op.object = lease_id;

	begin_lease_body(&body, &w, lease_id);
	if (!PG_ARGISNULL(1))
		vault_jw_int(&w, "increment",
					 interval_seconds(PG_GETARG_INTERVAL_P(1), "increment"));
	vault_jw_end(&w);

	/* a repeat asks for the same end of lease again */
	vault_request(&res, VAULT_PUT, "sys/leases/renew", body.data, body.len,
				  VAULT_RETRY_IDEMPOTENT | VAULT_KIND(VS_LEASE));
	doc = vault_doc_parse(&res, &op, 0);

	renewed = vault_doc_field_text(doc, "", "lease_id", &found);
	if (renewed == NULL || renewed[0] == '\0')
		vault_raise_malformed(&op, "\"lease_id\" is missing or empty");
	duration = vault_doc_int(doc, "lease_duration", &op);
	if (duration < 0 || duration > PG_INT32_MAX)
		vault_raise_malformed(&op, "\"lease_duration\" is out of range");
	(void) vault_doc_bool_opt(doc, "renewable", &renewable);
	warnings = vault_doc_has(doc, "warnings") ?
		vault_doc_json(doc, "warnings", NULL) : NULL;
	vault_doc_free(doc);

	initStringInfo(&out);
	vault_jw_begin(&w, &out);
	vault_jw_string(&w, "lease_id", renewed);
	vault_jw_int(&w, "lease_duration", duration);
	vault_jw_bool(&w, "renewable", renewable);
	if (warnings != NULL)
		vault_jw_raw(&w, "warnings", warnings);
	vault_jw_end(&w);
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(out.data));
}

/*
 * SQL function: vault_lease_revoke(lease_id text) returns void.  Sent with
 * sync=true, so that when it returns the secret is gone (for database
 * credentials: the revocation statements have run) or an error says why
 * not.  Revoking a lease Vault does not know succeeds, as in Vault.
 */
PG_FUNCTION_INFO_V1(pg_vault_lease_revoke);
Datum
pg_vault_lease_revoke(PG_FUNCTION_ARGS)
{
	char	   *lease_id = lease_arg(PG_GETARG_TEXT_PP(0));
	VaultOp		op = {"revoke Vault lease", lease_id};
	StringInfoData body;
	VaultJsonWriter w;
	VaultResult res;
	VaultDoc   *doc;

	begin_lease_body(&body, &w, lease_id);
	vault_jw_bool(&w, "sync", true);
	vault_jw_end(&w);

	vault_request(&res, VAULT_PUT, "sys/leases/revoke", body.data, body.len,
				  VAULT_RETRY_IDEMPOTENT | VAULT_KIND(VS_LEASE));
	doc = vault_doc_parse(&res, &op, 0);
	vault_doc_free(doc);
	PG_RETURN_VOID();
}

/*
 * SQL function: vault_lease_lookup(lease_id text) returns jsonb: Vault's
 * {id, issue_time, expire_time, last_renewal, renewable, ttl}.
 */
PG_FUNCTION_INFO_V1(pg_vault_lease_lookup);
Datum
pg_vault_lease_lookup(PG_FUNCTION_ARGS)
{
	char	   *lease_id = lease_arg(PG_GETARG_TEXT_PP(0));
	VaultOp		op = {"look up Vault lease", lease_id};
	StringInfoData body;
	VaultJsonWriter w;
	VaultResult res;
	VaultDoc   *doc;
	char	   *json;

	begin_lease_body(&body, &w, lease_id);
	vault_jw_end(&w);

	vault_request(&res, VAULT_PUT, "sys/leases/lookup", body.data, body.len,
				  VAULT_RETRY_IDEMPOTENT | VAULT_KIND(VS_LEASE));
	doc = vault_doc_parse(&res, &op, 0);
	json = vault_doc_json(doc, "data", NULL);
	vault_doc_free(doc);
	if (json == NULL || strcmp(json, "null") == 0)
		vault_raise_malformed(&op, "\"data\" is missing");
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(json));
}
