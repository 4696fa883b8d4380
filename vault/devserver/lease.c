/*
 * lease.c
 *    The lease table of the development server, after Vault's expiration
 *    manager (vault/expiration.go): leases of dynamic secrets, their TTLs
 *    and renewal (capped at the lease's max TTL), revocation through the
 *    issuing engine's hooks, revocation of every lease of a revoked token,
 *    and the once-a-second sweep that revokes what has expired.  Also the
 *    port of framework.CalculateTTL that the token store shares.
 *
 *    Generic: the engine that issued a lease is found again through its
 *    mount path, so nothing here knows about databases.
 */
#include "devserver.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SYSTEM_TTL			DEFAULT_TOKEN_TTL	/* Vault's 32 days */
#define LEASE_RAND_LEN		24	/* base62.Random(TokenLength) */
#define RETRY_MAX_SECS		300

/*
 * Each vlease is the head of a private entry; lease_create() and
 * leases_load() are the only places that allocate one.
 */
typedef struct lentry
{
	vlease		l;				/* must stay first */
	int64_t		retry_at;		/* after a failed revocation: not before */
	int			attempts;		/* failed revocations so far */
} lentry;

static vlease *leases;

/* ---- TTL arithmetic ---- */

/* Go's time.Duration.String() for whole seconds, "m0s"/"h0m" elided. */
static void
human_duration(int64_t secs, char *buf, size_t len)
{
	int64_t		h = secs / 3600,
				m = (secs % 3600) / 60,
				s = secs % 60;

	if (secs <= 0)
		snprintf(buf, len, "0s");
	else if (h > 0 && m == 0 && s == 0)
		snprintf(buf, len, "%lldh", (long long) h);
	else if (h > 0 && s == 0)
		snprintf(buf, len, "%lldh%lldm", (long long) h, (long long) m);
	else if (h > 0 && m == 0)
		snprintf(buf, len, "%lldh%llds", (long long) h, (long long) s);
	else if (h > 0)
		snprintf(buf, len, "%lldh%lldm%llds", (long long) h, (long long) m, (long long) s);
	else if (m > 0 && s == 0)
		snprintf(buf, len, "%lldm", (long long) m);
	else if (m > 0)
		snprintf(buf, len, "%lldm%llds", (long long) m, (long long) s);
	else
		snprintf(buf, len, "%llds", (long long) s);
}

/* A mount's tuned default_lease_ttl or max_lease_ttl; 0 when not tuned. */
static int64_t
mount_tuned(const vmount *m, const char *key)
{
	int64_t		v;

	if (m == NULL || !json_is_object(m->config))
		return 0;
	v = parse_duration_json(json_object_get(m->config, key));
	return v > 0 ? v : 0;
}

static int64_t
mount_max_ttl(const vmount *m)
{
	int64_t		v = mount_tuned(m, "max_lease_ttl");

	return v > 0 ? v : SYSTEM_TTL;
}

static int64_t
mount_default_ttl(const vmount *m)
{
	int64_t		v = mount_tuned(m, "default_lease_ttl");
	int64_t		max = mount_max_ttl(m);

	v = v > 0 ? v : SYSTEM_TTL;
	return v > max ? max : v;
}

/* Cap ttl to what is left before the max; Vault warns when it does. */
static int64_t
cap_ttl(int64_t ttl, int64_t left, vresp *resp)
{
	if (ttl > left)
	{
		if (resp)
		{
			char		a[48],
						b[48];

			human_duration(ttl, a, sizeof(a));
			human_duration(left, b, sizeof(b));
			resp_warn(resp, "TTL of \"%s\" exceeded the effective max_ttl of \"%s\"; TTL value is capped accordingly",
					  a, b);
		}
		ttl = left;
	}
	return ttl;
}

