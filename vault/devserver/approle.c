/*
 * approle.c
 *    The AppRole auth method (engine_approle), after Vault's
 *    builtin/credential/approle: roles with their RoleID and the settings
 *    of the tokens they issue, SecretIDs (generated or custom, with use
 *    counts, TTLs and CIDR bindings), and the unauthenticated login that
 *    trades a RoleID and a SecretID for a token.
 *
 *    SecretIDs are kept the way Vault keeps them: only an HMAC-SHA256 of
 *    each, under a random per-role key, is held in memory and persisted,
 *    and a login compares HMACs in constant time.  The sub-paths that edit
 *    one role field at a time (role/:name/policies, ...), tidy/secret-id
 *    and the enforcement of token_bound_cidrs on issued tokens are not
 *    implemented.
 */
#include "devserver.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#define MAX_HMAC_INPUT		4096

typedef struct secret_entry
{
	char		hmac[65];		/* hex HMAC-SHA256(role key, secret_id) */
	char		accessor[37];
	int			num_uses;		/* 0: unlimited */
	int64_t		ttl;
	int64_t		creation_time;
	int64_t		expiration_time;	/* 0: never */
	int64_t		last_updated_time;
	json_t	   *metadata;		/* object of strings */
	json_t	   *cidr_list;
	json_t	   *token_bound_cidrs;
	struct secret_entry *next;
} secret_entry;

typedef struct role_entry
{
	char	   *name;			/* lower case */
	char	   *role_id;
	char		hmac_key[37];
	char		entity_id[37];	/* the entity of the RoleID's alias */
	bool		bind_secret_id;
	bool		local_secret_ids;
	json_t	   *secret_id_bound_cidrs;
	int			secret_id_num_uses;
	int64_t		secret_id_ttl;
	json_t	   *token_policies;
	json_t	   *policies;		/* the deprecated field, when it was used */
	json_t	   *token_bound_cidrs;
	int64_t		token_ttl;
	int64_t		token_max_ttl;
	int64_t		token_explicit_max_ttl;
	int64_t		token_period;
	int64_t		period;			/* the deprecated field */
	int			token_num_uses;
	bool		token_no_default_policy;
	char		token_type[16];
	secret_entry *secrets;
	struct role_entry *next;
} role_entry;

typedef struct approle_state
{
	role_entry *roles;			/* sorted by name */
} approle_state;

/* ---- helpers ---- */

static void
secret_free(secret_entry *s)
{
	json_decref(s->metadata);
	json_decref(s->cidr_list);
	json_decref(s->token_bound_cidrs);
	free(s);
}

static void
role_free(role_entry *r)
{
	while (r->secrets)
	{
		secret_entry *next = r->secrets->next;

		secret_free(r->secrets);
		r->secrets = next;
	}
	free(r->name);
	free(r->role_id);
	json_decref(r->secret_id_bound_cidrs);
	json_decref(r->token_policies);
	json_decref(r->policies);
	json_decref(r->token_bound_cidrs);
	explicit_bzero(r->hmac_key, sizeof(r->hmac_key));
	free(r);
}

static role_entry *
role_find(approle_state *st, const char *name)
{
	role_entry *r;

	for (r = st->roles; r; r = r->next)
		if (strcmp(r->name, name) == 0)
			return r;
	return NULL;
}

static void
role_insert(approle_state *st, role_entry *r)
{
	role_entry **pp = &st->roles;

	while (*pp && strcmp((*pp)->name, r->name) < 0)
		pp = &(*pp)->next;
	r->next = *pp;
	*pp = r;
}

static void
role_unlink(approle_state *st, role_entry *r)
{
	role_entry **pp;

	for (pp = &st->roles; *pp; pp = &(*pp)->next)
		if (*pp == r)
		{
			*pp = r->next;
			return;
		}
}

static void
empty_list_404(vresp *resp)
{
	resp->status = 404;
	resp->errors = json_array();
}

static bool
is_update(const vreq *req)
{
	return req->op == OP_UPDATE || req->op == OP_CREATE;
}

static int64_t
mount_max_ttl(const vmount *m)
{
	int64_t		v = json_is_object(m->config) ?
		parse_duration_json(json_object_get(m->config, "max_lease_ttl")) : 0;

	return v > 0 ? v : DEFAULT_TOKEN_TTL;
}

/* Go's time.Duration.String() for whole seconds: "768h0m0s", "90s"... */
static void
go_duration(int64_t secs, char *buf, size_t len)
{
	if (secs >= 3600)
		snprintf(buf, len, "%lldh%lldm%llds", (long long) (secs / 3600),
				 (long long) (secs % 3600 / 60), (long long) (secs % 60));
	else if (secs >= 60)
		snprintf(buf, len, "%lldm%llds", (long long) (secs / 60), (long long) (secs % 60));
	else
		snprintf(buf, len, "%llds", (long long) secs);
}

static json_t *
time_json(int64_t secs)
{
	char	   *s;
	json_t	   *v;

	if (secs == 0)
		return json_string("0001-01-01T00:00:00Z");
	s = rfc3339(secs, 0);
	v = json_string(s);
	free(s);
	return v;
}

static const char *
trimmed(const char *s, char *buf, size_t len)
{
	size_t		n;

	if (s == NULL)
		return "";
	while (isspace((unsigned char) *s))
		s++;
	snprintf(buf, len, "%s", s);
	n = strlen(buf);
	while (n > 0 && isspace((unsigned char) buf[n - 1]))
		buf[--n] = '\0';
	return buf;
}

/* createHMAC: hex HMAC-SHA256 of value under key; false when too long. */
static bool
secret_hmac(const char *key, const char *value, char out[65])
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;

	if (strlen(value) > MAX_HMAC_INPUT)
		return false;
	if (HMAC(EVP_sha256(), key, (int) strlen(key), (const unsigned char *) value,
			 strlen(value), mac, &maclen) == NULL || maclen != 32)
		return false;
	vc_hex_encode(mac, 32, out);
	explicit_bzero(mac, sizeof(mac));
	return true;
}

/* ---- CIDR blocks ---- */

typedef struct cidr
{
	int			family;
	unsigned char addr[16];
	int			bits;
} cidr;

