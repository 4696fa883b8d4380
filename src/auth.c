/*
 * auth.c
 *    The token pg_vault hands to the HTTP client.
 *
 *    vault.auth_method = token: the token is read from vault.token_file and
 *    read again whenever the file changes (inode, size or modification
 *    time), so an agent that rewrites the file is followed without a
 *    reconnect.  vault.token, superuser-only and hidden from SHOW ALL, is a
 *    development fallback when no file is set.
 *
 *    vault.auth_method = approle: pg_vault logs in with
 *    vault.approle_role_id and the secret_id in vault.approle_secret_id_file,
 *    caches the token, renews it (renew-self) once two thirds of its lease
 *    have passed, logs in again when it cannot be renewed or is about to
 *    expire, and after a 403 from a dead token logs in once more and lets
 *    the request be repeated.
 *
 *    Preloaded (shared_preload_libraries), the token lives in shared memory,
 *    one per AppRole identity (role_id, secret_id file, mount): the first
 *    backend that needs it logs in while the others wait on a condition
 *    variable, one backend at a time renews it, and a dead token is
 *    replaced once, whoever notices.  Parallel workers and short
 *    connections take the token that is there: a cluster holds one live
 *    token per identity (two while one replaces another).  Without
 *    preloading, each backend logs in on its own and gives its token back
 *    (revoke-self) when it replaces it and when it exits, so that short
 *    connections do not leave a live token each behind.
 *
 *    Tokens and secret_ids live only in memory that is wiped before it is
 *    freed; no message names them, and the file names (superuser-only
 *    settings) appear only in the server log.
 */
#include "postgres.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <signal.h>
#include <sys/mman.h>

#include "miscadmin.h"
#include "pgstat.h"
#include "storage/condition_variable.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "pg_vault.h"
#include "common/vault_client.h"

typedef enum
{
	AUTH_TOKEN,
	AUTH_APPROLE
} AuthMethod;

static const struct config_enum_entry auth_method_options[] = {
	{"token", AUTH_TOKEN, false},
	{"approle", AUTH_APPROLE, false},
	{NULL, 0, false}
};

/*---- GUC variables ----*/

static int	vault_auth_method = AUTH_TOKEN;
static char *vault_token_file = NULL;
static char *vault_token = NULL;
static char *vault_approle_role_id = NULL;
static char *vault_approle_secret_id_file = NULL;
static char *vault_approle_mount = NULL;

/* Credentials files larger than this are refused. */
#define MAX_CREDENTIAL_FILE 16384

/*
 * An AppRole token this close to expiry (or a tenth of its lease, if less)
 * is replaced by a fresh login rather than used.
 */
#define EXPIRY_MARGIN_MS 5000

/*
 * A token file modified this recently is read on every call: file times
 * are coarse, so a rewrite within the same tick can keep inode, size and
 * mtime (git's "racy" index entries have the same cure).
 */
#define RACY_FILE_SECONDS 2

static MemoryContext AuthContext = NULL;

/* token-file cache */
static char *file_token = NULL;
static char *file_path = NULL;
static struct stat file_stat;

/* What a login or renewal granted. */
typedef struct ApproleLease
{
	TimestampTz renew_at;		/* 0: never */
	TimestampTz expires_at;		/* 0: never */
	int64		margin_ms;
	int64		login_lease_ms; /* lease granted at login */
	bool		renewable;
} ApproleLease;

/* AppRole cache of this backend (without preloading, or as a fallback) */
static char *approle_token = NULL;
static char *approle_identity = NULL;	/* role_id, file and mount it came
										 * from */
static ApproleLease approle_lease;
static bool revoke_registered = false;	/* revoke_at_exit */

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

static void
ensure_context(void)
{
	if (AuthContext == NULL)
		AuthContext = AllocSetContextCreate(TopMemoryContext,
											"pg_vault auth",
											ALLOCSET_SMALL_SIZES);
}

static void
wipe_pfree(char *s)
{
	if (s != NULL)
	{
		explicit_bzero(s, strlen(s));
		pfree(s);
	}
}