int64_t
calculate_ttl(const vmount *m, int64_t increment, int64_t backend_ttl,
			  int64_t period, int64_t backend_max, int64_t explicit_max,
			  int64_t start, vresp *resp)
{
	int64_t		now = now_unix();
	int64_t		max_ttl = mount_max_ttl(m);
	int64_t		max_valid = 0;
	int64_t		ttl;

	if (backend_max > 0 && backend_max < max_ttl)
		max_ttl = backend_max;
	if (explicit_max > 0 && explicit_max < max_ttl)
		max_ttl = explicit_max;
	if (start <= 0)
		start = now;

	if (period > 0)
	{
		if (period > max_ttl)
		{
			if (resp)
			{
				char		a[48],
							b[48];

				human_duration(period, a, sizeof(a));
				human_duration(max_ttl, b, sizeof(b));
				resp_warn(resp, "period of \"%s\" exceeded the effective max_ttl of \"%s\"; period value is capped accordingly",
						  a, b);
			}
			period = max_ttl;
		}
		ttl = period;
		/* a periodic token has no max unless an explicit one was set */
		if (explicit_max > 0)
			max_valid = start + explicit_max;
	}
	else
	{
		if (increment > 0)
			ttl = increment;
		else if (backend_ttl > 0)
			ttl = backend_ttl;
		else
			ttl = mount_default_ttl(m);
		max_valid = start + max_ttl;
	}

	if (max_valid > 0)
	{
		if (max_valid - now <= 0)
			return -1;
		ttl = cap_ttl(ttl, max_valid - now, resp);
	}
	return ttl;
}

/* ---- the table ---- */

/* The mount that issued a lease, if it is still mounted. */
static vmount *
lease_mount(const vlease *l)
{
	vmount	   *m = mount_find(l->mount_path);

	return (m && strcmp(m->path, l->mount_path) == 0) ? m : NULL;
}

static void
lease_unlink_free(vlease *l)
{
	vlease	  **pp;

	for (pp = &leases; *pp; pp = &(*pp)->next)
		if (*pp == l)
		{
			*pp = l->next;
			break;
		}
	json_decref(l->internal);
	free((lentry *) l);
}

vlease *
lease_create(vmount *m, const char *path, const char *token_id,
			 json_t *internal, int64_t ttl, int64_t max_ttl, bool renewable)
{
	lentry	   *e;
	vlease	   *l;
	size_t		plen = strlen(path);
	int64_t		now = now_unix();
	int64_t		max;
	char		rnd[LEASE_RAND_LEN + 1];

	while (plen > 0 && path[plen - 1] == '/')
		plen--;
	if (m == NULL || plen + 1 + LEASE_RAND_LEN >= sizeof(l->id) ||
		strlen(m->path) >= sizeof(l->mount_path) ||
		(token_id && strlen(token_id) >= sizeof(l->token_id)))
		return NULL;

	e = calloc(1, sizeof(*e));
	if (e == NULL)
		abort();
	l = &e->l;
	rand_base62(rnd, LEASE_RAND_LEN);
	snprintf(l->id, sizeof(l->id), "%.*s/%s", (int) plen, path, rnd);
	snprintf(l->mount_path, sizeof(l->mount_path), "%s", m->path);
	snprintf(l->token_id, sizeof(l->token_id), "%s", token_id ? token_id : "");
	l->internal = internal ? json_incref(internal) : NULL;
	l->issue_time = now;
	l->expire_time = now + calculate_ttl(m, 0, ttl, 0, max_ttl, 0, now, NULL);
	max = mount_max_ttl(m);
	if (max_ttl > 0 && max_ttl < max)
		max = max_ttl;
	l->max_expire = now + max;
	l->renewable = renewable;

	l->next = leases;
	leases = l;
	return l;
}

vlease *
lease_lookup(const char *id)
{
	vlease	   *l;

	if (id == NULL)
		return NULL;
	for (l = leases; l; l = l->next)
		if (strcmp(l->id, id) == 0)
			return l;
	return NULL;
}

