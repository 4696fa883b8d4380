/*
 * http.c
 *    The extension's HTTP client for Vault: the only file that includes
 *    curl.
 *
 *    One curl easy handle per backend, created on first use in a long-lived
 *    memory context and kept for the life of the backend, so the TCP (and
 *    TLS) connection to Vault is reused across calls and transactions.
 *    libcurl notices a connection that Vault closed and makes a new one;
 *    a failure that still surfaces is retried here.  The header lists are
 *    built once and rebuilt only when the token or namespace changes.
 *
 *    Retries follow Vault's Go client: connection errors, 412, 429 and 5xx
 *    except 501, with capped, jittered exponential backoff that honours
 *    Retry-After, at most vault.max_retries times.  A request whose repeat
 *    would repeat its effect (key rotation, KV writes) is retried only where
 *    Vault cannot have acted on it: refused connections, 412, 429, 503 and
 *    a 500 from a node that is not active.
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
 *    A parallel round (vault_http_perform_many, for the batch forms) sends
 *    up to vault.batch_parallel requests at once through a libcurl multi
 *    handle, one more easy handle each, whose connections the multi handle
 *    keeps alive between rounds.  Their first attempts go to the first
 *    address whose breaker is closed; one that fails in a way worth
 *    retrying goes through the same retry and failover loop as a single
 *    request, on its own.  The multi loop raises no error: a pending cancel
 *    aborts the transfers through the progress callback, and is acted on
 *    once every handle is out of the multi handle.
 *
 *    While it waits on Vault (a request, a login, a backoff) a backend
 *    reports a wait event (custom ones from PostgreSQL 17, "Extension"
 *    before), and every exchange is counted in vault_stat.
 *
 *    Cancellation: the transfer-progress callback aborts the transfer when
 *    a query cancel or backend termination is pending; once curl has
 *    returned and the request state is tidy, CHECK_FOR_INTERRUPTS raises
 *    the error.  PostgreSQL's signals interrupt curl's poll(), so a cancel
 *    or statement_timeout stops a call in flight promptly.
 *
 *    Nothing in here ereports from inside a curl callback, and nothing
 *    allocated by curl is left behind by an error raised afterwards: the
 *    handle and header lists are permanent, and per-request state is only
 *    the caller's memory.
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
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "pg_vault.h"
#include "common/compat_curl.h"
#include "common/vault_client.h"
#include "common/vault_common.h"

/*---- GUC variables ----*/

static char *vault_addr = NULL;
static char *vault_namespace = NULL;
static char *vault_ca_file = NULL;
static bool vault_tls_skip_verify = false;
static int	vault_connect_timeout_ms = 5000;
static int	vault_timeout_ms = 30000;
static int	vault_max_retries = 2;
static int	vault_max_response_kb = 64 * 1024;
static int	vault_breaker_failures = 5;
static int	vault_breaker_cooldown_ms = 5000;

#define VAULT_DEFAULT_ADDR "https://127.0.0.1:8200"

/* A response buffer larger than this is given back after the request. */
#define RESPONSE_KEEP_BYTES	(4 * 1024 * 1024)

/*---- per-backend state ----*/

static MemoryContext HttpContext = NULL;

/* Header lists and what they were built from (malloc'd copies). */
static struct curl_slist *headers_noauth = NULL;
static struct curl_slist *headers_auth = NULL;
static char *headers_namespace = NULL;
static char *headers_token = NULL;
static char *headers_identity = NULL;

/* The addresses of vault.addr ("<addr>/v1/" each) and the setting they
 * were made from; url is the one being requested. */
#define MAX_ADDRS 8
static char *url_addr = NULL;
static char *bases[MAX_ADDRS];
static uint32 base_hash[MAX_ADDRS];
static int	nbases = 0;
static StringInfoData url;

static bool skip_verify_warned = false;

/*
 * The response body, on malloc (curl callbacks must not palloc), grown and
 * shrunk by copying and wiping, never realloc: it holds plaintexts, tokens
 * and KV values.
 */
typedef struct ResponseBuffer
{
	char	   *data;
	size_t		len;
	size_t		cap;
	size_t		limit;
	bool		too_large;
	bool		no_memory;
} ResponseBuffer;

