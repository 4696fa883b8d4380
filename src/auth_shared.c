/*
 * auth_shared.c
 *    AppRole tokens in shared memory, when pg_vault is preloaded
 *    (shared_preload_libraries): one per AppRole identity (role_id,
 *    secret_id file, mount), so that a cluster holds one live token per
 *    identity however many backends, parallel workers and short
 *    connections use it.  The first backend that needs a token logs in
 *    while the others wait on a condition variable; one backend at a time
 *    renews it; a dead token is replaced once, whoever notices (the
 *    generation check).  auth.c falls back to a login of the backend's own
 *    when no slot can hold the identity.
 *
 *    The slots are on whole pages marked MADV_DONTDUMP: no core file holds
 *    a token.  The spinlock is held only to copy fields, never across a
 *    request or an allocation.
 */
#include "postgres.h"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "miscadmin.h"
#include "pgstat.h"
#include "storage/condition_variable.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "pg_vault.h"
#include "auth.h"

/*
 * Shared AppRole tokens, when preloaded.  A slot per identity (its SHA-256);
 * the mutex guards every field and is held only to copy them.  token is
 * on pages excluded from core dumps.
 */
#define SHARED_SLOTS		8
#define SHARED_TOKEN_MAX	1024

typedef struct SharedSlot
{
	bool		in_use;
	bool		valid;			/* token is set and not known dead */
	unsigned char identity[32];
	uint64		generation;		/* bumped at every new token */
	int			login_pid;		/* logging in now, 0 if none */
	int			renew_pid;		/* renewing now, 0 if none */
	TimestampTz last_used;
	ApproleLease lease;
	char		token[SHARED_TOKEN_MAX];
} SharedSlot;

typedef struct SharedAuth
{
	slock_t		mutex;
	ConditionVariable cv;		/* a login ended */
	SharedSlot	slots[SHARED_SLOTS];
} SharedAuth;

static SharedAuth *shared_auth = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
#if PG_VERSION_NUM >= 150000
static shmem_request_hook_type prev_shmem_request_hook = NULL;
#endif

/* this backend's copy of the shared token it uses */
static char *shared_copy = NULL;
static int	shared_copy_slot = -1;
static uint64 shared_copy_generation = 0;
static bool shared_exit_registered = false;

static Size
shared_auth_size(void)
{
	/* whole pages, so that the token pages can be left out of core dumps */
	return add_size(sizeof(SharedAuth), 2 * (Size) sysconf(_SC_PAGESIZE));
}

#if PG_VERSION_NUM >= 150000
static void
auth_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(shared_auth_size());
}
#endif

static void
auth_shmem_startup(void)
{
	bool		found;
	char	   *base;
	uintptr_t	page = (uintptr_t) sysconf(_SC_PAGESIZE);

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	base = ShmemInitStruct("pg_vault shared auth", shared_auth_size(), &found);
	shared_auth = (SharedAuth *) (((uintptr_t) base + page - 1) & ~(page - 1));
	if (!found)
	{
		memset(shared_auth, 0, sizeof(SharedAuth));
		SpinLockInit(&shared_auth->mutex);
		ConditionVariableInit(&shared_auth->cv);
	}
	LWLockRelease(AddinShmemInitLock);
#ifdef MADV_DONTDUMP
	/* inherited by every process the postmaster forks from now on */
	(void) madvise(shared_auth, (sizeof(SharedAuth) + page - 1) & ~(page - 1),
				   MADV_DONTDUMP);
#endif
}

static void
identity_hash(const char *identity, unsigned char *out)
{
	unsigned int len = 0;

	if (EVP_Digest(identity, strlen(identity), out, &len, EVP_sha256(), NULL) != 1 ||
		len != 32)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not compute a SHA-256 digest")));
}

static bool
pid_alive(int pid)
{
	return pid != 0 && (kill(pid, 0) == 0 || errno != ESRCH);
}

/*
 * The slot of this identity, or a free one, or the least recently used one
 * nobody is logging in or renewing with; -1 if none.  Mutex held.
 */