bool
lease_renew(vlease *l, int64_t increment, vresp *resp)
{
	int64_t		now = now_unix();
	int64_t		last_ttl,
				ttl;
	vmount	   *m;

	/* the checks and messages of Vault's leaseEntry.renewable() */
	if (l->expire_time <= now)
	{
		resp_error(resp, 400, "lease expired");
		return false;
	}
	if (!l->renewable)
	{
		resp_error(resp, 400, "lease is not renewable");
		return false;
	}
	m = lease_mount(l);
	if (m == NULL)
	{
		resp_error(resp, 400, "no handler for route \"%s\". route entry not found.", l->mount_path);
		return false;
	}
	if (l->max_expire - now <= 0)
	{
		resp_error(resp, 400, "past the max TTL, cannot renew");
		return false;
	}

	/* without an increment, grant again the TTL granted last time */
	last_ttl = l->expire_time - (l->last_renewal ? l->last_renewal : l->issue_time);
	ttl = increment > 0 ? increment : (last_ttl > 0 ? last_ttl : mount_default_ttl(m));
	ttl = cap_ttl(ttl, l->max_expire - now, resp);

	if (m->eng->lease_renew && m->eng->lease_renew(m, l, ttl, resp) != 0)
	{
		if (resp->errors == NULL)
			resp_error(resp, 500, "lease renewal failed");
		return false;
	}

	l->expire_time = now + ttl;
	l->last_renewal = now;
	snprintf(resp->lease_id, sizeof(resp->lease_id), "%s", l->id);
	resp->lease_duration = ttl;
	resp->renewable = l->renewable;
	resp->dirty = true;
	return true;
}

static json_t *
time_json(int64_t t)
{
	char	   *s;
	json_t	   *v;

	if (t == 0)
		return json_null();
	s = rfc3339(t, 0);
	v = json_string(s);
	free(s);
	return v;
}

json_t *
lease_lookup_json(const vlease *l)
{
	int64_t		now = now_unix();
	int64_t		ttl = l->expire_time - now;

	return json_pack("{s:s, s:o, s:o, s:o, s:b, s:I}",
					 "id", l->id,
					 "issue_time", time_json(l->issue_time),
					 "expire_time", time_json(l->expire_time),
					 "last_renewal", time_json(l->last_renewal),
					 "renewable", l->renewable && ttl > 0,
					 "ttl", (json_int_t) (ttl > 0 ? ttl : 0));
}

bool
lease_revoke(vlease *l, char *err, size_t errlen)
{
	vmount	   *m = lease_mount(l);

	if (err && errlen)
		err[0] = '\0';
	/* a lease whose mount is gone has nothing left to revoke */
	if (m && m->eng->lease_revoke && m->eng->lease_revoke(m, l, err, errlen) != 0)
	{
		if (err && errlen && err[0] == '\0')
			snprintf(err, errlen, "failed to revoke entry");
		return false;
	}
	lease_unlink_free(l);
	return true;
}

void
lease_revoke_by_token(const char *token_id)
{
	vlease	   *l,
			   *next;
	int64_t		now = now_unix();

	if (token_id == NULL || *token_id == '\0')
		return;
	for (l = leases; l; l = next)
	{
		char		err[256];

		next = l->next;
		if (strcmp(l->token_id, token_id) != 0)
			continue;
		/* like Vault's lazy revocation: a failure is retried by the sweep */
		if (!lease_revoke(l, err, sizeof(err)) && l->expire_time > now)
			l->expire_time = now;
	}
}

/*
 * sys/leases/revoke-prefix and revoke-force, and unmounting: revoke every
 * lease whose id starts with prefix.  With force, an engine failure drops
 * the lease anyway.  False and the first message when a revocation failed
 * (without force); the others are still attempted.
 */
