/*
 * vault_json.c
 *    Reading Vault's JSON answers: see vault_json.h.  The extension
 *    (src/envelope.c) and the fuzz target fuzz/fuzz_envelope.c use this
 *    file as is.
 */
#include "vault_json.h"

#include <string.h>

json_t *
vj_parse_object(const char *body, size_t len, VjBody *why)
{
	json_t	   *root;

	if (len == 0)
	{
		*why = VJ_BODY_EMPTY;
		return NULL;
	}
	root = json_loadb(body, len, 0, NULL);
	if (root == NULL)
	{
		*why = VJ_BODY_NOT_JSON;
		return NULL;
	}
	if (!json_is_object(root))
	{
		json_decref(root);
		*why = VJ_BODY_NOT_OBJECT;
		return NULL;
	}
	*why = VJ_BODY_OBJECT;
	return root;
}

json_t *
vj_lookup(json_t *root, const char *path)
{
	json_t	   *node = root;
	char		key[128];

	while (node != NULL && *path)
	{
		const char *dot = strchr(path, '.');
		size_t		len = dot ? (size_t) (dot - path) : strlen(path);

		if (!json_is_object(node) || len >= sizeof(key))
			return NULL;
		memcpy(key, path, len);
		key[len] = '\0';
		node = json_object_get(node, key);
		path += len + (dot ? 1 : 0);
	}
	return node;
}

bool
vj_int(const json_t *n, int64_t *value)
{
	if (json_is_integer(n))
	{
		*value = (int64_t) json_integer_value(n);
		return true;
	}
	if (json_is_real(n))
	{
		double		d = json_real_value(n);

		/*
		 * Converting a double outside int64_t's range is undefined: the
		 * range is checked first (-2^63 <= d < 2^63; false for NaN too).
		 */
		if (d >= -9223372036854775808.0 && d < 9223372036854775808.0 &&
			d == (double) (int64_t) d)
		{
			*value = (int64_t) d;
			return true;
		}
	}
	return false;
}

size_t
vj_utf8_boundary(const char *s, size_t len)
{
	size_t		i = len,
				back = 0;

	/* the start of the last character: at most 3 continuation bytes back */
	while (i > 0 && back < 4 && ((unsigned char) s[i - 1] & 0xC0) == 0x80)
		i--, back++;
	if (i > 0)
	{
		unsigned char c = (unsigned char) s[i - 1];
		size_t		need = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;

		if (need > back + 1)
			return i - 1;		/* the last character is incomplete */
	}
	return len;
}

/* A bounded text: at most size - 1 bytes, always NUL-terminated. */
typedef struct VjOut
{
	char	   *buf;
	size_t		size;
	size_t		len;
	bool		cut;
} VjOut;

static void
out_char(VjOut *o, char c)
{
	if (o->len + 1 < o->size)
		o->buf[o->len++] = c;
	else
		o->cut = true;
}

static void
out_str(VjOut *o, const char *s)
{
	for (; *s; s++)
		out_char(o, *s);
}

static void
out_finish(VjOut *o)
{
	if (o->cut)
		o->len = vj_utf8_boundary(o->buf, o->len);
	o->buf[o->len] = '\0';
}

/*
 * LEN bytes of a Vault message, tabs and newlines as spaces.  With scrub,
 * what stands between double quotes is replaced: OpenBao's database engine
 * returns PostgreSQL's error verbatim, and PostgreSQL quotes the value it
 * failed on, which can be the password it was generating ('invalid input
 * syntax for type integer: "<password>"').
 */
static void
message_text(VjOut *o, const char *msg, size_t len, bool scrub)
{
	bool		quoted = false;
	size_t		i;

	for (i = 0; i < len; i++)
	{
		char		ch = msg[i];

		if (scrub && ch == '"')
		{
			out_char(o, ch);
			if (!quoted)
				out_str(o, "[redacted]");
			quoted = !quoted;
			continue;
		}
		if (!quoted)
			out_char(o, (ch == '\n' || ch == '\t') ? ' ' : ch);
	}
	if (quoted)
		out_char(o, '"');
}

/* One message, its multierror form unfolded into "a; b". */
static void
message(VjOut *o, const char *msg, bool scrub)
{
	const char *star;

	if (strstr(msg, " occurred:\n") != NULL && (star = strstr(msg, "\t* ")) != NULL)
	{
		bool		first = true;

		while (star != NULL)
		{
			const char *start = star + 3;
			const char *end = strchr(start, '\n');
			size_t		len = end ? (size_t) (end - start) : strlen(start);

			if (!first)
				out_str(o, "; ");
			first = false;
			message_text(o, start, len, scrub);
			star = end ? strstr(end, "\t* ") : NULL;
		}
		return;
	}
	message_text(o, msg, strlen(msg), scrub);
}

void
vj_message(const char *msg, bool scrub, char *out, size_t outsize)
{
	VjOut		o = {out, outsize, 0, false};

	message(&o, msg, scrub);
	out_finish(&o);
}

bool
vj_error_messages(const json_t *root, bool scrub, char *out, size_t outsize)
{
	VjOut		o = {out, outsize, 0, false};
	json_t	   *errors;
	size_t		i;
	json_t	   *e;
	bool		any = false;

	out[0] = '\0';
	if (root == NULL || !json_is_object(root))
		return false;
	errors = json_object_get(root, "errors");
	if (!json_is_array(errors))
		return false;
	json_array_foreach(errors, i, e)
	{
		if (!json_is_string(e))
			continue;
		if (any)
			out_str(&o, "; ");
		message(&o, json_string_value(e), scrub);
		any = true;
	}
	out_finish(&o);
	return any;
}

bool
vj_has_batch_results(json_t *root)
{
	json_t	   *data = json_object_get(root, "data");

	return json_is_object(data) &&
		json_is_array(json_object_get(data, "batch_results"));
}

VjBatch
vj_batch(json_t *root, const char *field, size_t n,
		 const char **values, size_t *lens,
		 size_t *index, size_t *count, const char **error)
{
	json_t	   *results = vj_lookup(root, "data.batch_results");
	size_t		i;
	json_t	   *item;

	*index = 0;
	*count = 0;
	*error = NULL;
	if (!json_is_array(results))
		return VJ_BATCH_NOT_ARRAY;
	*count = json_array_size(results);
	if (*count != n)
		return VJ_BATCH_COUNT;
	json_array_foreach(results, i, item)
	{
		json_t	   *err;
		json_t	   *v;

		*index = i;
		if (!json_is_object(item))
			return VJ_BATCH_NOT_OBJECT;
		err = json_object_get(item, "error");
		if (json_is_string(err) && json_string_length(err) > 0)
		{
			*error = json_string_value(err);
			return VJ_BATCH_ITEM_ERROR;
		}
		v = json_object_get(item, field);
		if (!json_is_string(v))
			return VJ_BATCH_NO_FIELD;
		values[i] = json_string_value(v);
		lens[i] = json_string_length(v);
	}
	return VJ_BATCH_OK;
}
