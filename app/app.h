/*
 * app.h
 *    Shared declarations of pg-vault-app, the companion HTTP service: a
 *    route table over SQL.  The sections below go from the bottom of the
 *    program to its top, and a file calls only functions of sections above
 *    its own (test/app_layout.sh checks the object files for any circle):
 *
 *      leaves       clock.c, alloc.c, config.c, log.c, metrics.c,
 *                   ratelimit.c, json.c, reply.c: they call no other file
 *                   of the app but alloc.c
 *      data         pool.c (connections), db.c (statements)
 *      state        auth.c (credentials), health.c (the health state),
 *                   vault.c (the app's own Vault client)
 *      background   monitor.c: the thread that keeps credentials and
 *                   health fresh
 *      requests     request.c (what handlers read), handlers_*.c,
 *                   routes.c (the table), server.c (libmicrohttpd)
 *      programs     issue.c (the credential tool), main.c
 *
 *    Handlers reply; the layers below them return errors.
 */
#ifndef PGV_APP_H
#define PGV_APP_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>
#include <libpq-fe.h>

/* Request bodies larger than this get 413. */
#define APP_MAX_BODY		(64 * 1024)

/* ==== leaves ==== */

/* ---- clock (clock.c): monotonic time ---- */

uint64_t	now_us(void);
/* CLOCK_MONOTONIC deadline timeout_ms from now, for a condition variable
 * made with cond_init_monotonic. */
void		clock_deadline(struct timespec *ts, int64_t timeout_ms);
void		cond_init_monotonic(pthread_cond_t *c);

/* ---- allocator (alloc.c): jansson wipes what it frees ---- */

/* Before any jansson allocation, so before any thread starts. */
void		json_wipe_init(void);
/* Frees (wiping) what jansson allocated: json_dumps output included. */
void		json_wipe_free(void *ptr);

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
	int			auth_refresh;	/* seconds between loads of the credential set */
	int			auth_fail_burst;	/* failed authentications an address may make at once */
	int			auth_fail_per_minute;	/* and then, refilled */
	int			auth_limited_delay_ms;	/* a 429 is held back this long */
	const char *trusted_proxies;	/* whose X-Forwarded-For names the client */
	int			max_unauthenticated;	/* requests in flight without a credential */
	int			health_interval;	/* seconds between background health checks */
	int			ready_interval_ms;	/* /ready does a round trip at most this often */
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
	int			vault_max_retries;
} AppConfig;

extern AppConfig app_config;

bool		config_load(char *err, size_t errlen);
bool		config_transit_key_allowed(const char *name);
/* The KV path of a setting: "<env>/<rest>" (with_env, when APP_ENV is
 * set), else "app/<rest>". */
void		config_kv_path(char *dst, size_t len, const char *rest, bool with_env);
/* The KV folder of credentials: "app/<env>/clients/" (with_env, when
 * APP_ENV is set), else "app/clients/". */
void		config_clients_path(char *dst, size_t len, bool with_env);

/* ---- logs (log.c): JSON lines on stderr ---- */

void		log_event(const char *level, const char *event, json_t *fields);
void		log_msg(const char *level, const char *event, const char *message);

/* ---- metrics (metrics.c) ---- */

/* Route labels, indexed as metrics_request's route; kept, not copied. */
void		metrics_set_routes(const char *const *labels, int n);
void		metrics_request(int route, const char *method, int status, uint64_t usec);
void		metrics_count(const char *family, const char *labels);
/* One run of the statement called name (a static string). */
void		metrics_statement(const char *name);
/* Requests being served now (server.c counts them here). */
void		metrics_inflight_add(int delta);
int			metrics_inflight(void);

typedef struct MetricsGauges
{
	int			pool_size;
	int			pool_open;
	int			pool_in_use;
	int			pool_waiting;
	int			credentials;	/* bearer credentials known */
} MetricsGauges;

char	   *metrics_render(const MetricsGauges *g, size_t *len);

/* ---- failed-authentication limits per client address (ratelimit.c) ---- */

typedef struct RateKey
{
	unsigned char addr[16];		/* IPv4 (mapped too) whole, IPv6 its /64 */
} RateKey;