/*
 * A handle, its response buffer and the TLS and timeout settings applied to
 * it.  conns[0] carries one request at a time; conns[1..] the requests of a
 * parallel round (vault_http_perform_many), each on its own connection, kept
 * in the multi handle's connection cache between rounds.
 */
typedef struct Conn
{
	CURL	   *h;
	ResponseBuffer rb;
	char	   *applied_ca_file;
	int			applied_skip_verify;
	int			applied_connect_timeout;
	int			applied_timeout;
} Conn;

static Conn conns[1 + VAULT_MAX_PARALLEL];
static CURLM *multi = NULL;

static void
wipe_free_slist(struct curl_slist *list)
{
	struct curl_slist *s;

	for (s = list; s != NULL; s = s->next)
		explicit_bzero(s->data, strlen(s->data));
	curl_slist_free_all(list);
}

static void
wipe_free_string(char *s)
{
	if (s != NULL)
	{
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

static size_t
write_callback(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	ResponseBuffer *rb = (ResponseBuffer *) userdata;
	size_t		n = size * nmemb;

	if (rb->len + n > rb->limit)
	{
		rb->too_large = true;
		return 0;
	}
	/* grows by copy and wipe: plaintexts and tokens stay out of freed memory */
	if (!vc_secure_append(&rb->data, &rb->len, &rb->cap, 4096, ptr, n))
	{
		rb->no_memory = true;
		return 0;
	}
	return n;
}

/*
 * Aborts the transfer when PostgreSQL wants to cancel the query or end the
 * backend, unless interrupts are held off (then CHECK_FOR_INTERRUPTS would
 * not act on them either).
 */
static int
xferinfo_callback(void *clientp, curl_off_t dltotal, curl_off_t dlnow,
				  curl_off_t ultotal, curl_off_t ulnow)
{
	if (InterruptHoldoffCount != 0 || CritSectionCount != 0)
		return 0;
	if (ProcDiePending || (QueryCancelPending && QueryCancelHoldoffCount == 0))
		return 1;
	return 0;
}

static void
set_or_fail(CURLcode rc)
{
	if (rc != CURLE_OK)
		ereport(ERROR,
				(errcode(ERRCODE_EXTERNAL_ROUTINE_INVOCATION_EXCEPTION),
				 errmsg("could not configure libcurl: %s",
						curl_easy_strerror(rc))));
}

static void
create_handle(Conn *c)
{
	static bool global_done = false;
	CURL	   *h;

	if (!global_done)
	{
		/*
		 * libcurl's request buffer holds the token and the body (base64
		 * plaintexts), its receive buffer Vault's answers: freed memory of
		 * its is wiped.  A no-op for the callbacks if another library in
		 * this process initialised libcurl first.
		 */
		if (curl_global_init_mem(CURL_GLOBAL_ALL, malloc, vc_wiping_free,
								 vc_wiping_realloc, strdup, calloc) != CURLE_OK)
			ereport(ERROR,
					(errcode(ERRCODE_EXTERNAL_ROUTINE_INVOCATION_EXCEPTION),
					 errmsg("could not initialize libcurl")));
		global_done = true;
	}
	if (HttpContext == NULL)
	{
		MemoryContext old;

		HttpContext = AllocSetContextCreate(TopMemoryContext,
											"pg_vault HTTP client",
											ALLOCSET_SMALL_SIZES);
		old = MemoryContextSwitchTo(HttpContext);
		initStringInfo(&url);
		MemoryContextSwitchTo(old);
	}

	h = curl_easy_init();
	if (h == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_EXTERNAL_ROUTINE_INVOCATION_EXCEPTION),
				 errmsg("could not create a libcurl handle")));

	PG_TRY();
	{
		set_or_fail(curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L));
		set_or_fail(vc_compat_protocols(h));
		set_or_fail(vc_compat_watch_headers(h));
		set_or_fail(curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L));
		set_or_fail(curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L));
		set_or_fail(curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L));
		set_or_fail(curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_callback));
		set_or_fail(curl_easy_setopt(h, CURLOPT_WRITEDATA, &c->rb));
		set_or_fail(curl_easy_setopt(h, CURLOPT_PRIVATE, c));
		set_or_fail(curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, xferinfo_callback));
		set_or_fail(curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L));
		set_or_fail(curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L));
		set_or_fail(curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L));
		set_or_fail(curl_easy_setopt(h, CURLOPT_USERAGENT, "pg_vault/0.1"));
		set_or_fail(curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, NULL));
	}
	PG_CATCH();
	{
		curl_easy_cleanup(h);
		PG_RE_THROW();
	}
	PG_END_TRY();

	c->h = h;
	c->applied_skip_verify = -1;
	c->applied_connect_timeout = -1;
	c->applied_timeout = -1;
	if (c->applied_ca_file)
	{
		free(c->applied_ca_file);
		c->applied_ca_file = NULL;
	}
}

