/*
 * client.c
 *    Requests with authentication: the one way from an SQL function's area
 *    (transit.c, kv.c, creds.c, sys.c) to Vault.  The data path runs one
 *    way only:
 *
 *      area -> client.c -> auth.c (the token) -> http.c (the exchange)
 *      area -> envelope.c (the answer, parsed once, and its SQLSTATE)
 *
 *    http.c knows nothing of tokens' origins, auth.c nothing of requests
 *    but its own (login, renew, revoke, lookup).
 */
#include "postgres.h"

#include "pg_vault.h"

void
vault_request(VaultResult *res, VaultMethod method, const char *path,
			  const char *body, size_t bodylen, int flags)
{
	PG_TRY();
	{
		const char *token = NULL;

		if ((flags & VAULT_NO_AUTH) == 0)
			token = vault_auth_token();
		vault_http_perform(res, method, path, body, bodylen, token, flags);

		/*
		 * A 403 was not acted on, so sending the request again is safe: with
		 * a fresh token after a re-login, or with the same one to get its
		 * answer back after the token was looked up in the same buffer.
		 */
		if (token != NULL && res->transport == VT_OK && res->status == 403 &&
			vault_auth_refresh_after_forbidden(res) != VAULT_FORBIDDEN_KEPT)
			vault_http_perform(res, method, path, body, bodylen,
							   vault_auth_token(), flags);
	}
	PG_CATCH();
	{
		if ((flags & VAULT_SECRET_BODY) && body != NULL)
			explicit_bzero(unconstify(char *, body), bodylen);
		PG_RE_THROW();
	}
	PG_END_TRY();
}

void
vault_request_many(VaultResult *res, int n, VaultMethod method,
				   const char *path, const char *const *bodies,
				   const size_t *lens, const int64 *rows, int flags)
{
	PG_TRY();
	{
		bool		redo[VAULT_MAX_PARALLEL];
		bool		forbidden = false;
		int			first = -1;

		const char *token = (flags & VAULT_NO_AUTH) ? NULL : vault_auth_token();

		vault_http_perform_many(res, n, NULL, method, path, bodies, lens, rows,
								token, flags);
		if (token == NULL)
			n = 0;				/* no token: no 403 to act on */

		/* as vault_request: after a 403, a re-login and those requests again */
		for (int i = 0; i < n; i++)
		{
			redo[i] = res[i].transport == VT_OK && res[i].status == 403;
			if (redo[i] && first < 0)
				first = i;
			forbidden |= redo[i];
		}
		if (forbidden && vault_auth_refresh_after_forbidden(&res[first]) != VAULT_FORBIDDEN_KEPT)
			vault_http_perform_many(res, n, redo, method, path, bodies, lens,
									rows, vault_auth_token(), flags);
	}
	PG_CATCH();
	{
		vault_http_wipe_many();
		if (flags & VAULT_SECRET_BODY)
			for (int i = 0; i < n; i++)
				if (bodies[i] != NULL)
					explicit_bzero(unconstify(char *, bodies[i]), lens[i]);
		PG_RE_THROW();
	}
	PG_END_TRY();
}
