/*
 * db.c
 *    Every SQL statement the service runs, in one table, each a single
 *    parameterised statement over pg_vault's functions; and the one way to
 *    run them: take a pooled connection, prepare the statement on it the
 *    first time, execute, classify a failure (PostgreSQL's own, or Vault's
 *    as pg_vault reports it through its SQLSTATEs), give the connection
 *    back.  Handlers never see a PGconn, and answer the errors this
 *    returns (reply_db_error).
 */
#include <stdio.h>
#include <string.h>

#include "app.h"

typedef struct Statement
{
	const char *name;
	const char *sql;
	bool		idempotent;		/* safe to run again after a lost connection */
} Statement;

/*
 * Casts pick the text forms of functions that also take bytea.  The SSN is
 * masked inside the database: its plaintext never reaches the app.  Neither
 * does the API key: only whether there is one.  Nor the database password.
 */
static const Statement statements[ST_COUNT] =
{
	[ST_HEALTH] = {"pgv_health",
		"SELECT coalesce((h->>'initialized')::boolean, false), "
		"coalesce((h->>'sealed')::boolean, true) FROM vault_health() AS h", true},
	[ST_PING] = {"pgv_ping", "SELECT 1", true},
	[ST_CLIENT_LIST] = {"pgv_client_list",
		"SELECT k FROM vault_kv_list($1::text) AS k", true},
	[ST_CLIENT] = {"pgv_client",
		"SELECT (d->'scopes')::text, d->>'name' FROM vault_kv($1::text) AS d", true},
	[ST_SECRET_DATABASE] = {"pgv_secret_database",
		"SELECT d->>'host', d->>'port', d->>'username', d->>'database' "
		"FROM vault_kv($1::text) AS d", true},
	[ST_SECRET_API] = {"pgv_secret_api",
		"SELECT coalesce(d->>'key', '') <> '', d->>'endpoint' "
		"FROM vault_kv($1::text) AS d", true},
	[ST_FEATURES] = {"pgv_features",
		"SELECT d::text FROM vault_kv($1::text) AS d", true},
	[ST_USER_INSERT] = {"pgv_user_insert",
		"INSERT INTO users (email, name, ssn, ssn_hmac, payment_token) "
		"VALUES ($1::text, $2::text, vault_encrypt($3::text, 'user-data'), "
		"vault_hmac($3::text, 'user-data'), vault_encrypt($4::text, 'payment-data')) "
		"RETURNING id, ssn", false},
	[ST_USERS_LIST] = {"pgv_users_list",
		"SELECT id, name, email FROM users ORDER BY id LIMIT $1::bigint OFFSET $2::bigint", true},
	[ST_USER_SSN] = {"pgv_user_ssn",
		"SELECT '***-**-' || right(vault_decrypt(ssn, 'user-data'), 4) "
		"FROM users WHERE id = $1::bigint", true},
	[ST_ENCRYPT] = {"pgv_encrypt", "SELECT vault_encrypt($1::text, $2::text)", true},
	[ST_DECRYPT] = {"pgv_decrypt", "SELECT vault_decrypt($1::text, $2::text)", true},
};

/*
 * pg_vault's errors name Vault in their message or detail ("could not read
 * Vault secret ...", "Vault answered HTTP 403 ...", "vault.token_file"):
 * that tells them from PostgreSQL's own errors with the same SQLSTATE.
 */