static struct curl_slist *
append_or_fail(struct curl_slist *list, const char *line)
{
	struct curl_slist *n = curl_slist_append(list, line);

	if (n == NULL)
	{
		wipe_free_slist(list);
		return NULL;
	}
	return n;
}

/*
 * Builds the common headers into a new list.  Returns NULL on out of
 * memory, having freed what it built.
 */
static struct curl_slist *
base_headers(const char *ns, const char *identity)
{
	struct curl_slist *list = NULL;
	const char *p = identity;

	list = append_or_fail(list, "X-Vault-Request: true");
	if (list)
		list = append_or_fail(list, "Content-Type: application/json");
	/* no "Expect: 100-continue" round trip before large batch bodies */
	if (list)
		list = append_or_fail(list, "Expect:");
	if (list && ns != NULL && ns[0] != '\0')
	{
		char	   *line = psprintf("X-Vault-Namespace: %s", ns);

		list = append_or_fail(list, line);
		pfree(line);
	}
	/* the caller's database identity, a header a line */
	while (list && p && *p)
	{
		const char *nl = strchr(p, '\n');
		size_t		len = nl ? (size_t) (nl - p) : strlen(p);
		char	   *line = pnstrdup(p, len);

		list = append_or_fail(list, line);
		pfree(line);
		p = nl ? nl + 1 : p + len;
	}
	return list;
}

pg_noreturn static void out_of_memory(void);

static void
out_of_memory(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_OUT_OF_MEMORY),
			 errmsg("out of memory building Vault request headers")));
}

/* Returns the header list for this request, rebuilding it if stale. */
static struct curl_slist *
current_headers(const char *token)
{
	const char *ns = vault_namespace ? vault_namespace : "";
	const char *identity = vault_identity_headers();

	if (headers_noauth == NULL || headers_namespace == NULL ||
		strcmp(headers_namespace, ns) != 0 || headers_identity == NULL ||
		strcmp(headers_identity, identity) != 0)
	{
		struct curl_slist *list;
		char	   *nscopy;
		char	   *idcopy;

		wipe_free_slist(headers_auth);
		headers_auth = NULL;
		wipe_free_string(headers_token);
		headers_token = NULL;
		curl_slist_free_all(headers_noauth);
		headers_noauth = NULL;
		free(headers_namespace);
		headers_namespace = NULL;
		free(headers_identity);
		headers_identity = NULL;

		nscopy = strdup(ns);
		idcopy = strdup(identity);
		if (nscopy == NULL || idcopy == NULL)
		{
			free(nscopy);
			free(idcopy);
			out_of_memory();
		}
		list = base_headers(ns, identity);
		if (list == NULL)
		{
			free(nscopy);
			free(idcopy);
			out_of_memory();
		}
		headers_noauth = list;
		headers_namespace = nscopy;
		headers_identity = idcopy;
	}

	if (token == NULL)
		return headers_noauth;

	if (headers_auth == NULL || headers_token == NULL ||
		strcmp(headers_token, token) != 0)
	{
		struct curl_slist *list;
		char	   *tokcopy;
		StringInfoData line;

		wipe_free_slist(headers_auth);
		headers_auth = NULL;
		wipe_free_string(headers_token);
		headers_token = NULL;

		tokcopy = strdup(token);
		if (tokcopy == NULL)
			out_of_memory();
		list = base_headers(ns, identity);
		if (list != NULL)
		{
			initStringInfo(&line);
			appendStringInfo(&line, "X-Vault-Token: %s", token);
			list = append_or_fail(list, line.data);
			explicit_bzero(line.data, line.len);
			pfree(line.data);
		}
		if (list == NULL)
		{
			wipe_free_string(tokcopy);
			out_of_memory();
		}
		headers_auth = list;
		headers_token = tokcopy;
	}
	return headers_auth;
}

