/*
 * faultproxy.c
 *    vault-faultproxy: a small HTTP proxy that sits between the tests and
 *    a real OpenBao (or Vault) server and breaks requests on demand.
 *
 *    The tests of pg_vault and its app need Vault to be slow, to fail, to
 *    hang up, to send a truncated or an oversized answer, at a moment the
 *    test chooses.  A real server does none of that, and teaching a clone
 *    of Vault to do it means keeping a clone of Vault.  So the tests talk
 *    to this proxy instead: it forwards every request unchanged to the
 *    real server, except when a switch set at /_dev/faults says to break
 *    the next requests whose Vault API path starts with a prefix.
 *
 *    usage: vault-faultproxy --listen HOST:PORT --port-file FILE
 *               --upstream URL [--cacert FILE] --control-token-file FILE
 *
 *    PORT 0 picks a free port; the bound port is written to FILE (through a
 *    temporary file and a rename, so a reader never sees half of it).  The
 *    switches need the token in --control-token-file in X-Vault-Token.
 *    SIGTERM or SIGINT stops it with exit status 0.
 *
 *    POST /_dev/faults {...} sets switches (absent ones keep their value),
 *    GET shows them, DELETE clears them.  They apply to requests whose path
 *    after /v1/ starts with path_prefix ("" = every request):
 *      latency_ms       delay each matching request this long
 *      fail_next N      answer the next N with fail_status (default 500),
 *                       fail_body (default {"errors":["fault injected"]})
 *                       and, with retry_after, a Retry-After header; Vault
 *                       never sees them.  fail_body is any text under 16
 *                       KiB: an answer Vault could give (a long error
 *                       message, a real number where an integer belongs)
 *      close_next N     forward, then hang up without an answer (Vault acted)
 *      malformed_next N forward, then send a whole HTTP answer carrying only
 *                       the first half of Vault's JSON
 *      truncated_next N forward, then drop the connection half-way through
 *                       the announced Content-Length
 *      oversize_next N  forward, then answer 200 with a valid JSON object
 *                       of more than 4 MiB
 *      gather N         hold each matching request until N matching
 *                       requests are in the proxy at once (or 10 s pass):
 *                       a request sent only after the previous one was
 *                       answered never gets through sooner, so the tests
 *                       see whether a client really sends requests at once
 *    GET also shows max_inflight, the most matching requests that were in
 *    the proxy at once since the switches were last set or cleared.
 *
 *    Each client connection gets its own thread (so a latency switch only
 *    holds up its own connection) and its own libcurl handle (so the
 *    upstream connection is kept alive across the client's requests).
 *    Tokens and bodies pass through here; none of them is ever logged.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <microhttpd.h>

#include "vault_common.h"

#define MAX_BODY		(64 * 1024 * 1024)
#define OVERSIZE_PAD	(4 * 1024 * 1024 + 1)
#define UPSTREAM_TIMEOUT_S 120L

/* The switches; every field is read and changed under faults_mu. */
typedef struct faults
{
	int			latency_ms;
	int			fail_next;
	int			fail_status;
	int			retry_after;
	int			close_next;
	int			malformed_next;
	int			truncated_next;
	int			oversize_next;
	int			gather;
	int			max_inflight;	/* shown, not set */
	char		path_prefix[256];
	char		fail_body[16384];	/* "" for the default */
} faults;

#define GATHER_WAIT_S 10

typedef enum fault_action
{
	ACT_NONE,
	ACT_FAIL,
	ACT_CLOSE,
	ACT_MALFORMED,
	ACT_TRUNCATED,
	ACT_OVERSIZE
} fault_action;

/* One request, from its request line to its completion. */
typedef struct preq
{
	char	   *raw_uri;		/* path and query exactly as the client sent them */
	bool		headers_seen;
	bool		too_big;
	char	   *body;
	size_t		len;
	size_t		cap;
} preq;

/* What libcurl brings back from upstream. */
typedef struct upresp
{
	long		status;
	struct curl_slist *headers; /* "Name: value", hop-by-hop ones left out */
	char	   *body;
	size_t		len;
	size_t		cap;
} upresp;

static faults state;
static pthread_mutex_t faults_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t inflight_cv = PTHREAD_COND_INITIALIZER;
/*
 * Matching requests in the proxy since the switches were last set or
 * cleared (generation), under faults_mu: requests held up by an earlier
 * setting do not count.
 */
