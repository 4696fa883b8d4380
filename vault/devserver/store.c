/*
 * store.c
 *    Persistence of the whole server state (mounts with their engines'
 *    state, tokens, policies, leases) to one JSON file, written atomically
 *    (temporary file, fsync, rename, fsync of the directory) with mode
 *    0600: the file holds the transit keys, the only way to read data
 *    encrypted with them.  Called with g_state_mu held.
 */
#include "devserver.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STORE_FORMAT 1

static json_t *
mounts_save(void)
{
	json_t	   *arr = json_array();
	vmount	   *m;

	for (m = mount_list(); m; m = m->next)
		json_array_append_new(arr,
							  json_pack("{s:s, s:s, s:O, s:O, s:s, s:s, s:s, s:o}",
										"path", m->path, "type", m->type,
										"options", m->options, "config", m->config,
										"description", m->description,
										"accessor", m->accessor, "uuid", m->uuid,
										"state", m->eng->save ? m->eng->save(m) : json_null()));
	return arr;
}

static bool
write_all(int fd, const char *buf, size_t len)
{
	while (len > 0)
	{
		ssize_t		n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		buf += n;
		len -= (size_t) n;
	}
	return true;
}

bool
store_save(void)
{
	json_t	   *root;
	char	   *text;
	char	   *tmp;
	char	   *dircopy;
	int			fd;
	bool		ok;

	if (g_server.state_file == NULL)
		return true;
	root = json_pack("{s:i, s:{s:s, s:s, s:s, s:s}, s:o, s:o, s:o, s:o}",
					 "format", STORE_FORMAT,
					 "server",
					 "unseal_key", g_server.unseal_key,
					 "cluster_id", g_server.cluster_id,
					 "cluster_name", g_server.cluster_name,
					 "audit_salt", g_server.audit_salt,
					 "mounts", mounts_save(),
					 "tokens", tokens_save(),
					 "policies", policies_save(),
					 "leases", leases_save());
	text = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	if (text == NULL)
		return false;

	if (asprintf(&tmp, "%s.tmp", g_server.state_file) < 0)
		abort();
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ok = fd >= 0 && fchmod(fd, 0600) == 0 && write_all(fd, text, strlen(text)) &&
		fsync(fd) == 0;
	if (fd >= 0)
		close(fd);
	explicit_bzero(text, strlen(text));
	free(text);
	if (ok)
		ok = rename(tmp, g_server.state_file) == 0;
	if (!ok)
	{
		fprintf(stderr, "vault-dev: could not write state file \"%s\": %s\n",
				g_server.state_file, strerror(errno));
		unlink(tmp);
	}
	else
	{
		dircopy = strdup(g_server.state_file);
		fd = open(dirname(dircopy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd >= 0)
		{
			fsync(fd);
			close(fd);
		}
		free(dircopy);
	}
	free(tmp);
	return ok;
}

static void
copy_str(char *dst, size_t size, json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));

	if (s)
		snprintf(dst, size, "%s", s);
}

bool
store_load(void)
{
	json_error_t jerr;
	json_t	   *root,
			   *server,
			   *mounts,
			   *e;
	size_t		i;

	if (g_server.state_file == NULL || access(g_server.state_file, F_OK) != 0)
		return false;
	root = json_load_file(g_server.state_file, 0, &jerr);
	if (root == NULL || json_integer_value(json_object_get(root, "format")) != STORE_FORMAT)
	{
		fprintf(stderr, "vault-dev: state file \"%s\" is not readable: %s\n",
				g_server.state_file, root ? "unknown format" : jerr.text);
		exit(1);
	}
	server = json_object_get(root, "server");
	copy_str(g_server.unseal_key, sizeof(g_server.unseal_key), server, "unseal_key");
	copy_str(g_server.cluster_id, sizeof(g_server.cluster_id), server, "cluster_id");
	copy_str(g_server.cluster_name, sizeof(g_server.cluster_name), server, "cluster_name");
	copy_str(g_server.audit_salt, sizeof(g_server.audit_salt), server, "audit_salt");

	mounts = json_object_get(root, "mounts");
	json_array_foreach(mounts, i, e)
	{
		char		err[256];
		const char *path = json_string_value(json_object_get(e, "path"));
		vmount	   *m = mount_find(path);

		if (m == NULL || strcmp(m->path, path) != 0)
			m = mount_add(path, json_string_value(json_object_get(e, "type")),
						  json_object_get(e, "options"),
						  json_string_value(json_object_get(e, "description")),
						  err, sizeof(err));
		if (m == NULL)
		{
			fprintf(stderr, "vault-dev: state file: mount %s: %s\n", path, err);
			continue;
		}
		json_decref(m->config);
		m->config = json_incref(json_object_get(e, "config"));
		copy_str(m->accessor, sizeof(m->accessor), e, "accessor");
		copy_str(m->uuid, sizeof(m->uuid), e, "uuid");
		if (m->eng->load)
			m->eng->load(m, json_object_get(e, "state"));
	}
	policies_load(json_object_get(root, "policies"));
	tokens_load(json_object_get(root, "tokens"));
	leases_load(json_object_get(root, "leases"));
	json_decref(root);
	return true;
}
