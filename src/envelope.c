/*
 * envelope.c
 *    Vault responses: the one mapping from outcomes to SQLSTATEs.  The
 *    JSON is read by src/common/vault_json.c (jansson, no PostgreSQL: the
 *    fuzz target fuzz/fuzz_envelope.c runs the same code).
 *
 *    Outcome                                         SQLSTATE
 *    ----------------------------------------------  -----------------------
 *    cannot connect, resolve, TLS failure, bad addr  58V01 (pg_vault) Vault unreachable
 *    connection lost mid-request, request timeout    58V02 (pg_vault) Vault connection lost
 *    malformed or truncated response                 58V03 (pg_vault) bad Vault response
 *    response above vault.max_response_size          54000 program_limit_exceeded
 *    cancel, statement_timeout                       57014 query_canceled
 *    Vault 400 (invalid request, batch element)      22023 invalid_parameter_value
 *    Vault 401                                       28000 invalid_authorization_specification
 *    Vault 403 (permission denied, invalid token)    42501 insufficient_privilege
 *    Vault 404 (no such key, path or version)        42704 undefined_object
 *    Vault 405                                       0A000 feature_not_supported
 *    Vault 412, 501, 503 (sealed, standby, not init) 55000 object_not_in_prerequisite_state
 *    Vault 413                                       54000 program_limit_exceeded
 *    Vault 429 (rate limit quota)                    53400 configuration_limit_exceeded
 *    Vault 500, 502, other 5xx, other statuses       58000 system_error
 *    other libcurl failures                          58000 system_error
 *
 *    Transport failures are never class 08 (connection exception): to a
 *    client, class 08 means its connection to PostgreSQL is broken, and
 *    pools (HikariCP, pgx, ...) throw such connections away, so a Vault
 *    outage would become a reconnection storm on the database.  Nor 57P0x
 *    (the server going away).  They are class 58, "system error", which
 *    PostgreSQL uses for failures outside itself, with subclasses of
 *    pg_vault's own (V01-V03; the standard leaves subclasses starting
 *    with V to implementations).
 *
 *    Vault's own message goes to errdetail.  libcurl's description of a
 *    transport failure names the server address, which non-superusers may
 *    not see (vault.addr is superuser-only), so it goes only to the server
 *    log (errdetail_log).
 *
 *    Parsed documents are jansson trees on malloc: each is freed by a reset
 *    callback on the memory context it was parsed in, so an error raised
 *    while one is open does not leak it.
 */
#include "postgres.h"

#include <jansson.h>

#include "mb/pg_wchar.h"
#include "utils/memutils.h"

#include "pg_vault.h"
#include "common/vault_common.h"
#include "common/vault_json.h"

struct VaultDoc
{
	json_t	   *root;			/* NULL for an empty (204) response */
	long		status;
	MemoryContextCallback cb;
};

pg_noreturn static void raise_status_root(json_t *root, long status, const VaultOp *op);
pg_noreturn static void raise_status_and_free(json_t *root, long status, const VaultOp *op);

/* Vault's errors are short; a detail longer than this is cut. */
#define MAX_DETAIL 2000

static void
doc_reset_callback(void *arg)
{
	VaultDoc   *doc = (VaultDoc *) arg;

	if (doc->root)
	{
		json_decref(doc->root);
		doc->root = NULL;
	}
}

/*
 * jansson's allocations, wiped before they are freed: parsed answers hold
 * decrypted plaintexts, tokens and KV values in their string nodes, and
 * json_decref would otherwise leave them in freed heap (and core files).
 */
void
vault_envelope_init(void)
{
	json_set_alloc_funcs(malloc, vc_wiping_free);
}

static int
status_errcode(long status)
{
	switch (status)
	{
		case 400:
			return ERRCODE_INVALID_PARAMETER_VALUE;
		case 401:
			return ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION;
		case 403:
			return ERRCODE_INSUFFICIENT_PRIVILEGE;
		case 404:
			return ERRCODE_UNDEFINED_OBJECT;
		case 405:
			return ERRCODE_FEATURE_NOT_SUPPORTED;
		case 412:
		case 501:
		case 503:
			return ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE;
		case 413:
			return ERRCODE_PROGRAM_LIMIT_EXCEEDED;
		case 429:
			return ERRCODE_CONFIGURATION_LIMIT_EXCEEDED;
		default:
			return ERRCODE_SYSTEM_ERROR;
	}
}