static int	inflight;
static unsigned generation;
static char *upstream;			/* base URL, no trailing slash */
static const char *cacert;
static char *control_token;
static volatile sig_atomic_t stopping;

/* ---- small helpers ---- */

/*
 * Headers that describe one hop, not the message: the proxy's two
 * connections each have their own.  Content-Length and Transfer-Encoding
 * are set anew by libcurl on the way up and by libmicrohttpd on the way
 * down; Expect is left to libcurl to decide.
 */
static bool
hop_by_hop(const char *name, size_t len)
{
	static const char *const names[] = {
		"Host", "Connection", "Content-Length", "Transfer-Encoding", "Expect",
		"Keep-Alive", "TE", "Trailer", "Upgrade", NULL
	};

	if (len >= 6 && strncasecmp(name, "Proxy-", 6) == 0)
		return true;
	for (const char *const *p = names; *p; p++)
		if (strlen(*p) == len && strncasecmp(name, *p, len) == 0)
			return true;
	return false;
}

/* Sleeps in slices, so that a long latency does not hold up a shutdown. */
static void
sleep_ms(int ms)
{
	while (ms > 0 && !stopping)
	{
		int			slice = ms > 50 ? 50 : ms;
		struct timespec ts = {0, (long) slice * 1000000L};

		nanosleep(&ts, NULL);
		ms -= slice;
	}
}

/* ---- answering ---- */

static enum MHD_Result
send_text(struct MHD_Connection *c, int status, const char *text, int retry_after)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer(text ? strlen(text) : 0, (void *) (text ? text : ""),
										MHD_RESPMEM_MUST_COPY);
	if (r == NULL)
		return MHD_NO;
	if (text)
		MHD_add_response_header(r, "Content-Type", "application/json");
	if (retry_after > 0)
	{
		char		buf[16];

		snprintf(buf, sizeof(buf), "%d", retry_after);
		MHD_add_response_header(r, "Retry-After", buf);
	}
	ret = MHD_queue_response(c, (unsigned int) status, r);
	MHD_destroy_response(r);
	return ret;
}

/* Sends the first half of a body under the Content-Length of all of it. */
typedef struct half_body
{
	char	   *text;
	size_t		cut;
} half_body;

static ssize_t
half_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	half_body  *h = cls;
	size_t		n;

	if (pos >= h->cut)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	n = h->cut - (size_t) pos;
	if (n > max)
		n = max;
	memcpy(buf, h->text + pos, n);
	return (ssize_t) n;
}

static void
half_free(void *cls)
{
	half_body  *h = cls;

	free(h->text);
	free(h);
}

static void
add_upstream_headers(struct MHD_Response *r, struct curl_slist *headers)
{
	for (struct curl_slist *h = headers; h; h = h->next)
	{
		char	   *colon = strchr(h->data, ':');

		*colon = '\0';
		MHD_add_response_header(r, h->data, colon + 1 + strspn(colon + 1, " \t"));
		*colon = ':';
	}
}

