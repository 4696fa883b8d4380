/*
 * json.c
 *    Request bodies: one JSON object whose keys are all known, each value
 *    type-checked (json_unpack) before use.  Anything else is a 400 that
 *    says what was wrong, never echoing a value (it may be a secret).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"

/*
 * jansson's allocations carry their size in front, so that freeing wipes
 * them: request bodies and answers hold plaintexts, Vault's answers hold
 * tokens and passwords.
 */
#define WIPE_HEADER 16

static void *
wiping_malloc(size_t n)
{
	char	   *p = malloc(n + WIPE_HEADER);

	if (p == NULL)
		return NULL;
	*(size_t *) p = n;
	return p + WIPE_HEADER;
}

void
json_wipe_free(void *ptr)
{
	char	   *p;

	if (ptr == NULL)
		return;
	p = (char *) ptr - WIPE_HEADER;
	explicit_bzero(ptr, *(size_t *) p);
	free(p);
}

/* Before any jansson allocation, so before any thread starts. */
void
json_wipe_init(void)
{
	json_set_alloc_funcs(wiping_malloc, json_wipe_free);
}

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
json_body_fields(AppRequest *req, const JsonField *fields)
{
	json_error_t jerr;
	json_t	   *root;
	const char *key;
	json_t	   *value;
	const JsonField *f;
	char		msg[160];

	for (f = fields; f->name; f++)
		*f->value = NULL;
	if (req->body == NULL || req->body_len == 0)
	{
		reply_error(req, 400, "request body must be a JSON object");
		return NULL;
	}
	root = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL)
	{
		reply_error(req, 400, "malformed JSON");
		return NULL;
	}
	if (!json_is_object(root))
	{
		json_decref(root);
		reply_error(req, 400, "request body must be a JSON object");
		return NULL;
	}
	json_object_foreach(root, key, value)
	{
		const char *s;
		size_t		len;

		f = find_field(fields, key);
		if (f == NULL)
		{
			if (plain_name(key))
				snprintf(msg, sizeof(msg), "unknown field \"%s\"", key);
			else
				snprintf(msg, sizeof(msg), "unknown field");
			goto bad;
		}
		/* null is the same as leaving an optional field out */
		if (json_is_null(value) && !f->required)
			continue;
		if (json_unpack_ex(value, &jerr, JSON_STRICT, "s%", &s, &len) != 0)
		{
			snprintf(msg, sizeof(msg), "field \"%s\" must be a string", f->name);
			goto bad;
		}
		if (strlen(s) != len)
		{
			snprintf(msg, sizeof(msg), "field \"%s\" must not contain NUL characters", f->name);
			goto bad;
		}
		if (f->max_len > 0 && len > f->max_len)
		{
			snprintf(msg, sizeof(msg), "field \"%s\" is longer than %zu bytes", f->name, f->max_len);
			goto bad;
		}
		*f->value = s;
	}
	for (f = fields; f->name; f++)
		if (f->required && *f->value == NULL)
		{
			snprintf(msg, sizeof(msg), "missing field \"%s\"", f->name);
			goto bad;
		}
	return root;

bad:
	for (f = fields; f->name; f++)
		*f->value = NULL;
	json_decref(root);
	reply_error(req, 400, msg);
	return NULL;
}