static int
transport_errcode(VaultTransport t)
{
	switch (t)
	{
		case VT_CONNECT:
		case VT_TLS:
		case VT_CONFIG:
			return ERRCODE_VAULT_UNREACHABLE;
		case VT_TIMEOUT:
		case VT_LOST:
			return ERRCODE_VAULT_CONNECTION_LOST;
		case VT_TOO_LARGE:
			return ERRCODE_PROGRAM_LIMIT_EXCEEDED;
		case VT_CANCELED:
			return ERRCODE_QUERY_CANCELED;
		case VT_BREAKER:
			return ERRCODE_VAULT_UNREACHABLE;
		case VT_OK:
		case VT_OTHER:
			break;
	}
	return ERRCODE_SYSTEM_ERROR;
}

static const char *
transport_text(VaultTransport t)
{
	switch (t)
	{
		case VT_CONNECT:
			return "Could not connect to the Vault server.";
		case VT_TLS:
			return "The TLS handshake with the Vault server failed or its certificate could not be verified.";
		case VT_CONFIG:
			return "The Vault address or client settings are not valid.";
		case VT_TIMEOUT:
			return "The Vault request timed out.";
		case VT_LOST:
			return "The connection to the Vault server was lost.";
		case VT_TOO_LARGE:
			return "The Vault response is larger than vault.max_response_size.";
		case VT_CANCELED:
			return "The Vault request was canceled.";
		case VT_BREAKER:
			return "Every address in vault.addr failed vault.breaker_failures times in a row: calls fail at once until vault.breaker_cooldown_ms has passed (circuit breaker open).";
		case VT_OK:
		case VT_OTHER:
			break;
	}
	return "The Vault request failed.";
}

/*
 * errmsg for op.  A macro so that it is evaluated inside ereport.
 */
#define OP_ERRMSG(op) \
	((op)->object ? errmsg("could not %s \"%s\"", (op)->what, (op)->object) \
	 : errmsg("could not %s", (op)->what))

void
vault_raise_transport(const VaultResult *res, const VaultOp *op)
{
	vault_stat_error(transport_errcode(res->transport));
	ereport(ERROR,
			(errcode(transport_errcode(res->transport)),
			 OP_ERRMSG(op),
			 errdetail("%s", transport_text(res->transport)),
			 res->errbuf[0] ? errdetail_log("%s libcurl: %s",
											transport_text(res->transport),
											res->errbuf) : 0,
			 res->transport == VT_TLS ?
			 errhint("Check vault.ca_file and the Vault server's certificate.") : 0));
	pg_unreachable();
}

/*
 * Vault's messages from an {"errors":[...]} body (vault_json.c), in the
 * server encoding, or NULL.
 */
static char *
error_messages(json_t *root, bool scrub)
{
	char		buf[MAX_DETAIL + 1];
	char	   *msg;

	if (!vj_error_messages(root, scrub, buf, sizeof(buf)))
		return NULL;
	msg = pg_any_to_server(buf, strlen(buf), PG_UTF8);
	if (msg == buf)
		msg = pstrdup(buf);
	explicit_bzero(buf, sizeof(buf));
	return msg;
}

static void
raise_status_root(json_t *root, long status, const VaultOp *op)
{
	char	   *msg = error_messages(root, op->scrub_quotes);
	const char *hint = NULL;

	vault_stat_error(status_errcode(status));
	if (status == 403)
		hint = "Check the Vault policies of the token pg_vault uses.";
	else if (status == 503)
		hint = "Vault may be sealed or in maintenance.";

	ereport(ERROR,
			(errcode(status_errcode(status)),
			 OP_ERRMSG(op),
			 msg ? errdetail("Vault answered HTTP %ld: %s.", status, msg)
			 : errdetail("Vault answered HTTP %ld.", status),
			 hint ? errhint("%s", hint) : 0));
	pg_unreachable();
}

/* raise_status_root, freeing root (which may be NULL) on the way out. */
static void
raise_status_and_free(json_t *root, long status, const VaultOp *op)
{
	json_t	   *volatile vroot = root;

	PG_TRY();
	{
		raise_status_root(vroot, status, op);
	}
	PG_FINALLY();
	{
		if (vroot)
			json_decref(vroot);
	}
	PG_END_TRY();
	pg_unreachable();
}

void
vault_raise_status(const VaultResult *res, const VaultOp *op)
{
	VjBody		why;
	json_t	   *root = vj_parse_object(res->body, res->len, &why);

	vault_http_wipe_response();
	raise_status_and_free(root, res->status, op);
	pg_unreachable();
}