static uint32
fnv1a(const char *s)
{
	uint32		h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (unsigned char) *s) * 16777619u;
	return h ? h : 1;
}

/* Splits vault.addr into "<addr>/v1/" bases when it changed. */
static void
prepare_bases(void)
{
	const char *addr = (vault_addr && vault_addr[0]) ? vault_addr : VAULT_DEFAULT_ADDR;
	const char *p;

	if (url_addr != NULL && strcmp(url_addr, addr) == 0)
		return;
	for (int i = 0; i < nbases; i++)
		pfree(bases[i]);
	nbases = 0;
	if (url_addr)
		pfree(url_addr);
	url_addr = NULL;

	for (p = addr; *p && nbases < MAX_ADDRS;)
	{
		const char *end = strchr(p, ',');
		size_t		len = end ? (size_t) (end - p) : strlen(p);
		StringInfoData b;

		while (len > 0 && (*p == ' ' || *p == '\t'))
			p++, len--;
		while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t' || p[len - 1] == '/'))
			len--;
		if (len > 0)
		{
			initStringInfo(&b);
			appendBinaryStringInfo(&b, p, len);
			appendStringInfoString(&b, "/v1/");
			bases[nbases] = MemoryContextStrdup(HttpContext, b.data);
			base_hash[nbases] = fnv1a(bases[nbases]);
			nbases++;
			pfree(b.data);
		}
		p = end ? end + 1 : p + len;
	}
	if (nbases == 0)
	{
		bases[0] = MemoryContextStrdup(HttpContext, "/v1/");	/* refused as malformed */
		base_hash[0] = fnv1a(bases[0]);
		nbases = 1;
	}
	url_addr = MemoryContextStrdup(HttpContext, addr);
}

/* Leaves url holding base i, the path and the list flag. */
static void
prepare_url(int i, const char *path, VaultMethod method)
{
	resetStringInfo(&url);
	appendStringInfoString(&url, bases[i]);
	appendStringInfoString(&url, path);
	if (method == VAULT_LIST)
		appendStringInfoString(&url, strchr(path, '?') ? "&list=true" : "?list=true");
}

static bool
any_https(void)
{
	for (int i = 0; i < nbases; i++)
		if (pg_strncasecmp(bases[i], "https:", 6) == 0)
			return true;
	return false;
}

/* Applies TLS and timeout settings that changed since the last request. */
static void
apply_settings(Conn *c)
{
	const char *ca = vault_ca_file ? vault_ca_file : "";

	if (c->applied_ca_file == NULL || strcmp(c->applied_ca_file, ca) != 0)
	{
		char	   *copy = strdup(ca);

		if (copy == NULL)
			out_of_memory();
		set_or_fail(curl_easy_setopt(c->h, CURLOPT_CAINFO,
									 ca[0] ? ca : NULL));
		free(c->applied_ca_file);
		c->applied_ca_file = copy;
	}
	if (c->applied_skip_verify != (int) vault_tls_skip_verify)
	{
		long		on = vault_tls_skip_verify ? 0L : 1L;

		set_or_fail(curl_easy_setopt(c->h, CURLOPT_SSL_VERIFYPEER, on));
		set_or_fail(curl_easy_setopt(c->h, CURLOPT_SSL_VERIFYHOST, on ? 2L : 0L));
		c->applied_skip_verify = (int) vault_tls_skip_verify;
	}
	if (vault_tls_skip_verify && !skip_verify_warned && any_https())
	{
		ereport(WARNING,
				(errmsg("TLS certificate verification of the Vault server is disabled"),
				 errdetail("vault.tls_skip_verify is on: anyone on the network path can impersonate Vault."),
				 errhint("Set vault.ca_file to the CA that signed the Vault certificate and turn vault.tls_skip_verify off.")));
		skip_verify_warned = true;
	}
	if (c->applied_connect_timeout != vault_connect_timeout_ms)
	{
		set_or_fail(curl_easy_setopt(c->h, CURLOPT_CONNECTTIMEOUT_MS,
									 (long) vault_connect_timeout_ms));
		c->applied_connect_timeout = vault_connect_timeout_ms;
	}
	if (c->applied_timeout != vault_timeout_ms)
	{
		set_or_fail(curl_easy_setopt(c->h, CURLOPT_TIMEOUT_MS,
									 (long) vault_timeout_ms));
		c->applied_timeout = vault_timeout_ms;
	}
}

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
typedef enum
{
	WAIT_REQUEST,
	WAIT_LOGIN,
	WAIT_BACKOFF
} WaitKind;

