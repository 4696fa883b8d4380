/*
 * handlers_status.c
 *    The endpoints about the service itself and its settings: /health,
 *    /ready, /metrics, /api/db-status, /api/secret and /api/config.  The
 *    KV reads select only the fields they may show, so the database
 *    password and the API key never leave PostgreSQL.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"

/* GET /health: what the background check last found; no round trip. */
void
h_health(AppRequest *req)
{
	HealthState st;

	health_get(&st);
	if (!st.healthy)
		req->log_error = "unhealthy";
	reply_json(req, st.healthy ? 200 : 503,
			   json_pack("{s:s, s:s, s:s}", "status", st.healthy ? "healthy" : "unhealthy",
						 "database", st.database, "vault", st.vault));
}

/*
 * GET /ready: a round trip of its own (at most one per
 * APP_READY_INTERVAL_MS for every caller together), and the credential
 * set loaded: whether this instance can serve requests now.
 */
void
h_ready(AppRequest *req)
{
	HealthState st;
	bool		creds = auth_loaded();
	bool		ready;

	health_probe_limited(app_config.ready_interval_ms, &st);
	ready = st.healthy && creds;
	if (!ready)
		req->log_error = "not ready";
	reply_json(req, ready ? 200 : 503,
			   json_pack("{s:s, s:s, s:s, s:s}", "status", ready ? "ready" : "not ready",
						 "database", st.database, "vault", st.vault,
						 "credentials", creds ? "loaded" : "not loaded"));
}

/* GET /metrics: Prometheus text format. */
void
h_metrics(AppRequest *req)
{
	size_t		len;
	PoolStats	ps;
	MetricsGauges g;
	char	   *text;

	pool_stats(&ps);
	g.pool_size = ps.size;
	g.pool_open = ps.open;
	g.pool_in_use = ps.in_use;
	g.pool_waiting = ps.waiting;
	g.credentials = auth_count();
	text = metrics_render(&g, &len);
	if (text == NULL)
	{
		reply_internal(req, "could not render metrics");
		return;
	}
	reply_text(req, 200, text, len, "text/plain; version=0.0.4; charset=utf-8");
}

/* GET /api/db-status */
void
h_db_status(AppRequest *req)
{
	DbError		err;
	PGresult   *res = db_exec(ST_PING, 0, NULL, &err);

	if (res == NULL)
	{
		snprintf(req->sqlstate, sizeof(req->sqlstate), "%s", err.sqlstate);
		req->log_error = "database check failed";
		reply_json(req, 500, json_pack("{s:s, s:s, s:s}", "status", "error",
									   "message", "Database connection failed",
									   "request_id", req->id));
		return;
	}
	PQclear(res);
	reply_json(req, 200, json_pack("{s:s, s:s}", "status", "connected",
								   "message", "Database connection successful"));
}

static bool
all_digits(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s; s++)
		if (!isdigit((unsigned char) *s))
			return false;
	return true;
}

static json_t *
text_or_null(const PGresult *res, int col)
{
	return PQgetisnull(res, 0, col) ? json_null() : json_string(PQgetvalue(res, 0, col));
}

/* GET /api/secret: the database settings in KV database, less the password. */
void
h_secret(AppRequest *req)
{
	DbError		err;
	PGresult   *res = db_kv(ST_SECRET_DATABASE, "database", &err);
	json_t	   *port;

	if (res == NULL)
	{
		if (err.kind == DBE_VAULT_NOT_FOUND)
			reply_error(req, 404, "secret not found");
		else
			reply_db_error(req, &err, "could not read KV app/database");
		return;
	}
	if (PQntuples(res) != 1)
	{
		PQclear(res);
		reply_internal(req, "KV app/database gave no row");
		return;
	}
	/* Ports are kept as strings in KV; show a number when it is one. */
	if (!PQgetisnull(res, 0, 1) && all_digits(PQgetvalue(res, 0, 1)) &&
		strlen(PQgetvalue(res, 0, 1)) <= 5)
		port = json_integer(atoi(PQgetvalue(res, 0, 1)));
	else
		port = text_or_null(res, 1);
	reply_json(req, 200, json_pack("{s:o, s:o, s:o, s:o}",
								   "host", text_or_null(res, 0),
								   "port", port,
								   "username", text_or_null(res, 2),
								   "database", text_or_null(res, 3)));
	PQclear(res);
}

/*
 * Feature flags of the environment (KV <env>/features, else app/features):
 * "true" and "false" become booleans, other strings stay as they are.
 */
static json_t *
features(AppRequest *req, bool *failed)
{
	DbError		err;
	PGresult   *res = db_kv(ST_FEATURES, "features", &err);
	json_t	   *in;
	json_t	   *out;
	const char *key;
	json_t	   *value;

	*failed = false;
	if (res == NULL)
	{
		if (err.kind == DBE_VAULT_NOT_FOUND)
			return json_object();
		*failed = true;
		reply_db_error(req, &err, "could not read KV features");
		return NULL;
	}
	in = PQntuples(res) == 1 && !PQgetisnull(res, 0, 0) ?
		json_loads(PQgetvalue(res, 0, 0), 0, NULL) : NULL;
	PQclear(res);
	out = json_object();
	if (!json_is_object(in) || out == NULL)
	{
		json_decref(in);
		json_decref(out);
		*failed = true;
		reply_internal(req, "KV features is not an object");
		return NULL;
	}
	json_object_foreach(in, key, value)
	{
		const char *s = json_string_value(value);

		if (s != NULL && strcmp(s, "true") == 0)
			json_object_set_new(out, key, json_true());
		else if (s != NULL && strcmp(s, "false") == 0)
			json_object_set_new(out, key, json_false());
		else
			json_object_set(out, key, value);
	}
	json_decref(in);
	return out;
}

/*
 * GET /api/config: whether KV api holds a key (never the key), its
 * endpoint, the environment and its feature flags.
 */
void
h_config(AppRequest *req)
{
	DbError		err;
	PGresult   *res = db_kv(ST_SECRET_API, "api", &err);
	json_t	   *flags;
	json_t	   *configured;
	json_t	   *endpoint;
	bool		failed;

	if (res == NULL && err.kind != DBE_VAULT_NOT_FOUND)
	{
		reply_db_error(req, &err, "could not read KV api");
		return;
	}
	if (res != NULL && PQntuples(res) != 1)
	{
		PQclear(res);
		reply_internal(req, "KV api gave no row");
		return;
	}
	configured = json_boolean(res != NULL && PQgetvalue(res, 0, 0)[0] == 't');
	endpoint = res != NULL ? text_or_null(res, 1) : json_null();
	PQclear(res);
	flags = features(req, &failed);
	if (failed)
	{
		json_decref(configured);
		json_decref(endpoint);
		return;
	}
	reply_json(req, 200, json_pack("{s:o, s:o, s:s?, s:o}",
								   "api_configured", configured,
								   "endpoint", endpoint,
								   "environment", app_config.env,
								   "features", flags));
}