void
vault_raise_malformed(const VaultOp *op, const char *detail)
{
	vault_stat_error(ERRCODE_VAULT_BAD_RESPONSE);
	ereport(ERROR,
			(errcode(ERRCODE_VAULT_BAD_RESPONSE),
			 OP_ERRMSG(op),
			 errdetail("Vault sent a malformed response: %s.", detail)));
	pg_unreachable();
}


void
vault_raise_not_found(const VaultOp *op, const char *detail)
{
	ereport(ERROR,
			(errcode(status_errcode(404)),
			 OP_ERRMSG(op),
			 errdetail("%s", detail)));
	pg_unreachable();
}

VaultDoc *
vault_doc_parse(const VaultResult *res, const VaultOp *op, int accept)
{
	VaultDoc   *doc;
	json_t	   *root;
	VjBody		why;
	bool		ok_status;

	if (res->transport != VT_OK)
		vault_raise_transport(res, op);

	ok_status = (res->status >= 200 && res->status < 300) ||
		(res->status == 404 && (accept & VAULT_ACCEPT_404)) ||
		(accept & VAULT_ACCEPT_ANY);
	if (!ok_status && !((accept & VAULT_ACCEPT_BATCH) &&
						(res->status == 400 || res->status == 500)))
		vault_raise_status(res, op);

	root = vj_parse_object(res->body, res->len, &why);
	/* the parsed tree is all that is read from here on */
	if (res->len > 0)
		vault_http_wipe_response();
	if (root == NULL && (why != VJ_BODY_EMPTY ||
						 (res->status != 204 && res->status != 404)))
	{
		if (!ok_status)
			vault_raise_status(res, op);
		vault_raise_malformed(op, why == VJ_BODY_NOT_JSON ? "the body is not valid JSON"
							  : why == VJ_BODY_NOT_OBJECT ? "the body is not a JSON object"
							  : "the body is empty");
	}

	/* batch error statuses are errors unless they carry batch results */
	if (!ok_status && !vj_has_batch_results(root))
		raise_status_and_free(root, res->status, op);

	doc = (VaultDoc *) MemoryContextAlloc(CurrentMemoryContext, sizeof(VaultDoc));
	doc->root = root;
	doc->status = res->status;
	doc->cb.func = doc_reset_callback;
	doc->cb.arg = doc;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, &doc->cb);
	return doc;
}

void
vault_doc_free(VaultDoc *doc)
{
	doc_reset_callback(doc);
}

long
vault_doc_status(const VaultDoc *doc)
{
	return doc->status;
}

/* The node at a dotted path of object keys, or NULL. */
static json_t *
lookup(VaultDoc *doc, const char *path)
{
	return vj_lookup(doc->root, path);
}

bool
vault_doc_has(VaultDoc *doc, const char *path)
{
	json_t	   *n = lookup(doc, path);

	return n != NULL && !json_is_null(n);
}

const char *
vault_doc_string_opt(VaultDoc *doc, const char *path, size_t *len)
{
	json_t	   *n = lookup(doc, path);

	if (!json_is_string(n))
		return NULL;
	if (len)
		*len = json_string_length(n);
	return json_string_value(n);
}

const char *
vault_doc_string_ref(VaultDoc *doc, const char *path, size_t *len,
					 const VaultOp *op)
{
	const char *s = vault_doc_string_opt(doc, path, len);

	if (s == NULL)
		vault_raise_malformed(op, psprintf("\"%s\" is missing or not a string", path));
	return s;
}

static bool
node_int(json_t *n, int64 *value)
{
	int64_t		v;

	if (!vj_int(n, &v))
		return false;
	*value = (int64) v;
	return true;
}

bool
vault_doc_int_opt(VaultDoc *doc, const char *path, int64 *value)
{
	return node_int(lookup(doc, path), value);
}

int64
vault_doc_int(VaultDoc *doc, const char *path, const VaultOp *op)
{
	int64		v;

	if (!node_int(lookup(doc, path), &v))
		vault_raise_malformed(op, psprintf("\"%s\" is missing or not an integer", path));
	return v;
}

bool
vault_doc_bool_opt(VaultDoc *doc, const char *path, bool *value)
{
	json_t	   *n = lookup(doc, path);

	if (!json_is_boolean(n))
		return false;
	*value = json_is_true(n);
	return true;
}

void
vault_doc_wipe_string(VaultDoc *doc, const char *path)
{
	json_t	   *n = lookup(doc, path);

	/* jansson has no wiping API; the value is its own malloc'd buffer */
	if (json_is_string(n))
		explicit_bzero((char *) json_string_value(n), json_string_length(n));
}