static uint32
wait_event(WaitKind k)
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
static void
setup_transfer(Conn *c, VaultResult *res, VaultMethod method, const char *body,
			   size_t bodylen, struct curl_slist *headers)
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
	curl_easy_setopt(h, CURLOPT_URL, url.data);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, res->errbuf);
	res->errbuf[0] = '\0';
}

/* Fills res from a finished transfer and unhooks the caller's memory. */
static void
finish_transfer(Conn *c, VaultResult *res, CURLcode rc)
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
perform_once(Conn *c, VaultResult *res, VaultMethod method, const char *body,
			 size_t bodylen, struct curl_slist *headers, WaitKind wk)
{
	CURLcode	rc;

	setup_transfer(c, res, method, body, bodylen, headers);
	pgstat_report_wait_start(wait_event(wk));
	rc = curl_easy_perform(c->h);
	pgstat_report_wait_end();
	finish_transfer(c, res, rc);
}

/* Whether to try again: src/common/vault_client.c's rules, as the app's. */
static bool
should_retry(const VaultResult *res, int flags)
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
retry_after_ms(Conn *c)
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
						 left, wait_event(WAIT_BACKOFF));
		ResetLatch(MyLatch);
	}
}

/* A failure of the connection itself, which the breaker counts. */
static bool
transport_failure(const VaultResult *res)
{
	return res->transport == VT_CONNECT || res->transport == VT_TIMEOUT ||
		res->transport == VT_LOST || res->transport == VT_TLS;
}

