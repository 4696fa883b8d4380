/*
 * pg_vault.h
 *    Interfaces between the areas of the pg_vault extension.  The data path
 *    runs one way: SQL function -> area -> requests with authentication
 *    (client.c) -> the token (auth.c) -> the HTTP client (http.c over
 *    http_conn.c, with http_many.c for parallel rounds, sharing http.h:
 *    the only files that include curl); answers go to envelope.c.  Beside them:
 *    statistics and breaker state (stat.c), the caller's identity headers
 *    (identity.c), log redaction (redact.c).  Also: the request body
 *    writer (request.c), the response reader and the one mapping from
 *    outcomes to SQLSTATEs (envelope.c, the only file that parses Vault
 *    JSON), authentication (auth.c, over auth_shared.c and approle.c,
 *    which share auth.h) and the engines (transit.c, kv.c, sys.c, creds.c
 *    for database credentials and leases), the encrypted columns
 *    (columns.c over columns_bulk.c and columns_rows.c, which share
 *    columns.h) and envelope encryption (dek.c, dek_catalog.c and
 *    dek_admin.c for data keys, aead.c for the local AES-GCM; their shared
 *    header dek.h brings in OpenSSL and is included by those only).
 *    test/ext_layout.sh checks that no two files call each other.
 *
 *    This header includes neither curl nor jansson, so that files which
 *    need utils/builtins.h (whose json_object clashes with jansson's) can
 *    use every area.
 */
#ifndef PG_VAULT_H
#define PG_VAULT_H

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/timestamp.h"

#include "compat.h"

/* ---- HTTP client (http.c, http_many.c, http_conn.c) ---- */

typedef enum VaultMethod
{
	VAULT_GET,
	VAULT_POST,
	VAULT_PUT,
	VAULT_DELETE,
	VAULT_LIST					/* sent as GET ?list=true, like Vault's Go
								 * client */
} VaultMethod;

/* Transport outcome of one exchange, before any HTTP status is looked at. */
typedef enum VaultTransport
{
	VT_OK,						/* an HTTP response arrived */
	VT_CONNECT,					/* could not connect or resolve */
	VT_TIMEOUT,					/* vault.connect_timeout_ms/timeout_ms hit */
	VT_LOST,					/* connection lost mid-exchange */
	VT_TLS,						/* TLS handshake or certificate failure */
	VT_TOO_LARGE,				/* response above vault.max_response_size */
	VT_CONFIG,					/* bad address or option, curl setup failure */
	VT_CANCELED,				/* aborted for a pending cancel */
	VT_BREAKER,					/* every address's circuit breaker is open */
	VT_OTHER					/* any other libcurl failure */
} VaultTransport;

/* What an exchange is for, in vault_stat (stat.c) and wait events. */
typedef enum VaultStatKind
{
	VS_OTHER = 0,
	VS_ENCRYPT,
	VS_DECRYPT,
	VS_REWRAP,
	VS_HMAC,
	VS_DATAKEY,
	VS_KEY_ADMIN,
	VS_KV_READ,
	VS_KV_WRITE,
	VS_KV_LIST,
	VS_LOGIN,
	VS_TOKEN,
	VS_CREDS,
	VS_LEASE,
	VS_HEALTH,
	VS_COUNT
} VaultStatKind;

/*
 * What a request may be retried on.  A retry after the request may have
 * reached Vault repeats its effect, so requests that change state in a
 * non-repeatable way (key rotation) retry only when Vault cannot have acted
 * on them.
 */
#define VAULT_RETRY_IDEMPOTENT	0x01
/* the request carries no token (sys/health, logins) */
#define VAULT_NO_AUTH			0x02
/* no retries at all (health checks report the state as it is) */
#define VAULT_NO_RETRY			0x04
/* a short time limit whatever vault.timeout_ms says (at backend exit) */
#define VAULT_QUICK				0x08
#define VAULT_QUICK_TIMEOUT_MS	2000
/*
 * the body holds a secret (a plaintext, a KV value) in memory the caller
 * owns and may have written: vault_request wipes it if the exchange raises
 * (a cancel, statement_timeout); on success the caller wipes it
 */
