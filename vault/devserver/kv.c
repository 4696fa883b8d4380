/*
 * kv.c
 *    The KV secrets engine of the development Vault server.
 *
 *    Mounted with options {"version":"2"} it is Vault's versioned KV store
 *    (vault-plugin-secrets-kv: path_config.go, path_data.go,
 *    path_metadata.go, path_delete.go, path_destroy.go, path_subkeys.go);
 *    with version "1" or no version it is the plain pass-through store
 *    (passthrough.go).  Paths, envelopes, status codes and error strings
 *    follow those files, so that hvac, the Vault CLI and the extension see
 *    no difference.  A v1 mount whose options are later tuned to version 2
 *    is upgraded in place, each secret becoming version 1, as Vault does.
 *
 *    FOR DEVELOPMENT AND TESTS ONLY.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "devserver.h"

#define NS_PER_SEC				1000000000LL

/* Versions kept per secret when neither the secret nor the mount says. */
#define KV_DEFAULT_MAX_VERSIONS	10

/* What a v1 read reports as lease_duration without a mount setting. */
#define KV_DEFAULT_LEASE_TTL	(768 * 3600)

/* Mount-level delete_version_after: a negative value turns it off. */
#define KV_DVA_DISABLED			(-1)

/* Limits from path_metadata.go's validateCustomMetadata. */
#define KV_MAX_CUSTOM_KEYS		64
#define KV_MAX_CUSTOM_KEY_LEN	128
#define KV_MAX_CUSTOM_VALUE_LEN	512

#define KV_CUSTOM_PREFIX		"custom_metadata validation failed"

/* One version of a KV v2 secret (Version + VersionMetadata). */
typedef struct kv_version
{
	int64_t		created;		/* ns since the epoch */
	int64_t		deletion;		/* ns since the epoch; 0: none.  May lie in
								 * the future (delete_version_after). */
	bool		destroyed;
	json_t	   *data;			/* NULL once destroyed */
} kv_version;

/*
 * A secret.  On a v1 mount only path and value are used; on a v2 mount
 * the rest is Vault's KeyMetadata plus the version data.
 */
typedef struct kv_secret
{
	char	   *path;
	json_t	   *value;			/* v1: the stored map */

	int64_t		created;		/* ns; set by the first data or metadata write */
	int64_t		updated;
	uint64_t	current;		/* current_version */
	uint64_t	oldest;			/* oldest_version, as Vault counts it */
	uint32_t	max_versions;	/* 0: the mount's setting */
	bool		cas_required;
	int64_t		dva;			/* delete_version_after, seconds; 0: unset */
	json_t	   *custom;			/* custom_metadata (object of strings) or
								 * NULL when empty */

	/*
	 * Versions that still exist always form one run: versions[i] is
	 * version first + i, and the last one is the current version.
	 */
	uint64_t	first;
	kv_version *versions;
	size_t		nversions;
} kv_secret;

typedef struct kv_state
{
	int			version;		/* 1 or 2 */
	kv_secret **items;			/* sorted by path */
	size_t		nitems;
	size_t		cap;

	/* KV v2 mount configuration (the config endpoint) */
	uint32_t	max_versions;
	bool		cas_required;
	int64_t		dva;			/* seconds; 0: unset; KV_DVA_DISABLED */
} kv_state;

/* ---------------------------------------------------------------- */
/* small helpers                                                    */
/* ---------------------------------------------------------------- */

static void *
kv_realloc(void *p, size_t n)
{
	void	   *q = realloc(p, n ? n : 1);

	if (q == NULL)
	{
		fputs("vault-dev: kv: out of memory\n", stderr);
		abort();
	}
	return q;
}

static char *
kv_strdup(const char *s)
{
	size_t		n = strlen(s) + 1;

	return memcpy(kv_realloc(NULL, n), s, n);
}

static int64_t
kv_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t) ts.tv_sec * NS_PER_SEC + ts.tv_nsec;
}

/* A time as Vault prints a protobuf timestamp: RFC 3339, or "" for none. */
static json_t *
kv_time_json(int64_t ns)
{
	char	   *s;
	json_t	   *j;

	if (ns <= 0)
		return json_string("");
	s = rfc3339(ns / NS_PER_SEC, (long) (ns % NS_PER_SEC));
	j = json_string(s ? s : "");
	free(s);
	return j;
}

/* A whole number of seconds as Go's time.Duration.String() ("1h0m0s"). */
static void
kv_go_duration(int64_t secs, char *buf, size_t len)
{
	const char *sign = secs < 0 ? "-" : "";
	uint64_t	u = secs < 0 ? -(uint64_t) secs : (uint64_t) secs;
	unsigned long long h = u / 3600;
	unsigned long long m = (u / 60) % 60;
	unsigned long long s = u % 60;

	if (h > 0)
		snprintf(buf, len, "%s%lluh%llum%llus", sign, h, m, s);
	else if (m > 0)
		snprintf(buf, len, "%s%llum%llus", sign, m, s);
	else
		snprintf(buf, len, "%s%llus", sign, s);
}

/* rel without prefix, or NULL when rel does not start with it. */
static const char *
kv_strip(const char *rel, const char *prefix)
{
	size_t		n = strlen(prefix);

	return strncmp(rel, prefix, n) == 0 ? rel + n : NULL;
}

/* 404 with {"errors":[]}: what Vault answers when a read finds nothing. */
static void
kv_not_found(vresp *resp)
{
	resp->status = 404;
	json_decref(resp->errors);
	resp->errors = json_array();
}

/* Go's reflect kind names, which mapstructure puts in its errors. */
static const char *
kv_go_kind(const json_t *v)
{
	switch (json_typeof(v))
	{
		case JSON_OBJECT:
			return "map";
		case JSON_ARRAY:
			return "slice";
		case JSON_TRUE:
		case JSON_FALSE:
			return "bool";
		default:
			/* Vault decodes numbers as json.Number, a string kind. */
			return "string";
	}
}

/*
 * framework's "Field validation failed" for a field of the wrong type.
 * Vault also quotes the input value; ours leaves it out because it may be
 * a secret.
 */
static void
kv_field_error(vresp *resp, const char *field, const char *why)
{
	resp_error(resp, 400, "Field validation failed: error converting input for field \"%s\": %s",
			   field, why);
}

/* A TypeMap field: an object, or absent/null.  false leaves a 400. */
static bool
kv_check_map_field(const vreq *req, const char *field, vresp *resp)
{
	json_t	   *v = json_object_get(req->data, field);
	char		why[64];

	if (v == NULL || json_is_object(v) || json_is_null(v))
		return true;
	snprintf(why, sizeof(why), "'' expected a map, got '%s'", kv_go_kind(v));
	kv_field_error(resp, field, why);
	return false;
}

