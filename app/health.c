/*
 * health.c
 *    The service's health as the last check found it: PostgreSQL, and
 *    Vault as pg_vault sees it, in one query (vault_health()).  The
 *    monitor thread checks every APP_HEALTH_INTERVAL seconds and /health
 *    answers from what it found, so that /health costs no round trip;
 *    /ready checks itself, at most once per APP_READY_INTERVAL_MS for all
 *    its callers together.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "app.h"

static pthread_mutex_t state_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t probe_lock = PTHREAD_MUTEX_INITIALIZER;
static HealthState state = {false, false, "unknown", "unknown", "", 0};

void
health_get(HealthState *out)
{
	pthread_mutex_lock(&state_lock);
	*out = state;
	pthread_mutex_unlock(&state_lock);
}

static void
check(HealthState *st)
{
	DbError		err;
	PGresult   *res = db_exec(ST_HEALTH, 0, NULL, &err);

	memset(st, 0, sizeof(*st));
	st->checked = true;
	st->database = "connected";
	st->vault = "connected";
	if (res != NULL)
	{
		bool		initialized = PQntuples(res) == 1 && PQgetvalue(res, 0, 0)[0] == 't';
		bool		sealed = PQntuples(res) != 1 || PQgetvalue(res, 0, 1)[0] == 't';

		PQclear(res);
		if (!initialized)
			st->vault = "uninitialized";
		else if (sealed)
			st->vault = "sealed";
		else
			st->healthy = true;
	}
	else
	{
		snprintf(st->sqlstate, sizeof(st->sqlstate), "%s", err.sqlstate);
		switch (err.kind)
		{
			case DBE_UNAVAILABLE:
			case DBE_CONNECTION:
				st->database = "unreachable";
				st->vault = "unknown";
				break;
			case DBE_VAULT_UNAVAILABLE:
				st->vault = strcmp(err.sqlstate, "55000") == 0 ? "sealed" : "unreachable";
				break;
			default:
				/* pg_vault missing or refusing: the check itself failed */
				st->vault = "error";
				break;
		}
	}
	st->checked_us = now_us();
}

/* Changes are logged, not every check. */
static void
publish(const HealthState *st)
{
	bool		changed;

	pthread_mutex_lock(&state_lock);
	changed = !state.checked || state.healthy != st->healthy ||
		strcmp(state.database, st->database) != 0 || strcmp(state.vault, st->vault) != 0;
	state = *st;
	pthread_mutex_unlock(&state_lock);
	if (changed)
		log_event(st->healthy ? "info" : "warning", "health",
				  json_pack("{s:s, s:s, s:s, s:s?}", "status", st->healthy ? "healthy" : "unhealthy",
							"database", st->database, "vault", st->vault,
							"sqlstate", st->sqlstate[0] ? st->sqlstate : NULL));
}

void
health_probe(HealthState *out)
{
	HealthState st;

	pthread_mutex_lock(&probe_lock);
	check(&st);
	publish(&st);
	pthread_mutex_unlock(&probe_lock);
	if (out != NULL)
		*out = st;
}

void
health_probe_limited(int min_interval_ms, HealthState *out)
{
	HealthState st;

	health_get(&st);
	if (st.checked && now_us() - st.checked_us < (uint64_t) min_interval_ms * 1000u)
	{
		*out = st;
		return;
	}
	/* One probe at a time; the others take what it finds. */
	if (pthread_mutex_trylock(&probe_lock) != 0)
	{
		pthread_mutex_lock(&probe_lock);
		pthread_mutex_unlock(&probe_lock);
		health_get(out);
		return;
	}
	check(&st);
	publish(&st);
	pthread_mutex_unlock(&probe_lock);
	*out = st;
}
