/*
 * request.c
 *    The one writer of Vault request bodies and paths.
 *
 *    Request bodies are small JSON objects whose values are mostly base64,
 *    which needs no escaping: writing them straight into a StringInfo sized
 *    once is far cheaper than building a jansson tree and serialising it,
 *    and the per-row and batch paths depend on that.  Every other string
 *    goes through escape_json.  Paths put user values (key names, secret
 *    paths) into URLs, so they are checked and percent-encoded here.
 */
#include "postgres.h"

#include "utils/json.h"
#include "utils/memutils.h"

#include "pg_vault.h"
#include "common/vault_common.h"

void
vault_jw_begin(VaultJsonWriter *w, StringInfo buf)
{
	w->buf = buf;
	w->first = true;
	appendStringInfoChar(buf, '{');
}

void
vault_jw_end(VaultJsonWriter *w)
{
	appendStringInfoChar(w->buf, '}');
}

/* Writes the separator and "key": ; keys are ASCII identifiers. */
void
vault_jw_key(VaultJsonWriter *w, const char *key)
{
	StringInfo	buf = w->buf;

	if (!w->first)
		appendStringInfoChar(buf, ',');
	w->first = false;
	appendStringInfoChar(buf, '"');
	appendStringInfoString(buf, key);
	appendStringInfoString(buf, "\":");
}

void
vault_jw_string(VaultJsonWriter *w, const char *key, const char *value)
{
	vault_jw_key(w, key);
	escape_json(w->buf, value);
}

/*
 * Appends a JSON string from (value, len), which need not be terminated.
 * Ciphertexts need no escaping and are copied as they are.
 */
void
vault_append_json_string(StringInfo buf, const char *value, size_t len)
{
	size_t		i;
	char	   *copy;

	for (i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) value[i];

		if (c < 0x20 || c == '"' || c == '\\')
			break;
	}
	if (i == len)
	{
		enlargeStringInfo(buf, (int) len + 2);
		buf->data[buf->len++] = '"';
		memcpy(buf->data + buf->len, value, len);
		buf->len += (int) len;
		buf->data[buf->len++] = '"';
		buf->data[buf->len] = '\0';
		return;
	}
	copy = pnstrdup(value, len);
	escape_json(buf, copy);
	pfree(copy);
}

void
vault_jw_base64(VaultJsonWriter *w, const char *key, const char *data,
				size_t len)
{
	vault_jw_key(w, key);
	vault_append_base64(w->buf, data, len, true);
}

void
vault_jw_int(VaultJsonWriter *w, const char *key, int64 value)
{
	vault_jw_key(w, key);
	appendStringInfo(w->buf, INT64_FORMAT, value);
}

void
vault_jw_bool(VaultJsonWriter *w, const char *key, bool value)
{
	vault_jw_key(w, key);
	appendStringInfoString(w->buf, value ? "true" : "false");
}

void
vault_jw_raw(VaultJsonWriter *w, const char *key, const char *json)
{
	vault_jw_key(w, key);
	appendStringInfoString(w->buf, json);
}

void
vault_append_base64(StringInfo buf, const char *data, size_t len, bool quote)
{
	size_t		enclen = vc_b64_encoded_len(len);

	if (enclen + 3 >= (size_t) (MaxAllocSize - buf->len))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("value too large to send to Vault")));
	enlargeStringInfo(buf, (int) enclen + 3);
	if (quote)
		buf->data[buf->len++] = '"';
	buf->len += vc_b64_encode((const unsigned char *) data, len,
							  buf->data + buf->len);
	if (quote)
		buf->data[buf->len++] = '"';
	buf->data[buf->len] = '\0';
}

static inline bool
is_word_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		(c >= '0' && c <= '9') || c == '_';
}

/* Vault's framework.GenericNameRegex: \w([\w-.]*\w)? */
static bool
is_vault_name(const char *name)
{
	size_t		len = strlen(name);
	size_t		i;
	bool		ok = len > 0 && is_word_char(name[0]) && is_word_char(name[len - 1]);

	for (i = 1; ok && i + 1 < len; i++)
		ok = is_word_char(name[i]) || name[i] == '-' || name[i] == '.';
	return ok;
}

void
vault_check_key_name(const char *name)
{
	if (!is_vault_name(name))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid Vault key name \"%s\"", name),
				 errdetail("Key names consist of letters, digits, \"_\", \"-\" and \".\", and start and end with a letter, digit or \"_\".")));
}

void
vault_check_role_name(const char *name)
{
	if (!is_vault_name(name))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid Vault role name \"%s\"", name),
				 errdetail("Role names consist of letters, digits, \"_\", \"-\" and \".\", and start and end with a letter, digit or \"_\".")));
}

static inline bool
is_unreserved(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		(c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';
}

/*
 * A mount path given as an argument follows the rules of a secret path;
 * checking it first gives a message that names it for what it is.
 */
void
vault_append_mount_path(StringInfo buf, const char *mount)
{
	const char *p = mount;
	const char *end = mount + strlen(mount);
	bool		ok;

	while (p < end && *p == '/')
		p++;
	while (end > p && end[-1] == '/')
		end--;
	ok = p < end;
	while (ok && p < end)
	{
		const char *seg = p;

		while (p < end && *p != '/')
			p++;
		ok = !(p == seg || (p - seg == 1 && seg[0] == '.') ||
			   (p - seg == 2 && seg[0] == '.' && seg[1] == '.'));
		if (p < end)
			p++;
	}
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid Vault mount path \"%s\"", mount),
				 errdetail("A mount path must not be empty nor contain empty, \".\" or \"..\" segments.")));
	vault_append_secret_path(buf, mount, false);
}

void
vault_append_secret_path(StringInfo buf, const char *path, bool allow_empty)
{
	static const char hex[] = "0123456789ABCDEF";
	const char *p = path;
	const char *end = path + strlen(path);
	bool		first = true;

	while (p < end && *p == '/')
		p++;
	while (end > p && end[-1] == '/')
		end--;
	if (p == end && !allow_empty)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("Vault secret path must not be empty")));

	while (p < end)
	{
		const char *seg = p;
		const char *q;

		while (p < end && *p != '/')
			p++;
		if (p == seg || (p - seg == 1 && seg[0] == '.') ||
			(p - seg == 2 && seg[0] == '.' && seg[1] == '.'))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid Vault secret path \"%s\"", path),
					 errdetail("A path must not contain empty, \".\" or \"..\" segments.")));
		if (!first)
			appendStringInfoChar(buf, '/');
		first = false;
		for (q = seg; q < p; q++)
		{
			unsigned char c = (unsigned char) *q;

			if (is_unreserved(c))
				appendStringInfoChar(buf, (char) c);
			else
			{
				appendStringInfoChar(buf, '%');
				appendStringInfoChar(buf, hex[c >> 4]);
				appendStringInfoChar(buf, hex[c & 15]);
			}
		}
		if (p < end)
			p++;
	}
}
