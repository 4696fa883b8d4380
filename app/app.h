/*
 * app.h
 *    Shared declarations of pg-vault-app, the companion HTTP service: a
 *    route table over SQL.  Each area (configuration, HTTP glue, routes,
 *    credentials and scopes, the connection pool, statements, the app's own
 *    Vault client, metrics, logs) lives in its own file; this header is
 *    what they say to each other.
 */
#ifndef PGV_APP_H
#define PGV_APP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <libpq-fe.h>

/* Request bodies larger than this get 413. */
#define APP_MAX_BODY		(64 * 1024)

/* ---- configuration (config.c) ---- */

typedef struct AppConfig
{
	char		listen[128];		/* as given, for logs */
	char		listen_host[64];
	uint16_t	listen_port;
	const char *env;			/* development, staging, production or NULL */
	const char *database_url;	/* libpq connection string or URI, may be "" */
	const char *db_role;		/* Vault database role for dynamic creds */
	const char *db_mount;		/* database secrets engine mount */
	const char *kv_mount;		/* KV v2 mount (the issuing tool writes there) */
	int			pool_size;
	int			pool_wait_ms;
	int			statement_timeout_ms;
	char	  **transit_keys;	/* keys /api/encrypt and /api/decrypt accept */
	int			n_transit_keys;
	int			auth_cache_ttl;	/* seconds a known credential is cached */
	int			auth_negative_ttl;	/* seconds an unknown one is */
	int			shutdown_timeout;	/* seconds SIGTERM waits for requests */
	int			startup_timeout;	/* seconds to wait for Vault at start */
	int			max_connections;
	bool		log_requests;
	/* Vault, in Vault's own environment names */
	const char *vault_addr;
	const char *vault_token;
	const char *vault_role_id;
	const char *vault_secret_id_file;
	const char *vault_namespace;
	const char *vault_cacert;
	const char *approle_mount;
	bool		vault_skip_verify;
	int			vault_timeout_ms;
} AppConfig;

extern AppConfig app_config;

bool		config_load(char *err, size_t errlen);
bool		config_transit_key_allowed(const char *name);
/* "app/<env>/<rest>" when APP_ENV is set, else "app/<rest>" (NULL). */
void		config_kv_path(char *dst, size_t len, const char *rest, bool with_env);

/* ---- logs (log.c): JSON lines on stderr ---- */

void		log_event(const char *level, const char *event, json_t *fields);
void		log_msg(const char *level, const char *event, const char *message);

/* ---- metrics (metrics.c) ---- */

void		metrics_request(int route, const char *method, int status, uint64_t usec);
void		metrics_count(const char *family, const char *labels);
char	   *metrics_render(size_t *len);

/* ---- requests, responses and routes (server.c, routes.c) ---- */

#define SCOPE_NONE		0u
#define SCOPE_READ		1u
#define SCOPE_ENCRYPT	2u
#define SCOPE_DECRYPT	4u

typedef struct AppRequest AppRequest;
typedef void (*AppHandler) (AppRequest *req);

typedef struct AppRoute
{
	const char *method;
	const char *pattern;		/* "/api/users/{id}/ssn": {x} is one segment */
	unsigned	scope;
	AppHandler	handler;
} AppRoute;

struct AppRequest
{
	struct MHD_Connection *conn;
	char		id[24];
	const char *method;
	int			route;			/* index in the route table, or -1 */
	char		param[64];		/* the {x} segment of the pattern, if any */
	char	   *body;
	size_t		body_len;
	size_t		body_cap;
	bool		too_large;
	bool		answered;
	uint64_t	start_us;
	char		client[64];		/* the credential's name, for the log */
	/* the answer, set by a reply_* function */
	int			status;
	char	   *out;
	size_t		out_len;
	void		(*out_free) (void *);
	const char *content_type;
	bool		www_authenticate;
	char		allow[64];		/* Allow header of a 405 */
	const char *log_error;		/* why, for the log line; never a secret */
	char		sqlstate[6];
};

int			route_count(void);
const AppRoute *route_at(int i);
/* Index of the route for (method, path); -1 with *allowed_methods filled
 * when the path exists under other methods; -2 when it does not exist. */
int			route_find(const char *method, const char *path, char *param,
					   size_t param_len, char *allowed, size_t allowed_len);

uint64_t	now_us(void);
const char *req_query(AppRequest *req, const char *name);
bool		req_query_only(AppRequest *req, const char *const *names);
const char *req_header(AppRequest *req, const char *name);

/* Replies: each sets the answer once; json bodies are stolen. */
void		reply_json(AppRequest *req, int status, json_t *body);
void		reply_error(AppRequest *req, int status, const char *message);
void		reply_internal(AppRequest *req, const char *why);
void		reply_unavailable(AppRequest *req, const char *what, const char *why);
void		reply_text(AppRequest *req, int status, char *text, size_t len,
					   const char *content_type);

