/*
 * auth.c
 *    The token pg_vault hands to the HTTP client.  AppRole's requests,
 *    leases and settings are approle.c's; the tokens shared through shared
 *    memory are auth_shared.c's (auth.h).
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

#include <sys/stat.h>
#include <time.h>

#include "miscadmin.h"
#include "storage/ipc.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "pg_vault.h"
#include "auth.h"

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

/*
 * A token file modified this recently is read on every call: file times
 * are coarse, so a rewrite within the same tick can keep inode, size and
 * mtime (git's "racy" index entries have the same cure).
 */
#define RACY_FILE_SECONDS 2

/* token-file cache */
static char *file_token = NULL;
static char *file_path = NULL;
static struct stat file_stat;

/* AppRole cache of this backend (without preloading, or as a fallback) */
static char *approle_token = NULL;
static char *approle_identity = NULL;	/* role_id, file and mount it came
										 * from */
static ApproleLease approle_lease;
static bool revoke_registered = false;	/* revoke_at_exit */

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

	(void) vault_auth_context();
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

		tok = vault_read_credential_file(vault_token_file, "vault.token_file", &st);
		if (file_token != NULL && strcmp(tok, file_token) == 0)
			vault_auth_wipe_pfree(tok);
		else
		{
			vault_auth_wipe_pfree(file_token);
			file_token = tok;
		}
		if (file_path == NULL || strcmp(file_path, vault_token_file) != 0)
		{
			if (file_path)
				pfree(file_path);
			file_path = MemoryContextStrdup(vault_auth_context(), vault_token_file);
		}
		file_stat = st;
	}
	return file_token;
}

static void
forget_approle_token(void)
{
	vault_auth_wipe_pfree(approle_token);
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

/* A login for this backend alone, giving back the token it replaces. */
static void
approle_login(void)
{
	char	   *identity;

	/* the token it replaces, near its end or of another identity, goes back */
	revoke_approle_token();
	approle_token = vault_approle_login_request(&approle_lease);
	identity = vault_approle_identity();
	if (approle_identity)
		pfree(approle_identity);
	approle_identity = MemoryContextStrdup(vault_auth_context(), identity);
	pfree(identity);
	if (!revoke_registered)
	{
		before_shmem_exit(revoke_at_exit, (Datum) 0);
		revoke_registered = true;
	}
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
	if (vault_lease_expiring(&approle_lease, now) ||
		(vault_lease_renew_due(&approle_lease, now) &&
		 !vault_approle_renew_request(approle_token, &approle_lease)))
		approle_login();
	return approle_token;
}

static const char *
approle_token_now(void)
{
	char	   *identity = vault_approle_identity();
	const char *token = NULL;

	token = vault_shared_token(identity);
	if (token == NULL)
	{
		vault_shared_token_unused();
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
	token = vault_shared_token_in_use();
	if (token == NULL)
		token = approle_token;
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
	if (vault_shared_token_in_use() != NULL)
		vault_shared_token_dead();
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
	vault_approle_init();

	if (process_shared_preload_libraries_in_progress)
		vault_auth_shared_request();
}
