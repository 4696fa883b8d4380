/*
 * auth.h
 *    What the authentication files share, and only they include: auth.c
 *    (the token the HTTP client gets: token file, vault.token, the
 *    backend's own AppRole token), approle.c (AppRole login and renewal
 *    requests, leases, credential files, the AppRole settings) and
 *    auth_shared.c (one AppRole token per identity in shared memory, when
 *    preloaded).  Calls go one way: auth.c -> auth_shared.c -> approle.c.
 */
#ifndef PG_VAULT_AUTH_H
#define PG_VAULT_AUTH_H

#include <sys/stat.h>

#include "utils/timestamp.h"

/* What a login or renewal granted. */
typedef struct ApproleLease
{
	TimestampTz renew_at;		/* 0: never */
	TimestampTz expires_at;		/* 0: never */
	int64		margin_ms;
	int64		login_lease_ms; /* lease granted at login */
	bool		renewable;
} ApproleLease;

/* Whether a token of this lease must be replaced by a fresh login now. */
static inline bool
vault_lease_expiring(const ApproleLease *l, TimestampTz now)
{
	return l->expires_at != 0 &&
		now >= TimestampTzPlusMilliseconds(l->expires_at, -l->margin_ms);
}

static inline bool
vault_lease_renew_due(const ApproleLease *l, TimestampTz now)
{
	return l->renew_at != 0 && now >= l->renew_at;
}

/* ---- approle.c ---- */
extern void vault_approle_init(void);
extern MemoryContext vault_auth_context(void);
extern void vault_auth_wipe_pfree(char *s);
extern char *vault_read_credential_file(const char *path, const char *what,
										struct stat *st);
extern char *vault_approle_identity(void);
extern char *vault_approle_login_request(ApproleLease *l);
extern bool vault_approle_renew_request(const char *token, ApproleLease *l);

/* ---- auth_shared.c ---- */
extern void vault_auth_shared_request(void);
extern const char *vault_shared_token(const char *identity);
extern const char *vault_shared_token_in_use(void);
extern void vault_shared_token_dead(void);
extern void vault_shared_token_unused(void);

#endif							/* PG_VAULT_AUTH_H */
