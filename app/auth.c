/*
 * auth.c
 *    Bearer credentials and their scopes.  A credential is a random token
 *    known only to its holder; Vault's KV store keeps, at a path named by
 *    the token's SHA-256 (app/clients/<hex>, and app/<env>/clients/<hex>
 *    for one APP_ENV only), its name and scopes.
 *
 *    The whole set is loaded into memory through pg_vault (vault_kv_list,
 *    then vault_kv per entry) by the monitor thread: at start, every
 *    APP_AUTH_REFRESH seconds and on SIGHUP.  A request is checked against
 *    that set alone: one SHA-256 and a comparison with every entry, in
 *    time that does not depend on which entry (if any) matches, and no
 *    round trip, so refusing a credential costs what accepting one does.
 *    A revoked credential stops working at the next load; a new one
 *    starts working then.  A failed load keeps the set there was.
 *
 *    Neither a token nor its hash is ever logged.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "app.h"
#include "vault_common.h"

#define MAX_TOKEN_LEN	512
#define MAX_CREDENTIALS	100000

typedef struct Credential
{
	unsigned char hash[32];
	unsigned	scopes;
	char		name[64];
} Credential;

typedef struct CredentialSet
{
	int			n;
	int			cap;
	Credential *items;
} CredentialSet;

static pthread_rwlock_t set_lock = PTHREAD_RWLOCK_INITIALIZER;
static CredentialSet current;
static bool loaded;

const char *
auth_scope_name(unsigned scope)
{
	switch (scope)
	{
		case SCOPE_READ:
			return "read";
		case SCOPE_ENCRYPT:
			return "encrypt";
		case SCOPE_DECRYPT:
			return "decrypt";
		default:
			return "none";
	}
}

static unsigned
scope_bit(const char *s, size_t len)
{
	if (len == 4 && strncmp(s, "read", 4) == 0)
		return SCOPE_READ;
	if (len == 7 && strncmp(s, "encrypt", 7) == 0)
		return SCOPE_ENCRYPT;
	if (len == 7 && strncmp(s, "decrypt", 7) == 0)
		return SCOPE_DECRYPT;
	return 0;					/* names this version does not know grant nothing */
}

unsigned
auth_parse_scopes(const char *json_text)
{
	json_t	   *v;
	unsigned	scopes = 0;

	if (json_text == NULL)
		return 0;
	v = json_loads(json_text, JSON_DECODE_ANY, NULL);
	if (json_is_string(v))
	{
		const char *s = json_string_value(v);

		while (*s)
		{
			size_t		n;

			s += strspn(s, ", ");
			n = strcspn(s, ", ");
			scopes |= scope_bit(s, n);
			s += n;
		}
	}
	else if (json_is_array(v))
	{
		size_t		i;
		json_t	   *e;

		json_array_foreach(v, i, e)
			if (json_is_string(e))
			scopes |= scope_bit(json_string_value(e), json_string_length(e));
	}
	json_decref(v);
	return scopes;
}

static bool
token_syntax_ok(const char *t, size_t len)
{
	size_t		i;

	if (len < 16 || len > MAX_TOKEN_LEN)
		return false;
	for (i = 0; i < len; i++)
		if (t[i] <= 0x20 || t[i] > 0x7e)
			return false;
	return true;
}

const char *
auth_bearer_token(const char *header, size_t *len)
{
	const char *token;
	size_t		n;

	if (header == NULL || strncasecmp(header, "Bearer ", 7) != 0)
		return NULL;
	token = header + 7;
	while (*token == ' ')
		token++;
	n = strlen(token);
	while (n > 0 && token[n - 1] == ' ')
		n--;
	if (!token_syntax_ok(token, n))
		return NULL;
	*len = n;
	return token;
}