/* Gives a large response buffer back; res->body moves with the data. */
static void
shrink_response(Conn *c, VaultResult *res)
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
static void
exchange(Conn *c, VaultResult *res, VaultMethod method, const char *path,
		 const char *body, size_t bodylen, struct curl_slist *headers,
		 int flags, int attempt, int sent, TimestampTz start)
{
	int64		bytes_sent = (int64) bodylen * sent;
	VaultStatKind kind = VAULT_KIND_OF(flags);
	WaitKind	wk = kind == VS_LOGIN ? WAIT_LOGIN : WAIT_REQUEST;

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
		for (int i = 0; i < nbases; i++)
		{
			if (!vault_breaker_allows(base_hash[i], now))
				continue;
			prepare_url(i, path, method);
			perform_once(c, res, method, body, bodylen, headers, wk);
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
			vault_breaker_record(base_hash[i], transport_failure(res),
								 vault_breaker_failures, vault_breaker_cooldown_ms);
			again = should_retry(res, flags);
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
	shrink_response(c, res);
}

/* The handle of conns[i], created and configured for the next request. */
static Conn *
ready_conn(int i)
{
	Conn	   *c = &conns[i];

	if (c->h == NULL)
		create_handle(c);
	prepare_bases();
	apply_settings(c);
	return c;
}

void
vault_http_perform(VaultResult *res, VaultMethod method, const char *path,
				   const char *body, size_t bodylen, const char *token,
				   int flags)
{
	Conn	   *c = ready_conn(0);

	if (flags & VAULT_QUICK)
	{
		set_or_fail(curl_easy_setopt(c->h, CURLOPT_CONNECTTIMEOUT_MS,
									 (long) Min(vault_connect_timeout_ms, VAULT_QUICK_TIMEOUT_MS)));
		set_or_fail(curl_easy_setopt(c->h, CURLOPT_TIMEOUT_MS,
									 (long) Min(vault_timeout_ms, VAULT_QUICK_TIMEOUT_MS)));
		/* the next request sets the configured ones again */
		c->applied_connect_timeout = -1;
		c->applied_timeout = -1;
	}
	exchange(c, res, method, path, body, bodylen, current_headers(token),
			 flags, 0, 0, GetCurrentTimestamp());
}

/*
 * The first attempt of each request marked in redo, all at once: one
 * connection each, on the first address whose breaker lets them through.
 * Requests whose attempt failed in a way worth retrying then go through
 * exchange(), one after another, with the retries and failover a single
 * request gets.
 */
void
vault_http_perform_many(VaultResult *res, int n, const bool *redo,
						VaultMethod method, const char *path,
						const char *const *bodies, const size_t *lens,
						const int64 *rows, const char *token, int flags)
{
	struct curl_slist *headers;
	TimestampTz start = GetCurrentTimestamp();
	VaultStatKind kind = VAULT_KIND_OF(flags);
	int			base = -1;
	int			running = 0;
	bool		added[VAULT_MAX_PARALLEL];
	CURLMsg    *msg;
	int			left;

	Assert(n >= 1 && n <= VAULT_MAX_PARALLEL);
	for (int i = 0; i < n; i++)
	{
		added[i] = false;
		if (redo == NULL || redo[i])
			(void) ready_conn(1 + i);
	}
	headers = current_headers(token);
	if (multi == NULL)
	{
		multi = curl_multi_init();
		if (multi == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_EXTERNAL_ROUTINE_INVOCATION_EXCEPTION),
					 errmsg("could not create a libcurl multi handle")));
	}

	for (int i = 0; i < nbases && base < 0; i++)
		if (vault_breaker_allows(base_hash[i], start))
			base = i;

	/* From here to the end of the round nothing raises an error. */
	if (base >= 0)
	{
		prepare_url(base, path, method);
		for (int i = 0; i < n; i++)
		{
			Conn	   *c = &conns[1 + i];

			if (redo != NULL && !redo[i])
				continue;
			setup_transfer(c, &res[i], method, bodies[i], lens[i], headers);
			if (curl_multi_add_handle(multi, c->h) == CURLM_OK)
				added[i] = true;
			else
				finish_transfer(c, &res[i], CURLE_OUT_OF_MEMORY);
		}
		pgstat_report_wait_start(wait_event(WAIT_REQUEST));
		for (;;)
		{
			/* a pending cancel aborts the transfers through xferinfo_callback */
			if (curl_multi_perform(multi, &running) != CURLM_OK || running == 0)
				break;
			(void) curl_multi_poll(multi, NULL, 0, 1000, NULL);
		}
		pgstat_report_wait_end();
		while ((msg = curl_multi_info_read(multi, &left)) != NULL)
		{
			Conn	   *c = NULL;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &c);
			if (c == NULL || c < &conns[1] || c > &conns[n])
				continue;
			finish_transfer(c, &res[c - &conns[1]], msg->data.result);
			curl_multi_remove_handle(multi, c->h);
			added[c - &conns[1]] = false;
		}
		/* a transfer the multi handle did not report (a failed perform) */
		for (int i = 0; i < n; i++)
			if (added[i])
			{
				curl_multi_remove_handle(multi, conns[1 + i].h);
				finish_transfer(&conns[1 + i], &res[i], CURLE_SEND_ERROR);
			}
	}

	for (int i = 0; i < n; i++)
	{
		Conn	   *c = &conns[1 + i];

		if (redo != NULL && !redo[i])
			continue;
		if (base < 0)
		{
			/* every breaker open: exchange() reports it */
			if (rows)
				vault_stat_set_rows(rows[i]);
			exchange(c, &res[i], method, path, bodies[i], lens[i], headers,
					 flags, 0, 0, start);
			continue;
		}
		if (res[i].transport == VT_CANCELED)
		{
			vault_stat_exchange(kind, false, 0, (int64) lens[i], res[i].len,
								(double) (GetCurrentTimestamp() - start) / 1000.0);
			continue;
		}
		vault_breaker_record(base_hash[base], transport_failure(&res[i]),
							 vault_breaker_failures, vault_breaker_cooldown_ms);
		if (rows)
			vault_stat_set_rows(rows[i]);
		if (should_retry(&res[i], flags))
			exchange(c, &res[i], method, path, bodies[i], lens[i], headers,
					 flags, 1, 1, start);
		else
		{
			vault_stat_exchange(kind, res[i].transport == VT_OK && res[i].status < 400,
								0, (int64) lens[i], res[i].len,
								(double) (GetCurrentTimestamp() - start) / 1000.0);
			shrink_response(c, &res[i]);
		}
	}
	CHECK_FOR_INTERRUPTS();
}