/* "10.0.0.0/8", "::1/128"; a bare address is a single host. */
static bool
cidr_parse(const char *s, cidr *c)
{
	char		buf[INET6_ADDRSTRLEN + 8];
	char	   *slash;
	int			maxbits;

	trimmed(s, buf, sizeof(buf));
	slash = strchr(buf, '/');
	if (slash)
		*slash = '\0';
	if (inet_pton(AF_INET, buf, c->addr) == 1)
	{
		c->family = AF_INET;
		maxbits = 32;
	}
	else if (inet_pton(AF_INET6, buf, c->addr) == 1)
	{
		c->family = AF_INET6;
		maxbits = 128;
	}
	else
		return false;
	c->bits = maxbits;
	if (slash)
	{
		char	   *end;
		long		b = strtol(slash + 1, &end, 10);

		if (slash[1] == '\0' || *end != '\0' || b < 0 || b > maxbits)
			return false;
		c->bits = (int) b;
	}
	return true;
}

/* Is inner (a block or a host) inside outer? */
static bool
cidr_contains(const cidr *outer, const cidr *inner)
{
	int			full = outer->bits / 8,
				rest = outer->bits % 8;

	if (outer->family != inner->family || inner->bits < outer->bits)
		return false;
	if (memcmp(outer->addr, inner->addr, full) != 0)
		return false;
	if (rest)
	{
		unsigned char mask = (unsigned char) (0xFF << (8 - rest));

		if ((outer->addr[full] & mask) != (inner->addr[full] & mask))
			return false;
	}
	return true;
}

static bool
cidrs_valid(const json_t *list)
{
	size_t		i;
	json_t	   *v;
	cidr		c;

	json_array_foreach(list, i, v)
		if (!cidr_parse(json_string_value(v), &c))
		return false;
	return true;
}

static bool
addr_allowed(const char *addr, const json_t *list)
{
	cidr		host,
				block;
	size_t		i;
	json_t	   *v;

	if (addr == NULL || !cidr_parse(addr, &host))
		return false;
	json_array_foreach(list, i, v)
		if (cidr_parse(json_string_value(v), &block) && cidr_contains(&block, &host))
		return true;
	return false;
}

/* cidrutil.SubsetBlocks: every block of sub inside one block of super. */
static bool
cidrs_subset(const json_t *super, const json_t *sub)
{
	size_t		i,
				j;
	json_t	   *v,
			   *w;

	json_array_foreach(sub, i, v)
	{
		cidr		inner,
					outer;
		bool		inside = false;

		if (!cidr_parse(json_string_value(v), &inner))
			return false;
		json_array_foreach(super, j, w)
			if (cidr_parse(json_string_value(w), &outer) && cidr_contains(&outer, &inner))
			inside = true;
		if (!inside)
			return false;
	}
	return true;
}

/* Go's %q of a []string: ["a" "b"] */
static char *
go_quote_list(const json_t *list)
{
	char	   *out = NULL;
	size_t		len = 0,
				i;
	json_t	   *v;
	FILE	   *f = open_memstream(&out, &len);

	if (f == NULL)
		abort();
	fputc('[', f);
	json_array_foreach(list, i, v)
		fprintf(f, "%s\"%s\"", i ? " " : "", json_string_value(v));
	fputc(']', f);
	fclose(f);
	return out;
}

/* ---- secret IDs ---- */

static void
purge_expired(role_entry *r, int64_t now, vresp *resp)
{
	secret_entry **pp = &r->secrets;

	while (*pp)
	{
		secret_entry *s = *pp;

		if (s->expiration_time != 0 && now >= s->expiration_time)
		{
			*pp = s->next;
			secret_free(s);
			resp->dirty = true;
		}
		else
			pp = &s->next;
	}
}

/* The entry of a SecretID; every entry is compared, in constant time. */
static secret_entry *
secret_by_value(role_entry *r, const char *secret_id)
{
	char		mac[65];
	secret_entry *s,
			   *found = NULL;

	if (!secret_hmac(r->hmac_key, secret_id, mac))
		return NULL;
	for (s = r->secrets; s; s = s->next)
		if (vc_ct_streq(s->hmac, mac) && found == NULL)
			found = s;
	explicit_bzero(mac, sizeof(mac));
	return found;
}

static secret_entry *
secret_by_accessor(role_entry *r, const char *accessor)
{
	secret_entry *s;

	for (s = r->secrets; s; s = s->next)
		if (strcmp(s->accessor, accessor) == 0)
			return s;
	return NULL;
}

static void
secret_remove(role_entry *r, secret_entry *target)
{
	secret_entry **pp;

	for (pp = &r->secrets; *pp; pp = &(*pp)->next)
		if (*pp == target)
		{
			*pp = target->next;
			secret_free(target);
			return;
		}
}

static json_t *
secret_json(const secret_entry *s)
{
	return json_pack("{s:s, s:i, s:I, s:o, s:o, s:o, s:O, s:O, s:O}",
					 "secret_id_accessor", s->accessor,
					 "secret_id_num_uses", s->num_uses,
					 "secret_id_ttl", (json_int_t) s->ttl,
					 "creation_time", time_json(s->creation_time),
					 "expiration_time", time_json(s->expiration_time),
					 "last_updated_time", time_json(s->last_updated_time),
					 "metadata", s->metadata,
					 "cidr_list", s->cidr_list,
					 "token_bound_cidrs", s->token_bound_cidrs);
}

/*
 * strutil.ParseArbitraryKeyValues: a JSON object of strings (possibly
 * base64-encoded), or comma-separated key=value pairs.
 */
