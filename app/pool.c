/*
 * pool.c
 *    A fixed pool of libpq connections shared by the request threads: a
 *    mutex and a condition variable guard the slots, a thread takes one
 *    for the length of one statement, and connections are opened lazily,
 *    so a database that was down is reconnected to by the next request.
 *
 *    Credentials (the dynamic ones from Vault's database engine) can change
 *    while the pool runs: each change starts a new generation, idle
 *    connections of older generations are closed at once and busy ones
 *    when they come back, so that the old lease can be revoked once
 *    pool_wait_retired() says none is left.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app.h"

typedef enum SlotState
{
	SLOT_CLOSED,
	SLOT_IDLE,
	SLOT_BUSY
} SlotState;

typedef struct Slot
{
	SlotState	state;
	PoolConn	pc;
} Slot;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t freed;		/* a slot became idle or closed */
static pthread_cond_t retired;		/* a connection was closed */
static Slot *slots;
static int	nslots;
static int	waiting;
static bool shut;
static unsigned generation;
static char *conninfo;
static char *cred_user;
static char *cred_password;

bool
pool_init(int size, const char *dsn)
{
	cond_init_monotonic(&freed);
	cond_init_monotonic(&retired);
	slots = calloc(size, sizeof(Slot));
	conninfo = strdup(dsn);
	if (slots == NULL || conninfo == NULL)
		return false;
	nslots = size;
	for (int i = 0; i < size; i++)
		slots[i].pc.slot = i;
	return true;
}