#define VAULT_SECRET_BODY		0x10
/* the operation, for vault_stat: flags | VAULT_KIND(VS_ENCRYPT) */
#define VAULT_KIND(k)			((int) (k) << 8)
#define VAULT_KIND_OF(flags)	((VaultStatKind) (((flags) >> 8) & 0xff))

typedef struct VaultResult
{
	VaultTransport transport;
	long		status;			/* HTTP status when transport == VT_OK */
	const char *body;			/* NUL-terminated; owned by http.c, valid
								 * until the next request */
	size_t		len;
	char		errbuf[256];	/* libcurl's description when not VT_OK */
} VaultResult;

extern void vault_http_init(void);

/*
 * One exchange with retries, no authentication logic.  path is relative to
 * /v1/ and already URL-safe; token NULL sends none.
 */
extern void vault_http_perform(VaultResult *res, VaultMethod method,
							   const char *path, const char *body,
							   size_t bodylen, const char *token, int flags);

/* Wipes the last response body, for answers that carry a token. */
extern void vault_http_wipe_response(void);

/* Most requests a parallel round carries (vault.batch_parallel's maximum). */
#define VAULT_MAX_PARALLEL 16

/*
 * n (at most VAULT_MAX_PARALLEL) requests to one path at once, each on its
 * own connection, with the retries and failover of vault_http_perform; only
 * those marked in redo when it is not NULL.  rows, when not NULL, gives each
 * request's row count for vault_stat.  res[i].body stays valid until the
 * next parallel round; vault_http_wipe_many wipes the bodies.
 */
extern void vault_http_perform_many(VaultResult *res, int n, const bool *redo,
									VaultMethod method, const char *path,
									const char *const *bodies, const size_t *lens,
									const int64 *rows, const char *token,
									int flags);
extern void vault_http_wipe_many(void);

/* ---- requests with authentication (client.c) ---- */

/*
 * An authenticated (unless VAULT_NO_AUTH) exchange: takes the token from
 * auth.c, and when Vault answers 403 and the token can be replaced (AppRole),
 * logs in again and repeats the request once.
 */
extern void vault_request(VaultResult *res, VaultMethod method,
						  const char *path, const char *body, size_t bodylen,
						  int flags);

/* vault_request for n requests at once (vault_http_perform_many). */
extern void vault_request_many(VaultResult *res, int n, VaultMethod method,
							   const char *path, const char *const *bodies,
							   const size_t *lens, const int64 *rows,
							   int flags);

/* ---- request bodies and paths (request.c) ---- */

/* A JSON object being written into a StringInfo. */
typedef struct VaultJsonWriter
{
	StringInfo	buf;
	bool		first;
} VaultJsonWriter;

extern void vault_jw_begin(VaultJsonWriter *w, StringInfo buf);
extern void vault_jw_end(VaultJsonWriter *w);
extern void vault_jw_key(VaultJsonWriter *w, const char *key);
extern void vault_jw_string(VaultJsonWriter *w, const char *key,
							const char *value);
extern void vault_jw_base64(VaultJsonWriter *w, const char *key,
							const char *data, size_t len);
extern void vault_jw_int(VaultJsonWriter *w, const char *key, int64 value);
extern void vault_jw_bool(VaultJsonWriter *w, const char *key, bool value);
extern void vault_jw_raw(VaultJsonWriter *w, const char *key,
						 const char *json);

/* Appends a JSON string of (value, len); value need not be terminated. */
extern void vault_append_json_string(StringInfo buf, const char *value,
									 size_t len);

/* Appends base64 of data to buf, quoted when quote. */
extern void vault_append_base64(StringInfo buf, const char *data,
								size_t len, bool quote);

/* Checks a transit key name (Vault's \w([\w-.]*\w)?) and raises if bad. */
extern void vault_check_key_name(const char *name);

/* The same for an engine's role name (database/creds/:name). */
extern void vault_check_role_name(const char *name);

/*
 * Appends a mount path passed by a caller, percent-encoded, raising on an
 * empty path or an empty, "." or ".." part.
 */
extern void vault_append_mount_path(StringInfo buf, const char *mount);

/* Appends a KV secret path, percent-encoded, raising on "." or ".." parts. */
extern void vault_append_secret_path(StringInfo buf, const char *path,
									 bool allow_empty);

/* ---- responses and errors (envelope.c) ---- */

