/*
 * json.c
 *    Request bodies: one JSON object whose keys are all known, each value
 *    type-checked (json_unpack) before use.  Anything else is an error
 *    that says what was wrong, never echoing a value (it may be a secret);
 *    the handler answers it with a 400.  A leaf.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"

static const JsonField *
find_field(const JsonField *fields, const char *key)
{
	const JsonField *f;

	for (f = fields; f->name; f++)
		if (strcmp(f->name, key) == 0)
			return f;
	return NULL;
}

/* A key short and plain enough to be named back in an error. */
static bool
plain_name(const char *key)
{
	size_t		n = 0;

	for (; *key; key++, n++)
		if (n >= 40 || *key < 0x20 || *key > 0x7e)
			return false;
	return true;
}

json_t *
json_parse_fields(const char *body, size_t len, const JsonField *fields,
				  char *msg, size_t msglen)
{
	json_error_t jerr;
	json_t	   *root;
	const char *key;
	json_t	   *value;
	const JsonField *f;

	for (f = fields; f->name; f++)
		*f->value = NULL;
	if (body == NULL || len == 0)
	{
		snprintf(msg, msglen, "request body must be a JSON object");
		return NULL;
	}
	root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL)
	{
		snprintf(msg, msglen, "malformed JSON");
		return NULL;
	}
	if (!json_is_object(root))
	{
		json_decref(root);
		snprintf(msg, msglen, "request body must be a JSON object");
		return NULL;
	}
	json_object_foreach(root, key, value)
	{
		const char *s;
		size_t		slen;

		f = find_field(fields, key);
		if (f == NULL)
		{
			if (plain_name(key))
				snprintf(msg, msglen, "unknown field \"%s\"", key);
			else
				snprintf(msg, msglen, "unknown field");
			goto bad;
		}
		/* null is the same as leaving an optional field out */
		if (json_is_null(value) && !f->required)
			continue;
		if (json_unpack_ex(value, &jerr, JSON_STRICT, "s%", &s, &slen) != 0)
		{
			snprintf(msg, msglen, "field \"%s\" must be a string", f->name);
			goto bad;
		}
		if (strlen(s) != slen)
		{
			snprintf(msg, msglen, "field \"%s\" must not contain NUL characters", f->name);
			goto bad;
		}
		if (f->max_len > 0 && slen > f->max_len)
		{
			snprintf(msg, msglen, "field \"%s\" is longer than %zu bytes", f->name, f->max_len);
			goto bad;
		}
		*f->value = s;
	}
	for (f = fields; f->name; f++)
		if (f->required && *f->value == NULL)
		{
			snprintf(msg, msglen, "missing field \"%s\"", f->name);
			goto bad;
		}
	return root;

bad:
	for (f = fields; f->name; f++)
		*f->value = NULL;
	json_decref(root);
	return NULL;
}