bool		server_start(char *err, size_t errlen);
void		server_quiesce(void);
int			server_inflight(void);
void		server_stop(void);

/* ---- JSON input (json.c) ---- */

/* jansson then wipes what it frees; json_dumps output goes to json_wipe_free. */
void		json_wipe_init(void);
void		json_wipe_free(void *ptr);

typedef struct JsonField
{
	const char *name;
	bool		required;
	const char **value;			/* out: the string, or NULL when absent */
	size_t		max_len;
} JsonField;

/* Parse req's body as one object holding only the given string fields;
 * on failure replies 400 and returns NULL.  The result owns the strings. */
json_t	   *json_body_fields(AppRequest *req, const JsonField *fields);

/* ---- credentials and scopes (auth.c) ---- */

/* True when the request carries a credential with the scope; otherwise it
 * has been answered (401, 403, 503 or 500). */
bool		auth_check(AppRequest *req, unsigned scope);
const char *auth_scope_name(unsigned scope);
/* Lower-case hex SHA-256 (65 bytes with the NUL): names a credential's entry. */
bool		auth_sha256_hex(const char *data, size_t len, char *hex);

/* ---- the connection pool (pool.c) ---- */

typedef struct PoolConn
{
	PGconn	   *conn;
	uint32_t	prepared;		/* statements prepared on this connection */
	unsigned	generation;		/* credentials it was opened with */
	bool		fresh;			/* opened for this acquisition */
	int			slot;
} PoolConn;

typedef struct PoolStats
{
	int			size;
	int			open;
	int			in_use;
	int			waiting;
} PoolStats;

bool		pool_init(int size, const char *conninfo);
/* New connections use these; open ones are retired as they come back.
 * Returns the new generation. */
unsigned	pool_set_credentials(const char *user, const char *password);
/* NULL when none became free in time or one could not be opened; *why says
 * which ("pool_timeout", "connect"). */
PoolConn   *pool_acquire(int timeout_ms, const char **why);
void		pool_release(PoolConn *pc, bool broken);
/* Wait until no connection of a generation older than gen is open. */
bool		pool_wait_retired(unsigned gen, int timeout_ms);
void		pool_stats(PoolStats *st);
void		pool_shutdown(void);

/* ---- statements (db.c): one parameterised statement per operation ---- */

typedef enum DbStmt
{
	ST_HEALTH,
	ST_PING,
	ST_CLIENT,
	ST_SECRET_DATABASE,
	ST_SECRET_API,
	ST_USER_INSERT,
	ST_USERS_LIST,
	ST_USER_SSN,
	ST_ENCRYPT,
	ST_DECRYPT,
	ST_COUNT
} DbStmt;

typedef enum DbErrorKind
{
	DBE_NONE,
	DBE_UNAVAILABLE,			/* no connection (pool or connect) */
	DBE_CONNECTION,				/* lost during the statement */
	DBE_SQL,					/* PostgreSQL refused the statement */
	DBE_VAULT_NOT_FOUND,		/* 42704: no such secret or key */
	DBE_VAULT_DENIED,			/* 42501: Vault's policy said no */
	DBE_VAULT_INVALID,			/* Vault answered 400: bad input */
	DBE_VAULT_UNAVAILABLE,		/* unreachable, sealed, timed out */
	DBE_VAULT_OTHER
} DbErrorKind;

typedef struct DbError
{
	DbErrorKind kind;
	char		sqlstate[6];
} DbError;

PGresult   *db_exec(DbStmt st, int nparams, const char *const *values, DbError *err);
/* st's one parameter is a KV path: app/<env>/<rest>, else app/<rest>. */
PGresult   *db_kv(DbStmt st, const char *rest, DbError *err);
/* Answer a failed statement the usual way: 503 when the database or Vault
 * cannot be reached, else 500; what goes to the log line. */
void		db_reply_error(AppRequest *req, const DbError *err, const char *what);

/* ---- the app's own Vault client (vault.c) ---- */

bool		vault_client_init(char *err, size_t errlen);
/* Log in and get database credentials when configured; then keep them. */
bool		vault_startup(void);
void		vault_shutdown(void);
/* One Vault API call: returns the HTTP status (0 when Vault could not be
 * reached) and the parsed body in *out (may be NULL). */
long		vault_call(const char *method, const char *path, json_t *body,
					   const char *token, json_t **out);

/* ---- the credential-issuing tool (issue.c) ---- */

int			issue_credential_main(int argc, char **argv);

/* ---- handlers (handlers_*.c) ---- */

void		h_health(AppRequest *req);
void		h_metrics(AppRequest *req);
void		h_db_status(AppRequest *req);
void		h_secret(AppRequest *req);
void		h_config(AppRequest *req);
void		h_users_create(AppRequest *req);
void		h_users_list(AppRequest *req);
void		h_user_ssn(AppRequest *req);
void		h_encrypt(AppRequest *req);
void		h_decrypt(AppRequest *req);

#endif							/* PGV_APP_H */