/* What was being done, for error messages: errmsg "could not %s \"%s\"". */
typedef struct VaultOp
{
	const char *what;			/* "encrypt with Vault key" */
	const char *object;			/* the key or path; may be NULL */
	bool		scrub_quotes;	/* Vault's messages may quote a secret */
} VaultOp;

typedef struct VaultDoc VaultDoc;

/*
 * pg_vault's own SQLSTATEs for Vault transport failures, in class 58
 * ("system error": a failure outside PostgreSQL) with an
 * implementation-defined subclass.  Never class 08: connection pools
 * (HikariCP, pgx, ...) read class 08 as "this PostgreSQL connection is
 * broken" and would drop healthy connections whenever Vault is away.
 * Stable across releases; envelope.c has the whole table.
 */
#define ERRCODE_VAULT_UNREACHABLE		MAKE_SQLSTATE('5','8','V','0','1')
#define ERRCODE_VAULT_CONNECTION_LOST	MAKE_SQLSTATE('5','8','V','0','2')
#define ERRCODE_VAULT_BAD_RESPONSE		MAKE_SQLSTATE('5','8','V','0','3')

/*
 * Envelope ciphertexts (pgv1:), checked locally, in class 22 (data
 * exception: the value given is at fault) with pg_vault's subclass V.
 */
#define ERRCODE_VAULT_ENVELOPE_TAMPERED	MAKE_SQLSTATE('2','2','V','0','1')
#define ERRCODE_VAULT_ENVELOPE_CONTEXT	MAKE_SQLSTATE('2','2','V','0','2')
#define ERRCODE_VAULT_ENVELOPE_MALFORMED	MAKE_SQLSTATE('2','2','V','0','3')
#define ERRCODE_VAULT_DEK_UNKNOWN		MAKE_SQLSTATE('2','2','V','0','4')
#define ERRCODE_VAULT_DEK_DELETED		MAKE_SQLSTATE('2','2','V','0','5')

/* Raises the mapped error for a failed transport or an error status. */
pg_noreturn extern void vault_raise_transport(const VaultResult *res, const VaultOp *op);
pg_noreturn extern void vault_raise_status(const VaultResult *res, const VaultOp *op);

/*
 * Parses a response.  Raises the mapped error unless the status is 2xx or
 * accepted.  A 204 gives an empty
 * document.  The document is freed with its memory context, or earlier by
 * vault_doc_free.
 */
#define VAULT_ACCEPT_404	0x01	/* a 404 is returned, not raised */
#define VAULT_ACCEPT_BATCH	0x02	/* a 400/500 carrying batch_results too */
#define VAULT_ACCEPT_ANY	0x04	/* any status with a JSON object body */

extern VaultDoc *vault_doc_parse(const VaultResult *res, const VaultOp *op,
								 int accept);
extern void vault_doc_free(VaultDoc *doc);
extern long vault_doc_status(const VaultDoc *doc);
extern bool vault_doc_has(VaultDoc *doc, const char *path);

/*
 * Field access by dotted path ("data.ciphertext").  "required" variants
 * raise 58V03 when the field is missing or of the wrong type.
 */
extern const char *vault_doc_string_ref(VaultDoc *doc, const char *path,
										size_t *len, const VaultOp *op);
extern const char *vault_doc_string_opt(VaultDoc *doc, const char *path,
										size_t *len);
extern int64 vault_doc_int(VaultDoc *doc, const char *path,
						   const VaultOp *op);
extern bool vault_doc_int_opt(VaultDoc *doc, const char *path, int64 *value);
extern bool vault_doc_bool_opt(VaultDoc *doc, const char *path, bool *value);

/*
 * Zeroes a string field's value inside the parsed document, for a secret
 * (an issued password) that must not linger in freed memory.
 */
extern void vault_doc_wipe_string(VaultDoc *doc, const char *path);

/* Serialised JSON of a subtree (NULL when missing), optionally minus keys. */
extern char *vault_doc_json(VaultDoc *doc, const char *path,
							const char *const *omit);

/* Field "path" as text: strings raw, other values as JSON, null as NULL. */
extern char *vault_doc_field_text(VaultDoc *doc, const char *path,
								  const char *field, bool *found);