/* Hands the upstream answer on; takes over up->body. */
static enum MHD_Result
send_upstream(struct MHD_Connection *c, upresp *up, fault_action act)
{
	struct MHD_Response *r;
	enum MHD_Result ret;
	unsigned int status = (unsigned int) up->status;

	/* an empty answer has no half; a 204 would not even carry one */
	if ((act == ACT_MALFORMED || act == ACT_TRUNCATED) && up->len == 0)
	{
		free(up->body);
		up->body = strdup("{}");
		up->len = up->body ? 2 : 0;
		status = 200;
	}
	if (act == ACT_MALFORMED)
	{
		/* a whole HTTP answer whose JSON stops half-way */
		r = MHD_create_response_from_buffer(up->len / 2, up->body, MHD_RESPMEM_MUST_FREE);
		up->body = NULL;
	}
	else if (act == ACT_TRUNCATED)
	{
		/* the connection drops half-way through the announced length */
		half_body  *h = malloc(sizeof(*h));

		if (h == NULL)
			return MHD_NO;
		h->text = up->body;
		h->cut = up->len / 2;
		up->body = NULL;
		r = MHD_create_response_from_callback(up->len, 4096, half_reader, h, half_free);
	}
	else if (up->len > 0)
	{
		r = MHD_create_response_from_buffer(up->len, up->body, MHD_RESPMEM_MUST_FREE);
		up->body = NULL;
	}
	else
		r = MHD_create_response_from_buffer(0, (void *) "", MHD_RESPMEM_PERSISTENT);
	if (r == NULL)
		return MHD_NO;
	add_upstream_headers(r, up->headers);
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result
send_oversize(struct MHD_Connection *c)
{
	static const char head[] = "{\"data\":{\"padding\":\"";
	static const char tail[] = "\"}}";
	size_t		len = sizeof(head) - 1 + OVERSIZE_PAD + sizeof(tail) - 1;
	char	   *text = malloc(len);
	struct MHD_Response *r;
	enum MHD_Result ret;

	if (text == NULL)
		return MHD_NO;
	memcpy(text, head, sizeof(head) - 1);
	memset(text + sizeof(head) - 1, 'x', OVERSIZE_PAD);
	memcpy(text + len - (sizeof(tail) - 1), tail, sizeof(tail) - 1);
	r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
	MHD_add_response_header(r, "Content-Type", "application/json");
	ret = MHD_queue_response(c, 200, r);
	MHD_destroy_response(r);
	return ret;
}

/* ---- the control endpoint ---- */

static enum MHD_Result
faults_endpoint(struct MHD_Connection *c, const char *method, preq *rq)
{
	const char *tok = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Vault-Token");
	static const char *const ints[] = {
		"latency_ms", "fail_next", "fail_status", "retry_after",
		"close_next", "malformed_next", "truncated_next", "oversize_next",
		"gather", NULL
	};

	if (tok == NULL || !vc_ct_streq(tok, control_token))
		return send_text(c, 403, "{\"errors\":[\"permission denied\"]}", 0);

	if (strcmp(method, "DELETE") == 0)
	{
		pthread_mutex_lock(&faults_mu);
		memset(&state, 0, sizeof(state));
		generation++;
		inflight = 0;
		pthread_cond_broadcast(&inflight_cv);
		pthread_mutex_unlock(&faults_mu);
		return send_text(c, 204, NULL, 0);
	}
	if (strcmp(method, "GET") == 0)
	{
		json_t	   *o;
		char	   *text;
		enum MHD_Result ret;

		pthread_mutex_lock(&faults_mu);
		o = json_pack("{s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:s}",
					  "latency_ms", state.latency_ms, "fail_next", state.fail_next,
					  "fail_status", state.fail_status, "retry_after", state.retry_after,
					  "close_next", state.close_next, "malformed_next", state.malformed_next,
					  "truncated_next", state.truncated_next, "oversize_next", state.oversize_next,
					  "gather", state.gather, "max_inflight", state.max_inflight,
					  "path_prefix", state.path_prefix);
		pthread_mutex_unlock(&faults_mu);
		text = json_dumps(o, JSON_COMPACT);
		json_decref(o);
		ret = send_text(c, 200, text, 0);
		free(text);
		return ret;
	}
	if (strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0)
	{
		json_t	   *cfg = rq->len ? json_loadb(rq->body, rq->len, 0, NULL) : json_object();
		json_t	   *prefix = json_object_get(cfg, "path_prefix");
		int		   *fields[] = {
			&state.latency_ms, &state.fail_next, &state.fail_status, &state.retry_after,
			&state.close_next, &state.malformed_next, &state.truncated_next,
			&state.oversize_next, &state.gather
		};
		json_t	   *fail_body = json_object_get(cfg, "fail_body");
		const char *bad = NULL;

		/* check everything first, so that a bad request changes nothing */
		if (!json_is_object(cfg))
			bad = "faults: body must be a JSON object";
		else if (prefix && (!json_is_string(prefix) ||
							json_string_length(prefix) >= sizeof(state.path_prefix)))
			bad = "faults: path_prefix must be a string under 256 bytes";
		else if (fail_body && (!json_is_string(fail_body) ||
							   json_string_length(fail_body) >= sizeof(state.fail_body)))
			bad = "faults: fail_body must be a string under 16384 bytes";
		for (int i = 0; !bad && ints[i]; i++)
		{
			json_t	   *v = json_object_get(cfg, ints[i]);

			if (v && (!json_is_integer(v) || json_integer_value(v) < INT32_MIN ||
					  json_integer_value(v) > INT32_MAX))
				bad = "faults: switches must be integers";
		}
		if (bad)
		{
			char		text[128];

			json_decref(cfg);
			snprintf(text, sizeof(text), "{\"errors\":[\"%s\"]}", bad);
			return send_text(c, 400, text, 0);
		}
		pthread_mutex_lock(&faults_mu);
		for (int i = 0; ints[i]; i++)
		{
			json_t	   *v = json_object_get(cfg, ints[i]);

			if (v)
				*fields[i] = (int) json_integer_value(v);
		}
		if (prefix)
			strcpy(state.path_prefix, json_string_value(prefix));
		if (fail_body)
			strcpy(state.fail_body, json_string_value(fail_body));
		state.max_inflight = 0;
		generation++;
		inflight = 0;
		pthread_cond_broadcast(&inflight_cv);
		pthread_mutex_unlock(&faults_mu);
		json_decref(cfg);
		return send_text(c, 204, NULL, 0);
	}
	return send_text(c, 405, "{\"errors\":[\"unsupported operation\"]}", 0);
}

/*
 * Decides what the switches do to a request for path (the Vault API path,
 * "/v1/" stripped), and counts the switch that fires down.  Deciding and
 * counting under one lock hands each fault to exactly one request.
 */
static fault_action
fault_take(const char *path, int *latency_ms, int *status, int *retry_after,
		   char *body, size_t body_size, bool *matched, unsigned *gen)
{
	fault_action act = ACT_NONE;

	*latency_ms = 0;
	*matched = false;
	pthread_mutex_lock(&faults_mu);
	if (strncmp(path, state.path_prefix, strlen(state.path_prefix)) == 0)
	{
		struct timespec until;

		*matched = true;
		*gen = generation;
		*latency_ms = state.latency_ms;
		inflight++;
		if (inflight > state.max_inflight)
			state.max_inflight = inflight;
		pthread_cond_broadcast(&inflight_cv);
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += GATHER_WAIT_S;
		while (inflight < state.gather && *gen == generation &&
			   pthread_cond_timedwait(&inflight_cv, &faults_mu, &until) == 0)
			;
		/* the first counter still above zero fires, in this order */
		struct
		{
			int		   *left;
			fault_action act;
		}			counted[] = {
			{&state.fail_next, ACT_FAIL},
			{&state.close_next, ACT_CLOSE},
			{&state.malformed_next, ACT_MALFORMED},
			{&state.truncated_next, ACT_TRUNCATED},
			{&state.oversize_next, ACT_OVERSIZE},
		};

		for (size_t i = 0; i < sizeof(counted) / sizeof(counted[0]); i++)
		{
			if (*counted[i].left > 0)
			{
				(*counted[i].left)--;
				act = counted[i].act;
				break;
			}
		}
		if (act == ACT_FAIL)
		{
			*status = state.fail_status ? state.fail_status : 500;
			*retry_after = state.retry_after;
			snprintf(body, body_size, "%s",
					 state.fail_body[0] ? state.fail_body : "{\"errors\":[\"fault injected\"]}");
		}
	}
	pthread_mutex_unlock(&faults_mu);
	return act;
}

/* ---- forwarding ---- */

typedef struct header_ctx
{
	struct curl_slist *list;
	bool		has_type;
	bool		has_accept;
	bool		failed;
} header_ctx;

static void
add_header(header_ctx *hc, const char *line)
{
	struct curl_slist *l = line ? curl_slist_append(hc->list, line) : NULL;

	if (l)
		hc->list = l;
	else
		hc->failed = true;
}

static enum MHD_Result
collect_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	header_ctx *hc = cls;
	char	   *line;

	if (hop_by_hop(key, strlen(key)))
		return MHD_YES;
	hc->has_type |= strcasecmp(key, "Content-Type") == 0;
	hc->has_accept |= strcasecmp(key, "Accept") == 0;
	/* libcurl's way to send a header with an empty value is "Name;" */
	if (value && *value)
	{
		if (asprintf(&line, "%s: %s", key, value) < 0)
			line = NULL;
	}
	else if (asprintf(&line, "%s;", key) < 0)
		line = NULL;
	add_header(hc, line);
	free(line);
	return hc->failed ? MHD_NO : MHD_YES;
}

