/*
 * stat.c
 *    What pg_vault's Vault calls cost: the vault_stat view, one row per
 *    operation (calls, rows, errors by SQLSTATE, retries, bytes, time), and
 *    the circuit breaker's state per Vault address.  Cluster-wide in shared
 *    memory when pg_vault is preloaded, per backend otherwise.
 *
 *    The HTTP client (http.c) records every exchange here; envelope.c
 *    records the SQLSTATE of every error it raises against the operation
 *    of the exchange just made.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "pg_vault.h"

#define SQLSTATE_SLOTS	8
#define BREAKER_SLOTS	16

typedef struct OpStat
{
	int64		calls;
	int64		rows;
	int64		errors;
	int64		retries;
	int64		bytes_sent;
	int64		bytes_received;
	double		total_ms;
	double		max_ms;
	int			sqlstate[SQLSTATE_SLOTS];	/* 0: free */
	int64		sqlstate_count[SQLSTATE_SLOTS];
	int64		other_errors;	/* SQLSTATEs beyond the slots */
} OpStat;

typedef struct BreakerSlot
{
	uint32		hash;			/* of the address; 0: free */
	int			failures;		/* consecutive transport failures */
	TimestampTz open_until;		/* 0: closed */
} BreakerSlot;

typedef struct VaultStats
{
	slock_t		mutex;
	TimestampTz reset_at;
	OpStat		ops[VS_COUNT];
	BreakerSlot breakers[BREAKER_SLOTS];
} VaultStats;

static const char *const op_names[VS_COUNT] = {
	[VS_ENCRYPT] = "encrypt",
	[VS_DECRYPT] = "decrypt",
	[VS_REWRAP] = "rewrap",
	[VS_HMAC] = "hmac",
	[VS_DATAKEY] = "datakey",
	[VS_KEY_ADMIN] = "key admin",
	[VS_KV_READ] = "kv read",
	[VS_KV_WRITE] = "kv write",
	[VS_KV_LIST] = "kv list",
	[VS_LOGIN] = "login",
	[VS_TOKEN] = "token",
	[VS_CREDS] = "creds",
	[VS_LEASE] = "lease",
	[VS_HEALTH] = "health",
	[VS_OTHER] = "other",
};

static VaultStats local_stats;
static VaultStats *stats = NULL;	/* shared or &local_stats */
static bool shared = false;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
#if PG_VERSION_NUM >= 150000
static shmem_request_hook_type prev_shmem_request_hook = NULL;
#endif

/* the operation of the last exchange, for the errors raised after it */
static VaultStatKind last_kind = VS_OTHER;
static int64 pending_rows = 0;

#if PG_VERSION_NUM >= 150000
static void
stat_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(sizeof(VaultStats));
}
#endif

static void
stat_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	stats = ShmemInitStruct("pg_vault stats", sizeof(VaultStats), &found);
	if (!found)
	{
		memset(stats, 0, sizeof(VaultStats));
		SpinLockInit(&stats->mutex);
		stats->reset_at = GetCurrentTimestamp();
	}
	LWLockRelease(AddinShmemInitLock);
	shared = true;
}

static VaultStats *
get_stats(void)
{
	if (stats == NULL)
	{
		memset(&local_stats, 0, sizeof(local_stats));
		SpinLockInit(&local_stats.mutex);
		local_stats.reset_at = GetCurrentTimestamp();
		stats = &local_stats;
	}
	return stats;
}

void
vault_stat_init(void)
{
	if (process_shared_preload_libraries_in_progress)
	{
#if PG_VERSION_NUM >= 150000
		prev_shmem_request_hook = shmem_request_hook;
		shmem_request_hook = stat_shmem_request;
#else
		RequestAddinShmemSpace(sizeof(VaultStats));
#endif
		prev_shmem_startup_hook = shmem_startup_hook;
		shmem_startup_hook = stat_shmem_startup;
	}
}

void
vault_stat_set_rows(int64 rows)
{
	pending_rows = rows;
}

void
vault_stat_exchange(VaultStatKind kind, bool ok, int retries, int64 sent,
					int64 received, double ms)
{
	VaultStats *s = get_stats();
	OpStat	   *o = &s->ops[kind];
	int64		rows = pending_rows > 0 ? pending_rows : 1;

	pending_rows = 0;
	last_kind = kind;
	SpinLockAcquire(&s->mutex);
	o->calls++;
	o->rows += rows;
	o->retries += retries;
	o->bytes_sent += sent;
	o->bytes_received += received;
	o->total_ms += ms;
	if (ms > o->max_ms)
		o->max_ms = ms;
	(void) ok;
	SpinLockRelease(&s->mutex);
}

