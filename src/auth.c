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
 *    vault.auth_method = approle: the backend logs in with
 *    vault.approle_role_id and the secret_id in vault.approle_secret_id_file,
 *    caches the token, renews it (renew-self) once two thirds of its lease
 *    have passed, logs in again when it cannot be renewed or is about to
 *    expire, and after a 403 from a dead token logs in once more and lets
 *    the request be repeated.  A token it stops using (replaced, or at
 *    backend exit) it gives back with revoke-self, so that short
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

#include "miscadmin.h"
#include "storage/ipc.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "pg_vault.h"

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

/* AppRole cache */
static char *approle_token = NULL;
static char *approle_identity = NULL;	/* role_id, file and mount it came
										 * from */
static TimestampTz approle_renew_at = 0;	/* 0: never */
static TimestampTz approle_expires_at = 0;	/* 0: never */
static int64 approle_margin_ms = 0;
static int64 approle_login_lease_ms = 0;	/* lease granted at login */
static bool approle_renewable = false;
static bool revoke_registered = false;	/* revoke_at_exit */

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
	int			fd;
	char	   *buf;
	ssize_t		n;
	size_t		start;
	size_t		end;
	size_t		i;
	char	   *out;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open the file named by %s", what),
				 errdetail_log("File \"%s\": %m.", path)));
	if (fstat(fd, st) != 0 || st->st_size > MAX_CREDENTIAL_FILE)
	{
		int			save_errno = errno;

		close(fd);
		errno = save_errno;
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("could not read the file named by %s", what),
				 errdetail_log("File \"%s\" cannot be examined or is larger than %d bytes.",
							   path, MAX_CREDENTIAL_FILE)));
	}

	buf = palloc(MAX_CREDENTIAL_FILE + 1);
	n = read(fd, buf, MAX_CREDENTIAL_FILE);
	if (n < 0)
	{
		int			save_errno = errno;

		close(fd);
		pfree(buf);
		errno = save_errno;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not read the file named by %s", what),
				 errdetail_log("File \"%s\": %m.", path)));
	}
	close(fd);

	start = 0;
	end = (size_t) n;
	while (start < end && (buf[start] == ' ' || buf[start] == '\t' ||
						   buf[start] == '\n' || buf[start] == '\r'))
		start++;
	while (end > start && (buf[end - 1] == ' ' || buf[end - 1] == '\t' ||
						   buf[end - 1] == '\n' || buf[end - 1] == '\r'))
		end--;

	/* the value goes into an HTTP header or JSON: printable ASCII only */
	for (i = start; i < end; i++)
	{
		unsigned char c = (unsigned char) buf[i];

		if (c <= ' ' || c >= 127)
			break;
	}
	if (start == end || i < end)
	{
		explicit_bzero(buf, MAX_CREDENTIAL_FILE + 1);
		pfree(buf);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("the file named by %s is empty or holds more than one printable word", what),
				 errdetail_log("File \"%s\".", path)));
	}

	out = MemoryContextAlloc(AuthContext, end - start + 1);
	memcpy(out, buf + start, end - start);
	out[end - start] = '\0';
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
	approle_renew_at = 0;
	approle_expires_at = 0;
	approle_renewable = false;
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
					   approle_token, VAULT_NO_RETRY | VAULT_QUICK);
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
set_lease(int64 lease, bool renewable)
{
	TimestampTz now = GetCurrentTimestamp();
	int64		lease_ms = lease * 1000;

	approle_renewable = renewable;
	if (lease <= 0)
	{
		approle_renew_at = 0;
		approle_expires_at = 0;
		approle_margin_ms = 0;
		return;
	}
	approle_expires_at = TimestampTzPlusMilliseconds(now, lease_ms);
	approle_margin_ms = Min(EXPIRY_MARGIN_MS, lease_ms / 10);
	approle_renew_at = renewable ?
		TimestampTzPlusMilliseconds(now, lease_ms * 2 / 3) : 0;
}

static char *
approle_identity_string(void)
{
	return psprintf("%s\n%s\n%s",
					vault_approle_role_id ? vault_approle_role_id : "",
					vault_approle_secret_id_file ? vault_approle_secret_id_file : "",
					vault_approle_mount ? vault_approle_mount : "");
}

static void
approle_login(void)
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
	char	   *identity;

	ensure_context();
	/* the token it replaces, near its end or of another identity, goes back */
	revoke_approle_token();

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
						   NULL, VAULT_NO_AUTH | VAULT_RETRY_IDEMPOTENT);
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

	identity = approle_identity_string();
	approle_token = MemoryContextStrdup(AuthContext, tok);
	approle_login_lease_ms = lease * 1000;
	vault_doc_free(doc);
	vault_http_wipe_response();
	if (approle_identity)
		pfree(approle_identity);
	approle_identity = MemoryContextStrdup(AuthContext, identity);
	pfree(identity);
	set_lease(lease, renewable);
	if (!revoke_registered)
	{
		before_shmem_exit(revoke_at_exit, (Datum) 0);
		revoke_registered = true;
	}
}

/* Renews the AppRole token; false when Vault would not. */
static bool
approle_renew(void)
{
	static const VaultOp op = {"renew the Vault token", NULL};
	static const char body[] = "{}";
	VaultResult res;
	VaultDoc   *doc;
	int64		lease = 0;
	bool		renewable = false;

	vault_http_perform(&res, VAULT_POST, "auth/token/renew-self", body,
					   sizeof(body) - 1, approle_token, VAULT_RETRY_IDEMPOTENT);
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
	if (lease * 1000 < approle_login_lease_ms / 3)
		return false;
	set_lease(lease, renewable);
	return true;
}

static const char *
approle_token_now(void)
{
	TimestampTz now;
	char	   *identity = approle_identity_string();

	if (approle_token == NULL || approle_identity == NULL ||
		strcmp(identity, approle_identity) != 0)
	{
		pfree(identity);
		approle_login();
		return approle_token;
	}
	pfree(identity);

	if (approle_renew_at == 0 && approle_expires_at == 0)
		return approle_token;

	now = GetCurrentTimestamp();
	if (approle_expires_at != 0 &&
		now >= TimestampTzPlusMilliseconds(approle_expires_at, -approle_margin_ms))
		approle_login();
	else if (approle_renew_at != 0 && now >= approle_renew_at)
	{
		if (!approle_renew())
			approle_login();
	}
	return approle_token;
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

	if (vault_auth_method != AUTH_APPROLE || approle_token == NULL)
		return VAULT_FORBIDDEN_KEPT;
	if (!vault_result_has_error(res, "invalid token"))
	{
		vault_http_perform(&probe, VAULT_GET, "auth/token/lookup-self", NULL, 0,
						   approle_token, VAULT_RETRY_IDEMPOTENT);
		vault_http_wipe_response();
		if (probe.transport != VT_OK || probe.status != 403)
			return VAULT_FORBIDDEN_DENIED;
	}
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
}