static bool
parse_metadata(const json_t *raw, json_t *out, char *err, size_t errlen)
{
	const char *in;
	char	   *text,
			   *decoded = NULL;
	json_t	   *obj,
			   *v;
	const char *k;
	size_t		n;
	long		dlen;

	if (raw == NULL || json_is_null(raw))
		return true;
	if (json_is_object(raw))
		obj = json_incref((json_t *) raw);
	else if (!json_is_string(raw))
	{
		snprintf(err, errlen, "failed to parse the input: expected a string");
		return false;
	}
	else
	{
		in = json_string_value(raw);
		while (isspace((unsigned char) *in))
			in++;
		text = strdup(in);
		n = strlen(text);
		while (n > 0 && isspace((unsigned char) text[n - 1]))
			text[--n] = '\0';
		if (n == 0)
		{
			free(text);
			return true;
		}
		decoded = malloc(vc_b64_decoded_maxlen(n) + 1);
		if (decoded == NULL)
			abort();
		dlen = vc_b64_decode(text, n, (unsigned char *) decoded);
		if (dlen >= 0 && memchr(decoded, '\0', dlen) == NULL)
		{
			decoded[dlen] = '\0';
			free(text);
			text = decoded;
			decoded = NULL;
		}
		free(decoded);
		obj = json_loads(text, JSON_DECODE_ANY, NULL);
		if (!json_is_object(obj))
		{
			char	   *save = NULL,
					   *item;

			json_decref(obj);
			obj = json_object();
			for (item = strtok_r(text, ",", &save); item; item = strtok_r(NULL, ",", &save))
			{
				char	   *eq = strchr(item, '=');
				char		kb[256],
							vb[1024];

				if (eq == NULL || strchr(eq + 1, '=') != NULL)
				{
					snprintf(err, errlen, "failed to parse the input: invalid <key,value> format");
					json_decref(obj);
					free(text);
					return false;
				}
				*eq = '\0';
				trimmed(item, kb, sizeof(kb));
				trimmed(eq + 1, vb, sizeof(vb));
				json_object_set_new(obj, kb, json_string(vb));
			}
		}
		free(text);
	}

	json_object_foreach(obj, k, v)
	{
		if (!json_is_string(v))
		{
			snprintf(err, errlen, "failed to parse the input: json: cannot unmarshal %s into Go value of type string",
					 json_is_number(v) ? "number" : json_is_boolean(v) ? "bool" :
					 json_is_array(v) ? "array" : "object");
			json_decref(obj);
			return false;
		}
		if (*k != '\0' && json_string_length(v) == 0)
		{
			snprintf(err, errlen, "invalid value for key \"%s\"", k);
			json_decref(obj);
			return false;
		}
		json_object_set(out, k, v);
	}
	json_decref(obj);
	return true;
}

/* role/:name/secret-id and role/:name/custom-secret-id */
static void
secret_generate(vmount *m, vreq *req, vresp *resp, const char *name, bool custom)
{
	approle_state *st = m->state;
	role_entry *r = role_find(st, name);
	secret_entry *s;
	const char *given = custom ? req_str(req, "secret_id") : NULL;
	char		secret_id[37];
	char		err[512];
	json_t	   *cidrs = NULL,
			   *tcidrs = NULL,
			   *meta = NULL;
	bool		ok = true;
	int64_t		num_uses,
				ttl,
				max = mount_max_ttl(m),
				now = now_unix();

	if (custom && (given == NULL || *given == '\0'))
	{
		resp_error(resp, 400, "missing secret_id");
		return;
	}
	if (r == NULL)
	{
		resp_error(resp, 404, "role \"%s\" does not exist", name);
		return;
	}
	if (!r->bind_secret_id)
	{
		resp_error(resp, 400, "bind_secret_id is not set on the role");
		return;
	}

	cidrs = req_strlist(req, "cidr_list");
	tcidrs = req_strlist(req, "token_bound_cidrs");
	if (!cidrs_valid(cidrs))
	{
		resp_error(resp, 400, "failed to validate CIDR blocks");
		goto out;
	}
	if (json_array_size(cidrs) > 0 && json_array_size(r->secret_id_bound_cidrs) > 0 &&
		!cidrs_subset(r->secret_id_bound_cidrs, cidrs))
	{
		char	   *a = go_quote_list(r->secret_id_bound_cidrs),
				   *b = go_quote_list(cidrs);

		resp_error(resp, 500, "failed to verify subset relationship between CIDR blocks on the role %s and CIDR blocks on the secret ID %s",
				   a, b);
		free(a);
		free(b);
		goto out;
	}
	if (!cidrs_valid(tcidrs))
	{
		resp_error(resp, 400, "failed to validate token CIDR blocks");
		goto out;
	}
	if (json_array_size(tcidrs) > 0 && json_array_size(r->token_bound_cidrs) > 0 &&
		!cidrs_subset(r->token_bound_cidrs, tcidrs))
	{
		char	   *a = go_quote_list(r->token_bound_cidrs),
				   *b = go_quote_list(tcidrs);

		resp_error(resp, 500, "failed to verify subset relationship between CIDR blocks on the role %s and CIDR blocks on the secret ID %s",
				   a, b);
		free(a);
		free(b);
		goto out;
	}

	if (req_has(req, "num_uses"))
	{
		num_uses = req_int(req, "num_uses", 0, &ok, resp);
		if (!ok)
			goto out;
		if (num_uses < 0)
		{
			resp_error(resp, 400, "num_uses cannot be negative");
			goto out;
		}
		/* a SecretID may narrow the role's limit, never lift it */
		if ((num_uses == 0 && r->secret_id_num_uses > 0) ||
			(r->secret_id_num_uses > 0 && num_uses > r->secret_id_num_uses))
		{
			resp_error(resp, 400, "num_uses cannot be higher than the role's secret_id_num_uses");
			goto out;
		}
	}
	else
		num_uses = r->secret_id_num_uses;

	if (req_has(req, "ttl"))
	{
		ttl = req_duration(req, "ttl", 0, &ok, resp);
		if (!ok)
			goto out;
		if ((ttl == 0 && r->secret_id_ttl > 0) ||
			(r->secret_id_ttl > 0 && ttl > r->secret_id_ttl))
		{
			resp_error(resp, 400, "ttl cannot be longer than the role's secret_id_ttl");
			goto out;
		}
	}
	else
		ttl = r->secret_id_ttl;

	meta = json_object();
	if (!parse_metadata(json_object_get(req->data, "metadata"), meta, err, sizeof(err)))
	{
		resp_error(resp, 400, "failed to parse metadata: %s", err);
		goto out;
	}

	if (custom)
	{
		if (strlen(given) > MAX_HMAC_INPUT)
		{
			resp_error(resp, 500, "failed to create HMAC of secret_id: value is longer than maximum of %d bytes",
					   MAX_HMAC_INPUT);
			goto out;
		}
		purge_expired(r, now, resp);
		if (secret_by_value(r, given))
		{
			resp_error(resp, 500, "failed to store secret_id: SecretID is already registered");
			goto out;
		}
	}
	else
		rand_uuid(secret_id);

	s = calloc(1, sizeof(*s));
	if (s == NULL)
		abort();
	secret_hmac(r->hmac_key, custom ? given : secret_id, s->hmac);
	do
		rand_uuid(s->accessor);
	while (secret_by_accessor(r, s->accessor));
	/* deriveSecretIDTTL: capped at the mount's max */
	if (ttl < 0 || ttl > max)
		ttl = max;
	s->num_uses = (int) num_uses;
	s->ttl = ttl;
	s->creation_time = s->last_updated_time = now;
	s->expiration_time = ttl ? now + ttl : 0;
	s->metadata = meta;
	s->cidr_list = cidrs;
	s->token_bound_cidrs = tcidrs;
	meta = cidrs = tcidrs = NULL;
	s->next = r->secrets;
	r->secrets = s;

	resp->data = json_pack("{s:s, s:s, s:I, s:i}",
						   "secret_id", custom ? given : secret_id,
						   "secret_id_accessor", s->accessor,
						   "secret_id_ttl", (json_int_t) s->ttl,
						   "secret_id_num_uses", s->num_uses);
	explicit_bzero(secret_id, sizeof(secret_id));
	resp->dirty = true;

out:
	json_decref(meta);
	json_decref(cidrs);
	json_decref(tcidrs);
}

