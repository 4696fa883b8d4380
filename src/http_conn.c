/*
 * http_conn.c
 *    The connections of the extension's HTTP client for Vault, and its
 *    settings (vault.addr, TLS, time limits, retries, breaker, response
 *    size).
 *
 *    One curl easy handle per connection, created on first use in a
 *    long-lived memory context and kept for the life of the backend, so the
 *    TCP (and TLS) connection to Vault is reused across calls and
 *    transactions: vault_http_conns[0] carries one request at a time, the
 *    others a parallel round's (http_many.c).  TLS and time-limit settings
 *    are applied to a handle when they changed since its last request.  The
 *    header lists are built once and rebuilt only when the token, namespace
 *    or identity headers change; lists that held a token are wiped when
 *    freed.  vault.addr is split into its "<addr>/v1/" bases when it
 *    changes, each with the key its circuit breaker is kept under (stat.c).
 *
 *    The callbacks given to curl here fill the response buffer (on malloc,
 *    grown by copy and wipe, capped at vault.max_response_size) and abort
 *    a transfer when a cancel or backend termination is pending; neither
 *    ereports.  Calls go one way: http_many.c -> http.c -> http_conn.c,
 *    which share http.h.
 */
#include "postgres.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "pg_vault.h"
#include "http.h"
#include "common/compat_curl.h"
#include "common/vault_common.h"

/*---- GUC variables ----*/

static char *vault_addr = NULL;
static char *vault_namespace = NULL;
static char *vault_ca_file = NULL;
static bool vault_tls_skip_verify = false;
static int	vault_connect_timeout_ms = 5000;
static int	vault_timeout_ms = 30000;
int			vault_max_retries = 2;
int			vault_max_response_kb = 64 * 1024;
int			vault_breaker_failures = 5;
int			vault_breaker_cooldown_ms = 5000;

#define VAULT_DEFAULT_ADDR "https://127.0.0.1:8200"

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

HttpConn	vault_http_conns[1 + VAULT_MAX_PARALLEL];

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
create_handle(HttpConn *c)
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
struct curl_slist *
vault_http_headers(const char *token)
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

/*
 * The URL of path at address i: its base, the path and the list flag; valid
 * until the next call (curl copies it).
 */
const char *
vault_http_url(int i, const char *path, VaultMethod method)
{
	resetStringInfo(&url);
	appendStringInfoString(&url, bases[i]);
	appendStringInfoString(&url, path);
	if (method == VAULT_LIST)
		appendStringInfoString(&url, strchr(path, '?') ? "&list=true" : "?list=true");
	return url.data;
}

/* How many addresses vault.addr gives (at least one). */
int
vault_http_addr_count(void)
{
	return nbases;
}

/* The key of address i's circuit breaker (stat.c). */
uint32
vault_http_addr_key(int i)
{
	return base_hash[i];
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
apply_settings(HttpConn *c)
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

/*
 * Short time limits (VAULT_QUICK, at backend exit) for the next request on
 * c, whatever vault.timeout_ms says; the request after it sets the
 * configured ones again.
 */
void
vault_http_quick_timeouts(HttpConn *c)
{
	set_or_fail(curl_easy_setopt(c->h, CURLOPT_CONNECTTIMEOUT_MS,
								 (long) Min(vault_connect_timeout_ms, VAULT_QUICK_TIMEOUT_MS)));
	set_or_fail(curl_easy_setopt(c->h, CURLOPT_TIMEOUT_MS,
								 (long) Min(vault_timeout_ms, VAULT_QUICK_TIMEOUT_MS)));
	c->applied_connect_timeout = -1;
	c->applied_timeout = -1;
}

/* vault_http_conns[i], its handle created and configured for a request. */
HttpConn   *
vault_http_ready_conn(int i)
{
	HttpConn   *c = &vault_http_conns[i];

	if (c->h == NULL)
		create_handle(c);
	prepare_bases();
	apply_settings(c);
	return c;
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
