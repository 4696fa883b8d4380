/*
 * issue.c
 *    The credential tool, run as `pg-vault-app --issue-credential NAME
 *    --scopes LIST [--env ENV]` or `pg-vault-app --revoke-credential [--env
 *    ENV]`.  Issuing makes a random token, writes its entry ({"name",
 *    "scopes", "created_at"}) to KV at app[/<env>]/clients/<sha256 of the
 *    token> through Vault's HTTP API with VAULT_ADDR and VAULT_TOKEN, and
 *    prints the token once on stdout: Vault keeps only its hash.  Revoking
 *    reads a token on stdin (never on the command line, where ps would show
 *    it) and deletes its entry.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "app.h"
#include "vault_common.h"

#define TOKEN_PREFIX	"pva_"
#define TOKEN_BYTES		32

static int
usage(void)
{
	fprintf(stderr,
			"usage: pg-vault-app --issue-credential NAME --scopes read,encrypt,decrypt [--env ENV]\n"
			"       pg-vault-app --revoke-credential [--env ENV]   (the token on stdin)\n"
			"VAULT_ADDR and VAULT_TOKEN (a token allowed to write KV app/*) must be set.\n");
	return 2;
}

/* Only names the service knows, without repeats, in a fixed order. */
static bool
normalise_scopes(const char *in, char *out, size_t outlen)
{
	static const char *const names[] = {"read", "encrypt", "decrypt", NULL};
	bool		seen[3] = {false, false, false};
	const char *s = in;
	int			i;

	while (*s)
	{
		size_t		n;
		bool		found = false;

		s += strspn(s, ", ");
		n = strcspn(s, ", ");
		if (n == 0)
			break;
		for (i = 0; names[i]; i++)
			if (strlen(names[i]) == n && strncmp(names[i], s, n) == 0)
				seen[i] = found = true;
		if (!found)
			return false;
		s += n;
	}
	out[0] = '\0';
	for (i = 0; names[i]; i++)
		if (seen[i])
		{
			size_t		used = strlen(out);

			snprintf(out + used, outlen - used, "%s%s", used ? "," : "", names[i]);
		}
	return true;
}

static void
entry_path(char *dst, size_t len, const char *mount, const char *what,
		   const char *env, const char *hash)
{
	if (env != NULL)
		snprintf(dst, len, "%s/%s/app/%s/clients/%s", mount, what, env, hash);
	else
		snprintf(dst, len, "%s/%s/app/clients/%s", mount, what, hash);
}

static bool
valid_env(const char *env)
{
	return env == NULL || strcmp(env, "development") == 0 ||
		strcmp(env, "staging") == 0 || strcmp(env, "production") == 0;
}

