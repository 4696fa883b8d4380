/*
 * sys.c
 *    The system backend mounted at "sys/": health, seal status, seal and
 *    unseal, the mount and auth tables, ACL policies, leases, capabilities,
 *    audit hashing.  sys/health and sys/seal-status send their own body
 *    (resp->body); everything else uses the envelope, with data's keys
 *    copied to the top level as Vault's HTTPSysInjector does.
 */
#include "devserver.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- health and seal ---- */

static json_t *
seal_status_json(void)
{
	json_t	   *o = json_pack("{s:s, s:b, s:b, s:i, s:i, s:i, s:s, s:s, s:s, s:b, s:b, s:s}",
							  "type", "shamir",
							  "initialized", 1,
							  "sealed", g_server.sealed,
							  "t", 1, "n", 1, "progress", 0,
							  "nonce", "",
							  "version", DEVSERVER_VERSION,
							  "build_date", "2023-09-22T20:53:58Z",
							  "migration", 0,
							  "recovery_seal", 0,
							  "storage_type", g_server.state_file ? "file" : "inmem");

	if (!g_server.sealed)
	{
		json_object_set_new(o, "cluster_name", json_string(g_server.cluster_name));
		json_object_set_new(o, "cluster_id", json_string(g_server.cluster_id));
	}
	return o;
}

/* A health override parameter: absent -> dflt; not a number -> -1 */
static int
health_code(const vreq *req, const char *key, int dflt)
{
	const char *s = req_str(req, key);
	char	   *end;
	long		v;

	if (s == NULL || *s == '\0')
		return dflt;
	v = strtol(s, &end, 10);
	if (*end != '\0' || v < 1 || v > 999)
		return -1;
	return (int) v;
}

static void
sys_health(vreq *req, vresp *resp)
{
	const char *keys[] = {"uninitcode", "sealedcode", "drsecondarycode",
		"performancestandbycode", "standbycode", "activecode",
	"removedcode", "haunhealthycode"};
	int			dflts[] = {501, 503, 472, 473, 429, 200, 530, 474};
	int			codes[8];
	int			i;
	json_t	   *body;

	for (i = 0; i < 8; i++)
	{
		codes[i] = health_code(req, keys[i], dflts[i]);
		if (codes[i] < 0)
		{
			resp_error(resp, 400, "bad code: %s", req_str(req, keys[i]));
			return;
		}
	}
	body = json_pack("{s:b, s:b, s:b, s:b, s:s, s:s, s:I, s:s, s:b, s:s, s:s}",
					 "initialized", 1,
					 "sealed", g_server.sealed,
					 "standby", 0,
					 "performance_standby", 0,
					 "replication_performance_mode", "disabled",
					 "replication_dr_mode", "disabled",
					 "server_time_utc", (json_int_t) now_unix(),
					 "version", DEVSERVER_VERSION,
					 "enterprise", 0,
					 "cluster_name", g_server.cluster_name,
					 "cluster_id", g_server.cluster_id);
	resp->body = body;
	resp->status = g_server.sealed ? codes[1] : codes[5];
}

static void
sys_unseal(vreq *req, vresp *resp)
{
	bool		ok = true;
	const char *key = req_str(req, "key");

	if (req_bool(req, "reset", false, &ok, resp))
	{
		resp->body = seal_status_json();
		return;
	}
	if (!ok)
		return;
	if (key == NULL || *key == '\0')
	{
		resp_error(resp, 400, "'key' must be specified in request body as JSON, or 'reset' set to true");
		return;
	}
	if (!vc_ct_streq(key, g_server.unseal_key))
	{
		/* Vault accepts hex too; a dev server needs only the base64 form */
		resp_error(resp, 400, "Error unsealing: invalid key");
		return;
	}
	g_server.sealed = false;
	resp->body = seal_status_json();
}

/* ---- mounts ---- */

static json_t *
mount_json(const vmount *m)
{
	return json_pack("{s:s, s:s, s:s, s:O, s:O, s:b, s:b, s:b, s:s, s:s, s:s}",
					 "type", m->type,
					 "description", m->description,
					 "accessor", m->accessor,
					 "config", m->config,
					 "options", json_object_size(m->options) ? m->options : json_null(),
					 "local", 0, "seal_wrap", 0, "external_entropy_access", 0,
					 "uuid", m->uuid,
					 "plugin_version", "",
					 "running_plugin_version", "");
}

static void
list_mounts(vresp *resp, bool auth)
{
	vmount	   *m;

	resp->data = json_object();
	for (m = mount_list(); m; m = m->next)
		if (m->eng->is_auth == auth)
			json_object_set_new(resp->data, auth ? m->path + 5 : m->path, mount_json(m));
}