static size_t
on_up_header(char *data, size_t size, size_t n, void *cls)
{
	upresp	   *up = cls;
	size_t		len = size * n;
	char	   *colon;
	char	   *line;
	struct curl_slist *l;

	/* a new status line (after a 100 Continue) starts the headers anew */
	if (len >= 5 && strncmp(data, "HTTP/", 5) == 0)
	{
		curl_slist_free_all(up->headers);
		up->headers = NULL;
		return len;
	}
	colon = memchr(data, ':', len);
	if (colon == NULL)
		return len;				/* the blank line at the end */
	if (hop_by_hop(data, (size_t) (colon - data)))
		return len;
	while (len > 0 && (data[len - 1] == '\r' || data[len - 1] == '\n'))
		len--;
	if ((line = strndup(data, len)) == NULL)
		return 0;
	l = curl_slist_append(up->headers, line);
	free(line);
	if (l == NULL)
		return 0;				/* libcurl takes a short count as an error */
	up->headers = l;
	return size * n;
}

static size_t
on_up_body(char *data, size_t size, size_t n, void *cls)
{
	upresp	   *up = cls;

	return vc_secure_append(&up->body, &up->len, &up->cap, 4096, data, size * n) ? size * n : 0;
}

/* Sends the request upstream; false when no answer came back. */
static bool
forward(CURL *h, struct MHD_Connection *c, const char *method, preq *rq, upresp *up)
{
	header_ctx	hc = {0};
	char	   *url = NULL;
	CURLcode	rc = CURLE_OUT_OF_MEMORY;

	MHD_get_connection_values(c, MHD_HEADER_KIND, collect_header, &hc);
	/* keep libcurl from adding headers the client did not send */
	if (!hc.has_type && rq->len > 0)
		add_header(&hc, "Content-Type:");
	if (!hc.has_accept)
		add_header(&hc, "Accept:");
	if (!hc.failed && asprintf(&url, "%s%s", upstream, rq->raw_uri) >= 0)
	{
		/* reset keeps the live upstream connection, drops the old options */
		curl_easy_reset(h);
		curl_easy_setopt(h, CURLOPT_URL, url);
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hc.list);
		if (strcmp(method, "HEAD") == 0)
			curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
		else if (rq->len > 0 || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0)
		{
			curl_easy_setopt(h, CURLOPT_POSTFIELDS, rq->body ? rq->body : "");
			curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) rq->len);
		}
		curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
		curl_easy_setopt(h, CURLOPT_TIMEOUT, UPSTREAM_TIMEOUT_S);
		curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_up_header);
		curl_easy_setopt(h, CURLOPT_HEADERDATA, up);
		curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_up_body);
		curl_easy_setopt(h, CURLOPT_WRITEDATA, up);
		if (cacert)
			curl_easy_setopt(h, CURLOPT_CAINFO, cacert);
		rc = curl_easy_perform(h);
		if (rc == CURLE_OK)
			curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &up->status);
	}
	free(url);
	curl_slist_free_all(hc.list);
	return rc == CURLE_OK && up->status >= 100;
}