/* A string to int64 as mapstructure's weak decoding does ("" is 0). */
static bool
kv_parse_int_str(const char *s, int64_t *out)
{
	char	   *end;
	long long	n;

	if (*s == '\0')
	{
		*out = 0;
		return true;
	}
	errno = 0;
	n = strtoll(s, &end, 0);
	if (errno != 0 || *end != '\0' || isspace((unsigned char) *s))
		return false;
	*out = n;
	return true;
}

/* mapstructure.WeakDecode of one JSON value into an int. */
static bool
kv_weak_int(const json_t *v, int64_t *out)
{
	switch (json_typeof(v))
	{
		case JSON_INTEGER:
			*out = json_integer_value(v);
			return true;
		case JSON_STRING:
			return kv_parse_int_str(json_string_value(v), out);
		case JSON_TRUE:
			*out = 1;
			return true;
		case JSON_FALSE:
		case JSON_NULL:
			*out = 0;
			return true;
		default:
			return false;
	}
}

/*
 * "versions" as framework.TypeCommaIntSlice: [1,2], ["1","2"], "1,2" or 1.
 * Returns false with a 400 in resp when malformed; *n = 0 when absent.
 */
static bool
kv_req_versions(const vreq *req, int64_t **out, size_t *n, vresp *resp)
{
	json_t	   *v = json_object_get(req->data, "versions");
	int64_t    *list = NULL;
	size_t		cnt = 0;
	bool		ok = true;

	*out = NULL;
	*n = 0;
	if (v == NULL || json_is_null(v))
		return true;

	if (json_is_array(v))
	{
		size_t		i;
		json_t	   *e;

		list = kv_realloc(NULL, (json_array_size(v) + 1) * sizeof(int64_t));
		json_array_foreach(v, i, e)
		{
			if (!kv_weak_int(e, &list[cnt]))
			{
				ok = false;
				break;
			}
			cnt++;
		}
	}
	else if (json_is_string(v))
	{
		const char *s = json_string_value(v);
		size_t		max = 1;
		const char *c;

		for (c = s; *c; c++)
			if (*c == ',')
				max++;
		list = kv_realloc(NULL, max * sizeof(int64_t));
		if (*s != '\0')
		{
			/* like Go's strings.Split: empty fields stay, and decode to 0 */
			char	   *copy = kv_strdup(s);
			char	   *tok = copy;

			for (;;)
			{
				char	   *comma = strchr(tok, ',');

				if (comma)
					*comma = '\0';
				if (!kv_parse_int_str(tok, &list[cnt]))
				{
					ok = false;
					break;
				}
				cnt++;
				if (comma == NULL)
					break;
				tok = comma + 1;
			}
			free(copy);
		}
	}
	else
	{
		list = kv_realloc(NULL, sizeof(int64_t));
		if (kv_weak_int(v, &list[0]))
			cnt = 1;
		else
			ok = false;
	}

	if (!ok)
	{
		free(list);
		kv_field_error(resp, "versions", "cannot parse the list of versions");
		return false;
	}
	*out = list;
	*n = cnt;
	return true;
}

/*
 * A signed duration in seconds (TypeSignedDurationSecond): 3600, "3600",
 * "1h", "-1s", -1.  false when malformed.
 */
static bool
kv_signed_duration(const json_t *v, int64_t *out)
{
	int64_t		d;

	if (json_is_integer(v))
	{
		*out = json_integer_value(v);
		return true;
	}
	if (json_is_string(v) && json_string_value(v)[0] == '-')
	{
		d = parse_duration_str(json_string_value(v) + 1);
		if (d < 0)
			return false;
		*out = -d;
		return true;
	}
	d = parse_duration_json(v);
	if (d < 0)
		return false;
	*out = d;
	return true;
}

/* ---------------------------------------------------------------- */
/* the sorted secret index                                          */
/* ---------------------------------------------------------------- */

