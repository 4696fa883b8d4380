/*
 * http.c
 *    The extension's HTTP client for Vault: one exchange, with its retries
 *    and failover, on a connection of http_conn.c.
 *
 *    libcurl notices a connection that Vault closed and makes a new one; a
 *    failure that still surfaces is retried here.  Retries follow Vault's
 *    Go client: connection errors, 412, 429 and 5xx except 501, with
 *    capped, jittered exponential backoff that honours Retry-After, at most
 *    vault.max_retries times.  A request whose repeat would repeat its
 *    effect (key rotation, KV writes) is retried only where Vault cannot
 *    have acted on it: refused connections, 412, 429, 503 and a 500 from a
 *    node that is not active.
 *
 *    vault.addr may list several addresses, comma-separated: a request goes
 *    to the first whose circuit breaker lets it through, and fails over to
 *    the next on whatever it would retry (connection errors, 412, 429, 5xx
 *    as above, sealed and standby answers).  A breaker per address (stat.c
 *    keeps them, cluster-wide when preloaded) opens after
 *    vault.breaker_failures consecutive transport failures: requests then
 *    skip that address for vault.breaker_cooldown_ms, after which one goes
 *    through as a probe, and its success closes the breaker, so requests
 *    return to the first address once it recovers.  With every breaker
 *    open a request fails at once (58V01).
 *
 *    While it waits on Vault (a request, a login, a backoff) a backend
 *    reports a wait event (custom ones from PostgreSQL 17, "Extension"
 *    before), and every exchange is counted in vault_stat.
 *
 *    Cancellation: the transfer-progress callback (http_conn.c) aborts the
 *    transfer when a query cancel or backend termination is pending; once
 *    curl has returned and the request state is tidy, CHECK_FOR_INTERRUPTS
 *    raises the error.  PostgreSQL's signals interrupt curl's poll(), so a
 *    cancel or statement_timeout stops a call in flight promptly.
 *
 *    Nothing allocated by curl is left behind by an error raised after an
 *    exchange: the handles and header lists are permanent, and per-request
 *    state is only the caller's memory.
 */
#include "postgres.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#if PG_VERSION_NUM >= 150000
#include "common/pg_prng.h"
#endif
#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/timestamp.h"

#include "pg_vault.h"
#include "http.h"
#include "common/compat_curl.h"
#include "common/vault_client.h"

/* A response buffer larger than this is given back after the request. */
#define RESPONSE_KEEP_BYTES	(4 * 1024 * 1024)

static VaultTransport
classify(CURLcode rc)
{
	switch (rc)
	{
		case CURLE_COULDNT_RESOLVE_HOST:
		case CURLE_COULDNT_RESOLVE_PROXY:
		case CURLE_COULDNT_CONNECT:
			return VT_CONNECT;
		case CURLE_OPERATION_TIMEDOUT:
			return VT_TIMEOUT;
		case CURLE_SEND_ERROR:
		case CURLE_RECV_ERROR:
		case CURLE_GOT_NOTHING:
		case CURLE_PARTIAL_FILE:
		case CURLE_HTTP2:
		case CURLE_HTTP2_STREAM:
			return VT_LOST;
		case CURLE_SSL_CONNECT_ERROR:
		case CURLE_PEER_FAILED_VERIFICATION:
		case CURLE_SSL_CACERT_BADFILE:
		case CURLE_SSL_CERTPROBLEM:
		case CURLE_SSL_CIPHER:
		case CURLE_SSL_ISSUER_ERROR:
		case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
		case CURLE_SSL_CRL_BADFILE:
		case CURLE_SSL_ENGINE_NOTFOUND:
		case CURLE_SSL_ENGINE_SETFAILED:
		case CURLE_SSL_ENGINE_INITFAILED:
		case CURLE_USE_SSL_FAILED:
			return VT_TLS;
		case CURLE_URL_MALFORMAT:
		case CURLE_UNSUPPORTED_PROTOCOL:
		case CURLE_BAD_FUNCTION_ARGUMENT:
		case CURLE_NOT_BUILT_IN:
			return VT_CONFIG;
		case CURLE_ABORTED_BY_CALLBACK:
			return VT_CANCELED;
		default:
			return VT_OTHER;
	}
}

/* The wait event of a request, a login or a backoff. */
uint32
vault_http_wait_event(HttpWaitKind k)
{
#if PG_VERSION_NUM >= 170000
	static uint32 ids[3];
	static const char *const names[3] = {"VaultRequest", "VaultLogin", "VaultBackoff"};

	if (ids[k] == 0)
		ids[k] = WaitEventExtensionNew(names[k]);
	return ids[k];
#else
	(void) k;
	return PG_WAIT_EXTENSION;
#endif
}