static enum MHD_Result forward_and_answer(struct MHD_Connection *c,
										  const char *method, preq *rq,
										  fault_action act);

static enum MHD_Result
dispatch(struct MHD_Connection *c, const char *url, const char *method, preq *rq)
{
	const char *path = url;
	fault_action act;
	int			latency_ms,
				status = 0,
				retry_after = 0;
	bool		matched;
	unsigned	gen = 0;
	enum MHD_Result ret;
	static __thread char fail_body[sizeof(((faults *) 0)->fail_body)];

	if (rq->too_big)
		return send_text(c, 413, "{\"errors\":[\"fault proxy: request body too large\"]}", 0);
	if (strcmp(url, "/_dev/faults") == 0)
		return faults_endpoint(c, method, rq);

	if (strncmp(path, "/v1/", 4) == 0)
		path += 4;
	else if (*path == '/')
		path++;
	act = fault_take(path, &latency_ms, &status, &retry_after,
					 fail_body, sizeof(state.fail_body), &matched, &gen);
	if (latency_ms > 0)
		sleep_ms(latency_ms);
	if (act == ACT_FAIL)
		ret = send_text(c, status, fail_body, retry_after);
	else
		ret = forward_and_answer(c, method, rq, act);
	if (matched)
	{
		pthread_mutex_lock(&faults_mu);
		if (gen == generation)
			inflight--;
		pthread_mutex_unlock(&faults_mu);
	}
	return ret;
}