void
vault_stat_error(int sqlerrcode)
{
	VaultStats *s = get_stats();
	OpStat	   *o = &s->ops[last_kind];
	int			i;

	SpinLockAcquire(&s->mutex);
	o->errors++;
	for (i = 0; i < SQLSTATE_SLOTS; i++)
	{
		if (o->sqlstate[i] == sqlerrcode || o->sqlstate[i] == 0)
		{
			o->sqlstate[i] = sqlerrcode;
			o->sqlstate_count[i]++;
			break;
		}
	}
	if (i == SQLSTATE_SLOTS)
		o->other_errors++;
	SpinLockRelease(&s->mutex);
}

/* ---- the circuit breaker's memory ---- */

static BreakerSlot *
breaker_slot(VaultStats *s, uint32 hash, bool create)
{
	BreakerSlot *victim = NULL;

	for (int i = 0; i < BREAKER_SLOTS; i++)
	{
		BreakerSlot *b = &s->breakers[i];

		if (b->hash == hash)
			return b;
		if (victim == NULL || b->hash == 0 ||
			(victim->hash != 0 && b->failures < victim->failures))
			victim = b;
	}
	if (!create)
		return NULL;
	victim->hash = hash;
	victim->failures = 0;
	victim->open_until = 0;
	return victim;
}

/*
 * Whether a request may go to this address now: its breaker is closed, or
 * open with the cool-down over (then this request is the probe).
 */
bool
vault_breaker_allows(uint32 hash, TimestampTz now)
{
	VaultStats *s = get_stats();
	BreakerSlot *b;
	bool		allowed = true;

	SpinLockAcquire(&s->mutex);
	b = breaker_slot(s, hash, false);
	if (b != NULL && b->open_until != 0 && now < b->open_until)
		allowed = false;
	SpinLockRelease(&s->mutex);
	return allowed;
}

void
vault_breaker_record(uint32 hash, bool failed, int threshold, int cooldown_ms)
{
	VaultStats *s = get_stats();
	BreakerSlot *b;

	SpinLockAcquire(&s->mutex);
	b = breaker_slot(s, hash, failed);
	if (b != NULL)
	{
		if (!failed)
		{
			b->failures = 0;
			b->open_until = 0;
		}
		else if (threshold > 0 && ++b->failures >= threshold)
			b->open_until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), cooldown_ms);
	}
	SpinLockRelease(&s->mutex);
}

/* ---- SQL ---- */

PG_FUNCTION_INFO_V1(pg_vault_stat);
PG_FUNCTION_INFO_V1(pg_vault_stat_reset);

Datum
pg_vault_stat(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	VaultStats *s = get_stats();
	VaultStats	copy;

	InitMaterializedSRF(fcinfo, 0);
	SpinLockAcquire(&s->mutex);
	memcpy(&copy, s, sizeof(copy));
	SpinLockRelease(&s->mutex);

	for (int k = 0; k < VS_COUNT; k++)
	{
		OpStat	   *o = &copy.ops[k];
		Datum		values[13];
		bool		nulls[13] = {0};
		StringInfoData errs;
		bool		first = true;

		initStringInfo(&errs);
		appendStringInfoChar(&errs, '{');
		for (int i = 0; i < SQLSTATE_SLOTS && o->sqlstate[i] != 0; i++)
		{
			appendStringInfo(&errs, "%s\"%s\": " INT64_FORMAT, first ? "" : ", ",
							 unpack_sql_state(o->sqlstate[i]), o->sqlstate_count[i]);
			first = false;
		}
		if (o->other_errors > 0)
			appendStringInfo(&errs, "%s\"other\": " INT64_FORMAT, first ? "" : ", ",
							 o->other_errors);
		appendStringInfoChar(&errs, '}');

		values[0] = CStringGetTextDatum(op_names[k]);
		values[1] = Int64GetDatum(o->calls);
		values[2] = Int64GetDatum(o->rows);
		values[3] = Int64GetDatum(o->errors);
		values[4] = DirectFunctionCall1(jsonb_in, CStringGetDatum(errs.data));
		values[5] = Int64GetDatum(o->retries);
		values[6] = Int64GetDatum(o->bytes_sent);
		values[7] = Int64GetDatum(o->bytes_received);
		values[8] = Float8GetDatum(o->total_ms);
		values[9] = Float8GetDatum(o->calls > 0 ? o->total_ms / o->calls : 0.0);
		values[10] = Float8GetDatum(o->max_ms);
		values[11] = BoolGetDatum(shared);
		values[12] = TimestampTzGetDatum(copy.reset_at);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

Datum
pg_vault_stat_reset(PG_FUNCTION_ARGS)
{
	VaultStats *s = get_stats();

	SpinLockAcquire(&s->mutex);
	memset(s->ops, 0, sizeof(s->ops));
	s->reset_at = GetCurrentTimestamp();
	SpinLockRelease(&s->mutex);
	PG_RETURN_VOID();
}