/* "sys/mounts/<path>" -> "<path>/", with "auth/" prepended for auth */
static char *
mount_path_arg(const char *arg, bool auth)
{
	size_t		len = strlen(arg);
	char	   *p = malloc(len + 7);

	snprintf(p, len + 7, "%s%s", auth ? "auth/" : "", arg);
	if (len > 0 && arg[len - 1] != '/')
		strcat(p, "/");
	return p;
}

static void
sys_mount_one(vreq *req, vresp *resp, const char *arg, bool auth)
{
	char	   *path = mount_path_arg(arg, auth);
	char		err[256];
	size_t		alen = strlen(arg);
	bool		tune = alen > 5 && strcmp(arg + alen - 5, "/tune") == 0;
	vmount	   *m;

	if (tune)
	{
		path[strlen(path) - 6] = '\0';
		strcat(path, "/");
		m = mount_find(path);
		if (m == NULL || strcmp(m->path, path) != 0)
			resp_error(resp, 400, "cannot fetch sysview for path \"%s\"", path);
		else if (req->op == OP_READ)
		{
			resp->data = json_deep_copy(m->config);
			json_object_set_new(resp->data, "description", json_string(m->description));
			if (json_object_size(m->options))
				json_object_set(resp->data, "options", m->options);
		}
		else if (req->op == OP_UPDATE || req->op == OP_CREATE)
		{
			const char *k;
			json_t	   *v;

			json_object_foreach(req->data, k, v)
			{
				if (!strcmp(k, "default_lease_ttl") || !strcmp(k, "max_lease_ttl"))
					json_object_set_new(m->config, k, json_integer(parse_duration_json(v)));
				else if (!strcmp(k, "description") && json_is_string(v))
				{
					free(m->description);
					m->description = strdup(json_string_value(v));
				}
				else if (!strcmp(k, "options") && json_is_object(v))
					json_object_update(m->options, v);
			}
			resp->dirty = true;
		}
		else
			resp_unsupported_op(resp, req);
		free(path);
		return;
	}

	switch (req->op)
	{
		case OP_READ:
			m = mount_find(path);
			if (m == NULL || strcmp(m->path, path) != 0)
				resp_error(resp, 400, "No secret engine mount at %s", path);
			else
				resp->data = mount_json(m);
			break;
		case OP_CREATE:
		case OP_UPDATE:
			{
				const char *type = req_str(req, "type");
				json_t	   *options = json_object_get(req->data, "options");

				if (type == NULL || *type == '\0')
				{
					resp_error(resp, 400, "backend type must be specified as a string");
					break;
				}
				/* Vault's "kv-v2" shorthand */
				if (strcmp(type, "kv-v2") == 0)
				{
					json_t	   *o = json_is_object(options) ? json_deep_copy(options) : json_object();

					json_object_set_new(o, "version", json_string("2"));
					m = mount_add(path, "kv", o, req_str(req, "description"), err, sizeof(err));
					json_decref(o);
				}
				else
					m = mount_add(path, type, json_is_object(options) ? options : NULL,
								  req_str(req, "description"), err, sizeof(err));
				if (m == NULL)
					resp_error(resp, 400, "%s", err);
				else
					resp->dirty = true;
				break;
			}
		case OP_DELETE:
			if (strcmp(path, "sys/") == 0 || strcmp(path, "auth/token/") == 0)
				resp_error(resp, 400, "cannot unmount \"%s\"", path);
			else
			{
				/* Vault revokes a mount's leases before unmounting it */
				if (!leases_revoke_prefix(path, false, err, sizeof(err)))
				{
					resp_error(resp, 400, "failed to revoke leases of %s: %s", path, err);
					break;
				}
				if (mount_remove(path))
					resp->dirty = true;
			}
			break;
		default:
			resp_unsupported_op(resp, req);
	}
	free(path);
}

/* ---- policies ---- */

static void
sys_policy(vreq *req, vresp *resp, const char *name, bool legacy)
{
	char		err[512];

	switch (req->op)
	{
		case OP_READ:
			{
				vpolicy    *p = policy_get(name);

				if (p == NULL)
				{
					resp->status = 404;
					resp->errors = json_array();
					return;
				}
				resp->data = json_pack("{s:s, s:s}", "name", p->name,
									   legacy ? "rules" : "policy", p->raw);
				break;
			}
		case OP_CREATE:
		case OP_UPDATE:
			{
				const char *text = req_str(req, "policy");

				if (text == NULL && legacy)
					text = req_str(req, "rules");
				if (text == NULL)
				{
					resp_error(resp, 400, "'policy' parameter not supplied or empty");
					return;
				}
				if (!policy_put(name, text, err, sizeof(err)))
					resp_error(resp, 400, "%s", err);
				else
					resp->dirty = true;
				break;
			}
		case OP_DELETE:
			if (!policy_delete(name, err, sizeof(err)))
				resp_error(resp, 400, "%s", err);
			else
				resp->dirty = true;
			break;
		default:
			resp_unsupported_op(resp, req);
	}
}