/* Points the handle at a request: its method, body, url and headers. */
void
vault_http_setup_transfer(HttpConn *c, VaultResult *res, VaultMethod method,
						  const char *url, const char *body, size_t bodylen,
						  struct curl_slist *headers)
{
	CURL	   *h = c->h;

	c->rb.len = 0;
	c->rb.too_large = false;
	c->rb.no_memory = false;
	c->rb.limit = (size_t) vault_max_response_kb * 1024;

	switch (method)
	{
		case VAULT_GET:
		case VAULT_LIST:
			curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
			curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, NULL);
			break;
		case VAULT_DELETE:
			curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
			curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "DELETE");
			break;
		case VAULT_POST:
		case VAULT_PUT:
			curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) bodylen);
			curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
			curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST,
							 method == VAULT_PUT ? "PUT" : NULL);
			break;
	}
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, res->errbuf);
	res->errbuf[0] = '\0';
}

/* Fills res from a finished transfer and unhooks the caller's memory. */
void
vault_http_finish_transfer(HttpConn *c, VaultResult *res, CURLcode rc)
{
	ResponseBuffer *rb = &c->rb;

	/* The request body is the caller's memory: do not leave it pointed to. */
	curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, NULL);
	curl_easy_setopt(c->h, CURLOPT_ERRORBUFFER, NULL);

	if (rb->data != NULL)
		rb->data[rb->len] = '\0';
	res->body = rb->data ? rb->data : "";
	res->len = rb->len;
	res->status = 0;

	if (rc == CURLE_OK)
	{
		long		status = 0;

		curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &status);
		res->transport = VT_OK;
		res->status = status;
		return;
	}

	if (rc == CURLE_WRITE_ERROR && rb->too_large)
		res->transport = VT_TOO_LARGE;
	else if (rc == CURLE_WRITE_ERROR && rb->no_memory)
	{
		res->transport = VT_OTHER;
		strlcpy(res->errbuf, "out of memory reading the response", sizeof(res->errbuf));
	}
	else
		res->transport = classify(rc);
	if (res->errbuf[0] == '\0')
		strlcpy(res->errbuf, curl_easy_strerror(rc), sizeof(res->errbuf));
}

/* One exchange, no retries. */
static void
perform_once(HttpConn *c, VaultResult *res, VaultMethod method, const char *url,
			 const char *body, size_t bodylen, struct curl_slist *headers,
			 HttpWaitKind wk)
{
	CURLcode	rc;

	vault_http_setup_transfer(c, res, method, url, body, bodylen, headers);
	pgstat_report_wait_start(vault_http_wait_event(wk));
	rc = curl_easy_perform(c->h);
	pgstat_report_wait_end();
	vault_http_finish_transfer(c, res, rc);
}

/* Whether to try again: src/common/vault_client.c's rules, as the app's. */
bool
vault_http_should_retry(const VaultResult *res, int flags)
{
	VcTransport t;

	if (flags & VAULT_NO_RETRY)
		return false;
	switch (res->transport)
	{
		case VT_OK:
			t = VC_TRANSPORT_OK;
			break;
		case VT_CONNECT:
			t = VC_TRANSPORT_CONNECT;
			break;
		case VT_TIMEOUT:
			t = VC_TRANSPORT_TIMEOUT;
			break;
		case VT_LOST:
			t = VC_TRANSPORT_LOST;
			break;
		default:
			t = VC_TRANSPORT_OTHER;
			break;
	}

	/*
	 * A node that is not (yet) active answers 500 "local node not active but
	 * active cluster node not found": OpenBao on raft says so for a moment
	 * after every unseal or restart, until it has elected itself.
	 */
	return vc_should_retry(t, res->status,
						   res->transport == VT_OK && res->status == 500 &&
						   strstr(res->body, "local node not active") != NULL,
						   (flags & VAULT_RETRY_IDEMPOTENT) != 0);
}

/* Retry-After in milliseconds (Vault sends seconds), or -1. */
static long
retry_after_ms(HttpConn *c)
{
	return vc_retry_after_ms(vc_compat_retry_after(c->h));
}

/* Sleeps interruptibly: a cancel or statement_timeout ends the wait. */
static void
backoff_sleep(int attempt, long retry_after)
{
	long		delay;
	TimestampTz until;

#if PG_VERSION_NUM >= 150000
	delay = vc_backoff_ms(attempt, retry_after, pg_prng_double(&pg_global_prng_state));
#else
	delay = vc_backoff_ms(attempt, retry_after, random() / ((double) MAX_RANDOM_VALUE + 1));
#endif
	until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), delay);
	for (;;)
	{
		long		left;

		CHECK_FOR_INTERRUPTS();
		left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), until);
		if (left <= 0)
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 left, vault_http_wait_event(HTTP_WAIT_BACKOFF));
		ResetLatch(MyLatch);
	}
}