/* role/:name/secret-id{,-accessor}/{lookup,destroy}, LIST secret-id/ */
static void
secret_ops(vmount *m, vreq *req, vresp *resp, const char *name, const char *sub)
{
	approle_state *st = m->state;
	role_entry *r = role_find(st, name);
	bool		by_accessor = strncmp(sub, "secret-id-accessor/", 19) == 0;
	bool		destroy = strcmp(sub + (by_accessor ? 19 : 10), "destroy") == 0;
	const char *key = by_accessor ? "secret_id_accessor" : "secret_id";
	const char *value = req_str(req, key);
	secret_entry *s;

	if (strcmp(sub, "secret-id/") == 0 && is_update(req))
	{
		secret_generate(m, req, resp, name, false);
		return;
	}
	if (strcmp(sub, "secret-id/") == 0)
	{
		json_t	   *keys;

		if (req->op != OP_LIST)
		{
			resp_unsupported_op(resp, req);
			return;
		}
		if (r == NULL)
		{
			resp_error(resp, 400, "role \"%s\" does not exist", name);
			return;
		}
		purge_expired(r, now_unix(), resp);
		if (r->secrets == NULL)
		{
			empty_list_404(resp);
			return;
		}
		keys = json_array();
		for (s = r->secrets; s; s = s->next)
			json_array_append_new(keys, json_string(s->accessor));
		resp->data = json_pack("{s:o}", "keys", keys);
		return;
	}
	if (!is_update(req) && !(destroy && req->op == OP_DELETE))
	{
		resp_unsupported_op(resp, req);
		return;
	}
	if (value == NULL || *value == '\0')
	{
		resp_error(resp, 400, "missing %s", key);
		return;
	}
	if (r == NULL)
	{
		resp_error(resp, 500, "role \"%s\" does not exist", name);
		return;
	}
	purge_expired(r, now_unix(), resp);
	s = by_accessor ? secret_by_accessor(r, value) : secret_by_value(r, value);
	if (s == NULL)
	{
		/* Vault: nothing for an unknown SecretID, an error for an accessor */
		if (by_accessor && destroy)
			resp_error(resp, 500, "failed to find accessor entry for secret_id_accessor: \"%s\"", value);
		else if (by_accessor)
			resp_error(resp, 404, "failed to find accessor entry for secret_id_accessor: \"%s\"", value);
		return;
	}
	if (destroy)
	{
		secret_remove(r, s);
		resp->dirty = true;
	}
	else
		resp->data = secret_json(s);
}

/* ---- roles ---- */

static json_t *
role_json(const role_entry *r)
{
	json_t	   *d = json_pack("{s:b, s:O, s:i, s:I, s:b, s:O, s:I, s:I, s:b, s:I, s:O, s:s, s:I, s:i}",
							  "bind_secret_id", r->bind_secret_id,
							  "secret_id_bound_cidrs", r->secret_id_bound_cidrs,
							  "secret_id_num_uses", r->secret_id_num_uses,
							  "secret_id_ttl", (json_int_t) r->secret_id_ttl,
							  "local_secret_ids", r->local_secret_ids,
							  "token_bound_cidrs", r->token_bound_cidrs,
							  "token_explicit_max_ttl", (json_int_t) r->token_explicit_max_ttl,
							  "token_max_ttl", (json_int_t) r->token_max_ttl,
							  "token_no_default_policy", r->token_no_default_policy,
							  "token_period", (json_int_t) r->token_period,
							  "token_policies", r->token_policies,
							  "token_type", r->token_type,
							  "token_ttl", (json_int_t) r->token_ttl,
							  "token_num_uses", r->token_num_uses);

	if (r->period != 0)
		json_object_set_new(d, "period", json_integer(r->period));
	if (r->policies && json_array_size(r->policies) > 0)
		json_object_set(d, "policies", r->policies);
	return d;
}

static role_entry *
role_copy(const role_entry *r)
{
	role_entry *c = calloc(1, sizeof(*c));

	if (c == NULL)
		abort();
	*c = *r;
	c->name = strdup(r->name);
	c->role_id = strdup(r->role_id);
	c->secret_id_bound_cidrs = json_deep_copy(r->secret_id_bound_cidrs);
	c->token_policies = json_deep_copy(r->token_policies);
	c->policies = r->policies ? json_deep_copy(r->policies) : NULL;
	c->token_bound_cidrs = json_deep_copy(r->token_bound_cidrs);
	c->secrets = NULL;
	c->next = NULL;
	return c;
}

static role_entry *
role_new(const char *name)
{
	role_entry *r = calloc(1, sizeof(*r));

	if (r == NULL)
		abort();
	r->name = strdup(name);
	r->role_id = strdup("");
	rand_uuid(r->hmac_key);
	rand_uuid(r->entity_id);
	r->bind_secret_id = true;
	r->secret_id_bound_cidrs = json_array();
	r->token_policies = json_array();
	r->token_bound_cidrs = json_array();
	snprintf(r->token_type, sizeof(r->token_type), "default");
	return r;
}

static int
cmp_json_str(const void *a, const void *b)
{
	return strcmp(json_string_value(*(json_t *const *) a),
				  json_string_value(*(json_t *const *) b));
}