static void
wipe_free(char *s)
{
	if (s != NULL)
	{
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

unsigned
pool_set_credentials(const char *user, const char *password)
{
	char	   *u = strdup(user);
	char	   *p = strdup(password);
	unsigned	gen;
	int			i;
	PGconn	   *closing[64];
	int			nclosing = 0;

	pthread_mutex_lock(&lock);
	wipe_free(cred_user);
	wipe_free(cred_password);
	cred_user = u;
	cred_password = p;
	gen = ++generation;
	for (i = 0; i < nslots; i++)
		if (slots[i].state == SLOT_IDLE && nclosing < 64)
		{
			closing[nclosing++] = slots[i].pc.conn;
			slots[i].pc.conn = NULL;
			slots[i].state = SLOT_CLOSED;
		}
	pthread_mutex_unlock(&lock);
	for (i = 0; i < nclosing; i++)
		PQfinish(closing[i]);
	pthread_mutex_lock(&lock);
	pthread_cond_broadcast(&retired);
	pthread_mutex_unlock(&lock);
	return gen;
}

/*
 * Open a connection with the pool's settings.  Keywords are processed in
 * order and later ones win: our defaults, then the connection string (so
 * it may override them), then Vault's credentials (which nothing
 * overrides).  Called without the lock, with copies of the credentials.
 */
static PGconn *
open_connection(const char *user, const char *password)
{
	const char *keys[8];
	const char *vals[8];
	char		options[64];
	int			n = 0;

	snprintf(options, sizeof(options), "-c statement_timeout=%d",
			 app_config.statement_timeout_ms);
	keys[n] = "application_name";
	vals[n++] = "pg-vault-app";
	keys[n] = "connect_timeout";
	vals[n++] = "5";
	keys[n] = "options";
	vals[n++] = options;
	if (conninfo[0] != '\0')
	{
		keys[n] = "dbname";
		vals[n++] = conninfo;
	}
	if (user != NULL)
	{
		keys[n] = "user";
		vals[n++] = user;
		keys[n] = "password";
		vals[n++] = password;
	}
	keys[n] = NULL;
	vals[n] = NULL;
	return PQconnectdbParams(keys, vals, 1);
}

PoolConn *
pool_acquire(int timeout_ms, const char **why)
{
	struct timespec deadline;
	Slot	   *s = NULL;
	int			i;
	char	   *user = NULL;
	char	   *password = NULL;
	PGconn	   *stale = NULL;
	PGconn	   *conn;
	unsigned	gen;
	bool		need_creds;

	clock_deadline(&deadline, timeout_ms);
	pthread_mutex_lock(&lock);
	for (;;)
	{
		Slot	   *closed = NULL;

		if (shut)
			break;
		for (i = 0; i < nslots; i++)
		{
			if (slots[i].state == SLOT_IDLE)
			{
				s = &slots[i];
				break;
			}
			if (slots[i].state == SLOT_CLOSED && closed == NULL)
				closed = &slots[i];
		}
		if (s == NULL)
			s = closed;
		if (s != NULL)
			break;
		waiting++;
		i = pthread_cond_timedwait(&freed, &lock, &deadline);
		waiting--;
		if (i == ETIMEDOUT)
			break;
	}
	if (s == NULL)
	{
		pthread_mutex_unlock(&lock);
		*why = "pool_timeout";
		return NULL;
	}
	if (s->state == SLOT_IDLE && s->pc.generation == generation)
	{
		s->state = SLOT_BUSY;
		s->pc.fresh = false;
		pthread_mutex_unlock(&lock);
		return &s->pc;
	}
	/* Needs a new connection: take a copy of the credentials, connect unlocked. */
	if (s->state == SLOT_IDLE)
		stale = s->pc.conn;
	s->pc.conn = NULL;
	s->state = SLOT_BUSY;
	gen = generation;
	need_creds = cred_user != NULL;
	if (need_creds)
	{
		user = strdup(cred_user);
		password = strdup(cred_password);
	}
	pthread_mutex_unlock(&lock);

	if (stale != NULL)
		PQfinish(stale);
	conn = (!need_creds || (user != NULL && password != NULL)) ?
		open_connection(user, password) : NULL;
	wipe_free(user);
	wipe_free(password);
	if (conn != NULL && PQstatus(conn) != CONNECTION_OK)
	{
		const char *m = PQerrorMessage(conn);
		char		first[160];

		/* libpq's message names the host and user, never the password. */
		snprintf(first, sizeof(first), "%.*s", (int) strcspn(m, "\n"), m);
		log_event("warning", "db_connect_failed", json_pack("{s:s}", "message", first));
		PQfinish(conn);
		conn = NULL;
	}
	pthread_mutex_lock(&lock);
	if (conn == NULL)
		s->state = SLOT_CLOSED;
	else
	{
		s->pc.conn = conn;
		s->pc.prepared = 0;
		s->pc.generation = gen;
		s->pc.fresh = true;
	}
	if (conn == NULL)
		pthread_cond_signal(&freed);
	if (conn == NULL || stale != NULL)
		pthread_cond_broadcast(&retired);
	pthread_mutex_unlock(&lock);
	if (conn == NULL)
	{
		*why = "connect";
		return NULL;
	}
	return &s->pc;
}

void
pool_release(PoolConn *pc, bool broken)
{
	Slot	   *s = &slots[pc->slot];
	PGconn	   *closing = NULL;

	pthread_mutex_lock(&lock);
	if (broken || shut || pc->generation != generation ||
		PQtransactionStatus(pc->conn) != PQTRANS_IDLE)
	{
		closing = pc->conn;
		pc->conn = NULL;
		s->state = SLOT_CLOSED;
	}
	else
		s->state = SLOT_IDLE;
	pthread_cond_signal(&freed);
	pthread_mutex_unlock(&lock);
	if (closing != NULL)
	{
		PQfinish(closing);
		pthread_mutex_lock(&lock);
		pthread_cond_broadcast(&retired);
		pthread_mutex_unlock(&lock);
	}
}

bool
pool_wait_retired(unsigned gen, int timeout_ms)
{
	struct timespec deadline;
	bool		done = false;

	clock_deadline(&deadline, timeout_ms);
	pthread_mutex_lock(&lock);
	for (;;)
	{
		int			i;

		done = true;
		for (i = 0; i < nslots; i++)
			if (slots[i].state != SLOT_CLOSED && slots[i].pc.conn != NULL &&
				slots[i].pc.generation < gen)
				done = false;
		if (done || pthread_cond_timedwait(&retired, &lock, &deadline) == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&lock);
	return done;
}

void
pool_stats(PoolStats *st)
{
	int			i;

	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&lock);
	st->size = nslots;
	st->waiting = waiting;
	for (i = 0; i < nslots; i++)
	{
		if (slots[i].state == SLOT_BUSY)
			st->in_use++;
		if (slots[i].pc.conn != NULL)
			st->open++;
	}
	pthread_mutex_unlock(&lock);
}

/* Close every connection; requests have been drained before this. */
void
pool_shutdown(void)
{
	int			i;

	pthread_mutex_lock(&lock);
	shut = true;
	pthread_cond_broadcast(&freed);
	for (i = 0; i < nslots; i++)
		if (slots[i].state == SLOT_IDLE)
		{
			PQfinish(slots[i].pc.conn);
			slots[i].pc.conn = NULL;
			slots[i].state = SLOT_CLOSED;
		}
	pthread_mutex_unlock(&lock);
}
