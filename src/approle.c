/*
 * approle.c
 *    AppRole, the layer under auth.c and auth_shared.c: the settings
 *    (vault.approle_role_id, vault.approle_secret_id_file,
 *    vault.approle_mount), the login and renewal requests and the lease
 *    bookkeeping of what they grant, and reading credential files (the
 *    secret_id, and auth.c's token file).  Whose token it is (this
 *    backend's, or one shared through shared memory) is decided above.
 *
 *    The secret_id is read from its file for each login and wiped as soon
 *    as the request body holds it; the body is wiped once sent.
 */
#include "postgres.h"

#include <sys/stat.h>

#include "lib/stringinfo.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "pg_vault.h"
#include "auth.h"
#include "common/vault_client.h"

/*---- GUC variables ----*/
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

static MemoryContext AuthContext = NULL;

/* Where tokens and the caches of auth.c and auth_shared.c live. */
MemoryContext
vault_auth_context(void)
{
	if (AuthContext == NULL)
		AuthContext = AllocSetContextCreate(TopMemoryContext,
											"pg_vault auth",
											ALLOCSET_SMALL_SIZES);
	return AuthContext;
}

void
vault_auth_wipe_pfree(char *s)
{
	if (s != NULL)
	{
		explicit_bzero(s, strlen(s));
		pfree(s);
	}
}

/*
 * Reads a credential file into the auth context, trimmed of surrounding
 * white space.  what names the setting for messages; the path goes only to
 * the server log, since non-superusers may not see it.
 */
char *
vault_read_credential_file(const char *path, const char *what, struct stat *st)
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
	out = MemoryContextStrdup(vault_auth_context(), buf);
	explicit_bzero(buf, MAX_CREDENTIAL_FILE + 1);
	pfree(buf);
	return out;
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

/* The AppRole identity: role_id, secret_id file and mount. */
char *
vault_approle_identity(void)
{
	return psprintf("%s\n%s\n%s",
					vault_approle_role_id ? vault_approle_role_id : "",
					vault_approle_secret_id_file ? vault_approle_secret_id_file : "",
					vault_approle_mount ? vault_approle_mount : "");
}

/*
 * Logs in with the session's AppRole settings; returns the token (in
 * the auth context, for the caller to wipe) and fills *l.
 */
char *
vault_approle_login_request(ApproleLease *l)
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

	secret_id = vault_read_credential_file(vault_approle_secret_id_file,
									 "vault.approle_secret_id_file", &st);
	initStringInfo(&body);
	vault_jw_begin(&w, &body);
	vault_jw_string(&w, "role_id", vault_approle_role_id);
	vault_jw_string(&w, "secret_id", secret_id);
	vault_jw_end(&w);
	vault_auth_wipe_pfree(secret_id);

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

	token = MemoryContextStrdup(vault_auth_context(), tok);
	vault_doc_free(doc);
	vault_http_wipe_response();
	set_lease(l, lease, renewable);
	l->login_lease_ms = lease * 1000;
	return token;
}

/* Renews token, updating *l; false when Vault would not. */
bool
vault_approle_renew_request(const char *token, ApproleLease *l)
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

void
vault_approle_init(void)
{
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