/*
 * Reads a credential file into AuthContext, trimmed of surrounding white
 * space.  what names the setting for messages; the path goes only to the
 * server log, since non-superusers may not see it.
 */
static char *
read_credential_file(const char *path, const char *what, struct stat *st)
{
	char	   *buf = palloc(MAX_CREDENTIAL_FILE + 1);
	VcFileStatus rc;
	char	   *out;

	/* src/common/vault_client.c's rules, as the app's */
	rc = vc_read_secret_file(path, buf, MAX_CREDENTIAL_FILE + 1, st);
	if (rc != VC_FILE_OK)
	{
		int			save_errno = errno;

		pfree(buf);				/* wiped by vc_read_secret_file */
		errno = save_errno;
		if (rc == VC_FILE_OPEN)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not open the file named by %s", what),
					 errdetail_log("File \"%s\": %m.", path)));
		if (rc == VC_FILE_TOO_LARGE)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
					 errmsg("could not read the file named by %s", what),
					 errdetail_log("File \"%s\" cannot be examined or is larger than %d bytes.",
								   path, MAX_CREDENTIAL_FILE)));
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("the file named by %s is empty or holds more than one printable word", what),
				 errdetail_log("File \"%s\".", path)));
	}
	out = MemoryContextStrdup(AuthContext, buf);
	explicit_bzero(buf, MAX_CREDENTIAL_FILE + 1);
	pfree(buf);
	return out;
}

static bool
same_file(const struct stat *a, const struct stat *b)
{
	return a->st_ino == b->st_ino && a->st_dev == b->st_dev &&
		a->st_size == b->st_size &&
		a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
		a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

static const char *
token_from_file(void)
{
	struct stat st;

	ensure_context();
	if (stat(vault_token_file, &st) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open the file named by vault.token_file"),
				 errdetail_log("File \"%s\": %m.", vault_token_file)));

	if (file_token == NULL || file_path == NULL ||
		strcmp(file_path, vault_token_file) != 0 || !same_file(&st, &file_stat) ||
		time(NULL) - st.st_mtim.tv_sec < RACY_FILE_SECONDS)
	{
		char	   *tok;

		tok = read_credential_file(vault_token_file, "vault.token_file", &st);
		if (file_token != NULL && strcmp(tok, file_token) == 0)
			wipe_pfree(tok);
		else
		{
			wipe_pfree(file_token);
			file_token = tok;
		}
		if (file_path == NULL || strcmp(file_path, vault_token_file) != 0)
		{
			if (file_path)
				pfree(file_path);
			file_path = MemoryContextStrdup(AuthContext, vault_token_file);
		}
		file_stat = st;
	}
	return file_token;
}

static void
forget_approle_token(void)
{
	wipe_pfree(approle_token);
	approle_token = NULL;
	memset(&approle_lease, 0, sizeof(approle_lease));
}

/*
 * Gives the AppRole token back (auth/token/revoke-self) and forgets it.
 * Every backend logs in on its own, so a token left to expire is one more
 * live token and lease per connection ever made: with a pooler or short
 * connections, tens of thousands, which is how Vault clusters fall over.
 * Best effort and quick: no retry, a 2 s limit, and Vault's answer is not
 * looked at (a dead token or an unreachable Vault leaves nothing to do).
 * What can still raise is a cancel, which must reach the statement.
 */
static void
revoke_approle_token(void)
{
	VaultResult res;

	if (approle_token == NULL)
		return;
	vault_http_perform(&res, VAULT_POST, "auth/token/revoke-self", "{}", 2,
					   approle_token, VAULT_NO_RETRY | VAULT_QUICK | VAULT_KIND(VS_TOKEN));
	vault_http_wipe_response();
	forget_approle_token();
}

/* At backend exit nothing may escape: there is no statement to fail. */
static void
revoke_at_exit(int code, Datum arg)
{
	PG_TRY();
	{
		revoke_approle_token();
	}
	PG_CATCH();
	{
		FlushErrorState();
	}
	PG_END_TRY();
}