/* Forwards a request upstream and answers it as the switch act says. */
static enum MHD_Result
forward_and_answer(struct MHD_Connection *c, const char *method, preq *rq,
				   fault_action act)
{
	const union MHD_ConnectionInfo *ci;
	upresp		up = {0};
	enum MHD_Result ret;

	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	if (ci == NULL || ci->socket_context == NULL ||
		!forward(ci->socket_context, c, method, rq, &up))
		ret = send_text(c, 502, "{\"errors\":[\"fault proxy: upstream unreachable\"]}", 0);
	else if (act == ACT_CLOSE)
	{
		/*
		 * Vault has acted on the request; the client never learns how.  That
		 * is the case a client must not retry blindly (a second database
		 * user, a second key version), so the cut comes after forwarding.
		 */
		ret = MHD_NO;			/* libmicrohttpd hangs up without a word */
	}
	else if (act == ACT_OVERSIZE)
		ret = send_oversize(c);
	else
		ret = send_upstream(c, &up, act);
	curl_slist_free_all(up.headers);
	free(up.body);
	return ret;
}

/* ---- libmicrohttpd callbacks ---- */

/* Called with the raw request target, before libmicrohttpd decodes it. */
static void *
on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
	preq	   *rq = calloc(1, sizeof(*rq));

	if (rq)
		rq->raw_uri = strdup(uri);
	return rq;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url,
		   const char *method, const char *version, const char *upload_data,
		   size_t *upload_data_size, void **req_cls)
{
	preq	   *rq = *req_cls;

	if (rq == NULL || rq->raw_uri == NULL)
		return MHD_NO;			/* out of memory in on_uri */
	if (!rq->headers_seen)
	{
		rq->headers_seen = true;
		return MHD_YES;
	}
	if (*upload_data_size > 0)
	{
		size_t		n = *upload_data_size;

		*upload_data_size = 0;
		/* past the cap the rest is read and dropped, then answered 413 */
		if (rq->too_big || rq->len + n > MAX_BODY)
			rq->too_big = true;
		else if (!vc_secure_append(&rq->body, &rq->len, &rq->cap, 4096, upload_data, n))
			return MHD_NO;
		return MHD_YES;
	}
	return dispatch(c, url, method, rq);
}

static void
on_completed(void *cls, struct MHD_Connection *c, void **req_cls,
			 enum MHD_RequestTerminationCode toe)
{
	preq	   *rq = *req_cls;

	if (rq == NULL)
		return;
	if (rq->body)
	{
		/* request bodies carry plaintexts and secrets */
		explicit_bzero(rq->body, rq->len);
		free(rq->body);
	}
	free(rq->raw_uri);
	free(rq);
	*req_cls = NULL;
}

/*
 * A connection's curl handle lives as long as the connection, so that the
 * client's keep-alive connection maps onto one upstream connection, used
 * only by the connection's own thread.  TCP_NODELAY, because otherwise
 * Nagle and delayed ACKs cost a keep-alive client 40 ms a request.
 */
static void
on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
			  enum MHD_ConnectionNotificationCode toe)
{
	const union MHD_ConnectionInfo *ci;
	int			one = 1;