/* burst 0: no limit.  Before any thread starts. */
void		ratelimit_init(int burst, int per_minute);
/* APP_TRUSTED_PROXIES: addresses and CIDR blocks, comma-separated. */
bool		ratelimit_trust(const char *list, char *err, size_t errlen);
/* The client of a request from sockaddr: through X-Forwarded-For (may be
 * NULL) when sockaddr is a trusted proxy.  False when the address is not
 * IPv4 or IPv6 (then it is not limited). */
bool		ratelimit_key(const void *sockaddr, const char *forwarded_for,
						  RateKey *key);
/* 0 when the address may try to authenticate; else the seconds until it
 * may (Retry-After). */
int			ratelimit_check(const RateKey *key);
/* One failed authentication; true when it used the address's last try. */
bool		ratelimit_fail(const RateKey *key);
/* The address as text, for a log line. */
void		ratelimit_key_text(const RateKey *key, char *dst, size_t len);

/* ---- JSON input (json.c) ---- */

typedef struct JsonField
{
	const char *name;
	bool		required;
	const char **value;			/* out: the string, or NULL when absent */
	size_t		max_len;
} JsonField;

/* Parse body as one object holding only the given string fields; NULL with
 * err (never repeating a value) on failure.  The result owns the strings. */
json_t	   *json_parse_fields(const char *body, size_t len, const JsonField *fields,
							  char *err, size_t errlen);

/* ---- requests and answers (reply.c) ---- */

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
	bool		unauthenticated;	/* counted as unauthenticated work */
	bool		quiet;			/* no log line (refusals of a limited address) */
	uint64_t	start_us;
	char		client[64];		/* the credential's name, for the log */
	/* the answer, set by a reply_* function */
	int			status;
	char	   *out;
	size_t		out_len;
	void		(*out_free) (void *);
	const char *content_type;
	bool		www_authenticate;
	int			retry_after;	/* seconds, for a Retry-After header; 0: none */
	bool		close;			/* Connection: close */
	char		allow[64];		/* Allow header of a 405 */
	const char *log_error;		/* why, for the log line; never a secret */
	char		sqlstate[6];
};

/* Each sets the answer once; json bodies are stolen. */
void		reply_json(AppRequest *req, int status, json_t *body);
void		reply_error(AppRequest *req, int status, const char *message);
void		reply_internal(AppRequest *req, const char *why);
void		reply_unavailable(AppRequest *req, const char *what, const char *why);
void		reply_text(AppRequest *req, int status, char *text, size_t len,
					   const char *content_type);

/* ==== data ==== */

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
	ST_CLIENT_LIST,
	ST_CLIENT,
	ST_SECRET_DATABASE,
	ST_SECRET_API,
	ST_FEATURES,
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
/* st's one parameter is a KV path: <env>/<rest> when APP_ENV is set and
 * that exists, else app/<rest>. */
PGresult   *db_kv(DbStmt st, const char *rest, DbError *err);

/* Answer a failed statement the usual way: 503 when the database or Vault
 * cannot be reached, else 500; what goes to the log line.  (reply.c: an
 * answer, though it reads db.c's error kinds.) */
void		reply_db_error(AppRequest *req, const DbError *err, const char *what);

/* ==== state ==== */

/* ---- credentials and scopes (auth.c) ---- */

typedef enum AuthResult
{
	AUTH_OK,
	AUTH_MISSING,				/* no bearer credential */
	AUTH_INVALID,				/* not one of the known credentials */
	AUTH_FORBIDDEN,				/* known, without the scope */
	AUTH_NOT_LOADED				/* the credential set has never been loaded */
} AuthResult;

/* Verify an Authorization header against the credential set in memory, in
 * constant time, without a round trip; the credential's name goes to
 * client (for the log) when it is known. */
AuthResult	auth_check(const char *authorization, unsigned scope, char *client,
					   size_t clientlen);
/* Load the credential set from Vault (through pg_vault); the old set stays
 * when this fails.  Returns the number loaded, or -1. */
int			auth_refresh(void);
bool		auth_loaded(void);
int			auth_count(void);
const char *auth_scope_name(unsigned scope);
/* The credential of an Authorization header ("Bearer <token>", spaces
 * around the token ignored) and its length, or NULL when the header is not
 * a bearer credential of a credential's syntax.  Not NUL-terminated at len. */