/* ---- leases ---- */

static void
sys_leases(vreq *req, vresp *resp, const char *sub)
{
	const char *lease_id = req_str(req, "lease_id");
	char		err[512];
	vlease	   *l;
	const char *tail;

	if (req->op != OP_UPDATE && req->op != OP_CREATE)
	{
		resp_unsupported_op(resp, req);
		return;
	}
	if ((tail = path_after(sub, "revoke-prefix/")) != NULL ||
		(tail = path_after(sub, "revoke-force/")) != NULL)
	{
		bool		force = sub[7] == 'f';

		if (!leases_revoke_prefix(tail, force, err, sizeof(err)))
			resp_error(resp, 400, "failed to revoke prefix: %s", err);
		resp->dirty = true;
		return;
	}
	/* "renew/<id>" and "revoke/<id>" carry the id in the path */
	if ((tail = path_after(sub, "renew/")) != NULL ||
		(tail = path_after(sub, "revoke/")) != NULL)
		lease_id = tail;
	if (lease_id == NULL || *lease_id == '\0')
	{
		resp_error(resp, 400, "lease_id must be specified");
		return;
	}
	l = lease_lookup(lease_id);
	if (strcmp(sub, "lookup") == 0)
	{
		if (l == NULL)
			resp_error(resp, 400, "invalid lease");
		else
			resp->data = lease_lookup_json(l);
	}
	else if (strncmp(sub, "renew", 5) == 0)
	{
		bool		ok = true;
		int64_t		inc = req_duration(req, "increment", 0, &ok, resp);

		if (!ok)
			return;
		if (l == NULL)
			resp_error(resp, 400, "lease not found");
		else if (lease_renew(l, inc, resp))
			resp->dirty = true;
	}
	else if (strncmp(sub, "revoke", 6) == 0)
	{
		/* Vault's revoke of an unknown lease succeeds silently */
		if (l != NULL)
		{
			if (!lease_revoke(l, err, sizeof(err)))
				resp_error(resp, 400, "failed to revoke lease: %s", err);
			resp->dirty = true;
		}
	}
	else
		resp_unsupported_path(resp, req);
}

/* ---- capabilities ---- */

static json_t *
caps_json(unsigned caps)
{
	static const struct
	{
		unsigned	bit;
		const char *name;
	}			names[] = {
		{CAP_CREATE, "create"}, {CAP_DELETE, "delete"}, {CAP_LIST, "list"},
		{CAP_PATCH, "patch"}, {CAP_READ, "read"}, {CAP_SUDO, "sudo"},
		{CAP_UPDATE, "update"}
	};
	json_t	   *arr;
	size_t		i;

	if (caps == CAP_ALL)
		return json_pack("[s]", "root");
	if (caps == 0 || (caps & CAP_DENY))
		return json_pack("[s]", "deny");
	arr = json_array();
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (caps & names[i].bit)
			json_array_append_new(arr, json_string(names[i].name));
	return arr;
}

static void
sys_capabilities(vreq *req, vresp *resp, vtoken *t)
{
	json_t	   *paths = req_strlist(req, "paths");
	json_t	   *all = NULL;
	size_t		i;
	json_t	   *p;

	if (json_array_size(paths) == 0 && req_str(req, "path"))
		json_array_append_new(paths, json_string(req_str(req, "path")));
	if (t == NULL)
	{
		resp_error(resp, 400, "invalid token");
		json_decref(paths);
		return;
	}
	resp->data = json_object();
	json_array_foreach(paths, i, p)
	{
		json_t	   *c = caps_json(acl_capabilities(t, json_string_value(p)));

		if (all == NULL)
			all = json_incref(c);
		json_object_set_new(resp->data, json_string_value(p), c);
	}
	json_object_set_new(resp->data, "capabilities", all ? all : json_array());
	json_decref(paths);
}

/* ---- the engine ---- */

static bool
sys_unauthenticated(const char *rel)
{
	return !strcmp(rel, "health") || !strcmp(rel, "seal-status") ||
		!strcmp(rel, "unseal") || !strcmp(rel, "init") ||
		!strcmp(rel, "leader");
}

