/*
 * vault_common.c
 *    Base64, hex and constant-time comparison shared by every program of
 *    pg_vault.  See vault_common.h.
 */
#include "vault_common.h"

#include <stdlib.h>
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

static const char b64chars[] =
"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t
vc_b64_encoded_len(size_t srclen)
{
	return ((srclen + 2) / 3) * 4;
}

size_t
vc_b64_decoded_maxlen(size_t srclen)
{
	return (srclen / 4) * 3 + 3;
}

size_t
vc_b64_encode(const unsigned char *src, size_t srclen, char *dst)
{
	char	   *p = dst;
	size_t		i;

	for (i = 0; i + 2 < srclen; i += 3)
	{
		unsigned int v = (src[i] << 16) | (src[i + 1] << 8) | src[i + 2];

		*p++ = b64chars[(v >> 18) & 63];
		*p++ = b64chars[(v >> 12) & 63];
		*p++ = b64chars[(v >> 6) & 63];
		*p++ = b64chars[v & 63];
	}
	if (i < srclen)
	{
		unsigned int v = src[i] << 16;

		if (i + 1 < srclen)
			v |= src[i + 1] << 8;
		*p++ = b64chars[(v >> 18) & 63];
		*p++ = b64chars[(v >> 12) & 63];
		*p++ = (i + 1 < srclen) ? b64chars[(v >> 6) & 63] : '=';
		*p++ = '=';
	}
	*p = '\0';
	return (size_t) (p - dst);
}

static int
b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

long
vc_b64_decode(const char *src, size_t srclen, unsigned char *dst)
{
	size_t		i;
	long		n = 0;

	if (srclen % 4 != 0)
		return -1;
	for (i = 0; i < srclen; i += 4)
	{
		int			a = b64val(src[i]),
					b = b64val(src[i + 1]),
					c,
					d;
		bool		last = (i + 4 == srclen);

		if (a < 0 || b < 0)
			return -1;
		if (last && src[i + 2] == '=')
		{
			if (src[i + 3] != '=')
				return -1;
			dst[n++] = (unsigned char) ((a << 2) | (b >> 4));
			break;
		}
		c = b64val(src[i + 2]);
		if (c < 0)
			return -1;
		if (last && src[i + 3] == '=')
		{
			dst[n++] = (unsigned char) ((a << 2) | (b >> 4));
			dst[n++] = (unsigned char) (((b & 15) << 4) | (c >> 2));
			break;
		}
		d = b64val(src[i + 3]);
		if (d < 0)
			return -1;
		dst[n++] = (unsigned char) ((a << 2) | (b >> 4));
		dst[n++] = (unsigned char) (((b & 15) << 4) | (c >> 2));
		dst[n++] = (unsigned char) (((c & 3) << 6) | d);
	}
	return n;
}

void
vc_hex_encode(const unsigned char *src, size_t len, char *dst)
{
	static const char hexd[] = "0123456789abcdef";
	size_t		i;

	for (i = 0; i < len; i++)
	{
		dst[2 * i] = hexd[src[i] >> 4];
		dst[2 * i + 1] = hexd[src[i] & 15];
	}
	dst[2 * len] = '\0';
}

bool
vc_secure_append(char **data, size_t *len, size_t *cap, size_t first_cap,
				 const char *src, size_t n)
{
	if (*len + n + 1 > *cap)
	{
		size_t		newcap = *cap ? *cap : first_cap;
		char	   *nd;

		while (newcap < *len + n + 1)
			newcap *= 2;
		if ((nd = malloc(newcap)) == NULL)
			return false;
		if (*data != NULL)
		{
			memcpy(nd, *data, *len);
			explicit_bzero(*data, *cap);
			free(*data);
		}
		*data = nd;
		*cap = newcap;
	}
	memcpy(*data + *len, src, n);
	*len += n;
	(*data)[*len] = '\0';
	return true;
}

void
vc_wiping_free(void *p)
{
	if (p == NULL)
		return;
#ifdef __GLIBC__
	explicit_bzero(p, malloc_usable_size(p));
#endif
	free(p);
}

void *
vc_wiping_realloc(void *p, size_t n)
{
#ifdef __GLIBC__
	size_t		old;
	void	   *q;

	if (p == NULL)
		return malloc(n);
	if (n == 0)
	{
		vc_wiping_free(p);
		return NULL;
	}
	old = malloc_usable_size(p);
	if ((q = malloc(n)) == NULL)
		return NULL;
	memcpy(q, p, old < n ? old : n);
	vc_wiping_free(p);
	return q;
#else
	return realloc(p, n);
#endif
}

bool
vc_ct_streq(const char *a, const char *b)
{
	size_t		la = strlen(a),
				lb = strlen(b),
				i;
	unsigned char diff = (la != lb);

	for (i = 0; i < la && i < lb; i++)
		diff |= (unsigned char) (a[i] ^ b[i]);
	return diff == 0;
}

static bool
is_b64_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		(c >= '0' && c <= '9') || c == '+' || c == '/';
}

int
vc_ciphertext_version(const char *s, size_t len)
{
	size_t		i = 7;
	int			version = 0;
	size_t		start;
	int			pad = 0;

	if (len < 10 || memcmp(s, "vault:v", 7) != 0)
		return -1;
	while (i < len && s[i] >= '0' && s[i] <= '9' && i - 7 < VC_MAX_VERSION_DIGITS)
		version = version * 10 + (s[i++] - '0');
	if (i == 7 || i >= len || s[i] != ':')
		return -1;
	start = ++i;
	while (i < len && is_b64_char(s[i]))
		i++;
	if (i == start)
		return -1;
	while (i < len && s[i] == '=' && pad < 2)
	{
		i++;
		pad++;
	}
	return i == len ? version : -1;
}