static int
slot_for(const unsigned char *id, TimestampTz now)
{
	int			victim = -1;

	for (int i = 0; i < SHARED_SLOTS; i++)
	{
		SharedSlot *s = &shared_auth->slots[i];

		if (s->in_use && memcmp(s->identity, id, 32) == 0)
			return i;
		if (s->in_use && (pid_alive(s->login_pid) || pid_alive(s->renew_pid)))
			continue;
		if (victim < 0 || !s->in_use ||
			(shared_auth->slots[victim].in_use &&
			 s->last_used < shared_auth->slots[victim].last_used))
			victim = i;
	}
	if (victim >= 0)
	{
		SharedSlot *s = &shared_auth->slots[victim];

		explicit_bzero(s->token, sizeof(s->token));
		s->in_use = true;
		s->valid = false;
		memcpy(s->identity, id, 32);
		s->generation++;
		s->login_pid = s->renew_pid = 0;
		s->last_used = now;
	}
	return victim;
}

/* At exit, a login or renewal this backend had claimed is released. */
static void
release_shared_claims(int code, Datum arg)
{
	if (shared_auth == NULL)
		return;
	SpinLockAcquire(&shared_auth->mutex);
	for (int i = 0; i < SHARED_SLOTS; i++)
	{
		if (shared_auth->slots[i].login_pid == MyProcPid)
			shared_auth->slots[i].login_pid = 0;
		if (shared_auth->slots[i].renew_pid == MyProcPid)
			shared_auth->slots[i].renew_pid = 0;
	}
	SpinLockRelease(&shared_auth->mutex);
	ConditionVariableBroadcast(&shared_auth->cv);
}

/* Logs in for slot i, which this backend has claimed (login_pid). */
static void
shared_login(int i)
{
	SharedSlot *s = &shared_auth->slots[i];
	ApproleLease lease;
	char	   *token = NULL;

	PG_TRY();
	{
		token = vault_approle_login_request(&lease);
	}
	PG_CATCH();
	{
		SpinLockAcquire(&shared_auth->mutex);
		s->login_pid = 0;
		SpinLockRelease(&shared_auth->mutex);
		ConditionVariableBroadcast(&shared_auth->cv);
		PG_RE_THROW();
	}
	PG_END_TRY();

	SpinLockAcquire(&shared_auth->mutex);
	if (strlen(token) < SHARED_TOKEN_MAX)
	{
		explicit_bzero(s->token, sizeof(s->token));
		strcpy(s->token, token);
		s->lease = lease;
		s->valid = true;
		s->generation++;
	}
	s->login_pid = 0;
	SpinLockRelease(&shared_auth->mutex);
	ConditionVariableBroadcast(&shared_auth->cv);
	vault_auth_wipe_pfree(token);
}

/* Renews slot i's token of generation gen, which this backend claimed. */
static void
shared_renew(int i, uint64 gen)
{
	SharedSlot *s = &shared_auth->slots[i];
	ApproleLease lease;
	volatile bool renewed = false;

	SpinLockAcquire(&shared_auth->mutex);
	lease = s->lease;
	SpinLockRelease(&shared_auth->mutex);
	PG_TRY();
	{
		renewed = vault_approle_renew_request(shared_copy, &lease);
	}
	PG_CATCH();
	{
		SpinLockAcquire(&shared_auth->mutex);
		s->renew_pid = 0;
		SpinLockRelease(&shared_auth->mutex);
		PG_RE_THROW();
	}
	PG_END_TRY();

	SpinLockAcquire(&shared_auth->mutex);
	if (s->generation == gen)
	{
		if (renewed)
			s->lease = lease;
		else
			s->valid = false;	/* Vault would not: log in again */
	}
	s->renew_pid = 0;
	SpinLockRelease(&shared_auth->mutex);
}

/*
 * The shared token for this identity, logging in or waiting for the
 * backend that does; NULL when pg_vault is not preloaded or no slot can
 * hold it (more identities than slots, all busy, or a token too long), and
 * this backend logs in itself.
 */
