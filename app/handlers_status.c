/*
 * handlers_status.c
 *    The endpoints about the service itself and its settings: /health,
 *    /metrics, /api/db-status, /api/secret and /api/config.  The two KV
 *    reads select only the fields they may show, so the database password
 *    and the API key never leave PostgreSQL.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"

/* GET /health: PostgreSQL, and Vault as pg_vault sees it, in one query. */
void
h_health(AppRequest *req)
{
	DbError		err;
	PGresult   *res = db_exec(ST_HEALTH, 0, NULL, &err);
	const char *database = "connected";
	const char *vault = "connected";
	bool		healthy = false;

	if (res != NULL)
	{
		bool		initialized = PQgetvalue(res, 0, 0)[0] == 't';
		bool		sealed = PQgetvalue(res, 0, 1)[0] == 't';

		PQclear(res);
		if (!initialized)
			vault = "uninitialized";
		else if (sealed)
			vault = "sealed";
		else
			healthy = true;
	}
	else
	{
		snprintf(req->sqlstate, sizeof(req->sqlstate), "%s", err.sqlstate);
		switch (err.kind)
		{
			case DBE_UNAVAILABLE:
			case DBE_CONNECTION:
				database = "unreachable";
				vault = "unknown";
				break;
			case DBE_VAULT_UNAVAILABLE:
				vault = strcmp(err.sqlstate, "55000") == 0 ? "sealed" : "unreachable";
				break;
			default:
				/* pg_vault missing or refusing: the check itself failed */
				vault = "error";
				break;
		}
		req->log_error = "health check failed";
	}
	reply_json(req, healthy ? 200 : 503,
			   json_pack("{s:s, s:s, s:s}", "status", healthy ? "healthy" : "unhealthy",
						 "database", database, "vault", vault));
}

/* GET /metrics: Prometheus text format. */
void
h_metrics(AppRequest *req)
{
	size_t		len;
	char	   *text = metrics_render(&len);

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

/* GET /api/secret: the database settings in KV app/database, less the password. */
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
			db_reply_error(req, &err, "could not read KV app/database");
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

/* GET /api/config: whether KV app/api holds a key, and its endpoint. */
void
h_config(AppRequest *req)
{
	DbError		err;
	PGresult   *res = db_kv(ST_SECRET_API, "api", &err);

	if (res == NULL)
	{
		if (err.kind == DBE_VAULT_NOT_FOUND)
			reply_json(req, 200, json_pack("{s:b, s:n}", "api_configured", 0, "endpoint"));
		else
			db_reply_error(req, &err, "could not read KV app/api");
		return;
	}
	if (PQntuples(res) != 1)
	{
		PQclear(res);
		reply_internal(req, "KV app/api gave no row");
		return;
	}
	reply_json(req, 200, json_pack("{s:b, s:o}",
								   "api_configured", PQgetvalue(res, 0, 0)[0] == 't',
								   "endpoint", text_or_null(res, 1)));
	PQclear(res);
}