static size_t
kv_lower_bound(const kv_state *st, const char *path)
{
	size_t		lo = 0;
	size_t		hi = st->nitems;

	while (lo < hi)
	{
		size_t		mid = lo + (hi - lo) / 2;

		if (strcmp(st->items[mid]->path, path) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static kv_secret *
kv_find(const kv_state *st, const char *path)
{
	size_t		i = kv_lower_bound(st, path);

	if (i < st->nitems && strcmp(st->items[i]->path, path) == 0)
		return st->items[i];
	return NULL;
}

/* A new, empty secret at path (which must not exist yet). */
static kv_secret *
kv_insert(kv_state *st, const char *path)
{
	size_t		i = kv_lower_bound(st, path);
	kv_secret  *s = kv_realloc(NULL, sizeof(kv_secret));

	memset(s, 0, sizeof(*s));
	s->path = kv_strdup(path);
	if (st->nitems == st->cap)
	{
		st->cap = st->cap ? st->cap * 2 : 16;
		st->items = kv_realloc(st->items, st->cap * sizeof(kv_secret *));
	}
	memmove(&st->items[i + 1], &st->items[i], (st->nitems - i) * sizeof(kv_secret *));
	st->items[i] = s;
	st->nitems++;
	return s;
}

static void
kv_secret_free(kv_secret *s)
{
	size_t		i;

	for (i = 0; i < s->nversions; i++)
		json_decref(s->versions[i].data);
	free(s->versions);
	json_decref(s->value);
	json_decref(s->custom);
	free(s->path);
	free(s);
}

static void
kv_remove(kv_state *st, const char *path)
{
	size_t		i = kv_lower_bound(st, path);

	if (i >= st->nitems || strcmp(st->items[i]->path, path) != 0)
		return;
	kv_secret_free(st->items[i]);
	memmove(&st->items[i], &st->items[i + 1], (st->nitems - i - 1) * sizeof(kv_secret *));
	st->nitems--;
}

static void
kv_clear(kv_state *st)
{
	size_t		i;

	for (i = 0; i < st->nitems; i++)
		kv_secret_free(st->items[i]);
	free(st->items);
	st->items = NULL;
	st->nitems = st->cap = 0;
}

/*
 * LIST of the folder dir ("" for the root): the next path segment of every
 * secret under it, folders with their trailing '/'.  Paths sharing a
 * prefix sit next to each other in the sorted index, so one pass and a
 * look at the last folder emitted remove the duplicates.
 */
static void
kv_list(const kv_state *st, const char *dir, vresp *resp)
{
	size_t		plen = strlen(dir);
	char	   *prefix = kv_realloc(NULL, plen + 2);
	size_t		i;
	json_t	   *keys = json_array();
	const char *last = NULL;
	size_t		lastlen = 0;

	memcpy(prefix, dir, plen + 1);
	if (plen > 0 && prefix[plen - 1] != '/')
	{
		prefix[plen++] = '/';
		prefix[plen] = '\0';
	}

	for (i = kv_lower_bound(st, prefix); i < st->nitems; i++)
	{
		const char *path = st->items[i]->path;
		const char *rest;
		const char *slash;

		if (strncmp(path, prefix, plen) != 0)
			break;
		rest = path + plen;
		if (*rest == '\0')
			continue;
		slash = strchr(rest, '/');
		if (slash == NULL)
			json_array_append_new(keys, json_string(rest));
		else
		{
			size_t		len = (size_t) (slash - rest) + 1;

			if (last && lastlen == len && strncmp(last, rest, len) == 0)
				continue;
			json_array_append_new(keys, json_stringn(rest, len));
			last = rest;
			lastlen = len;
		}
	}

	free(prefix);
	if (json_array_size(keys) == 0)
	{
		json_decref(keys);
		kv_not_found(resp);
		return;
	}
	resp->data = json_pack("{s:o}", "keys", keys);
}

/* ---------------------------------------------------------------- */
/* KV v2 versions                                                   */
/* ---------------------------------------------------------------- */

static kv_version *
kv_version_get(const kv_secret *s, uint64_t n)
{
	if (s->nversions == 0 || n < s->first || n - s->first >= s->nversions)
		return NULL;
	return &s->versions[n - s->first];
}

/* Deleted means a deletion time that has passed; a future one is only
 * scheduled. */
static bool
kv_version_deleted(const kv_version *v, int64_t now)
{
	return v->deletion != 0 && v->deletion < now;
}

/*
 * delete_version_after.go's deletionTime: from + the smaller non-zero of
 * the mount's and the secret's setting; 0 when neither is set.
 */
static int64_t
kv_deletion_time(int64_t from, int64_t mount_dva, int64_t meta_dva)
{
	int64_t		min = 0;

	if (mount_dva == 0 && meta_dva == 0)
		return 0;
	if (meta_dva != 0)
		min = meta_dva;
	if ((mount_dva != 0 && mount_dva < min) || min == 0)
		min = mount_dva;
	return from + min * NS_PER_SEC;
}

/* Drop every version numbered up to and including last. */
static void
kv_drop_through(kv_secret *s, uint64_t last)
{
	size_t		k;
	size_t		i;

	if (s->nversions == 0 || last < s->first)
		return;
	k = last - s->first + 1;
	if (k > s->nversions)
		k = s->nversions;
	for (i = 0; i < k; i++)
		json_decref(s->versions[i].data);
	memmove(&s->versions[0], &s->versions[k], (s->nversions - k) * sizeof(kv_version));
	s->nversions -= k;
	s->first += k;
}

/*
 * Add data (a new reference, stolen) as the next version, then slide the
 * max_versions window the way KeyMetadata.AddVersion does: the secret's
 * own max_versions wins, then the mount's, then 10.
 */
static void
kv_add_version(const kv_state *st, kv_secret *s, json_t *data, int64_t now)
{
	kv_version *v;
	uint32_t	maxv;

	if (s->nversions == 0)
		s->first = s->current + 1;
	s->versions = kv_realloc(s->versions, (s->nversions + 1) * sizeof(kv_version));
	v = &s->versions[s->nversions++];
	v->created = now;
	v->deletion = 0;
	v->destroyed = false;
	v->data = data;
	if (st->dva != KV_DVA_DISABLED)
		v->deletion = kv_deletion_time(now, st->dva, s->dva);

	s->current++;
	s->updated = now;
	if (s->created == 0)
		s->created = now;

	if (s->max_versions != 0)
		maxv = s->max_versions;
	else if (st->max_versions != 0)
		maxv = st->max_versions;
	else
		maxv = KV_DEFAULT_MAX_VERSIONS;

	if ((uint32_t) (s->current - s->oldest) >= maxv)
	{
		uint64_t	del = s->current - maxv;

		kv_drop_through(s, del);
		s->oldest = del + 1;
	}
}

static json_t *
kv_custom_json(const kv_secret *s)
{
	return s->custom ? json_deep_copy(s->custom) : json_null();
}

/* {version, created_time, deletion_time, destroyed, custom_metadata} */
static json_t *
kv_version_meta_json(const kv_secret *s, uint64_t n, const kv_version *v)
{
	return json_pack("{s:I, s:o, s:o, s:b, s:o}",
					 "version", (json_int_t) n,
					 "created_time", kv_time_json(v->created),
					 "deletion_time", kv_time_json(v->deletion),
					 "destroyed", v->destroyed,
					 "custom_metadata", kv_custom_json(s));
}

/* The whole envelope with status 404: a deleted or destroyed version. */
static void
kv_raw_404(vresp *resp, json_t *data)
{
	resp->raw_status = true;
	resp->status = 404;
	resp->data = data;
}

/* ---------------------------------------------------------------- */
/* KV v2: check-and-set, merge patch, custom metadata               */
/* ---------------------------------------------------------------- */

/* validateCheckAndSetOption; s may be NULL (a new secret, version 0). */
static bool
kv_check_cas(const kv_state *st, const kv_secret *s, const vreq *req, vresp *resp)
{
	json_t	   *opts = json_object_get(req->data, "options");
	json_t	   *cas = json_is_object(opts) ? json_object_get(opts, "cas") : NULL;
	uint64_t	current = s ? s->current : 0;

	if (cas != NULL)
	{
		int64_t		n;

		if (json_is_real(cas) || !kv_weak_int(cas, &n))
		{
			resp_error(resp, 400, "error parsing check-and-set parameter");
			return false;
		}
		if ((uint64_t) n != current)
		{
			resp_error(resp, 400, "check-and-set parameter did not match the current version");
			return false;
		}
	}
	else if (st->cas_required || (s && s->cas_required))
	{
		resp_error(resp, 400, "check-and-set parameter required for this call");
		return false;
	}
	return true;
}

/*
 * RFC 7386 JSON merge patch.  target is a reference the function takes
 * over (NULL: none); patch is borrowed.  Returns the result.
 */
static json_t *
kv_merge_patch(json_t *target, const json_t *patch)
{
	const char *k;
	json_t	   *v;

	if (!json_is_object(patch))
	{
		json_decref(target);
		return json_deep_copy(patch);
	}
	if (!json_is_object(target))
	{
		json_decref(target);
		target = json_object();
	}
	json_object_foreach((json_t *) patch, k, v)
	{
		if (json_is_null(v))
			json_object_del(target, k);
		else
		{
			json_t	   *cur = json_object_get(target, k);

			json_object_set_new(target, k, kv_merge_patch(json_incref(cur), v));
		}
	}
	return target;
}

/*
 * Vault refuses PATCH without the merge-patch content type before it
 * routes the request (http/logical.go); the core hands it to us.
 */
static bool
kv_patch_content_type_ok(const vreq *req, vresp *resp)
{
	const char *ct = req->content_type ? req->content_type : "";
	char		media[128];
	size_t		n = 0;

	while (*ct == ' ' || *ct == '\t')
		ct++;
	while (*ct && *ct != ';' && n + 1 < sizeof(media))
		media[n++] = (char) tolower((unsigned char) *ct++);
	while (n > 0 && (media[n - 1] == ' ' || media[n - 1] == '\t'))
		n--;
	media[n] = '\0';

	if (n == 0)
	{
		resp_error(resp, 400, "mime: no media type");
		return false;
	}
	if (strcmp(media, "application/merge-patch+json") != 0)
	{
		resp_error(resp, 415, "PATCH requires Content-Type of application/merge-patch+json, provided %s",
				   media);
		return false;
	}
	return true;
}

/* Go's %q, near enough for the keys in validation messages. */
static void
kv_go_quote(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++)
	{
		unsigned char c = (unsigned char) *s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c == '\n')
			fputs("\\n", f);
		else if (c == '\t')
			fputs("\\t", f);
		else if (c == '\r')
			fputs("\\r", f);
		else if (c < 0x20 || c == 0x7f)
			fprintf(f, "\\x%02x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

/* strutil.Printable for the ASCII range; UTF-8 sequences pass. */
static bool
kv_printable(const char *s)
{
	for (; *s; s++)
	{
		unsigned char c = (unsigned char) *s;

		if (c < 0x20 || c == 0x7f)
			return false;
	}
	return true;
}

/*
 * custom_metadata: a map of strings, values weakly decoded (numbers to
 * their text, booleans to "1"/"0").  For a patch, nulls stay null: they
 * remove keys in the merge.  Returns a new object, or NULL with a 400
 * in resp (validation messages in go-multierror's list format).
 */
static json_t *
kv_parse_custom(const json_t *raw, bool patch, vresp *resp)
{
	json_t	   *out = json_object();
	const char *k;
	json_t	   *v;
	char	   *msg = NULL;
	size_t		msglen = 0;
	FILE	   *f;
	int			nerr = 0;
	size_t		nkeys = 0;

	if (raw == NULL || json_is_null(raw))
		return out;
	if (!json_is_object(raw))
	{
		char		why[64];

		json_decref(out);
		snprintf(why, sizeof(why), "'' expected a map, got '%s'", kv_go_kind(raw));
		kv_field_error(resp, "custom_metadata", why);
		return NULL;
	}

	json_object_foreach((json_t *) raw, k, v)
	{
		json_t	   *s;
		char		buf[64];

		switch (json_typeof(v))
		{
			case JSON_STRING:
				s = json_incref(v);
				break;
			case JSON_INTEGER:
				snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
				s = json_string(buf);
				break;
			case JSON_REAL:
				snprintf(buf, sizeof(buf), "%.17g", json_real_value(v));
				s = json_string(buf);
				break;
			case JSON_TRUE:
				s = json_string("1");
				break;
			case JSON_FALSE:
				s = json_string("0");
				break;
			case JSON_NULL:
				s = patch ? json_null() : json_string("");
				break;
			default:
				json_decref(out);
				resp_error(resp, 400, "%s: '' expected type 'string', got unconvertible type '%s'",
						   KV_CUSTOM_PREFIX,
						   json_is_object(v) ? "map[string]interface {}" : "[]interface {}");
				return NULL;
		}
		json_object_set_new(out, k, s);
		if (!json_is_null(s))
			nkeys++;
	}

	f = open_memstream(&msg, &msglen);
	if (f == NULL)
	{
		fputs("vault-dev: kv: out of memory\n", stderr);
		abort();
	}
	if (nkeys > KV_MAX_CUSTOM_KEYS)
	{
		fprintf(f, "\n\t* %s: payload must contain at most %d keys, provided %zu",
				KV_CUSTOM_PREFIX, KV_MAX_CUSTOM_KEYS, nkeys);
		nerr++;
	}
	else
	{
		json_object_foreach(out, k, v)
		{
			size_t		klen = strlen(k);
			size_t		vlen;

			if (json_is_null(v))
				continue;
			vlen = strlen(json_string_value(v));
			if (klen == 0 || klen > KV_MAX_CUSTOM_KEY_LEN)
			{
				fprintf(f, "\n\t* %s: length of key ", KV_CUSTOM_PREFIX);
				kv_go_quote(f, k);
				fprintf(f, " is %zu but must be 0 < len(key) <= %d", klen, KV_MAX_CUSTOM_KEY_LEN);
				nerr++;
			}
			if (vlen == 0 || vlen > KV_MAX_CUSTOM_VALUE_LEN)
			{
				fprintf(f, "\n\t* %s: length of value for key ", KV_CUSTOM_PREFIX);
				kv_go_quote(f, k);
				fprintf(f, " is %zu but must be 0 < len(value) <= %d", vlen, KV_MAX_CUSTOM_VALUE_LEN);
				nerr++;
			}
			if (!kv_printable(k))
			{
				fprintf(f, "\n\t* %s: key ", KV_CUSTOM_PREFIX);
				kv_go_quote(f, k);
				fputs(" contains unprintable characters", f);
				nerr++;
			}
			if (!kv_printable(json_string_value(v)))
			{
				fprintf(f, "\n\t* %s: value for key ", KV_CUSTOM_PREFIX);
				kv_go_quote(f, k);
				fputs(" contains unprintable characters", f);
				nerr++;
			}
		}
	}
	fclose(f);

	if (nerr > 0)
	{
		/* msg starts with "\n\t"; go-multierror puts the count before it */
		if (nerr == 1)
			resp_error(resp, 400, "1 error occurred:%s\n\n", msg);
		else
			resp_error(resp, 400, "%d errors occurred:%s\n\n", nerr, msg);
		free(msg);
		json_decref(out);
		return NULL;
	}
	free(msg);
	return out;
}

/* Store custom metadata; Vault's storage turns an empty map into null. */
static void
kv_set_custom(kv_secret *s, json_t *custom)
{
	json_decref(s->custom);
	if (custom != NULL && json_object_size(custom) == 0)
	{
		json_decref(custom);
		custom = NULL;
	}
	s->custom = custom;
}

/* ---------------------------------------------------------------- */
/* KV v2 handlers                                                   */
/* ---------------------------------------------------------------- */

/* GET config */
static void
kv2_config_read(const kv_state *st, vresp *resp)
{
	char		dva[64];

	kv_go_duration(st->dva, dva, sizeof(dva));
	resp->data = json_pack("{s:I, s:b, s:s}",
						   "max_versions", (json_int_t) st->max_versions,
						   "cas_required", st->cas_required,
						   "delete_version_after", dva);
}

/* POST config */
static void
kv2_config_write(kv_state *st, vreq *req, vresp *resp)
{
	bool		ok = true;
	int64_t		maxv = 0;
	bool		cas = false;
	int64_t		dva = 0;
	bool		has_max = req_has(req, "max_versions");
	bool		has_cas = req_has(req, "cas_required");
	bool		has_dva = req_has(req, "delete_version_after");

	if (has_max)
		maxv = req_int(req, "max_versions", 0, &ok, resp);
	if (ok && has_cas)
		cas = req_bool(req, "cas_required", false, &ok, resp);
	if (!ok)
		return;
	if (has_dva && !kv_signed_duration(json_object_get(req->data, "delete_version_after"), &dva))
	{
		kv_field_error(resp, "delete_version_after", "invalid duration");
		return;
	}
	if (!has_max && !has_cas && !has_dva)
		return;

	if (has_max)
		st->max_versions = (uint32_t) maxv;
	if (has_cas)
		st->cas_required = cas;
	if (has_dva)
		st->dva = dva < 0 ? KV_DVA_DISABLED : dva;
	resp->dirty = true;
}

/* GET data/:path */
static void
kv2_data_read(const kv_state *st, const char *p, vreq *req, vresp *resp)
{
	bool		ok = true;
	int64_t		ver = req_int(req, "version", 0, &ok, resp);
	kv_secret  *s;
	kv_version *v;
	uint64_t	n;
	json_t	   *meta;

	if (!ok)
		return;
	s = kv_find(st, p);
	if (s == NULL)
	{
		kv_not_found(resp);
		return;
	}
	n = ver > 0 ? (uint64_t) ver : s->current;
	v = kv_version_get(s, n);
	if (v == NULL)
	{
		kv_not_found(resp);
		return;
	}

	meta = kv_version_meta_json(s, n, v);
	if (kv_version_deleted(v, kv_now()) || v->destroyed || v->data == NULL)
	{
		kv_raw_404(resp, json_pack("{s:n, s:o}", "data", "metadata", meta));
		return;
	}
	resp->data = json_pack("{s:O, s:o}", "data", v->data, "metadata", meta);
}

/* POST/PUT data/:path */
static void
kv2_data_write(kv_state *st, const char *p, vreq *req, vresp *resp)
{
	json_t	   *data;
	kv_secret  *s;

	if (!kv_check_map_field(req, "data", resp) || !kv_check_map_field(req, "options", resp))
		return;
	data = json_object_get(req->data, "data");
	if (data == NULL)
	{
		resp_error(resp, 400, "no data provided");
		return;
	}

	s = kv_find(st, p);
	if (!kv_check_cas(st, s, req, resp))
		return;
	if (s == NULL)
		s = kv_insert(st, p);

	kv_add_version(st, s, json_is_object(data) ? json_deep_copy(data) : json_object(), kv_now());
	resp->data = kv_version_meta_json(s, s->current, kv_version_get(s, s->current));
	resp->dirty = true;
}

/* PATCH data/:path: a JSON merge patch of the current version. */
static void
kv2_data_patch(kv_state *st, const char *p, vreq *req, vresp *resp)
{
	json_t	   *patch;
	json_t	   *data;
	kv_secret  *s;
	kv_version *v;

	if (!kv_patch_content_type_ok(req, resp))
		return;
	if (!kv_check_map_field(req, "data", resp) || !kv_check_map_field(req, "options", resp))
		return;
	patch = json_object_get(req->data, "data");
	if (patch == NULL)
	{
		resp_error(resp, 400, "no data provided");
		return;
	}

	s = kv_find(st, p);
	if (s == NULL)
	{
		kv_not_found(resp);
		return;
	}
	if (!kv_check_cas(st, s, req, resp))
		return;
	v = kv_version_get(s, s->current);
	if (v == NULL)
	{
		kv_not_found(resp);
		return;
	}
	if (kv_version_deleted(v, kv_now()) || v->destroyed || v->data == NULL)
	{
		kv_raw_404(resp, kv_version_meta_json(s, s->current, v));
		return;
	}

	data = json_deep_copy(v->data);
	if (json_is_object(patch))
		data = kv_merge_patch(data, patch);
	kv_add_version(st, s, data, kv_now());
	resp->data = kv_version_meta_json(s, s->current, kv_version_get(s, s->current));
	resp->dirty = true;
}

/* DELETE data/:path: soft-delete the current version. */
static void
kv2_data_delete(kv_state *st, const char *p, vresp *resp)
{
	kv_secret  *s = kv_find(st, p);
	kv_version *v;
	int64_t		now = kv_now();

	if (s == NULL)
		return;
	v = kv_version_get(s, s->current);
	if (v == NULL || v->destroyed || kv_version_deleted(v, now))
		return;
	v->deletion = now;
	resp->dirty = true;
}

/* POST delete/:path, undelete/:path, destroy/:path {"versions":[...]} */
typedef enum
{
	KV_DELETE,
	KV_UNDELETE,
	KV_DESTROY
} kv_versions_op;

static void
kv2_versions_op(kv_state *st, const char *p, kv_versions_op op, vreq *req, vresp *resp)
{
	int64_t    *versions;
	size_t		n;
	size_t		i;
	kv_secret  *s;
	int64_t		now = kv_now();

	if (!kv_req_versions(req, &versions, &n, resp))
		return;
	if (n == 0)
	{
		free(versions);
		/* path_destroy.go spells it in lower case, path_delete.go not */
		resp_error(resp, 400, op == KV_DESTROY ? "no version number provided" :
				   "No version number provided");
		return;
	}

	s = kv_find(st, p);
	if (s == NULL)
	{
		free(versions);
		return;
	}

	for (i = 0; i < n; i++)
	{
		kv_version *v = kv_version_get(s, (uint64_t) versions[i]);

		if (v == NULL || v->destroyed)
			continue;
		switch (op)
		{
			case KV_DELETE:
				if (!kv_version_deleted(v, now))
					v->deletion = now;
				break;
			case KV_UNDELETE:
				v->deletion = 0;
				if (st->dva != KV_DVA_DISABLED)
					v->deletion = kv_deletion_time(now, st->dva, s->dva);
				break;
			case KV_DESTROY:
				v->destroyed = true;
				json_decref(v->data);
				v->data = NULL;
				break;
		}
	}
	free(versions);
	resp->dirty = true;
}

/* GET metadata/:path */
static void
kv2_metadata_read(const kv_state *st, const char *p, vresp *resp)
{
	kv_secret  *s = kv_find(st, p);
	json_t	   *versions;
	size_t		i;
	char		dva[64];

	if (s == NULL)
	{
		kv_not_found(resp);
		return;
	}
	versions = json_object();
	for (i = 0; i < s->nversions; i++)
	{
		const kv_version *v = &s->versions[i];
		char		num[32];

		snprintf(num, sizeof(num), "%llu", (unsigned long long) (s->first + i));
		json_object_set_new(versions, num,
							json_pack("{s:o, s:o, s:b}",
									  "created_time", kv_time_json(v->created),
									  "deletion_time", kv_time_json(v->deletion),
									  "destroyed", v->destroyed));
	}
	kv_go_duration(s->dva, dva, sizeof(dva));
	resp->data = json_pack("{s:b, s:o, s:I, s:o, s:s, s:I, s:I, s:o, s:o}",
						   "cas_required", s->cas_required,
						   "created_time", kv_time_json(s->created),
						   "current_version", (json_int_t) s->current,
						   "custom_metadata", kv_custom_json(s),
						   "delete_version_after", dva,
						   "max_versions", (json_int_t) s->max_versions,
						   "oldest_version", (json_int_t) s->oldest,
						   "updated_time", kv_time_json(s->updated),
						   "versions", versions);
}

/* POST metadata/:path, or PATCH it (patch = true). */
static void
kv2_metadata_write(kv_state *st, const char *p, vreq *req, vresp *resp, bool patch)
{
	bool		has_max = req_has(req, "max_versions");
	bool		has_cas = req_has(req, "cas_required");
	bool		has_dva = req_has(req, "delete_version_after");
	bool		has_cm = req_has(req, "custom_metadata");
	bool		ok = true;
	int64_t		maxv = 0;
	bool		cas = false;
	int64_t		dva = 0;
	json_t	   *custom = NULL;
	kv_secret  *s;

	if (patch && !kv_patch_content_type_ok(req, resp))
		return;
	if (*p == '\0')
	{
		resp_error(resp, 400, "missing path");
		return;
	}
	if (!patch && !has_max && !has_cas && !has_dva && !has_cm)
		return;

	if (has_max)
		maxv = req_int(req, "max_versions", 0, &ok, resp);
	if (ok && has_cas)
		cas = req_bool(req, "cas_required", false, &ok, resp);
	if (ok && has_dva)
		dva = req_duration(req, "delete_version_after", 0, &ok, resp);
	if (!ok)
		return;
	if (has_cm)
	{
		custom = kv_parse_custom(json_object_get(req->data, "custom_metadata"), patch, resp);
		if (custom == NULL)
			return;
	}

	s = kv_find(st, p);
	if (s == NULL)
	{
		if (patch)
		{
			json_decref(custom);
			kv_not_found(resp);
			return;
		}
		s = kv_insert(st, p);
		s->created = s->updated = kv_now();
	}

	if (has_cas && !cas && st->cas_required)
		resp_warn(resp, "\"cas_required\" set to false, but is mandated by backend config. This value will be ignored.");
	if (has_max)
		s->max_versions = (uint32_t) maxv;
	if (has_cas)
		s->cas_required = cas;
	if (has_dva)
		s->dva = dva;
	if (has_cm)
	{
		if (patch)
		{
			json_t	   *merged = kv_merge_patch(s->custom ? json_deep_copy(s->custom) : NULL, custom);

			json_decref(custom);
			custom = merged;
		}
		kv_set_custom(s, custom);
	}
	resp->dirty = true;
}

/* GET subkeys/:path: the secret's structure with every leaf nulled. */
static void
kv_strip_values(json_t *obj, int64_t depth, int64_t maxdepth)
{
	const char *k;
	json_t	   *v;

	json_object_foreach(obj, k, v)
	{
		if (json_is_object(v) && json_object_size(v) > 0 &&
			(maxdepth == 0 || depth + 1 <= maxdepth))
			kv_strip_values(v, depth + 1, maxdepth);
		else
			json_object_set_new(obj, k, json_null());
	}
}

static void
kv2_subkeys_read(const kv_state *st, const char *p, vreq *req, vresp *resp)
{
	bool		ok = true;
	int64_t		ver = req_int(req, "version", 0, &ok, resp);
	int64_t		depth = ok ? req_int(req, "depth", 0, &ok, resp) : 0;
	kv_secret  *s;
	kv_version *v;
	uint64_t	n;
	json_t	   *meta;
	json_t	   *subkeys;

	if (!ok)
		return;
	s = kv_find(st, p);
	if (s == NULL)
	{
		kv_not_found(resp);
		return;
	}
	n = ver > 0 ? (uint64_t) ver : s->current;
	v = kv_version_get(s, n);
	if (v == NULL)
	{
		kv_not_found(resp);
		return;
	}
	meta = kv_version_meta_json(s, n, v);
	if (kv_version_deleted(v, kv_now()) || v->destroyed || v->data == NULL)
	{
		kv_raw_404(resp, json_pack("{s:n, s:o}", "subkeys", "metadata", meta));
		return;
	}
	subkeys = json_deep_copy(v->data);
	kv_strip_values(subkeys, 1, depth > 0 ? depth : 0);
	resp->data = json_pack("{s:o, s:o}", "subkeys", subkeys, "metadata", meta);
}

/*
 * backend.go's pathInvalid: any other path is a 404 envelope whose
 * warning points at the right endpoint.
 */
static void
kv2_invalid_path(const vreq *req, const char *rel, vresp *resp)
{
	const char *sub = "get";

	resp->raw_status = true;
	resp->status = 404;
	if (strcmp(rel, "metadata") == 0 || strcmp(rel, "data") == 0 ||
		strcmp(rel, "delete") == 0 || strcmp(rel, "undelete") == 0 ||
		strcmp(rel, "destroy") == 0)
	{
		resp_warn(resp, "Non-listing operations on the root of a K/V v2 mount are not supported.");
		return;
	}
	switch (req->op)
	{
		case OP_CREATE:
		case OP_UPDATE:
			sub = "put";
			break;
		case OP_PATCH:
			sub = "patch";
			break;
		case OP_LIST:
			sub = "list";
			break;
		case OP_DELETE:
			sub = "delete";
			break;
		default:
			sub = "get";
			break;
	}
	resp_warn(resp, "Invalid path for a versioned K/V secrets engine. See the API docs for the appropriate API endpoints to use. If using the Vault CLI, use 'vault kv %s' for this operation.",
			  sub);
}

/* data/ takes a path that is not empty and does not end in '/'. */
static const char *
kv2_data_path(const char *rel)
{
	const char *p = kv_strip(rel, "data/");
	size_t		n;

	if (p == NULL)
		return NULL;
	n = strlen(p);
	if (n == 0 || p[n - 1] == '/')
		return NULL;
	return p;
}

static void
kv2_handle(kv_state *st, vreq *req, vresp *resp)
{
	const char *rel = req->rel ? req->rel : "";
	const char *p;
	bool		write = req->op == OP_CREATE || req->op == OP_UPDATE;

	if (strcmp(rel, "config") == 0)
	{
		if (req->op == OP_READ)
			kv2_config_read(st, resp);
		else if (write)
			kv2_config_write(st, req, resp);
		else
			resp_unsupported_op(resp, req);
	}
	else if ((p = kv2_data_path(rel)) != NULL)
	{
		if (req->op == OP_READ)
			kv2_data_read(st, p, req, resp);
		else if (write)
			kv2_data_write(st, p, req, resp);
		else if (req->op == OP_PATCH)
			kv2_data_patch(st, p, req, resp);
		else if (req->op == OP_DELETE)
			kv2_data_delete(st, p, resp);
		else
			resp_unsupported_op(resp, req);
	}
	else if ((p = kv_strip(rel, "metadata/")) != NULL)
	{
		if (req->op == OP_READ)
			kv2_metadata_read(st, p, resp);
		else if (write)
			kv2_metadata_write(st, p, req, resp, false);
		else if (req->op == OP_PATCH)
			kv2_metadata_write(st, p, req, resp, true);
		else if (req->op == OP_DELETE)
		{
			if (kv_find(st, p) != NULL)
			{
				kv_remove(st, p);
				resp->dirty = true;
			}
		}
		else if (req->op == OP_LIST)
			kv_list(st, p, resp);
		else
			resp_unsupported_op(resp, req);
	}
	else if ((p = kv_strip(rel, "subkeys/")) != NULL)
	{
		if (req->op == OP_READ)
			kv2_subkeys_read(st, p, req, resp);
		else
			resp_unsupported_op(resp, req);
	}
	else if ((p = kv_strip(rel, "delete/")) != NULL)
	{
		if (write)
			kv2_versions_op(st, p, KV_DELETE, req, resp);
		else
			resp_unsupported_op(resp, req);
	}
	else if ((p = kv_strip(rel, "undelete/")) != NULL)
	{
		if (write)
			kv2_versions_op(st, p, KV_UNDELETE, req, resp);
		else
			resp_unsupported_op(resp, req);
	}
	else if ((p = kv_strip(rel, "destroy/")) != NULL)
	{
		if (write)
			kv2_versions_op(st, p, KV_DESTROY, req, resp);
		else
			resp_unsupported_op(resp, req);
	}
	else
		kv2_invalid_path(req, rel, resp);
}

/* ---------------------------------------------------------------- */
/* KV v1                                                            */
/* ---------------------------------------------------------------- */

/* A mount TTL setting from m->config, or dflt when unset. */
static int64_t
kv_mount_ttl(const vmount *m, const char *key, int64_t dflt)
{
	json_t	   *v = m->config ? json_object_get(m->config, key) : NULL;
	int64_t		d = v ? parse_duration_json(v) : -1;

	return d > 0 ? d : dflt;
}

/*
 * The advisory lease_duration of a v1 read: the secret's own "ttl" (or
 * the older "lease") key, else the mount default, capped at the mount
 * maximum, as Vault's request handling does for a non-leasing KV mount.
 */
static int64_t
kv1_ttl(const vmount *m, const json_t *value)
{
	int64_t		dflt = kv_mount_ttl(m, "default_lease_ttl", KV_DEFAULT_LEASE_TTL);
	int64_t		max = kv_mount_ttl(m, "max_lease_ttl", KV_DEFAULT_LEASE_TTL);
	json_t	   *raw = json_object_get(value, "ttl");
	int64_t		ttl = dflt;

	if (raw == NULL)
		raw = json_object_get(value, "lease");
	if (raw != NULL)
	{
		int64_t		d = parse_duration_json(raw);

		if (d >= 0)
			ttl = d;
	}
	if (ttl == 0)
		ttl = dflt;
	if (ttl > max)
		ttl = max;
	return ttl;
}

static void
kv1_handle(kv_state *st, vmount *m, vreq *req, vresp *resp)
{
	const char *rel = req->rel ? req->rel : "";
	kv_secret  *s;

	switch (req->op)
	{
		case OP_READ:
			s = kv_find(st, rel);
			if (s == NULL)
			{
				kv_not_found(resp);
				return;
			}
			resp->data = json_deep_copy(s->value);
			resp->lease_id[0] = '\0';
			resp->lease_duration = kv1_ttl(m, s->value);
			resp->renewable = false;
			break;

		case OP_CREATE:
		case OP_UPDATE:
			if (*rel == '\0')
			{
				resp_error(resp, 400, "missing path");
				return;
			}
			if (json_object_size(req->data) == 0)
			{
				resp_error(resp, 400, "missing data fields");
				return;
			}
			s = kv_find(st, rel);
			if (s == NULL)
				s = kv_insert(st, rel);
			json_decref(s->value);
			s->value = json_deep_copy(req->data);
			resp->dirty = true;
			break;

		case OP_DELETE:
			if (kv_find(st, rel) != NULL)
			{
				kv_remove(st, rel);
				resp->dirty = true;
			}
			break;

		case OP_LIST:
			/* LIST of the mount root may arrive as "" or "/" */
			kv_list(st, strcmp(rel, "/") == 0 ? "" : rel, resp);
			break;

		default:
			resp_unsupported_op(resp, req);
			break;
	}
}

/* ---------------------------------------------------------------- */
/* mount version and upgrade                                        */
/* ---------------------------------------------------------------- */

/* The KV version the mount options ask for: 2 for "2", else 1. */
static int
kv_mount_version(const vmount *m)
{
	json_t	   *v = m->options ? json_object_get(m->options, "version") : NULL;

	if (json_is_string(v))
		return strcmp(json_string_value(v), "2") == 0 ? 2 : 1;
	if (json_is_integer(v))
		return json_integer_value(v) == 2 ? 2 : 1;
	return 1;
}

/* v1 -> v2 (mount tuned to version 2): each secret becomes version 1. */
static void
kv_upgrade(kv_state *st)
{
	int64_t		now = kv_now();
	size_t		i;

	st->version = 2;
	for (i = 0; i < st->nitems; i++)
	{
		kv_secret  *s = st->items[i];
		json_t	   *value = s->value;

		s->value = NULL;
		kv_add_version(st, s, value ? value : json_object(), now);
	}
}

static kv_state *
kv_state_of(vmount *m)
{
	kv_state   *st = m->state;

	if (st->version == 1 && kv_mount_version(m) == 2)
		kv_upgrade(st);
	return st;
}

static void *
kv_new_state(vmount *m)
{
	kv_state   *st = kv_realloc(NULL, sizeof(kv_state));

	memset(st, 0, sizeof(*st));
	st->version = kv_mount_version(m);
	return st;
}

static void
kv_free_state(vmount *m)
{
	kv_state   *st = m->state;

	if (st == NULL)
		return;
	kv_clear(st);
	free(st);
	m->state = NULL;
}

/* ---------------------------------------------------------------- */
/* persistence                                                      */
/* ---------------------------------------------------------------- */

static json_t *
kv_secret_save(const kv_secret *s)
{
	json_t	   *versions = json_array();
	size_t		i;

	for (i = 0; i < s->nversions; i++)
	{
		const kv_version *v = &s->versions[i];

		json_array_append_new(versions,
							  json_pack("{s:I, s:I, s:b, s:O?}",
										"created", (json_int_t) v->created,
										"deletion", (json_int_t) v->deletion,
										"destroyed", v->destroyed,
										"data", v->data));
	}
	return json_pack("{s:I, s:I, s:I, s:I, s:I, s:b, s:I, s:O?, s:I, s:o}",
					 "created", (json_int_t) s->created,
					 "updated", (json_int_t) s->updated,
					 "current_version", (json_int_t) s->current,
					 "oldest_version", (json_int_t) s->oldest,
					 "max_versions", (json_int_t) s->max_versions,
					 "cas_required", s->cas_required,
					 "delete_version_after", (json_int_t) s->dva,
					 "custom_metadata", s->custom,
					 "first_version", (json_int_t) s->first,
					 "versions", versions);
}

static json_t *
kv_save(vmount *m)
{
	kv_state   *st = m->state;
	json_t	   *secrets = json_object();
	size_t		i;

	for (i = 0; i < st->nitems; i++)
	{
		const kv_secret *s = st->items[i];

		json_object_set_new(secrets, s->path,
							st->version == 2 ? kv_secret_save(s) : json_deep_copy(s->value));
	}
	return json_pack("{s:i, s:{s:I, s:b, s:I}, s:o}",
					 "version", st->version,
					 "config",
					 "max_versions", (json_int_t) st->max_versions,
					 "cas_required", st->cas_required,
					 "delete_version_after", (json_int_t) st->dva,
					 "secrets", secrets);
}

static int64_t
kv_load_int(const json_t *obj, const char *key)
{
	json_t	   *v = json_object_get(obj, key);

	return json_is_integer(v) ? json_integer_value(v) : 0;
}

static void
kv_secret_load(kv_secret *s, const json_t *saved)
{
	json_t	   *versions = json_object_get(saved, "versions");
	json_t	   *custom = json_object_get(saved, "custom_metadata");
	size_t		i;
	json_t	   *e;

	s->created = kv_load_int(saved, "created");
	s->updated = kv_load_int(saved, "updated");
	s->current = (uint64_t) kv_load_int(saved, "current_version");
	s->oldest = (uint64_t) kv_load_int(saved, "oldest_version");
	s->max_versions = (uint32_t) kv_load_int(saved, "max_versions");
	s->cas_required = json_is_true(json_object_get(saved, "cas_required"));
	s->dva = kv_load_int(saved, "delete_version_after");
	s->custom = json_is_object(custom) && json_object_size(custom) > 0 ? json_deep_copy(custom) : NULL;
	s->first = (uint64_t) kv_load_int(saved, "first_version");

	if (!json_is_array(versions) || json_array_size(versions) == 0)
		return;
	s->versions = kv_realloc(NULL, json_array_size(versions) * sizeof(kv_version));
	json_array_foreach(versions, i, e)
	{
		kv_version *v = &s->versions[s->nversions++];
		json_t	   *data = json_object_get(e, "data");

		v->created = kv_load_int(e, "created");
		v->deletion = kv_load_int(e, "deletion");
		v->destroyed = json_is_true(json_object_get(e, "destroyed"));
		v->data = json_is_object(data) && !v->destroyed ? json_deep_copy(data) : NULL;
		if (v->data == NULL)
			v->destroyed = true;
	}
	/* the run of versions ends at the current version */
	if (s->first == 0)
		s->first = 1;
	s->current = s->first + s->nversions - 1;
}

static void
kv_load(vmount *m, json_t *saved)
{
	kv_state   *st;
	json_t	   *config = json_object_get(saved, "config");
	json_t	   *secrets = json_object_get(saved, "secrets");
	const char *path;
	json_t	   *e;

	if (!json_is_object(saved))
		return;
	if (m->state == NULL)
		m->state = kv_new_state(m);
	st = m->state;
	kv_clear(st);
	st->version = kv_load_int(saved, "version") == 2 ? 2 : 1;
	st->max_versions = (uint32_t) kv_load_int(config, "max_versions");
	st->cas_required = json_is_true(json_object_get(config, "cas_required"));
	st->dva = kv_load_int(config, "delete_version_after");

	json_object_foreach(secrets, path, e)
	{
		kv_secret  *s;

		if (!json_is_object(e) || kv_find(st, path) != NULL)
			continue;
		s = kv_insert(st, path);
		if (st->version == 2)
			kv_secret_load(s, e);
		else
			s->value = json_deep_copy(e);
	}
	kv_state_of(m);
}

/* ---------------------------------------------------------------- */
/* the engine                                                       */
/* ---------------------------------------------------------------- */

/*
 * v2: data/:path and metadata/:path check for the secret, so that
 * "create" alone can write a new secret and "update" an existing one;
 * other paths have no check.  v1: every path has one.
 */
static int
kv_exists(vmount *m, const vreq *req)
{
	kv_state   *st = kv_state_of(m);
	const char *rel = req->rel ? req->rel : "";
	const char *p;

	if (st->version == 1)
		return kv_find(st, rel) != NULL ? 1 : 0;
	if ((p = kv2_data_path(rel)) != NULL || (p = kv_strip(rel, "metadata/")) != NULL)
		return kv_find(st, p) != NULL ? 1 : 0;
	return -1;
}

static void
kv_handle(vmount *m, vreq *req, vresp *resp)
{
	kv_state   *st = kv_state_of(m);

	if (st->version == 2)
		kv2_handle(st, req, resp);
	else
		kv1_handle(st, m, req, resp);
}

const vengine engine_kv = {
	.type = "kv",
	.is_auth = false,
	.new_state = kv_new_state,
	.free_state = kv_free_state,
	.exists = kv_exists,
	.handle = kv_handle,
	.save = kv_save,
	.load = kv_load,
	.lease_renew = NULL,
	.lease_revoke = NULL,
	.unauthenticated = NULL,
};
