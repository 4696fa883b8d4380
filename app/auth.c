/*
 * auth.c
 *    Bearer credentials and their scopes.  A credential is a random token
 *    known only to its holder; Vault's KV store keeps, at a path named by
 *    the token's SHA-256 (app/<env>/clients/<hex>, else app/clients/<hex>),
 *    its name and scopes, read through pg_vault like every other secret.
 *    Neither the token nor its hash is ever logged; answers are cached by
 *    hash for a short time (unknown credentials for a shorter one) so that
 *    a busy client costs no Vault read per request.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "app.h"
#include "vault_common.h"

#define CACHE_SLOTS		1024
#define MAX_TOKEN_LEN	512

typedef struct CacheEntry
{
	char		hash[65];
	bool		known;
	unsigned	scopes;
	char		name[64];
	uint64_t	expires_us;
} CacheEntry;

static CacheEntry cache[CACHE_SLOTS];
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;

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

/* "read,encrypt" or ["read","encrypt"], as JSON text. */
static unsigned
parse_scopes(const char *json_text)
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

bool
auth_sha256_hex(const char *data, size_t len, char *hex)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (!EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32)
		return false;
	vc_hex_encode(md, mdlen, hex);
	return true;
}

static CacheEntry *
cache_slot(const char *hash)
{
	unsigned	h = 0;
	int			i;

	for (i = 0; i < 6; i++)
		h = h * 16 + (unsigned) (hash[i] <= '9' ? hash[i] - '0' : hash[i] - 'a' + 10);
	return &cache[h % CACHE_SLOTS];
}

static bool
cache_get(const char *hash, CacheEntry *out)
{
	CacheEntry *e = cache_slot(hash);
	bool		hit = false;
	uint64_t	now = now_us();

	pthread_mutex_lock(&cache_lock);
	if (e->expires_us > now && vc_ct_streq(e->hash, hash))
	{
		*out = *e;
		hit = true;
	}
	pthread_mutex_unlock(&cache_lock);
	return hit;
}

static void
cache_put(const CacheEntry *entry)
{
	CacheEntry *e = cache_slot(entry->hash);

	pthread_mutex_lock(&cache_lock);
	*e = *entry;
	pthread_mutex_unlock(&cache_lock);
}

/* Read the credential's entry (the environment's path first, then app/'s). */
static bool
lookup(AppRequest *req, const char *hash, CacheEntry *out)
{
	char		rest[96];
	PGresult   *res;
	DbError		err;

	snprintf(rest, sizeof(rest), "clients/%s", hash);
	memset(out, 0, sizeof(*out));
	memcpy(out->hash, hash, sizeof(out->hash));
	res = db_kv(ST_CLIENT, rest, &err);
	explicit_bzero(rest, sizeof(rest));
	if (res == NULL && err.kind != DBE_VAULT_NOT_FOUND)
	{
		db_reply_error(req, &err, "could not read the credential's entry");
		return false;
	}
	if (res != NULL && PQntuples(res) == 1)
	{
		out->known = true;
		out->scopes = parse_scopes(PQgetisnull(res, 0, 0) ? NULL : PQgetvalue(res, 0, 0));
		snprintf(out->name, sizeof(out->name), "%s",
				 PQgetisnull(res, 0, 1) ? "" : PQgetvalue(res, 0, 1));
	}
	PQclear(res);
	out->expires_us = now_us() + (uint64_t) (out->known ? app_config.auth_cache_ttl
											 : app_config.auth_negative_ttl) * 1000000u;
	cache_put(out);
	return true;
}

static void
deny(AppRequest *req, int status, const char *message, const char *reason)
{
	char		labels[48];

	snprintf(labels, sizeof(labels), "reason=\"%s\"", reason);
	metrics_count("pgv_app_auth_failures_total", labels);
	req->www_authenticate = (status == 401);
	reply_error(req, status, message);
}

bool
auth_check(AppRequest *req, unsigned scope)
{
	const char *h = req_header(req, "Authorization");
	const char *token;
	size_t		len;
	char		hash[65];
	CacheEntry	entry;

	if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
	{
		deny(req, 401, "missing bearer credential", "missing");
		return false;
	}
	token = h + 7;
	while (*token == ' ')
		token++;
	len = strlen(token);
	while (len > 0 && token[len - 1] == ' ')
		len--;
	if (!token_syntax_ok(token, len) || !auth_sha256_hex(token, len, hash))
	{
		deny(req, 401, "invalid credential", "invalid");
		return false;
	}
	if (!cache_get(hash, &entry) && !lookup(req, hash, &entry))
	{
		metrics_count("pgv_app_auth_failures_total", "reason=\"error\"");
		return false;
	}
	explicit_bzero(hash, sizeof(hash));
	if (!entry.known)
	{
		deny(req, 401, "invalid credential", "invalid");
		return false;
	}
	snprintf(req->client, sizeof(req->client), "%s", entry.name);
	if ((entry.scopes & scope) != scope)
	{
		metrics_count("pgv_app_auth_failures_total", "reason=\"forbidden\"");
		reply_json(req, 403, json_pack("{s:s, s:s}", "error", "insufficient scope",
									   "required_scope", auth_scope_name(scope)));
		return false;
	}
	return true;
}