/* Fetched once: an implicit fetch per digest takes a lock every time. */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void
sha256_fetch(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static bool
sha256(const char *data, size_t len, unsigned char *md)
{
	unsigned int mdlen = 0;

	pthread_once(&sha256_once, sha256_fetch);
	return EVP_Digest(data, len, md, &mdlen, sha256_md ? sha256_md : EVP_sha256(), NULL) &&
		mdlen == 32;
}

bool
auth_sha256_hex(const char *data, size_t len, char *hex)
{
	unsigned char md[32];

	if (!sha256(data, len, md))
		return false;
	vc_hex_encode(md, sizeof(md), hex);
	explicit_bzero(md, sizeof(md));
	return true;
}

/* ---- checking a request ---- */

AuthResult
auth_check(const char *authorization, unsigned scope, char *client, size_t clientlen)
{
	const char *token;
	size_t		len = 0;
	unsigned char md[32];
	unsigned	found = 0;
	unsigned	scopes = 0;
	int			match = 0;
	int			i;

	if (authorization == NULL || strncasecmp(authorization, "Bearer ", 7) != 0)
		return AUTH_MISSING;
	token = auth_bearer_token(authorization, &len);
	if (token == NULL || !sha256(token, len, md))
		return AUTH_INVALID;

	pthread_rwlock_rdlock(&set_lock);
	if (!loaded)
	{
		pthread_rwlock_unlock(&set_lock);
		explicit_bzero(md, sizeof(md));
		return AUTH_NOT_LOADED;
	}
	/*
	 * Every entry is compared, and the match selected by masks: the time
	 * taken depends on the number of entries only.
	 */
	for (i = 0; i < current.n; i++)
	{
		unsigned	eq = (unsigned) (CRYPTO_memcmp(current.items[i].hash, md, 32) == 0);
		unsigned	mask = 0u - (eq & (found ^ 1u));

		scopes |= current.items[i].scopes & mask;
		match |= i & (int) mask;
		found |= eq;
	}
	if (found)
		snprintf(client, clientlen, "%s", current.items[match].name);
	pthread_rwlock_unlock(&set_lock);
	explicit_bzero(md, sizeof(md));

	if (!found)
		return AUTH_INVALID;
	if ((scopes & scope) != scope)
		return AUTH_FORBIDDEN;
	return AUTH_OK;
}

bool
auth_loaded(void)
{
	bool		l;

	pthread_rwlock_rdlock(&set_lock);
	l = loaded;
	pthread_rwlock_unlock(&set_lock);
	return l;
}

int
auth_count(void)
{
	int			n;

	pthread_rwlock_rdlock(&set_lock);
	n = current.n;
	pthread_rwlock_unlock(&set_lock);
	return n;
}

/* ---- loading the set ---- */

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* A KV key that names a credential: 64 lower-case hex digits. */
static bool
hash_from_key(const char *key, unsigned char *hash)
{
	int			i;

	if (strlen(key) != 64)
		return false;
	for (i = 0; i < 32; i++)
	{
		int			hi = hexval(key[2 * i]),
					lo = hexval(key[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return false;
		hash[i] = (unsigned char) (hi << 4 | lo);
	}
	return true;
}

/* Add or (for an environment's entry) replace the entry of a hash. */
static bool
set_put(CredentialSet *s, const Credential *c)
{
	int			i;

	for (i = 0; i < s->n; i++)
		if (memcmp(s->items[i].hash, c->hash, 32) == 0)
		{
			s->items[i] = *c;
			return true;
		}
	if (s->n == s->cap)
	{
		int			ncap = s->cap ? s->cap * 2 : 64;
		Credential *n;

		if (ncap > MAX_CREDENTIALS)
			return false;
		n = calloc(ncap, sizeof(Credential));
		if (n == NULL)
			return false;
		if (s->items != NULL)
		{
			memcpy(n, s->items, s->n * sizeof(Credential));
			explicit_bzero(s->items, s->cap * sizeof(Credential));
			free(s->items);
		}
		s->items = n;
		s->cap = ncap;
	}
	s->items[s->n++] = *c;
	return true;
}

static void
set_free(CredentialSet *s)
{
	if (s->items != NULL)
	{
		explicit_bzero(s->items, s->cap * sizeof(Credential));
		free(s->items);
	}
	memset(s, 0, sizeof(*s));
}

/*
 * The entries under one KV folder.  An entry that vanished between the
 * list and its read (revoked meanwhile) is left out; any other failure
 * fails the load.
 */
static bool
load_folder(CredentialSet *s, const char *folder)
{
	const char *params[1] = {folder};
	PGresult   *keys;
	DbError		err;
	int			i;
	bool		ok = true;

	keys = db_exec(ST_CLIENT_LIST, 1, params, &err);
	if (keys == NULL)
		return false;
	for (i = 0; ok && i < PQntuples(keys); i++)
	{
		const char *key = PQgetvalue(keys, i, 0);
		char		path[256];
		const char *p[1] = {path};
		Credential	c;
		PGresult   *res;

		memset(&c, 0, sizeof(c));
		if (!hash_from_key(key, c.hash))
			continue;
		snprintf(path, sizeof(path), "%s%s", folder, key);
		res = db_exec(ST_CLIENT, 1, p, &err);
		if (res == NULL)
		{
			if (err.kind != DBE_VAULT_NOT_FOUND)
				ok = false;
			continue;
		}
		if (PQntuples(res) == 1)
		{
			c.scopes = auth_parse_scopes(PQgetisnull(res, 0, 0) ? NULL : PQgetvalue(res, 0, 0));
			snprintf(c.name, sizeof(c.name), "%s",
					 PQgetisnull(res, 0, 1) ? "" : PQgetvalue(res, 0, 1));
			ok = set_put(s, &c);
		}
		PQclear(res);
	}
	PQclear(keys);
	return ok;
}

int
auth_refresh(void)
{
	CredentialSet fresh = {0};
	CredentialSet old;
	char		folder[160];
	bool		ok;
	int			n;

	config_clients_path(folder, sizeof(folder), false);
	ok = load_folder(&fresh, folder);
	if (ok && app_config.env != NULL)
	{
		/* an environment's entry overrides the common one of the same hash */
		config_clients_path(folder, sizeof(folder), true);
		ok = load_folder(&fresh, folder);
	}
	if (!ok)
	{
		set_free(&fresh);
		metrics_count("pgv_app_auth_refreshes_total", "outcome=\"failed\"");
		return -1;
	}
	n = fresh.n;
	pthread_rwlock_wrlock(&set_lock);
	old = current;
	current = fresh;
	loaded = true;
	pthread_rwlock_unlock(&set_lock);
	set_free(&old);
	metrics_count("pgv_app_auth_refreshes_total", "outcome=\"ok\"");
	return n;
}