/*
 * policyutil.ParsePolicies of the deprecated "policies" field: lower case,
 * without duplicates, sorted.
 */
static json_t *
parse_legacy_policies(json_t *list)
{
	size_t		n = json_array_size(list),
				k = 0,
				i;
	json_t	  **v = calloc(n + 1, sizeof(json_t *));
	json_t	   *out = json_array();

	if (v == NULL)
		abort();
	for (i = 0; i < n; i++)
	{
		char	   *p = strdup(json_string_value(json_array_get(list, i)));
		char	   *q;

		for (q = p; *q; q++)
			*q = (char) tolower((unsigned char) *q);
		v[k++] = json_string(p);
		free(p);
	}
	qsort(v, k, sizeof(json_t *), cmp_json_str);
	for (i = 0; i < k; i++)
		if (i == 0 || strcmp(json_string_value(v[i]), json_string_value(v[i - 1])) != 0)
			json_array_append(out, v[i]);
	for (i = 0; i < k; i++)
		json_decref(v[i]);
	free(v);
	return out;
}

/* The token fields shared by the auth methods (tokenutil.ParseTokenFields). */
static bool
parse_token_fields(role_entry *r, vreq *req, vresp *resp)
{
	bool		ok = true;

	if (req_has(req, "token_bound_cidrs"))
	{
		json_t	   *l = req_strlist(req, "token_bound_cidrs");

		if (!cidrs_valid(l))
		{
			json_decref(l);
			resp_error(resp, 400, "invalid CIDR blocks");
			return false;
		}
		json_decref(r->token_bound_cidrs);
		r->token_bound_cidrs = l;
	}
	r->token_explicit_max_ttl = req_duration(req, "token_explicit_max_ttl", r->token_explicit_max_ttl, &ok, resp);
	r->token_max_ttl = req_duration(req, "token_max_ttl", r->token_max_ttl, &ok, resp);
	r->token_no_default_policy = req_bool(req, "token_no_default_policy", r->token_no_default_policy, &ok, resp);
	r->token_period = req_duration(req, "token_period", r->token_period, &ok, resp);
	r->token_num_uses = (int) req_int(req, "token_num_uses", r->token_num_uses, &ok, resp);
	r->token_ttl = req_duration(req, "token_ttl", r->token_ttl, &ok, resp);
	if (!ok)
		return false;
	if (req_has(req, "token_policies"))
	{
		json_decref(r->token_policies);
		r->token_policies = req_strlist(req, "token_policies");
	}
	if (req_has(req, "token_type"))
	{
		const char *t = req_str(req, "token_type");

		if (t == NULL)
			t = "?";
		if (*t == '\0' || strcmp(t, "default") == 0)
			snprintf(r->token_type, sizeof(r->token_type), "default");
		else if (strcmp(t, "service") == 0)
			snprintf(r->token_type, sizeof(r->token_type), "service");
		else if (strcmp(t, "batch") == 0)
		{
			resp_error(resp, 400, "batch tokens are not supported by this development server");
			return false;
		}
		else
		{
			resp_error(resp, 400, "invalid 'token_type' value \"%s\"", t);
			return false;
		}
	}
	if (r->token_num_uses < 0)
	{
		resp_error(resp, 400, "'token_num_uses' cannot be negative");
		return false;
	}
	if (r->token_ttl > 0 && r->token_max_ttl > 0 && r->token_ttl > r->token_max_ttl)
	{
		resp_error(resp, 400, "'token_ttl' cannot be greater than 'token_max_ttl'");
		return false;
	}
	return true;
}

static role_entry *
role_by_role_id(approle_state *st, const char *role_id)
{
	role_entry *r,
			   *found = NULL;

	for (r = st->roles; r; r = r->next)
		if (vc_ct_streq(r->role_id, role_id) && found == NULL)
			found = r;
	return found;
}

/* setRoleEntry's checks: a constraint, and a RoleID no other role has. */
static bool
role_check(approle_state *st, const role_entry *r, const char *name, vresp *resp)
{
	role_entry *other = role_by_role_id(st, r->role_id);

	if (!r->bind_secret_id && json_array_size(r->secret_id_bound_cidrs) == 0 &&
		json_array_size(r->token_bound_cidrs) == 0)
	{
		resp_error(resp, 500, "at least one constraint should be enabled on the role");
		return false;
	}
	if (other && strcmp(other->name, name) != 0)
	{
		resp_error(resp, 500, "role_id already in use");
		return false;
	}
	return true;
}

/* Put r in place of the role of that name, keeping its SecretIDs. */
static void
role_replace(approle_state *st, role_entry *old, role_entry *r)
{
	if (old)
	{
		if (strcmp(old->role_id, r->role_id) != 0)
			rand_uuid(r->entity_id);
		r->secrets = old->secrets;
		old->secrets = NULL;
		role_unlink(st, old);
		role_free(old);
	}
	role_insert(st, r);
}

