/*
 * compat_curl.h: what pg_vault needs from libcurl, on libcurls older than the
 * calls the extension (src/http.c) and the app (app/vault.c) are written
 * with.  Plain C: no PostgreSQL header.  The fallback's Retry-After buffer
 * is one per process: http.c reads it right after each exchange, and the
 * app's exchanges run one at a time under its curl lock.
 *
 *    vc_compat_protocols(h)    restrict handle h to http and https:
 *                              CURLOPT_PROTOCOLS_STR from 7.85.0,
 *                              CURLOPT_PROTOCOLS (a bitmask) before
 *    vc_compat_watch_headers(h)
 *                              before 7.84.0 only: a header callback
 *                              keeps the last response's Retry-After
 *                              (a no-op returning CURLE_OK otherwise)
 *    vc_compat_retry_after(h)  the last response's Retry-After value, or
 *                              NULL: curl_easy_header from 7.84.0 (where
 *                              the header API stopped being experimental),
 *                              what the callback kept before
 *
 * The fallbacks are built and run by `make test-matrix` on Debian 11
 * (libcurl 7.74).
 */
#ifndef PG_VAULT_COMPAT_CURL_H
#define PG_VAULT_COMPAT_CURL_H

#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#if LIBCURL_VERSION_NUM >= 0x075500
#define vc_compat_protocols(h) \
	curl_easy_setopt((h), CURLOPT_PROTOCOLS_STR, "http,https")
#else
#define vc_compat_protocols(h) \
	curl_easy_setopt((h), CURLOPT_PROTOCOLS, (long) (CURLPROTO_HTTP | CURLPROTO_HTTPS))
#endif

#if LIBCURL_VERSION_NUM >= 0x075400

#define vc_compat_watch_headers(h) CURLE_OK

static inline const char *
vc_compat_retry_after(CURL *h)
{
	struct curl_header *hdr = NULL;

	if (curl_easy_header(h, "Retry-After", 0, CURLH_HEADER, -1, &hdr) != CURLHE_OK ||
		hdr == NULL)
		return NULL;
	return hdr->value;
}

#else

/*
 * Enough for any number of seconds http.c accepts (it caps them); an
 * HTTP-date, which http.c does not take either, is cut short.
 */
static char vc_compat_retry_after_value[24];

/* One header line at a time; a status line starts a new response. */
static inline size_t
vc_compat_header_callback(char *buf, size_t size, size_t nitems, void *userdata)
{
	static const char name[] = "retry-after:";
	size_t		len = size * nitems;
	const char *end = buf + len;
	size_t		n = 0;

	if (len >= 5 && strncmp(buf, "HTTP/", 5) == 0)
		vc_compat_retry_after_value[0] = '\0';
	else if (len >= sizeof(name) - 1 && strncasecmp(buf, name, sizeof(name) - 1) == 0)
	{
		buf += sizeof(name) - 1;
		while (buf < end && (*buf == ' ' || *buf == '\t'))
			buf++;
		while (buf < end && *buf != '\r' && *buf != '\n' &&
			   n < sizeof(vc_compat_retry_after_value) - 1)
			vc_compat_retry_after_value[n++] = *buf++;
		vc_compat_retry_after_value[n] = '\0';
	}
	return len;
}

#define vc_compat_watch_headers(h) \
	curl_easy_setopt((h), CURLOPT_HEADERFUNCTION, vc_compat_header_callback)

static inline const char *
vc_compat_retry_after(CURL *h)
{
	(void) h;
	return vc_compat_retry_after_value[0] != '\0' ? vc_compat_retry_after_value : NULL;
}

#endif

#endif							/* PG_VAULT_COMPAT_CURL_H */