/* Lease bookkeeping after a login or renewal granting lease seconds. */
static void
set_lease(ApproleLease *l, int64 lease, bool renewable)
{
	TimestampTz now = GetCurrentTimestamp();
	int64		lease_ms = lease * 1000;

	l->renewable = renewable;
	if (lease <= 0)
	{
		l->renew_at = 0;
		l->expires_at = 0;
		l->margin_ms = 0;
		return;
	}
	l->expires_at = TimestampTzPlusMilliseconds(now, lease_ms);
	l->margin_ms = Min(EXPIRY_MARGIN_MS, lease_ms / 10);
	l->renew_at = renewable ?
		TimestampTzPlusMilliseconds(now, lease_ms * 2 / 3) : 0;
}

/* Whether a token of this lease must be replaced by a fresh login now. */
static bool
lease_expiring(const ApproleLease *l, TimestampTz now)
{
	return l->expires_at != 0 &&
		now >= TimestampTzPlusMilliseconds(l->expires_at, -l->margin_ms);
}

static bool
lease_renew_due(const ApproleLease *l, TimestampTz now)
{
	return l->renew_at != 0 && now >= l->renew_at;
}

static char *
approle_identity_string(void)
{
	return psprintf("%s\n%s\n%s",
					vault_approle_role_id ? vault_approle_role_id : "",
					vault_approle_secret_id_file ? vault_approle_secret_id_file : "",
					vault_approle_mount ? vault_approle_mount : "");
}

/*
 * Logs in with the session's AppRole settings; returns the token (in
 * AuthContext, for the caller to wipe) and fills *l.
 */
static char *
approle_login_request(ApproleLease *l)
{
	static const VaultOp op = {"log in to Vault with AppRole", NULL};
	struct stat st;
	char	   *secret_id;
	StringInfoData body;
	StringInfoData path;
	VaultJsonWriter w;
	VaultResult res;
	VaultDoc   *doc;
	const char *tok;
	size_t		toklen;
	int64		lease = 0;
	bool		renewable = false;
	char	   *token;

	ensure_context();
	if (vault_approle_role_id == NULL || vault_approle_role_id[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("vault.approle_role_id is not set"),
				 errhint("AppRole authentication needs vault.approle_role_id and vault.approle_secret_id_file.")));
	if (vault_approle_secret_id_file == NULL || vault_approle_secret_id_file[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("vault.approle_secret_id_file is not set"),
				 errhint("AppRole authentication needs vault.approle_role_id and vault.approle_secret_id_file.")));

	secret_id = read_credential_file(vault_approle_secret_id_file,
									 "vault.approle_secret_id_file", &st);
	initStringInfo(&body);
	vault_jw_begin(&w, &body);
	vault_jw_string(&w, "role_id", vault_approle_role_id);
	vault_jw_string(&w, "secret_id", secret_id);
	vault_jw_end(&w);
	wipe_pfree(secret_id);

	initStringInfo(&path);
	appendStringInfo(&path, "auth/%s/login",
					 (vault_approle_mount && vault_approle_mount[0]) ? vault_approle_mount : "approle");

	PG_TRY();
	{
		vault_http_perform(&res, VAULT_POST, path.data, body.data, body.len,
						   NULL, VAULT_NO_AUTH | VAULT_RETRY_IDEMPOTENT | VAULT_KIND(VS_LOGIN));
	}
	PG_FINALLY();
	{
		explicit_bzero(body.data, body.maxlen);
		pfree(body.data);
	}
	PG_END_TRY();

	doc = vault_doc_parse(&res, &op, 0);
	tok = vault_doc_string_ref(doc, "auth.client_token", &toklen, &op);
	if (toklen == 0 || strlen(tok) != toklen || strpbrk(tok, "\r\n") != NULL)
		vault_raise_malformed(&op, "\"auth.client_token\" is not a usable token");
	(void) vault_doc_int_opt(doc, "auth.lease_duration", &lease);
	(void) vault_doc_bool_opt(doc, "auth.renewable", &renewable);

	token = MemoryContextStrdup(AuthContext, tok);
	vault_doc_free(doc);
	vault_http_wipe_response();
	set_lease(l, lease, renewable);
	l->login_lease_ms = lease * 1000;
	return token;
}

