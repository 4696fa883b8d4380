/*
 * devserver.h
 *    The pg_vault development Vault server: shared types and the contract
 *    between the HTTP core (http.c), the ACL (acl.c), the token store
 *    (token.c), the lease manager (lease.c), persistence (store.c), the
 *    audit sink (audit.c), and the engines, one per file like Vault's
 *    builtin/logical packages (sys.c, transit.c, kv.c, approle.c, database.c).
 *
 *    FOR DEVELOPMENT AND TESTS ONLY.  Production uses HashiCorp Vault or
 *    OpenBao.
 *
 * Concurrency: the HTTP core serialises every engine call under one global
 * mutex (g_state_mu).  Engines, the token store, the ACL and the lease
 * manager therefore never lock; they may assume the lock is held whenever
 * they are called from a handler, a save/load hook or the lease timer.
 *
 * Memory: jansson objects returned through vresp are owned by vresp and
 * released by the core.  Engines keep their own state in mount->state.
 */
#ifndef DEVSERVER_H
#define DEVSERVER_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "vault_common.h"

#define DEVSERVER_VERSION "1.15.0+pgvault.dev"

/* ---- operations (logical.Operation) ---- */
typedef enum vop
{
	OP_READ,
	OP_CREATE,
	OP_UPDATE,
	OP_DELETE,
	OP_LIST,
	OP_PATCH,
	OP__COUNT
} vop;

const char *vop_name(vop op);	/* "read", "create", ... as in audit lines */

/* ---- ACL capabilities (bit set) ---- */
#define CAP_DENY	(1u << 0)
#define CAP_CREATE	(1u << 1)
#define CAP_READ	(1u << 2)
#define CAP_UPDATE	(1u << 3)
#define CAP_DELETE	(1u << 4)
#define CAP_LIST	(1u << 5)
#define CAP_SUDO	(1u << 6)
#define CAP_PATCH	(1u << 7)
#define CAP_ALL		(CAP_CREATE | CAP_READ | CAP_UPDATE | CAP_DELETE | CAP_LIST | CAP_SUDO | CAP_PATCH)

struct vmount;
struct vtoken;
struct vlease;

/* ---- a request, as an engine sees it ---- */
typedef struct vreq
{
	vop			op;				/* after the existence check */
	const char *method;			/* HTTP method as received */
	char	   *path;			/* logical path: no "/v1/", no leading '/',
								 * namespace stripped; LIST adds a final '/' */
	const char *rel;			/* path relative to the mount (into path) */
	struct vmount *mount;
	json_t	   *data;			/* body object merged with query parameters;
								 * never NULL (an empty object) */
	const char *client_token;	/* as sent, or NULL */
	struct vtoken *token;		/* resolved token; NULL on unauthenticated
								 * paths */
	unsigned	caps;			/* the token's capabilities on path */
	const char *remote_addr;
	int			remote_port;
	const char *content_type;
	char		request_id[37];
} vreq;

/* ---- a response, as an engine builds it ---- */
typedef struct vresp
{
	int			status;			/* 0: 200 when there is a body, else 204 */
	json_t	   *data;			/* envelope "data" (object) or NULL */
	json_t	   *auth;			/* envelope "auth" or NULL */
	json_t	   *warnings;		/* array or NULL */
	json_t	   *errors;			/* array: an error response */
	char		lease_id[256];
	int64_t		lease_duration;
	bool		renewable;
	bool		raw_status;		/* full envelope even when status >= 400 */
	bool		sys_inject;		/* copy data's keys to the top level */
	json_t	   *body;			/* send exactly this JSON (sys/health) */
	bool		dirty;			/* state changed: persist it */
	int			retry_after;	/* seconds, sent when > 0 */
} vresp;

/* Set an error response: status and one message (printf-style). */
void		resp_error(vresp *resp, int status, const char *fmt,...)
			__attribute__((format(printf, 3, 4)));
void		resp_warn(vresp *resp, const char *fmt,...)
			__attribute__((format(printf, 2, 3)));
/* 404 "unsupported path" / 405 "unsupported operation", as Vault's router. */
void		resp_unsupported_path(vresp *resp, const vreq *req);
void		resp_unsupported_op(vresp *resp, const vreq *req);

/*
 * Request parameters with Vault's weak typing (mapstructure WeakDecode):
 * numbers may come as strings, booleans as "true"/"1", durations as "1h",
 * "30m", "10s", "5" or 5.  Each returns the default when the key is absent
 * and sets *ok = false (leaving a 400 in resp) when it is malformed.
 */
const char *req_str(const vreq *req, const char *key);
bool		req_has(const vreq *req, const char *key);
int64_t		req_int(const vreq *req, const char *key, int64_t dflt, bool *ok, vresp *resp);
bool		req_bool(const vreq *req, const char *key, bool dflt, bool *ok, vresp *resp);
int64_t		req_duration(const vreq *req, const char *key, int64_t dflt, bool *ok, vresp *resp);
/* Parse a Vault duration from a JSON value; -1 if malformed. */
int64_t		parse_duration_json(const json_t *v);
int64_t		parse_duration_str(const char *s);
/* Lists as JSON arrays or comma-separated strings; new reference. */
json_t	   *req_strlist(const vreq *req, const char *key);

