/*
 * mounts.c
 *    The mount table: which engine serves which path prefix, like Vault's
 *    router.  Secrets engines live at "<path>/", auth methods at
 *    "auth/<path>/".  Lookups take the longest matching prefix.
 */
#include "devserver.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static vmount *mounts;

static const vengine *const secret_engines[] = {
	&engine_system, &engine_kv, &engine_transit, &engine_database, NULL
};
static const vengine *const auth_engines[] = {
	&engine_token, &engine_approle, NULL
};

const vengine *
engine_by_type(const char *type, bool auth)
{
	const vengine *const *e;

	for (e = auth ? auth_engines : secret_engines; *e; e++)
		if (strcmp((*e)->type, type) == 0)
			return *e;
	return NULL;
}

vmount *
mount_list(void)
{
	return mounts;
}

vmount *
mount_find(const char *path)
{
	vmount	   *m,
			   *best = NULL;
	size_t		bestlen = 0,
				plen = strlen(path);

	for (m = mounts; m; m = m->next)
	{
		size_t		n = strlen(m->path);

		/* "secret/" also serves the bare "secret" */
		if ((strncmp(path, m->path, n) == 0 ||
			 (plen == n - 1 && strncmp(path, m->path, n - 1) == 0)) &&
			n > bestlen)
		{
			best = m;
			bestlen = n;
		}
	}
	return best;
}

vmount *
mount_add(const char *path, const char *type, json_t *options,
		  const char *description, char *err, size_t errlen)
{
	bool		auth = strncmp(path, "auth/", 5) == 0;
	const vengine *eng = engine_by_type(type, auth);
	size_t		len = strlen(path);
	vmount	   *m;

	if (eng == NULL)
	{
		snprintf(err, errlen, "plugin not found in the catalog: %s", type);
		return NULL;
	}
	if (len == 0 || path[len - 1] != '/')
	{
		snprintf(err, errlen, "mount path must end in '/'");
		return NULL;
	}
	for (m = mounts; m; m = m->next)
	{
		size_t		n = strlen(m->path);

		if (strcmp(m->path, path) == 0)
		{
			snprintf(err, errlen, "path is already in use at %s", path);
			return NULL;
		}
		if ((n < len && strncmp(path, m->path, n) == 0 &&
			 strcmp(m->path, "auth/") != 0) ||
			(len < n && strncmp(m->path, path, len) == 0))
		{
			snprintf(err, errlen, "existing mount at %s", m->path);
			return NULL;
		}
	}

	m = calloc(1, sizeof(*m));
	m->path = strdup(path);
	m->type = strdup(type);
	m->eng = eng;
	m->options = options ? json_deep_copy(options) : json_object();
	if (strcmp(type, "kv") == 0 && json_object_get(m->options, "version") == NULL)
		json_object_set_new(m->options, "version", json_string("1"));
	m->config = json_pack("{s:i, s:i, s:b}",
						  "default_lease_ttl", 0, "max_lease_ttl", 0,
						  "force_no_cache", 0);
	m->description = strdup(description ? description : "");
	snprintf(m->accessor, sizeof(m->accessor), "%s_", type);
	rand_base62(m->accessor + strlen(m->accessor), 8);
	rand_uuid(m->uuid);
	m->state = eng->new_state ? eng->new_state(m) : NULL;

	/* keep the list ordered by path, as sys/mounts lists it */
	{
		vmount	  **pp = &mounts;

		while (*pp && strcmp((*pp)->path, path) < 0)
			pp = &(*pp)->next;
		m->next = *pp;
		*pp = m;
	}
	return m;
}

bool
mount_remove(const char *path)
{
	vmount	  **pp;

	for (pp = &mounts; *pp; pp = &(*pp)->next)
	{
		vmount	   *m = *pp;

		if (strcmp(m->path, path) != 0)
			continue;
		*pp = m->next;
		if (m->eng->free_state)
			m->eng->free_state(m);
		json_decref(m->options);
		json_decref(m->config);
		free(m->path);
		free(m->type);
		free(m->description);
		free(m);
		return true;
	}
	return false;
}