/* A login for this backend alone, giving back the token it replaces. */
static void
approle_login(void)
{
	char	   *identity;

	/* the token it replaces, near its end or of another identity, goes back */
	revoke_approle_token();
	approle_token = approle_login_request(&approle_lease);
	identity = approle_identity_string();
	if (approle_identity)
		pfree(approle_identity);
	approle_identity = MemoryContextStrdup(AuthContext, identity);
	pfree(identity);
	if (!revoke_registered)
	{
		before_shmem_exit(revoke_at_exit, (Datum) 0);
		revoke_registered = true;
	}
}

/* Renews token, updating *l; false when Vault would not. */
static bool
approle_renew_request(const char *token, ApproleLease *l)
{
	static const VaultOp op = {"renew the Vault token", NULL};
	static const char body[] = "{}";
	VaultResult res;
	VaultDoc   *doc;
	int64		lease = 0;
	bool		renewable = false;

	vault_http_perform(&res, VAULT_POST, "auth/token/renew-self", body,
					   sizeof(body) - 1, token, VAULT_RETRY_IDEMPOTENT | VAULT_KIND(VS_TOKEN));
	if (res.transport != VT_OK)
		vault_raise_transport(&res, &op);
	if (res.status != 200)
		return false;
	doc = vault_doc_parse(&res, &op, 0);
	if (!vault_doc_int_opt(doc, "auth.lease_duration", &lease))
	{
		vault_doc_free(doc);
		return false;
	}
	(void) vault_doc_bool_opt(doc, "auth.renewable", &renewable);
	vault_doc_free(doc);
	vault_http_wipe_response();

	/* near its max TTL Vault grants only what is left: log in again instead */
	if (lease * 1000 < l->login_lease_ms / 3)
		return false;
	set_lease(l, lease, renewable);
	return true;
}

/* The token of this backend's own login. */
static const char *
local_token_now(const char *identity)
{
	TimestampTz now;

	if (approle_token == NULL || approle_identity == NULL ||
		strcmp(identity, approle_identity) != 0)
	{
		approle_login();
		return approle_token;
	}
	now = GetCurrentTimestamp();
	/* an expiring token, or one whose due renewal failed: a new login */
	if (lease_expiring(&approle_lease, now) ||
		(lease_renew_due(&approle_lease, now) &&
		 !approle_renew_request(approle_token, &approle_lease)))
		approle_login();
	return approle_token;
}

/* ---- shared tokens (preloaded) ---- */

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
		token = approle_login_request(&lease);
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
	wipe_pfree(token);
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
		renewed = approle_renew_request(shared_copy, &lease);
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
 * backend that does; NULL when no slot can hold it (more identities than
 * slots, all busy, or a token too long), and this backend logs in itself.
 */