static void
role_write(vmount *m, vreq *req, vresp *resp, const char *name)
{
	approle_state *st = m->state;
	role_entry *old = role_find(st, name);
	bool		create = old == NULL;
	role_entry *r = create ? role_new(name) : role_copy(old);
	bool		ok = true;
	int64_t		max = mount_max_ttl(m);
	const char *tt = req_str(req, "token_type");

	if (tt && (strcmp(tt, "default-service") == 0 || strcmp(tt, "default-batch") == 0))
	{
		bool		svc = strcmp(tt, "default-service") == 0;

		json_object_set_new(req->data, "token_type", json_string(svc ? "service" : "batch"));
		resp_warn(resp, "%s has no useful meaning; adjusting to %s",
				  svc ? "default-service" : "default-batch", svc ? "service" : "batch");
	}
	if (!parse_token_fields(r, req, resp))
		goto fail;

	if (req_has(req, "local_secret_ids"))
	{
		if (!create)
		{
			resp_error(resp, 400, "local_secret_ids can only be modified during role creation");
			goto fail;
		}
		r->local_secret_ids = req_bool(req, "local_secret_ids", false, &ok, resp);
	}

	if (req_has(req, "role_id"))
	{
		const char *rid = req_str(req, "role_id");

		free(r->role_id);
		r->role_id = strdup(rid ? rid : "");
	}
	else if (create)
	{
		char		uuid[37];

		rand_uuid(uuid);
		free(r->role_id);
		r->role_id = strdup(uuid);
	}
	if (r->role_id[0] == '\0')
	{
		resp_error(resp, 400, "invalid role_id supplied, or failed to generate a role_id");
		goto fail;
	}

	r->bind_secret_id = req_bool(req, "bind_secret_id", r->bind_secret_id, &ok, resp);
	if (req_has(req, "secret_id_bound_cidrs") || req_has(req, "bound_cidr_list"))
	{
		json_t	   *l = req_strlist(req, req_has(req, "secret_id_bound_cidrs") ?
									"secret_id_bound_cidrs" : "bound_cidr_list");

		json_decref(r->secret_id_bound_cidrs);
		r->secret_id_bound_cidrs = l;
		if (!cidrs_valid(l))
		{
			resp_error(resp, 400, "invalid CIDR blocks");
			goto fail;
		}
	}
	r->secret_id_num_uses = (int) req_int(req, "secret_id_num_uses", r->secret_id_num_uses, &ok, resp);
	r->secret_id_ttl = req_duration(req, "secret_id_ttl", r->secret_id_ttl, &ok, resp);
	if (!ok)
		goto fail;
	if (r->secret_id_num_uses < 0)
	{
		resp_error(resp, 400, "secret_id_num_uses cannot be negative");
		goto fail;
	}

	/* the deprecated names: tokenutil.UpgradeValue */
	if (req_has(req, "token_policies"))
	{
		json_decref(r->policies);
		r->policies = req_has(req, "policies") ? json_deep_copy(r->token_policies) : NULL;
	}
	else if (req_has(req, "policies"))
	{
		json_t	   *l = req_strlist(req, "policies");

		json_decref(r->policies);
		r->policies = parse_legacy_policies(l);
		json_decref(l);
		json_decref(r->token_policies);
		r->token_policies = json_deep_copy(r->policies);
	}
	if (req_has(req, "token_period"))
		r->period = req_has(req, "period") ? r->token_period : 0;
	else if (req_has(req, "period"))
	{
		r->period = req_duration(req, "period", 0, &ok, resp);
		if (!ok)
			goto fail;
		r->token_period = r->period;
	}
	if (r->period > max)
	{
		char		a[48],
					b[48];

		go_duration(r->period, a, sizeof(a));
		go_duration(max, b, sizeof(b));
		resp_error(resp, 400, "period of \"%s\" is greater than the backend's maximum lease TTL of \"%s\"", a, b);
		goto fail;
	}
	if (r->token_max_ttl > max)
		resp_warn(resp, "token_max_ttl is greater than the backend mount's maximum TTL value; issued tokens' max TTL value will be truncated");

	if (!role_check(st, r, name, resp))
		goto fail;
	role_replace(st, old, r);
	resp->dirty = true;
	return;

fail:
	role_free(r);
}

static void
role_ops(vmount *m, vreq *req, vresp *resp, const char *name)
{
	approle_state *st = m->state;
	role_entry *r = role_find(st, name);

	switch (req->op)
	{
		case OP_READ:
			if (r == NULL)
				empty_list_404(resp);
			else
				resp->data = role_json(r);
			break;
		case OP_CREATE:
		case OP_UPDATE:
			role_write(m, req, resp, name);
			break;
		case OP_DELETE:
			if (r)
			{
				role_unlink(st, r);
				role_free(r);
				resp->dirty = true;
			}
			break;
		default:
			resp_unsupported_op(resp, req);
	}
}

static void
role_id_ops(vmount *m, vreq *req, vresp *resp, const char *name)
{
	approle_state *st = m->state;
	role_entry *r = role_find(st, name);
	role_entry *c;
	const char *rid;

	if (req->op == OP_READ)
	{
		if (r == NULL)
			empty_list_404(resp);
		else
			resp->data = json_pack("{s:s}", "role_id", r->role_id);
		return;
	}
	if (!is_update(req))
	{
		resp_unsupported_op(resp, req);
		return;
	}
	if (r == NULL)
	{
		resp_unsupported_path(resp, req);
		return;
	}
	rid = req_str(req, "role_id");
	if (rid == NULL || *rid == '\0')
	{
		resp_error(resp, 400, "missing role_id");
		return;
	}
	c = role_copy(r);
	free(c->role_id);
	c->role_id = strdup(rid);
	if (!role_check(st, c, name, resp))
	{
		role_free(c);
		return;
	}
	role_replace(st, r, c);
	resp->dirty = true;
}

/* ---- login ---- */