/* Path helpers: does rel match "prefix" followed by one or more segments?
 * Returns the remainder after the prefix, or NULL. */
const char *path_after(const char *rel, const char *prefix);
/* Vault's GenericNameRegex \w([\w-.]*\w)? (no trailing '.', no '/') */
bool		valid_name(const char *name);

/* ---- engines ---- */
typedef struct vengine
{
	const char *type;			/* "kv", "transit", "database", "system",
								 * "token", "approle" */
	bool		is_auth;		/* an auth method, mounted under auth/ */
	void	   *(*new_state) (struct vmount *m);
	void		(*free_state) (struct vmount *m);
	/*
	 * Existence check for POST/PUT: 1 if the object exists (update), 0 if
	 * not (create), -1 if the path has no existence check (update).
	 */
	int			(*exists) (struct vmount *m, const vreq *req);
	/* Handle the request: fill resp (data, errors, ...). */
	void		(*handle) (struct vmount *m, vreq *req, vresp *resp);
	/* Persistence: state to JSON (new reference) and back. */
	json_t	   *(*save) (struct vmount *m);
	void		(*load) (struct vmount *m, json_t *saved);
	/*
	 * Leases issued by this engine (database creds).  Both return 0 on
	 * success; on failure lease_renew leaves an error in resp and
	 * lease_revoke a message in err, and the lease is kept.
	 */
	int			(*lease_renew) (struct vmount *m, struct vlease *l, int64_t new_ttl, vresp *resp);
	int			(*lease_revoke) (struct vmount *m, struct vlease *l, char *err, size_t errlen);
	/* Paths that need no token, relative to the mount ("login"). */
	bool		(*unauthenticated) (const char *rel);
} vengine;

extern const vengine engine_system;
extern const vengine engine_token;
extern const vengine engine_kv;
extern const vengine engine_transit;
extern const vengine engine_approle;
extern const vengine engine_database;

typedef struct vmount
{
	char	   *path;			/* "secret/", "auth/approle/" */
	char	   *type;			/* "kv", "transit", ... */
	const vengine *eng;
	json_t	   *options;		/* {"version":"2"} for kv v2 */
	json_t	   *config;			/* default_lease_ttl, max_lease_ttl, ... */
	char	   *description;
	char		accessor[64];
	char		uuid[37];
	void	   *state;
	struct vmount *next;
} vmount;

/* Mount table (mounts.c).  Longest-prefix match of a logical path. */
vmount	   *mount_find(const char *path);
vmount	   *mount_add(const char *path, const char *type, json_t *options,
					  const char *description, char *err, size_t errlen);
bool		mount_remove(const char *path);
vmount	   *mount_list(void);		/* head of the linked list */
const vengine *engine_by_type(const char *type, bool auth);

/* ---- tokens (token.c) ---- */
typedef struct vtoken
{
	char		id[96];			/* hvs.... */
	char		accessor[32];
	json_t	   *policies;		/* array of strings, sorted */
	json_t	   *meta;			/* object of strings or null */
	char		display_name[128];
	char		path[128];		/* "auth/token/create", "auth/approle/login" */
	char		parent[96];		/* parent token id, "" for orphan */
	char		type[16];		/* "service" */
	int64_t		creation_time;
	int64_t		issue_time;
	int64_t		expire_time;	/* 0: never */
	int64_t		creation_ttl;
	int64_t		explicit_max_ttl;
	int64_t		period;
	int			num_uses;		/* 0: unlimited */
	bool		renewable;
	bool		orphan;
	char		entity_id[37];
	int64_t		max_ttl;		/* backend max TTL (AppRole token_max_ttl);
								 * 0: the system max */
	int64_t		last_renewal;	/* 0: never renewed */
	struct vtoken *next;
} vtoken;

#define DEFAULT_TOKEN_TTL	(768 * 3600)

/* Returns the live token for an id, or NULL (expired tokens are revoked). */
vtoken	   *token_lookup(const char *id);
vtoken	   *token_lookup_accessor(const char *accessor);
/* Create a token; policies is borrowed (copied).  id NULL: random. */
vtoken	   *token_create(const char *id, json_t *policies, json_t *meta,
						 const char *display_name, const char *path,
						 const char *parent, int64_t ttl, int64_t explicit_max_ttl,
						 int64_t period, int num_uses, bool renewable, bool no_default_policy);
/* Revoke a token, its children and the leases it created. */
void		token_revoke(vtoken *t);
/* The envelope "auth" object for a token (client_token included). */
json_t	   *token_auth_json(const vtoken *t);
/* The lookup-self "data" object. */
json_t	   *token_lookup_json(const vtoken *t);
int64_t		token_ttl_left(const vtoken *t);
bool		token_is_root(const vtoken *t);
/*
 * Count one use of a token (once per authenticated request).  A token whose
 * last use this is gets revoked; false if it was already used up.
 */