static const char *
shared_token_now(const char *identity)
{
	unsigned char id[32];

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
		usable = s->valid && !lease_expiring(&s->lease, now);
		if (usable)
		{
			if (shared_copy == NULL || shared_copy_slot != i ||
				shared_copy_generation != gen)
			{
				/* copied under the spinlock: no allocation here */
				if (shared_copy == NULL)
					shared_copy = MemoryContextAllocExtended(AuthContext, SHARED_TOKEN_MAX,
															 MCXT_ALLOC_NO_OOM);
				if (shared_copy != NULL)
				{
					memcpy(shared_copy, s->token, SHARED_TOKEN_MAX);
					shared_copy_slot = i;
					shared_copy_generation = gen;
				}
			}
			if (s->lease.renewable && lease_renew_due(&s->lease, now) &&
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

static bool
using_shared_token(void)
{
	return shared_auth != NULL && shared_copy_slot >= 0;
}

static const char *
approle_token_now(void)
{
	char	   *identity = approle_identity_string();
	const char *token = NULL;

	ensure_context();
	if (shared_auth != NULL)
		token = shared_token_now(identity);
	if (token == NULL)
	{
		shared_copy_slot = -1;
		token = local_token_now(identity);
	}
	pfree(identity);
	return token;
}

const char *
vault_auth_token(void)
{
	if (vault_auth_method == AUTH_APPROLE)
		return approle_token_now();

	if (vault_token_file != NULL && vault_token_file[0] != '\0')
		return token_from_file();
	if (vault_token != NULL && vault_token[0] != '\0')
		return vault_token;

	ereport(ERROR,
			(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
			 errmsg("no Vault token is configured"),
			 errhint("Set vault.token_file, or vault.auth_method = 'approle' with its settings.")));
	return NULL;				/* keep compiler quiet */
}

/*
 * Vault answers 403 both for a policy that denies the path and for a token
 * that expired or was revoked.  Only the second is cured by a fresh login;
 * logging in again on every denial would mint a token per failing call.
 * HashiCorp Vault adds "invalid token" to the second; OpenBao says only
 * "permission denied" for both, so without that word the token itself is
 * asked about (auth/token/lookup-self, which the default policy allows):
 * a token that cannot look itself up is dead.
 *
 * That question reuses the response buffer, so the caller must send its
 * request again for every answer but VAULT_FORBIDDEN_KEPT.
 */
VaultForbidden
vault_auth_refresh_after_forbidden(const VaultResult *res)
{
	VaultResult probe;

	const char *token;

	if (vault_auth_method != AUTH_APPROLE)
		return VAULT_FORBIDDEN_KEPT;
	token = using_shared_token() ? shared_copy : approle_token;
	if (token == NULL)
		return VAULT_FORBIDDEN_KEPT;
	/* a word in the body, not a parse: the caller parses the answer once */
	if (strstr(res->body, "invalid token") == NULL)
	{
		vault_http_perform(&probe, VAULT_GET, "auth/token/lookup-self", NULL, 0,
						   token, VAULT_RETRY_IDEMPOTENT | VAULT_KIND(VS_TOKEN));
		vault_http_wipe_response();
		if (probe.transport != VT_OK || probe.status != 403)
			return VAULT_FORBIDDEN_DENIED;
	}
	if (using_shared_token())
	{
		/* dead for everyone: the first to notice has it replaced */
		SharedSlot *s = &shared_auth->slots[shared_copy_slot];

		SpinLockAcquire(&shared_auth->mutex);
		if (s->generation == shared_copy_generation)
			s->valid = false;
		SpinLockRelease(&shared_auth->mutex);
	}
	else
		approle_login();
	return VAULT_FORBIDDEN_RELOGGED;
}

/* vault.token must not carry characters that would split the header. */
static bool
check_token(char **newval, void **extra, GucSource source)
{
	const char *p;

	for (p = *newval ? *newval : ""; *p; p++)
	{
		if ((unsigned char) *p <= ' ' || (unsigned char) *p >= 127)
		{
			GUC_check_errmsg("vault.token may hold only printable ASCII without spaces");
			return false;
		}
	}
	return true;
}

void
vault_auth_init(void)
{
	DefineCustomEnumVariable("vault.auth_method",
							 gettext_noop("How pg_vault authenticates to Vault: token or approle."),
							 NULL,
							 &vault_auth_method, AUTH_TOKEN, auth_method_options,
							 PGC_SUSET, GUC_SUPERUSER_ONLY,
							 NULL, NULL, NULL);
	DefineCustomStringVariable("vault.token_file",
							   gettext_noop("File holding the Vault token; read again when it changes."),
							   NULL,
							   &vault_token_file, "",
							   PGC_SUSET, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("vault.token",
							   gettext_noop("Vault token, for development only; prefer vault.token_file."),
							   NULL,
							   &vault_token, "",
							   PGC_SUSET,
							   GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE,
							   check_token, NULL, NULL);
	DefineCustomStringVariable("vault.approle_role_id",
							   gettext_noop("AppRole role_id used when vault.auth_method is approle."),
							   NULL,
							   &vault_approle_role_id, "",
							   PGC_SUSET, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("vault.approle_secret_id_file",
							   gettext_noop("File holding the AppRole secret_id."),
							   NULL,
							   &vault_approle_secret_id_file, "",
							   PGC_SUSET, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("vault.approle_mount",
							   gettext_noop("Path where the AppRole auth method is mounted."),
							   NULL,
							   &vault_approle_mount, "approle",
							   PGC_SUSET, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);

	if (process_shared_preload_libraries_in_progress)
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
}