static void
sys_handle(vmount *m, vreq *req, vresp *resp)
{
	const char *rel = req->rel;
	const char *arg;
	bool		is_write = req->op == OP_UPDATE || req->op == OP_CREATE;

	if ((!strcmp(rel, "health") || !strcmp(rel, "seal-status")) && req->op != OP_READ)
	{
		/* Vault's own handlers for these two answer anything else bare */
		resp->status = 405;
		resp->errors = json_array();
	}
	else if (!strcmp(rel, "health"))
		sys_health(req, resp);
	else if (!strcmp(rel, "seal-status"))
		resp->body = seal_status_json();
	else if (!strcmp(rel, "init") && req->op == OP_READ)
		resp->body = json_pack("{s:b}", "initialized", 1);
	else if (!strcmp(rel, "leader") && req->op == OP_READ)
		resp->body = json_pack("{s:b, s:b, s:s}", "ha_enabled", 0, "is_self", 0,
							   "leader_address", "");
	else if (!strcmp(rel, "seal") && is_write)
		g_server.sealed = true;
	else if (!strcmp(rel, "unseal") && is_write)
		sys_unseal(req, resp);
	else if (!strcmp(rel, "mounts") && req->op == OP_READ)
		list_mounts(resp, false);
	else if ((arg = path_after(rel, "mounts/")) != NULL)
		sys_mount_one(req, resp, arg, false);
	else if (!strcmp(rel, "auth") && req->op == OP_READ)
		list_mounts(resp, true);
	else if ((arg = path_after(rel, "auth/")) != NULL)
		sys_mount_one(req, resp, arg, true);
	else if ((arg = path_after(rel, "internal/ui/mounts/")) != NULL && req->op == OP_READ)
	{
		vmount	   *target = mount_find(arg);

		if (target == NULL)
			resp_error(resp, 400, "preflight capability check returned 403, please ensure client's policies grant access to path \"%s\"", arg);
		else
			resp->data = json_pack("{s:s, s:O, s:s, s:s, s:s}",
								   "type", target->type,
								   "options", json_object_size(target->options) ? target->options : json_null(),
								   "path", target->path,
								   "description", target->description,
								   "accessor", target->accessor);
	}
	else if (!strcmp(rel, "policies/acl/") || !strcmp(rel, "policy") || !strcmp(rel, "policy/"))
	{
		if (req->op != OP_LIST && req->op != OP_READ)
			resp_unsupported_op(resp, req);
		else
		{
			json_t	   *names = policy_names();

			resp->data = json_pack("{s:O}", "keys", names);
			if (rel[0] == 'p' && rel[6] == '\0')
				json_object_set(resp->data, "policies", names);
			json_decref(names);
		}
	}
	else if ((arg = path_after(rel, "policies/acl/")) != NULL)
		sys_policy(req, resp, arg, false);
	else if ((arg = path_after(rel, "policy/")) != NULL)
		sys_policy(req, resp, arg, true);
	else if ((arg = path_after(rel, "leases/")) != NULL)
		sys_leases(req, resp, arg);
	else if (!strcmp(rel, "capabilities-self") && is_write)
		sys_capabilities(req, resp, req->token);
	else if (!strcmp(rel, "capabilities") && is_write)
		sys_capabilities(req, resp, token_lookup(req_str(req, "token") ? req_str(req, "token") : ""));
	else if ((arg = path_after(rel, "audit-hash/")) != NULL && is_write)
	{
		const char *input = req_str(req, "input");

		if (input == NULL)
			resp_error(resp, 400, "the \"input\" parameter is empty");
		else if (g_server.audit_file == NULL)
			resp_error(resp, 400, "unknown audit backend %s", arg);
		else
		{
			char	   *h = audit_hash(input);

			resp->data = json_pack("{s:s}", "hash", h);
			free(h);
		}
	}
	else if (!strcmp(rel, "audit") && req->op == OP_READ)
	{
		resp->data = json_object();
		if (g_server.audit_file)
			json_object_set_new(resp->data, "file/",
								json_pack("{s:s, s:s, s:s, s:{s:s}, s:b}",
										  "type", "file", "path", "file/",
										  "description", "",
										  "options", "file_path", g_server.audit_file,
										  "local", 0));
	}
	else
		resp_unsupported_path(resp, req);
}

const vengine engine_system = {
	.type = "system",
	.is_auth = false,
	.handle = sys_handle,
	.unauthenticated = sys_unauthenticated,
};