/* Serialises a node into server-encoded palloc'd text. */
static char *
dump_node(json_t *n)
{
	char	   *s = json_dumps(n, JSON_COMPACT | JSON_ENCODE_ANY);
	char	   *volatile out = NULL;

	if (s == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory serialising a Vault response")));
	PG_TRY();
	{
		out = pg_any_to_server(s, strlen(s), PG_UTF8);
		if (out == s)
			out = pstrdup(s);
	}
	PG_FINALLY();
	{
		vc_wiping_free(s);
	}
	PG_END_TRY();
	return out;
}

char *
vault_doc_json(VaultDoc *doc, const char *path, const char *const *omit)
{
	json_t	   *n = lookup(doc, path);
	json_t	   *copy;
	char	   *out;

	if (n == NULL)
		return NULL;
	if (omit == NULL || !json_is_object(n))
		return dump_node(n);

	copy = json_copy(n);
	if (copy == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory copying a Vault response")));
	for (; *omit; omit++)
		json_object_del(copy, *omit);
	PG_TRY();
	{
		out = dump_node(copy);
	}
	PG_FINALLY();
	{
		json_decref(copy);
	}
	PG_END_TRY();
	return out;
}

char *
vault_doc_field_text(VaultDoc *doc, const char *path, const char *field,
					 bool *found)
{
	json_t	   *obj = lookup(doc, path);
	json_t	   *n;

	*found = false;
	if (!json_is_object(obj))
		return NULL;
	n = json_object_get(obj, field);
	if (n == NULL)
		return NULL;
	*found = true;
	if (json_is_null(n))
		return NULL;
	if (json_is_string(n))
	{
		const char *s = json_string_value(n);
		size_t		len = json_string_length(n);
		char	   *out;

		if (memchr(s, '\0', len) != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNTRANSLATABLE_CHARACTER),
					 errmsg("Vault secret field \"%s\" contains a NUL character", field)));
		out = pg_any_to_server(s, len, PG_UTF8);
		return out == s ? pnstrdup(s, len) : out;
	}
	return dump_node(n);
}

int
vault_doc_string_array(VaultDoc *doc, const char *path, char ***items,
					   const VaultOp *op)
{
	json_t	   *arr = lookup(doc, path);
	size_t		i;
	json_t	   *e;
	char	  **out;

	if (!json_is_array(arr))
		vault_raise_malformed(op, psprintf("\"%s\" is missing or not an array", path));
	out = palloc(sizeof(char *) * (json_array_size(arr) + 1));
	json_array_foreach(arr, i, e)
	{
		const char *s;
		char	   *conv;

		if (!json_is_string(e))
			vault_raise_malformed(op, psprintf("\"%s\" holds a value that is not a string", path));
		s = json_string_value(e);
		conv = pg_any_to_server(s, strlen(s), PG_UTF8);
		out[i] = conv == s ? pstrdup(s) : conv;
	}
	*items = out;
	return (int) json_array_size(arr);
}

void
vault_doc_batch(VaultDoc *doc, const char *field, int n,
				const char **values, size_t *lens, const int *subscripts,
				const VaultOp *op)
{
	size_t		i,
				count;
	const char *err;

	switch (vj_batch(doc->root, field, (size_t) n, values, lens, &i, &count, &err))
	{
		case VJ_BATCH_OK:
			break;
		case VJ_BATCH_NOT_ARRAY:
			vault_raise_malformed(op, "\"data.batch_results\" is missing or not an array");
		case VJ_BATCH_COUNT:
			vault_raise_malformed(op, psprintf("%zu batch results for %d items", count, n));
		case VJ_BATCH_NOT_OBJECT:
			vault_raise_malformed(op, "a batch result is not an object");
		case VJ_BATCH_NO_FIELD:
			vault_raise_malformed(op, psprintf("a batch result has no \"%s\"", field));
		case VJ_BATCH_ITEM_ERROR:
			{
				char		msg[MAX_DETAIL + 1];
				long		status = doc->status >= 400 ? doc->status : 400;

				vj_message(err, op->scrub_quotes, msg, sizeof(msg));
				ereport(ERROR,
						(errcode(status_errcode(status)),
						 op->object ?
						 errmsg("could not %s \"%s\": array element %d failed",
								op->what, op->object, subscripts[i]) :
						 errmsg("could not %s: array element %d failed",
								op->what, subscripts[i]),
						 errdetail("Vault answered: %s.",
								   pg_any_to_server(msg, strlen(msg), PG_UTF8))));
			}
	}

	/* an error status whose results all look fine is still an error */
	if (doc->status >= 300)
		raise_status_root(doc->root, doc->status, op);
}