/* The strings of an array (data.keys); returns the count. */
extern int	vault_doc_string_array(VaultDoc *doc, const char *path,
								   char ***items, const VaultOp *op);

/*
 * data.batch_results of a transit batch: n results expected; for each,
 * field's string (no copy) is stored in values[i]/lens[i].  A failed item
 * raises an error naming subscripts[i] (its SQL array subscript).
 */
extern void vault_doc_batch(VaultDoc *doc, const char *field, int n,
							const char **values, size_t *lens,
							const int *subscripts, const VaultOp *op);

/* Raises the error of a Vault 404 (42704) with a detail sentence. */
pg_noreturn extern void vault_raise_not_found(const VaultOp *op, const char *detail);

/* Raises 58V03 for a response that does not have the expected shape. */
pg_noreturn extern void vault_raise_malformed(const VaultOp *op, const char *detail);

/* ---- authentication (auth.c) ---- */

extern void vault_auth_init(void);
/* The token for the next request; never NULL (raises when none). */
extern const char *vault_auth_token(void);
/*
 * After a 403: whether the token was dead and replaced (the request may be
 * repeated once), or alive (a policy denies).  Both of those reuse the
 * response buffer, so the caller sends its request again to get its own
 * answer back.
 */
typedef enum VaultForbidden
{
	VAULT_FORBIDDEN_KEPT,		/* nothing done: the 403 stands as it is */
	VAULT_FORBIDDEN_DENIED,		/* the token is alive: a policy denies */
	VAULT_FORBIDDEN_RELOGGED	/* the token was dead: logged in again */
} VaultForbidden;
extern VaultForbidden vault_auth_refresh_after_forbidden(const VaultResult *res);

/* ---- engines ---- */

extern void vault_transit_init(void);
extern void vault_envelope_init(void);
extern void vault_kv_init(void);

/* GUCs read by several areas */
extern int	vault_batch_size;
extern int	vault_batch_max_strings;
extern int	vault_batch_parallel;
extern int	vault_batch_args(ArrayType *input, ArrayType *contexts, Datum **elems,
							 bool **nulls, int *n, Datum **ctx_elems,
							 bool **ctx_nulls);
extern int	vault_batch_items(void);
extern char *vault_transit_mount;
extern char *vault_kv_mount;

/* ---- encrypted columns (columns.c) ---- */

/* Installs the executor and utility hooks that let bulk writes batch. */
extern void vault_columns_init(void);

/*
 * What the column trigger encrypts with (transit.c, and aead.c for columns
 * declared !envelope): n text values, no NULL, as the batch forms do it;
 * the results are text datums in input order.
 */
extern Datum *vault_transit_encrypt_values(const Datum *values, int n, const char *key);
extern Datum *vault_transit_hmac_values(const Datum *values, int n, const char *key,
										const char *algorithm);
extern Datum *vault_envelope_encrypt_values(const Datum *values, int n, const char *key);

/* ---- envelope encryption (dek.c, dek_catalog.c: data keys; aead.c: pgv1: values) ---- */

/* Settings and the DISCARD ALL hook. */
extern void vault_dek_init(void);
/* Wipes every unwrapped data key this backend holds. */
extern void vault_dek_cache_clear(void);
/* Whether text has the form of an envelope ciphertext (pgv1: / pgv1c:). */
extern bool vault_is_envelope(const char *s, size_t len);

/* ---- statistics and the circuit breaker's memory (stat.c) ---- */

extern void vault_stat_init(void);
/* rows the next exchange carries (a batch), 1 if not said */
extern void vault_stat_set_rows(int64 rows);
extern void vault_stat_exchange(VaultStatKind kind, bool ok, int retries,
								int64 sent, int64 received, double ms);
/* the SQLSTATE of an error raised for the last exchange */
extern void vault_stat_error(int sqlerrcode);
extern bool vault_breaker_allows(uint32 hash, TimestampTz now);
extern void vault_breaker_record(uint32 hash, bool failed, int threshold,
								 int cooldown_ms);

/* ---- the caller's identity, sent with every request (identity.c) ---- */

/* "X-Pgvault-...: value" lines joined by '\n'; valid until the next call */
extern const char *vault_identity_headers(void);

/* ---- log redaction (redact.c) ---- */

extern void vault_redact_init(void);

#endif							/* PG_VAULT_H */
