/*
 * util.c
 *    Helpers every part of the development server uses: randomness, times,
 *    Vault's weakly typed request parameters and durations, response
 *    errors and warnings, and name/path checks.
 */
#include "devserver.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

static const char *const vop_names[OP__COUNT] = {
	"read", "create", "update", "delete", "list", "patch"
};

const char *
vop_name(vop op)
{
	return (op >= 0 && op < OP__COUNT) ? vop_names[op] : "unknown";
}

/* ---- randomness and time ---- */

static void
rand_fill(unsigned char *buf, size_t n)
{
	if (RAND_bytes(buf, (int) n) != 1)
	{
		fprintf(stderr, "vault-dev: the random number generator failed\n");
		abort();
	}
}

/*
 * Small requests (a 12-byte nonce per batch item, a request id per
 * request) are served from a per-thread pool refilled from OpenSSL's DRBG:
 * each RAND_bytes call costs a getpid() system call for fork safety.
 * Keys and other large draws go to the DRBG directly.
 */
void
rand_bytes(unsigned char *buf, size_t n)
{
	static __thread unsigned char pool[4096];
	static __thread size_t left;

	if (n > 64)
	{
		rand_fill(buf, n);
		return;
	}
	if (left < n)
	{
		rand_fill(pool, sizeof(pool));
		left = sizeof(pool);
	}
	memcpy(buf, pool + sizeof(pool) - left, n);
	OPENSSL_cleanse(pool + sizeof(pool) - left, n);
	left -= n;
}

void
rand_uuid(char out[37])
{
	unsigned char b[16];
	char		hex[33];

	rand_bytes(b, sizeof(b));
	b[6] = (b[6] & 0x0f) | 0x40;
	b[8] = (b[8] & 0x3f) | 0x80;
	vc_hex_encode(b, sizeof(b), hex);
	snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s",
			 hex, hex + 8, hex + 12, hex + 16, hex + 20);
}

void
rand_base62(char *out, size_t n)
{
	static const char alphabet[] =
		"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
	size_t		i = 0;

	while (i < n)
	{
		unsigned char b[64];
		size_t		j;

		rand_bytes(b, sizeof(b));
		/* rejection sampling keeps the distribution uniform */
		for (j = 0; j < sizeof(b) && i < n; j++)
			if (b[j] < 248)
				out[i++] = alphabet[b[j] % 62];
	}
	out[n] = '\0';
}

int64_t
now_unix(void)
{
	return (int64_t) time(NULL);
}

char *
rfc3339(int64_t unix_secs, long nsec)
{
	time_t		t = (time_t) unix_secs;
	struct tm	tm;
	char		buf[64];

	gmtime_r(&t, &tm);
	if (nsec > 0)
	{
		char		base[32];

		char		frac[16];
		int			n;

		/* Go's RFC3339Nano: trailing zeros of the fraction dropped */
		strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
		n = snprintf(frac, sizeof(frac), "%09ld", nsec);
		while (n > 1 && frac[n - 1] == '0')
			frac[--n] = '\0';
		snprintf(buf, sizeof(buf), "%s.%sZ", base, frac);
	}
	else
		strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return strdup(buf);
}

/* ---- responses ---- */

static void
append_message(json_t **arr, const char *fmt, va_list ap)
{
	char	   *msg = NULL;

	if (vasprintf(&msg, fmt, ap) < 0)
		abort();
	if (*arr == NULL)
		*arr = json_array();
	json_array_append_new(*arr, json_string(msg));
	free(msg);
}

void
resp_error(vresp *resp, int status, const char *fmt,...)
{
	va_list		ap;

	resp->status = status;
	va_start(ap, fmt);
	append_message(&resp->errors, fmt, ap);
	va_end(ap);
}

void
resp_warn(vresp *resp, const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	append_message(&resp->warnings, fmt, ap);
	va_end(ap);
}

void
resp_unsupported_path(vresp *resp, const vreq *req)
{
	resp_error(resp, 404, "unsupported path");
}

void
resp_unsupported_op(vresp *resp, const vreq *req)
{
	resp_error(resp, 405, "unsupported operation");
}

/* ---- parameters ---- */