/* Wipes the last response (a login's, holding a token) from memory. */
void
vault_http_wipe_response(void)
{
	ResponseBuffer *rb = &conns[0].rb;

	if (rb->data != NULL)
		explicit_bzero(rb->data, rb->len);
	rb->len = 0;
}

/* Wipes the responses of the last parallel round (plaintexts) from memory. */
void
vault_http_wipe_many(void)
{
	for (int i = 1; i <= VAULT_MAX_PARALLEL; i++)
	{
		ResponseBuffer *rb = &conns[i].rb;

		if (rb->data != NULL)
			explicit_bzero(rb->data, rb->len);
		rb->len = 0;
	}
}

void
vault_http_init(void)
{
	const char *env_addr = getenv("VAULT_ADDR");

	DefineCustomStringVariable("vault.addr",
							   gettext_noop("Addresses of the Vault servers, comma-separated, tried in order, such as https://vault.example.com:8200."),
							   gettext_noop("Defaults to the server's VAULT_ADDR environment variable, else " VAULT_DEFAULT_ADDR "."),
							   &vault_addr,
							   (env_addr && env_addr[0]) ? env_addr : VAULT_DEFAULT_ADDR,
							   PGC_SUSET, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("vault.namespace",
							   gettext_noop("Vault Enterprise namespace sent as X-Vault-Namespace; empty sends none."),
							   NULL,
							   &vault_namespace, "",
							   PGC_SUSET, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("vault.ca_file",
							   gettext_noop("PEM file of the CA certificates that verify the Vault server; empty uses the system store."),
							   NULL,
							   &vault_ca_file, "",
							   PGC_SUSET, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);
	DefineCustomBoolVariable("vault.tls_skip_verify",
							 gettext_noop("Skips verification of the Vault server's TLS certificate (insecure, development only)."),
							 NULL,
							 &vault_tls_skip_verify, false,
							 PGC_SUSET, GUC_SUPERUSER_ONLY,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("vault.connect_timeout_ms",
							gettext_noop("Time allowed to connect to Vault."),
							NULL,
							&vault_connect_timeout_ms, 5000, 1, 600000,
							PGC_USERSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("vault.timeout_ms",
							gettext_noop("Time allowed for one Vault request, connection included."),
							NULL,
							&vault_timeout_ms, 30000, 1, 3600000,
							PGC_USERSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("vault.max_retries",
							gettext_noop("Retries of a Vault request after a connection error, 412, 429 or 5xx other than 501."),
							NULL,
							&vault_max_retries, 2, 0, 10,
							PGC_USERSET, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("vault.breaker_failures",
							gettext_noop("Consecutive transport failures that open an address's circuit breaker; 0 never opens it."),
							NULL,
							&vault_breaker_failures, 5, 0, 1000,
							PGC_SUSET, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("vault.breaker_cooldown_ms",
							gettext_noop("How long an open circuit breaker sends no request to its address."),
							NULL,
							&vault_breaker_cooldown_ms, 5000, 1, 3600000,
							PGC_SUSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("vault.max_response_size",
							gettext_noop("Largest Vault response accepted."),
							NULL,
							&vault_max_response_kb, 64 * 1024, 64, 512 * 1024,
							PGC_SUSET, GUC_UNIT_KB,
							NULL, NULL, NULL);
}