const char *
vault_shared_token(const char *identity)
{
	unsigned char id[32];
	MemoryContext cxt;

	if (shared_auth == NULL)
		return NULL;
	cxt = vault_auth_context(); /* not under the spinlock */
	identity_hash(identity, id);
	if (!shared_exit_registered)
	{
		before_shmem_exit(release_shared_claims, (Datum) 0);
		shared_exit_registered = true;
	}

	for (;;)
	{
		TimestampTz now = GetCurrentTimestamp();
		SharedSlot *s;
		int			i;
		bool		login = false,
					renew = false,
					usable;
		uint64		gen;

		SpinLockAcquire(&shared_auth->mutex);
		i = slot_for(id, now);
		if (i < 0)
		{
			SpinLockRelease(&shared_auth->mutex);
			return NULL;
		}
		s = &shared_auth->slots[i];
		s->last_used = now;
		gen = s->generation;
		usable = s->valid && !vault_lease_expiring(&s->lease, now);
		if (usable)
		{
			if (shared_copy == NULL || shared_copy_slot != i ||
				shared_copy_generation != gen)
			{
				/* copied under the spinlock: no allocation here */
				if (shared_copy == NULL)
					shared_copy = MemoryContextAllocExtended(cxt, SHARED_TOKEN_MAX,
															 MCXT_ALLOC_NO_OOM);
				if (shared_copy != NULL)
				{
					memcpy(shared_copy, s->token, SHARED_TOKEN_MAX);
					shared_copy_slot = i;
					shared_copy_generation = gen;
				}
			}
			if (s->lease.renewable && vault_lease_renew_due(&s->lease, now) &&
				!pid_alive(s->renew_pid))
			{
				s->renew_pid = MyProcPid;
				renew = true;
			}
		}
		else if (!pid_alive(s->login_pid))
		{
			s->login_pid = MyProcPid;
			login = true;
		}
		SpinLockRelease(&shared_auth->mutex);

		if (usable)
		{
			if (shared_copy == NULL || shared_copy_slot != i)
				ereport(ERROR,
						(errcode(ERRCODE_OUT_OF_MEMORY),
						 errmsg("out of memory")));
			if (renew)
				shared_renew(i, gen);
			return shared_copy;
		}
		if (login)
		{
			shared_login(i);
			continue;
		}

		/* another backend logs in: wait for it (interruptible) */
		ConditionVariablePrepareToSleep(&shared_auth->cv);
		for (;;)
		{
			bool		done;

			SpinLockAcquire(&shared_auth->mutex);
			done = s->generation != gen || !pid_alive(s->login_pid) ||
				memcmp(s->identity, id, 32) != 0;
			SpinLockRelease(&shared_auth->mutex);
			if (done)
				break;
			(void) ConditionVariableTimedSleep(&shared_auth->cv, 100, PG_WAIT_EXTENSION);
		}
		ConditionVariableCancelSleep();
	}
}

/* The shared token this backend uses now, or NULL. */
const char *
vault_shared_token_in_use(void)
{
	return (shared_auth != NULL && shared_copy_slot >= 0) ? shared_copy : NULL;
}

/* This backend logs in on its own from now on (no slot could hold its identity). */
void
vault_shared_token_unused(void)
{
	shared_copy_slot = -1;
}

/* The shared token in use is dead for everyone: the first to notice has it replaced. */
void
vault_shared_token_dead(void)
{
	SharedSlot *s;

	if (vault_shared_token_in_use() == NULL)
		return;
	s = &shared_auth->slots[shared_copy_slot];
	SpinLockAcquire(&shared_auth->mutex);
	if (s->generation == shared_copy_generation)
		s->valid = false;
	SpinLockRelease(&shared_auth->mutex);
}

/* Called while preloading: the slots' shared memory and its hooks. */
void
vault_auth_shared_request(void)
{
#if PG_VERSION_NUM >= 150000
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = auth_shmem_request;
#else
	RequestAddinShmemSpace(shared_auth_size());
#endif
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = auth_shmem_startup;
}