/* A failure of the connection itself, which the breaker counts. */
bool
vault_http_transport_failure(const VaultResult *res)
{
	return res->transport == VT_CONNECT || res->transport == VT_TIMEOUT ||
		res->transport == VT_LOST || res->transport == VT_TLS;
}

/* Gives a large response buffer back; res->body moves with the data. */
void
vault_http_shrink_response(HttpConn *c, VaultResult *res)
{
	ResponseBuffer *rb = &c->rb;
	char	   *small;

	if (rb->cap <= RESPONSE_KEEP_BYTES || rb->len > RESPONSE_KEEP_BYTES / 2)
		return;
	small = malloc(RESPONSE_KEEP_BYTES / 2 + 1);
	if (small == NULL)
		return;
	memcpy(small, rb->data, rb->len);
	small[rb->len] = '\0';
	explicit_bzero(rb->data, rb->cap);
	free(rb->data);
	rb->data = small;
	rb->cap = RESPONSE_KEEP_BYTES / 2 + 1;
	res->body = small;
}

/*
 * An exchange on c with retries and failover.  attempt is the number of
 * attempts already made (a parallel round's, whose failed result res holds);
 * sent and bytes_sent count them.
 */
void
vault_http_exchange(HttpConn *c, VaultResult *res, VaultMethod method,
					const char *path, const char *body, size_t bodylen,
					struct curl_slist *headers, int flags, int attempt,
					int sent, TimestampTz start)
{
	int64		bytes_sent = (int64) bodylen * sent;
	VaultStatKind kind = VAULT_KIND_OF(flags);
	HttpWaitKind wk = kind == VS_LOGIN ? HTTP_WAIT_LOGIN : HTTP_WAIT_REQUEST;

	for (;; attempt++)
	{
		bool		tried = false,
					again = false;
		TimestampTz now;

		if (attempt > 0)
		{
			/* the previous attempt failed in a way worth retrying */
			if (attempt > vault_max_retries)
				break;
			backoff_sleep(attempt - 1, res->transport == VT_OK ? retry_after_ms(c) : -1);
		}

		/* each address in order, failing over on what would be retried */
		now = GetCurrentTimestamp();
		for (int i = 0; i < vault_http_addr_count(); i++)
		{
			if (!vault_breaker_allows(vault_http_addr_key(i), now))
				continue;
			perform_once(c, res, method, vault_http_url(i, path, method),
						 body, bodylen, headers, wk);
			tried = true;
			sent++;
			bytes_sent += (int64) bodylen;
			if (res->transport == VT_CANCELED)
			{
				vault_stat_exchange(kind, false, sent - 1, bytes_sent, res->len,
									(double) (GetCurrentTimestamp() - start) / 1000.0);
				CHECK_FOR_INTERRUPTS();
				/* interrupts were held off after all: report the abort */
				return;
			}
			vault_breaker_record(vault_http_addr_key(i), vault_http_transport_failure(res),
								 vault_breaker_failures, vault_breaker_cooldown_ms);
			again = vault_http_should_retry(res, flags);
			if (!again)
				break;
		}
		if (!tried)
		{
			res->transport = VT_BREAKER;
			res->status = 0;
			res->body = "";
			res->len = 0;
			strlcpy(res->errbuf, "circuit breaker open for every address in vault.addr",
					sizeof(res->errbuf));
			break;
		}
		if (!again)
			break;
	}
	vault_stat_exchange(kind, res->transport == VT_OK && res->status < 400,
						Max(sent - 1, 0), bytes_sent, res->len,
						(double) (GetCurrentTimestamp() - start) / 1000.0);
	vault_http_shrink_response(c, res);
}

void
vault_http_perform(VaultResult *res, VaultMethod method, const char *path,
				   const char *body, size_t bodylen, const char *token,
				   int flags)
{
	HttpConn   *c = vault_http_ready_conn(0);

	if (flags & VAULT_QUICK)
		vault_http_quick_timeouts(c);
	vault_http_exchange(c, res, method, path, body, bodylen,
						vault_http_headers(token), flags, 0, 0,
						GetCurrentTimestamp());
}

/* Wipes the last response (a login's, holding a token) from memory. */
void
vault_http_wipe_response(void)
{
	ResponseBuffer *rb = &vault_http_conns[0].rb;

	if (rb->data != NULL)
		explicit_bzero(rb->data, rb->len);
	rb->len = 0;
}