bool
leases_revoke_prefix(const char *prefix, bool force, char *err, size_t errlen)
{
	vlease	   *l,
			   *next;
	size_t		plen = strlen(prefix);
	bool		ok = true;

	for (l = leases; l; l = next)
	{
		char		msg[256];

		next = l->next;
		if (strncmp(l->id, prefix, plen) != 0)
			continue;
		if (lease_revoke(l, msg, sizeof(msg)))
			continue;
		if (force)
			lease_unlink_free(l);
		else if (ok)
		{
			ok = false;
			snprintf(err, errlen, "%s", msg);
		}
	}
	return ok;
}

bool
leases_expire_due(void)
{
	bool		changed = tokens_expire_due();
	int64_t		now = now_unix();
	vlease	   *l,
			   *next;

	for (l = leases; l; l = next)
	{
		lentry	   *e = (lentry *) l;
		char		err[256];

		next = l->next;
		if (l->expire_time > now || e->retry_at > now)
			continue;
		if (lease_revoke(l, err, sizeof(err)))
		{
			changed = true;
			continue;
		}
		e->attempts++;
		e->retry_at = now + (e->attempts < 9 ? (1 << e->attempts) : RETRY_MAX_SECS);
		if (e->retry_at > now + RETRY_MAX_SECS)
			e->retry_at = now + RETRY_MAX_SECS;
		fprintf(stderr, "vault-dev: failed to revoke lease %s (attempt %d): %s\n",
				l->id, e->attempts, err);
	}
	return changed;
}

/* ---- persistence ---- */

json_t *
leases_save(void)
{
	json_t	   *arr = json_array();
	vlease	   *l;

	for (l = leases; l; l = l->next)
		json_array_append_new(arr,
							  json_pack("{s:s, s:s, s:s, s:O?, s:I, s:I, s:I, s:I, s:b}",
										"id", l->id,
										"mount_path", l->mount_path,
										"token_id", l->token_id,
										"internal", l->internal,
										"issue_time", (json_int_t) l->issue_time,
										"expire_time", (json_int_t) l->expire_time,
										"last_renewal", (json_int_t) l->last_renewal,
										"max_expire", (json_int_t) l->max_expire,
										"renewable", l->renewable));
	return arr;
}

void
leases_load(json_t *saved)
{
	vlease	  **tail;
	size_t		i;
	json_t	   *o;

	while (leases)
	{
		vlease	   *next = leases->next;

		json_decref(leases->internal);
		free((lentry *) leases);
		leases = next;
	}
	if (!json_is_array(saved))
		return;

	/* keep the saved order */
	tail = &leases;
	json_array_foreach(saved, i, o)
	{
		const char *id = json_string_value(json_object_get(o, "id"));
		const char *mp = json_string_value(json_object_get(o, "mount_path"));
		const char *tok = json_string_value(json_object_get(o, "token_id"));
		json_t	   *internal = json_object_get(o, "internal");
		lentry	   *e;
		vlease	   *l;

		if (id == NULL || mp == NULL ||
			strlen(id) >= sizeof(l->id) || strlen(mp) >= sizeof(l->mount_path) ||
			(tok && strlen(tok) >= sizeof(l->token_id)))
		{
			fprintf(stderr, "vault-dev: state file: skipping a malformed lease\n");
			continue;
		}
		e = calloc(1, sizeof(*e));
		if (e == NULL)
			abort();
		l = &e->l;
		snprintf(l->id, sizeof(l->id), "%s", id);
		snprintf(l->mount_path, sizeof(l->mount_path), "%s", mp);
		snprintf(l->token_id, sizeof(l->token_id), "%s", tok ? tok : "");
		l->internal = (internal && !json_is_null(internal)) ? json_incref(internal) : NULL;
		l->issue_time = json_integer_value(json_object_get(o, "issue_time"));
		l->expire_time = json_integer_value(json_object_get(o, "expire_time"));
		l->last_renewal = json_integer_value(json_object_get(o, "last_renewal"));
		l->max_expire = json_integer_value(json_object_get(o, "max_expire"));
		l->renewable = json_is_true(json_object_get(o, "renewable"));
		*tail = l;
		tail = &l->next;
	}
}