static void
login(vmount *m, vreq *req, vresp *resp)
{
	approle_state *st = m->state;
	char		buf[MAX_HMAC_INPUT + 2];
	const char *role_id,
			   *secret_id;
	role_entry *r;
	json_t	   *meta;
	vtoken	   *t;
	char		display[128],
				path[128];
	size_t		i,
				n;
	json_t	   *v;
	int64_t		now = now_unix(),
				ttl;

	role_id = trimmed(req_str(req, "role_id"), buf, sizeof(buf));
	if (*role_id == '\0')
	{
		resp_error(resp, 400, "missing role_id");
		return;
	}
	r = role_by_role_id(st, role_id);
	if (r == NULL)
	{
		resp_error(resp, 400, "invalid role or secret ID");
		return;
	}

	meta = json_object();
	if (r->bind_secret_id)
	{
		secret_entry *s;

		secret_id = trimmed(req_str(req, "secret_id"), buf, sizeof(buf));
		if (*secret_id == '\0')
		{
			resp_error(resp, 400, "missing secret_id");
			goto out;
		}
		purge_expired(r, now, resp);
		s = secret_by_value(r, secret_id);
		explicit_bzero(buf, sizeof(buf));
		if (s == NULL)
		{
			resp_error(resp, 400, "invalid role or secret ID");
			goto out;
		}
		if (json_array_size(s->cidr_list) > 0 && !addr_allowed(req->remote_addr, s->cidr_list))
		{
			resp_error(resp, 400, "source address \"%s\" unauthorized through CIDR restrictions on the secret ID",
					   req->remote_addr ? req->remote_addr : "");
			goto out;
		}
		json_object_update(meta, s->metadata);
		/* the last use deletes the SecretID; the login still succeeds */
		if (s->num_uses == 1)
			secret_remove(r, s);
		else if (s->num_uses > 1)
		{
			s->num_uses--;
			s->last_updated_time = now;
		}
		resp->dirty = true;
	}
	if (json_array_size(r->secret_id_bound_cidrs) > 0 &&
		!addr_allowed(req->remote_addr, r->secret_id_bound_cidrs))
	{
		resp_error(resp, 400, "source address \"%s\" unauthorized by CIDR restrictions on the role",
				   req->remote_addr ? req->remote_addr : "");
		goto out;
	}
	json_array_foreach(r->token_policies, i, v)
	{
		if (strcasecmp(json_string_value(v), "root") == 0)
		{
			resp_error(resp, 400, "auth methods cannot create root tokens");
			goto out;
		}
	}
	json_object_set_new(meta, "role_name", json_string(r->name));

	/* display name: the mount path without "auth/", '/' as '-' */
	snprintf(display, sizeof(display), "%s",
			 strncmp(m->path, "auth/", 5) == 0 ? m->path + 5 : m->path);
	for (n = 0; display[n]; n++)
		if (display[n] == '/')
			display[n] = '-';
	while (n > 0 && display[n - 1] == '-')
		display[--n] = '\0';
	snprintf(path, sizeof(path), "%slogin", m->path);

	ttl = calculate_ttl(m, 0, r->token_ttl, r->token_period, r->token_max_ttl,
						r->token_explicit_max_ttl, now, resp);
	t = token_create(NULL, r->token_policies, meta, display, path, NULL,
					 ttl > 0 ? ttl : 0, r->token_explicit_max_ttl, r->token_period,
					 r->token_num_uses, true, r->token_no_default_policy);
	if (t == NULL)
	{
		resp_error(resp, 500, "failed to create the token");
		goto out;
	}
	t->max_ttl = r->token_max_ttl;
	snprintf(t->entity_id, sizeof(t->entity_id), "%s", r->entity_id);
	resp->auth = token_auth_json(t);
	resp->dirty = true;

out:
	json_decref(meta);
}

/* ---- the engine ---- */

static int
approle_exists(vmount *m, const vreq *req)
{
	const char *name = path_after(req->rel, "role/");
	char		lower[256];
	size_t		i;

	if (name == NULL || strchr(name, '/') || strlen(name) >= sizeof(lower))
		return -1;
	for (i = 0; name[i]; i++)
		lower[i] = (char) tolower((unsigned char) name[i]);
	lower[i] = '\0';
	return role_find(m->state, lower) ? 1 : 0;
}

static void
approle_handle(vmount *m, vreq *req, vresp *resp)
{
	approle_state *st = m->state;
	const char *rel = req->rel;
	const char *rest;
	const char *slash;
	char		name[256];
	size_t		i,
				len;

	if (strcmp(rel, "login") == 0)
	{
		if (is_update(req))
			login(m, req, resp);
		else
			resp_unsupported_op(resp, req);
		return;
	}
	if (strcmp(rel, "role/") == 0 || strcmp(rel, "role") == 0)
	{
		json_t	   *keys;
		role_entry *r;

		if (req->op != OP_LIST)
		{
			resp_unsupported_op(resp, req);
			return;
		}
		if (st->roles == NULL)
		{
			empty_list_404(resp);
			return;
		}
		keys = json_array();
		for (r = st->roles; r; r = r->next)
			json_array_append_new(keys, json_string(r->name));
		resp->data = json_pack("{s:o}", "keys", keys);
		return;
	}

	rest = path_after(rel, "role/");
	if (rest == NULL)
	{
		resp_unsupported_path(resp, req);
		return;
	}
	slash = strchr(rest, '/');
	len = slash ? (size_t) (slash - rest) : strlen(rest);
	if (len == 0 || len >= sizeof(name))
	{
		resp_unsupported_path(resp, req);
		return;
	}
	for (i = 0; i < len; i++)
		name[i] = (char) tolower((unsigned char) rest[i]);
	name[len] = '\0';
	if (!valid_name(name))
	{
		resp_unsupported_path(resp, req);
		return;
	}

	if (slash == NULL)
		role_ops(m, req, resp, name);
	else if (strcmp(slash + 1, "role-id") == 0)
		role_id_ops(m, req, resp, name);
	else if (strcmp(slash + 1, "secret-id") == 0 || strcmp(slash + 1, "custom-secret-id") == 0)
	{
		if (is_update(req))
			secret_generate(m, req, resp, name, slash[1] == 'c');
		else
			resp_unsupported_op(resp, req);
	}
	else if (strcmp(slash + 1, "secret-id/") == 0 ||
			 strcmp(slash + 1, "secret-id/lookup") == 0 ||
			 strcmp(slash + 1, "secret-id/destroy") == 0 ||
			 strcmp(slash + 1, "secret-id-accessor/lookup") == 0 ||
			 strcmp(slash + 1, "secret-id-accessor/destroy") == 0)
		secret_ops(m, req, resp, name, slash + 1);
	else
		resp_unsupported_path(resp, req);
}

static bool
approle_unauthenticated(const char *rel)
{
	return strcmp(rel, "login") == 0;
}

static void *
approle_new_state(vmount *m)
{
	approle_state *st = calloc(1, sizeof(*st));

	if (st == NULL)
		abort();
	return st;
}

static void
approle_free_state(vmount *m)
{
	approle_state *st = m->state;

	if (st == NULL)
		return;
	while (st->roles)
	{
		role_entry *next = st->roles->next;

		role_free(st->roles);
		st->roles = next;
	}
	free(st);
	m->state = NULL;
}