bool		token_use(vtoken *t);
/* Revoke expired tokens; called by leases_expire_due().  True if any. */
bool		tokens_expire_due(void);
json_t	   *tokens_save(void);
void		tokens_load(json_t *saved);

/* ---- ACL (acl.c) ---- */
typedef struct vpolicy
{
	char	   *name;
	char	   *raw;			/* the policy text as written */
	struct acl_rule *rules;
	int			nrules;
	struct vpolicy *next;
} vpolicy;

/* Parse HCL (or JSON) policy text; NULL and a message on error. */
vpolicy    *policy_parse(const char *name, const char *text, char *err, size_t errlen);
void		policy_free(vpolicy *p);
vpolicy    *policy_get(const char *name);
bool		policy_put(const char *name, const char *text, char *err, size_t errlen);
bool		policy_delete(const char *name, char *err, size_t errlen);
json_t	   *policy_names(void);		/* sorted, then "root" (Vault's order) */
/* Capabilities of a token on a logical path (root: CAP_ALL). */
unsigned	acl_capabilities(const vtoken *t, const char *path);
/* The same for a request: only OP_LIST retries a trailing '/' without it,
 * as Vault's AllowOperation; use this for the per-request check. */
unsigned	acl_capabilities_op(const vtoken *t, const char *path, vop op);
/* The capability an operation needs. */
unsigned	acl_cap_for_op(vop op);
json_t	   *policies_save(void);
void		policies_load(json_t *saved);
void		policies_init_builtin(void);	/* "default" and "root" */

/* ---- leases (lease.c) ---- */
typedef struct vlease
{
	char		id[256];		/* database/creds/app-role/<24 base62> */
	char		mount_path[128];
	char		token_id[96];	/* the token that created it */
	json_t	   *internal;		/* engine data (username, role, ...) */
	int64_t		issue_time;
	int64_t		expire_time;
	int64_t		last_renewal;	/* 0: never */
	int64_t		max_expire;		/* issue_time + max_ttl */
	bool		renewable;
	struct vlease *next;
} vlease;

/*
 * Lease id: path + "/" + 24 base62.  internal is borrowed (a reference is
 * taken).  ttl/max_ttl 0: the mount's or the system's 768h; the granted TTL
 * is expire_time - issue_time.  NULL if the id would not fit.
 */
vlease	   *lease_create(vmount *m, const char *path, const char *token_id,
						 json_t *internal, int64_t ttl, int64_t max_ttl, bool renewable);
vlease	   *lease_lookup(const char *id);
/* sys/leases/renew: cap at max_expire, run the engine hook, fill resp. */
bool		lease_renew(vlease *l, int64_t increment, vresp *resp);
/* sys/leases/lookup "data" (times in RFC 3339). */
json_t	   *lease_lookup_json(const vlease *l);
/*
 * Vault's framework.CalculateTTL: the TTL to grant from now for a lease
 * that started at start (0: now), from a requested increment, the backend's
 * TTL, a period, and the backend's and an explicit max TTL (0: unset);
 * m's tuned default/max lease TTLs apply (NULL: 768h).  Adds Vault's
 * "capped" warnings to resp (may be NULL).  -1: start + max is past.
 */
int64_t		calculate_ttl(const vmount *m, int64_t increment, int64_t backend_ttl,
						  int64_t period, int64_t backend_max, int64_t explicit_max,
						  int64_t start, vresp *resp);
/* Revoke through the engine; false and a message when the engine failed. */
bool		lease_revoke(vlease *l, char *err, size_t errlen);
void		lease_revoke_by_token(const char *token_id);
bool		leases_revoke_prefix(const char *prefix, bool force, char *err, size_t errlen);
/* Called once a second by the timer thread (with the lock held). */
bool		leases_expire_due(void);
json_t	   *leases_save(void);
void		leases_load(json_t *saved);

/* ---- server-wide state and helpers ---- */
typedef struct vserver
{
	bool		sealed;
	bool		tls;
	char		unseal_key[64];		/* base64 of 32 random bytes */
	char		cluster_id[37];
	char		cluster_name[64];
	char	   *state_file;		/* NULL: memory only */
	char	   *audit_file;		/* NULL: no audit device */
	char		audit_salt[37];
	time_t		start_time;
} vserver;

extern vserver g_server;
extern pthread_mutex_t g_state_mu;

/* Persist the whole state to g_server.state_file (atomic, 0600). */
bool		store_save(void);
bool		store_load(void);

/* Audit (audit.c): one JSON line per request and per response. */
bool		audit_open(void);
void		audit_request(const vreq *req);
void		audit_response(const vreq *req, const vresp *resp, int status);
/* "hmac-sha256:<hex>" of s under the audit salt (sys/audit-hash). */
char	   *audit_hash(const char *s);

/* Random helpers (util.c). */
void		rand_bytes(unsigned char *buf, size_t n);	/* aborts on failure */
void		rand_uuid(char out[37]);
void		rand_base62(char *out, size_t n);			/* n chars + NUL */
char	   *rfc3339(int64_t unix_secs, long nsec);		/* malloc'd, UTC */
int64_t		now_unix(void);

#endif							/* DEVSERVER_H */