	if (toe == MHD_CONNECTION_NOTIFY_CLOSED)
	{
		if (*socket_context)
			curl_easy_cleanup(*socket_context);
		*socket_context = NULL;
		return;
	}
	*socket_context = curl_easy_init();
	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (ci)
		setsockopt(ci->connect_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* ---- start-up ---- */

static void
usage(void)
{
	fprintf(stderr,
			"usage: vault-faultproxy --listen HOST:PORT --port-file FILE --upstream URL\n"
			"                        [--cacert FILE] --control-token-file FILE\n");
	exit(2);
}

static char *
read_token(const char *file)
{
	char		buf[1024];
	FILE	   *f = fopen(file, "r");
	size_t		n;

	if (f == NULL)
		return NULL;
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	if (n == sizeof(buf))
		return NULL;			/* no token is that long; do not cut one short */
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	return n > 0 && strlen(buf) == n ? strdup(buf) : NULL;
}

static bool
write_port_file(const char *file, int port)
{
	char	   *tmp;
	FILE	   *f;
	bool		ok;

	if (asprintf(&tmp, "%s.tmp.%d", file, (int) getpid()) < 0)
		return false;
	if ((f = fopen(tmp, "w")) == NULL)
	{
		free(tmp);
		return false;
	}
	ok = fprintf(f, "%d\n", port) > 0;
	ok = (fclose(f) == 0) && ok && rename(tmp, file) == 0;
	if (!ok)
		unlink(tmp);
	free(tmp);
	return ok;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"listen", required_argument, NULL, 'l'},
		{"port-file", required_argument, NULL, 'p'},
		{"upstream", required_argument, NULL, 'u'},
		{"cacert", required_argument, NULL, 'c'},
		{"control-token-file", required_argument, NULL, 't'},
		{NULL, 0, NULL, 0}
	};
	const char *listen_arg = NULL,
			   *port_file = NULL,
			   *token_file = NULL;
	char		host[256];
	const char *colon;
	struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE};
	struct addrinfo *ai;
	unsigned int flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
		MHD_USE_ERROR_LOG;
	struct MHD_Daemon *d;
	const union MHD_DaemonInfo *di;
	sigset_t	sigs;
	int			opt,
				sig,
				port;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1)
	{
		switch (opt)
		{
			case 'l':
				listen_arg = optarg;
				break;
			case 'p':
				port_file = optarg;
				break;
			case 'u':
				upstream = strdup(optarg);
				break;
			case 'c':
				cacert = optarg;
				break;
			case 't':
				token_file = optarg;
				break;
			default:
				usage();
		}
	}
	if (optind != argc || !listen_arg || !port_file || !upstream || !token_file)
		usage();
	while (*upstream && upstream[strlen(upstream) - 1] == '/')
		upstream[strlen(upstream) - 1] = '\0';
	if ((control_token = read_token(token_file)) == NULL)
	{
		fprintf(stderr, "vault-faultproxy: cannot read a token from %s\n", token_file);
		return 1;
	}

	/* HOST:PORT, or [V6HOST]:PORT; numeric only, no name lookups */
	colon = strrchr(listen_arg, ':');
	if (colon == NULL || (size_t) (colon - listen_arg) >= sizeof(host))
		usage();
	snprintf(host, sizeof(host), "%.*s", (int) (colon - listen_arg), listen_arg);
	if (host[0] == '[' && host[strlen(host) - 1] == ']')
	{
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = '\0';
	}
	if (getaddrinfo(host, colon + 1, &hints, &ai) != 0)
	{
		fprintf(stderr, "vault-faultproxy: bad --listen address %s\n", listen_arg);
		return 2;
	}
	if (ai->ai_family == AF_INET6)
		flags |= MHD_USE_IPv6;

	/* signals are taken by sigwait() below, never inside a library */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	curl_global_init(CURL_GLOBAL_DEFAULT);

	d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, NULL,
						 MHD_OPTION_SOCK_ADDR, ai->ai_addr,
						 MHD_OPTION_URI_LOG_CALLBACK, on_uri, NULL,
						 MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
						 MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL,
						 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int) 300,
						 MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned int) 1024,
						 MHD_OPTION_END);
	freeaddrinfo(ai);
	if (d == NULL)
	{
		fprintf(stderr, "vault-faultproxy: cannot listen on %s\n", listen_arg);
		return 1;
	}
	di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	port = di ? di->port : 0;
	if (!write_port_file(port_file, port))
	{
		fprintf(stderr, "vault-faultproxy: cannot write %s: %s\n", port_file, strerror(errno));
		MHD_stop_daemon(d);
		return 1;
	}
	fprintf(stderr, "vault-faultproxy: listening on port %d, forwarding to %s\n", port, upstream);

	sigdelset(&sigs, SIGPIPE);
	do
		sigwait(&sigs, &sig);
	while (sig != SIGTERM && sig != SIGINT);
	stopping = 1;
	fprintf(stderr, "vault-faultproxy: signal %d, stopping\n", sig);
	MHD_stop_daemon(d);
	curl_global_cleanup();
	explicit_bzero(control_token, strlen(control_token));
	free(control_token);
	free(upstream);
	return 0;
}