static void
classify(const PGresult *res, DbError *err)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
	bool		from_vault;
	const char *kind;

	snprintf(err->sqlstate, sizeof(err->sqlstate), "%s", state ? state : "XX000");
	from_vault = (msg && (strstr(msg, "Vault") || strstr(msg, "vault."))) ||
		(detail && strstr(detail, "Vault"));
	if (!from_vault)
	{
		err->kind = DBE_SQL;
		metrics_count("pgv_app_db_errors_total", "kind=\"query\"");
		return;
	}
	if (strcmp(err->sqlstate, "42704") == 0)
	{
		/* an answer, not a fault: unknown credentials and absent settings */
		err->kind = DBE_VAULT_NOT_FOUND;
		return;
	}
	else if (strcmp(err->sqlstate, "42501") == 0 || strcmp(err->sqlstate, "28000") == 0)
	{
		err->kind = DBE_VAULT_DENIED;
		kind = "denied";
	}
	else if (strcmp(err->sqlstate, "22023") == 0 || strcmp(err->sqlstate, "22021") == 0)
	{
		err->kind = DBE_VAULT_INVALID;
		kind = "invalid";
	}
	else if (strcmp(err->sqlstate, "55000") == 0)
	{
		err->kind = DBE_VAULT_UNAVAILABLE;
		kind = "sealed";
	}
	/* 58V0x: pg_vault could not reach Vault or understand it (envelope.c) */
	else if (strncmp(err->sqlstate, "58V0", 4) == 0 || strcmp(err->sqlstate, "57014") == 0 ||
			 strcmp(err->sqlstate, "54000") == 0 || strcmp(err->sqlstate, "53400") == 0)
	{
		err->kind = DBE_VAULT_UNAVAILABLE;
		kind = "unavailable";
	}
	else
	{
		err->kind = DBE_VAULT_OTHER;
		kind = "other";
	}
	{
		char		labels[64];

		snprintf(labels, sizeof(labels), "source=\"sql\",kind=\"%s\"", kind);
		metrics_count("pgv_app_vault_errors_total", labels);
	}
}

PGresult *
db_exec(DbStmt st, int nparams, const char *const *values, DbError *err)
{
	const Statement *s = &statements[st];
	int			attempt;

	err->kind = DBE_NONE;
	err->sqlstate[0] = '\0';
	/* every idle connection may have died at once: at most one try each, then a new one */
	for (attempt = 0; attempt <= app_config.pool_size; attempt++)
	{
		const char *why = NULL;
		PoolConn   *pc = pool_acquire(app_config.pool_wait_ms, &why);
		PGresult   *res;
		bool		broken;
		bool		fresh;

		if (pc == NULL)
		{
			err->kind = DBE_UNAVAILABLE;
			metrics_count("pgv_app_db_errors_total",
						  strcmp(why, "pool_timeout") == 0 ? "kind=\"pool_timeout\"" : "kind=\"connect\"");
			return NULL;
		}
		fresh = pc->fresh;
		if (!(pc->prepared & (1u << st)))
		{
			res = PQprepare(pc->conn, s->name, s->sql, 0, NULL);
			if (PQresultStatus(res) == PGRES_COMMAND_OK)
				pc->prepared |= 1u << st;
			else
				goto failed;
			PQclear(res);
		}
		metrics_statement(s->name);
		res = PQexecPrepared(pc->conn, s->name, nparams, values, NULL, NULL, 0);
		if (PQresultStatus(res) == PGRES_TUPLES_OK || PQresultStatus(res) == PGRES_COMMAND_OK)
		{
			pool_release(pc, false);
			return res;
		}
failed:
		broken = PQstatus(pc->conn) != CONNECTION_OK;
		if (!broken)
			classify(res, err);
		PQclear(res);
		pool_release(pc, broken);
		if (!broken)
			return NULL;
		metrics_count("pgv_app_db_errors_total", "kind=\"connection_lost\"");
		err->kind = DBE_CONNECTION;
		snprintf(err->sqlstate, sizeof(err->sqlstate), "08006");
		/*
		 * A connection that sat idle may have been closed under us (the
		 * server restarted): another try, on the next idle one or a new
		 * one, when running the statement twice cannot do harm.
		 */
		if (fresh || !s->idempotent)
			return NULL;
	}
	return NULL;
}

/*
 * A statement whose one parameter is a KV path: with APP_ENV set, the
 * environment's <env>/<rest> is read, and app/<rest> when that does not
 * exist.
 */
PGresult *
db_kv(DbStmt st, const char *rest, DbError *err)
{
	char		path[256];
	const char *params[1] = {path};
	PGresult   *res = NULL;

	if (app_config.env != NULL)
	{
		config_kv_path(path, sizeof(path), rest, true);
		res = db_exec(st, 1, params, err);
		if (res != NULL || err->kind != DBE_VAULT_NOT_FOUND)
			return res;
	}
	config_kv_path(path, sizeof(path), rest, false);
	return db_exec(st, 1, params, err);
}