const char *auth_bearer_token(const char *header, size_t *len);
/* The scope bits of a credential's entry: "read,encrypt" or ["read"] as
 * JSON text (NULL: none); names this version does not know grant nothing. */
unsigned	auth_parse_scopes(const char *json_text);
/* Lower-case hex SHA-256 (65 bytes with the NUL): names a credential's entry. */
bool		auth_sha256_hex(const char *data, size_t len, char *hex);

/* ---- health (health.c): what the background checks found ---- */

typedef struct HealthState
{
	bool		checked;		/* at least one check has run */
	bool		healthy;
	const char *database;		/* connected, unreachable */
	const char *vault;			/* connected, sealed, unreachable, uninitialized, error, unknown */
	char		sqlstate[6];	/* of a failed check */
	uint64_t	checked_us;		/* now_us() of the last check */
} HealthState;

/* One round trip (PostgreSQL, and Vault as pg_vault sees it); updates the
 * state, which it also returns. */
void		health_probe(HealthState *out);
/* health_probe unless one ran within min_interval_ms (or is running):
 * then the state it left. */
void		health_probe_limited(int min_interval_ms, HealthState *out);
void		health_get(HealthState *out);

/* ---- the app's own Vault client (vault.c) ---- */

bool		vault_client_init(char *err, size_t errlen);
/* Log in and get database credentials when configured; then keep them. */
bool		vault_startup(void);
void		vault_shutdown(void);
/* One Vault API call, retried on what vc_should_retry allows (idempotent
 * for GET, PUT and DELETE): the HTTP status (0 when Vault could not be
 * reached) and the parsed body in *out (may be NULL).  path is escaped. */
long		vault_call(const char *method, const char *path, json_t *body,
					   const char *token, json_t **out);

/* ==== background (monitor.c) ==== */

/* Load the credentials and check health once, then keep doing it on a
 * thread: credentials every APP_AUTH_REFRESH seconds (every second until
 * a load succeeds), health every APP_HEALTH_INTERVAL seconds. */
bool		monitor_start(void);
/* Reload the credentials now (SIGHUP). */
void		monitor_wake(void);
void		monitor_stop(void);

/* ==== requests ==== */

/* ---- what handlers read (request.c) ---- */

const char *req_query(AppRequest *req, const char *name);
bool		req_query_only(AppRequest *req, const char *const *names);
const char *req_header(AppRequest *req, const char *name);
/* Every header of that name, comma-joined in order (malloc'd), or NULL. */
char	   *req_header_all(AppRequest *req, const char *name);
/* json_parse_fields over the request's body; on failure replies 400 and
 * returns NULL. */
json_t	   *json_body_fields(AppRequest *req, const JsonField *fields);

/* ---- handlers (handlers_*.c) ---- */

void		h_health(AppRequest *req);
void		h_ready(AppRequest *req);
void		h_metrics(AppRequest *req);
void		h_db_status(AppRequest *req);
void		h_secret(AppRequest *req);
void		h_config(AppRequest *req);
void		h_users_create(AppRequest *req);
void		h_users_list(AppRequest *req);
void		h_user_ssn(AppRequest *req);
/* GET /api/users/{id}/ssn's id: 0 when it can name a user, else the
 * status to answer (400 not digits, 404 longer than any bigint). */
int			user_id_check(const char *param);
void		h_encrypt(AppRequest *req);
void		h_decrypt(AppRequest *req);

/* ---- the route table (routes.c) ---- */

int			route_count(void);
const AppRoute *route_at(int i);
/* Index of the route for (method, path); -1 with *allowed_methods filled
 * when the path exists under other methods; -2 when it does not exist. */
int			route_find(const char *method, const char *path, char *param,
					   size_t param_len, char *allowed, size_t allowed_len);

/* ---- the HTTP server (server.c) ---- */

bool		server_start(char *err, size_t errlen);
void		server_quiesce(void);
int			server_inflight(void);
void		server_stop(void);

/* ==== programs ==== */

/* ---- the credential-issuing tool (issue.c) ---- */

int			issue_credential_main(int argc, char **argv);

#endif							/* PGV_APP_H */