static json_t *
approle_save(vmount *m)
{
	approle_state *st = m->state;
	json_t	   *roles = json_array();
	role_entry *r;

	for (r = st->roles; r; r = r->next)
	{
		json_t	   *secrets = json_array();
		secret_entry *s;

		for (s = r->secrets; s; s = s->next)
			json_array_append_new(secrets,
								  json_pack("{s:s, s:s, s:i, s:I, s:I, s:I, s:I, s:O, s:O, s:O}",
											"hmac", s->hmac,
											"accessor", s->accessor,
											"num_uses", s->num_uses,
											"ttl", (json_int_t) s->ttl,
											"creation_time", (json_int_t) s->creation_time,
											"expiration_time", (json_int_t) s->expiration_time,
											"last_updated_time", (json_int_t) s->last_updated_time,
											"metadata", s->metadata,
											"cidr_list", s->cidr_list,
											"token_bound_cidrs", s->token_bound_cidrs));
		json_array_append_new(roles,
							  json_pack("{s:s, s:s, s:s, s:s, s:b, s:b, s:O, s:i, s:I, s:O, s:O?, s:O,"
										" s:I, s:I, s:I, s:I, s:I, s:i, s:b, s:s, s:o}",
										"name", r->name,
										"role_id", r->role_id,
										"hmac_key", r->hmac_key,
										"entity_id", r->entity_id,
										"bind_secret_id", r->bind_secret_id,
										"local_secret_ids", r->local_secret_ids,
										"secret_id_bound_cidrs", r->secret_id_bound_cidrs,
										"secret_id_num_uses", r->secret_id_num_uses,
										"secret_id_ttl", (json_int_t) r->secret_id_ttl,
										"token_policies", r->token_policies,
										"policies", r->policies,
										"token_bound_cidrs", r->token_bound_cidrs,
										"token_ttl", (json_int_t) r->token_ttl,
										"token_max_ttl", (json_int_t) r->token_max_ttl,
										"token_explicit_max_ttl", (json_int_t) r->token_explicit_max_ttl,
										"token_period", (json_int_t) r->token_period,
										"period", (json_int_t) r->period,
										"token_num_uses", r->token_num_uses,
										"token_no_default_policy", r->token_no_default_policy,
										"token_type", r->token_type,
										"secret_ids", secrets));
	}
	return json_pack("{s:o}", "roles", roles);
}

static json_t *
array_or_empty(json_t *v)
{
	return json_is_array(v) ? json_deep_copy(v) : json_array();
}

static void
approle_load(vmount *m, json_t *saved)
{
	approle_state *st = m->state;
	json_t	   *o;
	size_t		i;

	while (st->roles)
	{
		role_entry *next = st->roles->next;

		role_free(st->roles);
		st->roles = next;
	}
	json_array_foreach(json_object_get(saved, "roles"), i, o)
	{
		const char *name = json_string_value(json_object_get(o, "name"));
		const char *rid = json_string_value(json_object_get(o, "role_id"));
		const char *key = json_string_value(json_object_get(o, "hmac_key"));
		const char *ent = json_string_value(json_object_get(o, "entity_id"));
		const char *tt = json_string_value(json_object_get(o, "token_type"));
		json_t	   *pol = json_object_get(o, "policies");
		role_entry *r;
		secret_entry **tail;
		json_t	   *so;
		size_t		j;

		if (name == NULL || rid == NULL || key == NULL || role_find(st, name))
		{
			fprintf(stderr, "vault-dev: state file: skipping a malformed AppRole role\n");
			continue;
		}
		r = role_new(name);
		free(r->role_id);
		r->role_id = strdup(rid);
		snprintf(r->hmac_key, sizeof(r->hmac_key), "%s", key);
		if (ent)
			snprintf(r->entity_id, sizeof(r->entity_id), "%s", ent);
		r->bind_secret_id = json_is_true(json_object_get(o, "bind_secret_id"));
		r->local_secret_ids = json_is_true(json_object_get(o, "local_secret_ids"));
		json_decref(r->secret_id_bound_cidrs);
		r->secret_id_bound_cidrs = array_or_empty(json_object_get(o, "secret_id_bound_cidrs"));
		r->secret_id_num_uses = (int) json_integer_value(json_object_get(o, "secret_id_num_uses"));
		r->secret_id_ttl = json_integer_value(json_object_get(o, "secret_id_ttl"));
		json_decref(r->token_policies);
		r->token_policies = array_or_empty(json_object_get(o, "token_policies"));
		r->policies = json_is_array(pol) ? json_deep_copy(pol) : NULL;
		json_decref(r->token_bound_cidrs);
		r->token_bound_cidrs = array_or_empty(json_object_get(o, "token_bound_cidrs"));
		r->token_ttl = json_integer_value(json_object_get(o, "token_ttl"));
		r->token_max_ttl = json_integer_value(json_object_get(o, "token_max_ttl"));
		r->token_explicit_max_ttl = json_integer_value(json_object_get(o, "token_explicit_max_ttl"));
		r->token_period = json_integer_value(json_object_get(o, "token_period"));
		r->period = json_integer_value(json_object_get(o, "period"));
		r->token_num_uses = (int) json_integer_value(json_object_get(o, "token_num_uses"));
		r->token_no_default_policy = json_is_true(json_object_get(o, "token_no_default_policy"));
		if (tt)
			snprintf(r->token_type, sizeof(r->token_type), "%s", tt);

		tail = &r->secrets;
		json_array_foreach(json_object_get(o, "secret_ids"), j, so)
		{
			const char *mac = json_string_value(json_object_get(so, "hmac"));
			const char *acc = json_string_value(json_object_get(so, "accessor"));
			json_t	   *md = json_object_get(so, "metadata");
			secret_entry *s;

			if (mac == NULL || acc == NULL || strlen(mac) != 64)
				continue;
			s = calloc(1, sizeof(*s));
			if (s == NULL)
				abort();
			snprintf(s->hmac, sizeof(s->hmac), "%s", mac);
			snprintf(s->accessor, sizeof(s->accessor), "%s", acc);
			s->num_uses = (int) json_integer_value(json_object_get(so, "num_uses"));
			s->ttl = json_integer_value(json_object_get(so, "ttl"));
			s->creation_time = json_integer_value(json_object_get(so, "creation_time"));
			s->expiration_time = json_integer_value(json_object_get(so, "expiration_time"));
			s->last_updated_time = json_integer_value(json_object_get(so, "last_updated_time"));
			s->metadata = json_is_object(md) ? json_deep_copy(md) : json_object();
			s->cidr_list = array_or_empty(json_object_get(so, "cidr_list"));
			s->token_bound_cidrs = array_or_empty(json_object_get(so, "token_bound_cidrs"));
			*tail = s;
			tail = &s->next;
		}
		role_insert(st, r);
	}
}

const vengine engine_approle = {
	.type = "approle",
	.is_auth = true,
	.new_state = approle_new_state,
	.free_state = approle_free_state,
	.exists = approle_exists,
	.handle = approle_handle,
	.save = approle_save,
	.load = approle_load,
	.unauthenticated = approle_unauthenticated,
};