const char *
req_str(const vreq *req, const char *key)
{
	json_t	   *v = json_object_get(req->data, key);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

bool
req_has(const vreq *req, const char *key)
{
	json_t	   *v = json_object_get(req->data, key);

	return v != NULL && !json_is_null(v);
}

int64_t
req_int(const vreq *req, const char *key, int64_t dflt, bool *ok, vresp *resp)
{
	json_t	   *v = json_object_get(req->data, key);

	if (v == NULL || json_is_null(v))
		return dflt;
	if (json_is_integer(v))
		return json_integer_value(v);
	if (json_is_real(v) && floor(json_real_value(v)) == json_real_value(v))
		return (int64_t) json_real_value(v);
	if (json_is_string(v))
	{
		const char *s = json_string_value(v);
		char	   *end;
		long long	n;

		if (*s == '\0')
			return dflt;
		errno = 0;
		n = strtoll(s, &end, 10);
		if (errno == 0 && *end == '\0')
			return n;
	}
	if (json_is_boolean(v))
		return json_is_true(v) ? 1 : 0;
	*ok = false;
	resp_error(resp, 400, "error converting input for field \"%s\": cannot parse as an integer", key);
	return dflt;
}

bool
req_bool(const vreq *req, const char *key, bool dflt, bool *ok, vresp *resp)
{
	json_t	   *v = json_object_get(req->data, key);

	if (v == NULL || json_is_null(v))
		return dflt;
	if (json_is_boolean(v))
		return json_is_true(v);
	if (json_is_integer(v))
		return json_integer_value(v) != 0;
	if (json_is_string(v))
	{
		const char *s = json_string_value(v);

		if (*s == '\0')
			return false;
		if (!strcasecmp(s, "true") || !strcmp(s, "1") || !strcasecmp(s, "t"))
			return true;
		if (!strcasecmp(s, "false") || !strcmp(s, "0") || !strcasecmp(s, "f"))
			return false;
	}
	*ok = false;
	resp_error(resp, 400, "error converting input for field \"%s\": cannot parse as a boolean", key);
	return dflt;
}

/*
 * Vault's parseutil.ParseDurationSecond: an integer is seconds; a string is
 * seconds when it is all digits, else a Go duration ("1h30m", "1.5h",
 * "250ms") with "d" also accepted.  Sub-second results are truncated.
 */
int64_t
parse_duration_str(const char *s)
{
	double		total = 0;
	const char *p = s;

	while (isspace((unsigned char) *p))
		p++;
	if (*p == '\0')
		return 0;
	{
		char	   *end;
		long long	n;

		errno = 0;
		n = strtoll(p, &end, 10);
		if (errno == 0 && *end == '\0')
			return n < 0 ? -1 : n;
	}
	while (*p)
	{
		char	   *end;
		double		num = strtod(p, &end);
		double		mult;

		if (end == p || num < 0)
			return -1;
		p = end;
		if (!strncmp(p, "ns", 2))
			mult = 1e-9, p += 2;
		else if (!strncmp(p, "us", 2) || !strncmp(p, "\xc2\xb5s", 3))
			mult = 1e-6, p += (*p == 'u') ? 2 : 3;
		else if (!strncmp(p, "ms", 2))
			mult = 1e-3, p += 2;
		else if (*p == 's')
			mult = 1, p++;
		else if (*p == 'm')
			mult = 60, p++;
		else if (*p == 'h')
			mult = 3600, p++;
		else if (*p == 'd')
			mult = 86400, p++;
		else
			return -1;
		total += num * mult;
	}
	return (int64_t) total;
}

int64_t
parse_duration_json(const json_t *v)
{
	if (json_is_integer(v))
		return json_integer_value(v) < 0 ? -1 : json_integer_value(v);
	if (json_is_real(v))
		return json_real_value(v) < 0 ? -1 : (int64_t) json_real_value(v);
	if (json_is_string(v))
		return parse_duration_str(json_string_value(v));
	return -1;
}

int64_t
req_duration(const vreq *req, const char *key, int64_t dflt, bool *ok, vresp *resp)
{
	json_t	   *v = json_object_get(req->data, key);
	int64_t		d;

	if (v == NULL || json_is_null(v))
		return dflt;
	d = parse_duration_json(v);
	if (d < 0)
	{
		*ok = false;
		resp_error(resp, 400, "error converting input for field \"%s\": time: invalid duration", key);
		return dflt;
	}
	return d;
}

json_t *
req_strlist(const vreq *req, const char *key)
{
	json_t	   *v = json_object_get(req->data, key);
	json_t	   *out = json_array();

	if (json_is_array(v))
	{
		size_t		i;
		json_t	   *e;

		json_array_foreach(v, i, e)
			if (json_is_string(e) && json_string_length(e) > 0)
			json_array_append(out, e);
	}
	else if (json_is_string(v))
	{
		char	   *copy = strdup(json_string_value(v));
		char	   *save = NULL;
		char	   *tok;

		for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
		{
			while (isspace((unsigned char) *tok))
				tok++;
			{
				size_t		len = strlen(tok);

				while (len > 0 && isspace((unsigned char) tok[len - 1]))
					tok[--len] = '\0';
				if (len > 0)
					json_array_append_new(out, json_string(tok));
			}
		}
		free(copy);
	}
	return out;
}

/* ---- names and paths ---- */

const char *
path_after(const char *rel, const char *prefix)
{
	size_t		n = strlen(prefix);

	if (strncmp(rel, prefix, n) != 0 || rel[n] == '\0')
		return NULL;
	return rel + n;
}

static bool
is_word(unsigned char c)
{
	return isalnum(c) || c == '_';
}

bool
valid_name(const char *name)
{
	size_t		len = strlen(name),
				i;

	if (len == 0 || !is_word(name[0]) || !is_word(name[len - 1]))
		return false;
	for (i = 1; i + 1 < len; i++)
		if (!is_word(name[i]) && name[i] != '-' && name[i] != '.')
			return false;
	return true;
}