static int
issue(const char *name, const char *scopes_in, const char *env)
{
	unsigned char raw[TOKEN_BYTES];
	char		tok[sizeof(TOKEN_PREFIX) + 2 * TOKEN_BYTES];
	char		hash[65];
	char		scopes[64];
	char		path[512];
	char		when[32];
	time_t		now = time(NULL);
	struct tm	tm;
	json_t	   *body;
	json_t	   *resp = NULL;
	long		status;

	if (name[0] == '\0' || strlen(name) > 63)
	{
		fprintf(stderr, "pg-vault-app: the credential's name must have 1 to 63 characters\n");
		return 2;
	}
	if (!normalise_scopes(scopes_in, scopes, sizeof(scopes)))
	{
		fprintf(stderr, "pg-vault-app: scopes are a comma-separated list of read, encrypt, decrypt\n");
		return 2;
	}
	if (getrandom(raw, sizeof(raw), 0) != sizeof(raw))
	{
		fprintf(stderr, "pg-vault-app: no random bytes from the kernel\n");
		return 1;
	}
	memcpy(tok, TOKEN_PREFIX, strlen(TOKEN_PREFIX));
	vc_hex_encode(raw, sizeof(raw), tok + strlen(TOKEN_PREFIX));
	explicit_bzero(raw, sizeof(raw));
	if (!auth_sha256_hex(tok, strlen(tok), hash))
	{
		explicit_bzero(tok, sizeof(tok));
		fprintf(stderr, "pg-vault-app: SHA-256 failed\n");
		return 1;
	}
	gmtime_r(&now, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	entry_path(path, sizeof(path), app_config.kv_mount, "data", env, hash);
	/* cas 0: a (vanishingly unlikely) existing entry is never overwritten */
	body = json_pack("{s:{s:s, s:s, s:s}, s:{s:i}}",
					 "data", "name", name, "scopes", scopes, "created_at", when,
					 "options", "cas", 0);
	status = body ? vault_call("POST", path, body, app_config.vault_token, &resp) : 0;
	json_decref(body);
	if (status != 200 && status != 204)
	{
		json_t	   *errors = resp ? json_object_get(resp, "errors") : NULL;
		json_t	   *first = json_array_get(errors, 0);

		explicit_bzero(tok, sizeof(tok));
		fprintf(stderr, "pg-vault-app: could not write the credential's entry to Vault (HTTP %ld%s%s)\n",
				status, first ? ": " : "", first ? json_string_value(first) : "");
		json_decref(resp);
		return 1;
	}
	json_decref(resp);
	fprintf(stderr, "pg-vault-app: credential \"%s\" with scopes %s written to %s\n",
			name, scopes, env ? env : "app/clients (every environment)");
	printf("%s\n", tok);
	fflush(stdout);
	explicit_bzero(tok, sizeof(tok));
	return 0;
}

static int
revoke(const char *env)
{
	char		tok[600];
	char		hash[65];
	char		path[512];
	size_t		len;
	long		status;
	int			pass;
	bool		deleted = false;

	if (fgets(tok, sizeof(tok), stdin) == NULL)
	{
		fprintf(stderr, "pg-vault-app: no token on stdin\n");
		return 2;
	}
	len = strcspn(tok, "\r\n");
	tok[len] = '\0';
	if (len == 0 || !auth_sha256_hex(tok, len, hash))
	{
		explicit_bzero(tok, sizeof(tok));
		fprintf(stderr, "pg-vault-app: no token on stdin\n");
		return 2;
	}
	explicit_bzero(tok, sizeof(tok));
	for (pass = env ? 0 : 1; pass < 2; pass++)
	{
		json_t	   *resp = NULL;

		entry_path(path, sizeof(path), app_config.kv_mount, "metadata",
				   pass == 0 ? env : NULL, hash);
		/* KV answers 204 whether or not there was an entry: look first. */
		status = vault_call("GET", path, NULL, app_config.vault_token, &resp);
		json_decref(resp);
		if (status == 404)
			continue;
		if (status == 200)
			status = vault_call("DELETE", path, NULL, app_config.vault_token, NULL);
		if (status != 204 && status != 200)
		{
			fprintf(stderr, "pg-vault-app: could not delete the credential's entry (HTTP %ld)\n", status);
			return 1;
		}
		deleted = true;
	}
	if (!deleted)
	{
		fprintf(stderr, "pg-vault-app: no such credential\n");
		return 1;
	}
	fprintf(stderr, "pg-vault-app: credential revoked (a running app forgets it at its next load of the credentials: APP_AUTH_REFRESH seconds, or SIGHUP)\n");
	return 0;
}

int
issue_credential_main(int argc, char **argv)
{
	const char *name = NULL;
	const char *scopes = NULL;
	const char *env = getenv("APP_ENV");
	bool		revoking = false;
	char		err[256];
	int			i;

	if (env != NULL && env[0] == '\0')
		env = NULL;
	for (i = 1; i < argc; i++)
	{
		if (strcmp(argv[i], "--issue-credential") == 0 && i + 1 < argc)
			name = argv[++i];
		else if (strcmp(argv[i], "--revoke-credential") == 0)
			revoking = true;
		else if (strcmp(argv[i], "--scopes") == 0 && i + 1 < argc)
			scopes = argv[++i];
		else if (strcmp(argv[i], "--env") == 0 && i + 1 < argc)
			env = argv[++i];
		else
			return usage();
	}
	if (revoking == (name != NULL) || (name != NULL && scopes == NULL))
		return usage();
	if (!valid_env(env))
	{
		fprintf(stderr, "pg-vault-app: the environment is development, staging or production\n");
		return 2;
	}
	if (getenv("VAULT_ADDR") == NULL || getenv("VAULT_TOKEN") == NULL)
		return usage();
	if (!config_load(err, sizeof(err)) || !vault_client_init(err, sizeof(err)))
	{
		fprintf(stderr, "pg-vault-app: %s\n", err);
		return 2;
	}
	return revoking ? revoke(env) : issue(name, scopes, env);
}
