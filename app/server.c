/*
 * server.c
 *    The HTTP side: libmicrohttpd with a thread per connection (a handler
 *    may block on the database; other connections go on), keep-alive, and
 *    TCP_NODELAY on every accepted socket.  Per request it finds the route
 *    and, as soon as the headers are in and before any byte of the body is
 *    read, checks the credential: the client address's failure budget
 *    (429), then the credential itself against the set in memory (401,
 *    403).  Only then does it gather the body (64 KiB at most), run the
 *    handler and send the JSON answer with the request id; then one log
 *    line and the metrics.
 *
 *    Unauthenticated work (requests to routes that need no credential,
 *    unknown paths, wrong methods) is capped at APP_MAX_UNAUTHENTICATED
 *    in flight: beyond, 503 with Retry-After.  A request that needs a
 *    credential is no such work: it is checked (or refused) at once.
 *    Draining on shutdown counts requests from their first byte to their
 *    completion.
 */
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "app.h"
#include "vault_common.h"

static struct MHD_Daemon *daemon_handle;
static MHD_socket quiesced_fd = MHD_INVALID_SOCKET;
static int	unauthenticated;
static bool draining;
static const char **route_labels;
static uint32_t id_prefix;
static uint64_t id_counter;

/* ---- the request cycle ---- */

static void
log_request(AppRequest *req, uint64_t elapsed_us)
{
	json_t	   *f;

	if (req->quiet || (!app_config.log_requests && req->status < 500))
		return;
	f = json_pack("{s:s, s:s, s:s, s:i, s:f}",
				  "request_id", req->id,
				  "method", req->method,
				  "route", req->route >= 0 ? route_at(req->route)->pattern : "unmatched",
				  "status", req->status,
				  "latency_ms", elapsed_us / 1000.0);
	if (f == NULL)
		return;
	if (req->client[0])
		json_object_set_new(f, "client", json_string(req->client));
	if (req->log_error)
		json_object_set_new(f, "error", json_string(req->log_error));
	if (req->sqlstate[0])
		json_object_set_new(f, "sqlstate", json_string(req->sqlstate));
	log_event(req->status >= 500 ? "error" : "info", "request", f);
}

static enum MHD_Result
send_answer(AppRequest *req)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;
	uint64_t	elapsed;

	if (!req->answered)
		reply_internal(req, "no answer");
	resp = MHD_create_response_from_buffer_with_free_callback(req->out_len, req->out,
															  req->out_free);
	if (resp == NULL)
		return MHD_NO;
	req->out = NULL;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, req->content_type);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	MHD_add_response_header(resp, "X-Request-Id", req->id);
	if (req->www_authenticate)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
								"Bearer realm=\"pg-vault-app\"");
	if (req->status == 405 && req->allow[0])
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, req->allow);
	if (req->retry_after > 0)
	{
		char		ra[16];

		snprintf(ra, sizeof(ra), "%d", req->retry_after);
		MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, ra);
	}
	if (__atomic_load_n(&draining, __ATOMIC_RELAXED) || req->too_large || req->close)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
	ret = MHD_queue_response(req->conn, req->status, resp);
	MHD_destroy_response(resp);

	elapsed = now_us() - req->start_us;
	metrics_request(req->route, req->method, req->status, elapsed);
	log_request(req, elapsed);
	return ret;
}

static void
dispatch(AppRequest *req, const char *url)
{
	const AppRoute *r;

	if (req->route == -2)
	{
		req->route = -1;
		reply_error(req, 404, "not found");
		return;
	}
	if (req->route == -1)
	{
		reply_error(req, 405, "method not allowed");
		return;
	}
	r = route_at(req->route);
	if (req->too_large)
	{
		reply_error(req, 413, "request body too large");
		return;
	}
	r->handler(req);
}

static void
count_refusal(const char *reason)
{
	char		labels[48];

	snprintf(labels, sizeof(labels), "reason=\"%s\"", reason);
	metrics_count("pgv_app_auth_failures_total", labels);
}

static void
unauthenticated_done(AppRequest *req)
{
	if (req->unauthenticated)
	{
		req->unauthenticated = false;
		__atomic_sub_fetch(&unauthenticated, 1, __ATOMIC_RELAXED);
	}
}

/*
 * Count the request as unauthenticated work; false (answered 503) when
 * APP_MAX_UNAUTHENTICATED are in flight already.
 */
static bool
unauthenticated_begin(AppRequest *req)
{
	int			n = __atomic_add_fetch(&unauthenticated, 1, __ATOMIC_RELAXED);

	req->unauthenticated = true;
	if (n <= app_config.max_unauthenticated)
		return true;
	unauthenticated_done(req);
	metrics_count("pgv_app_unauthenticated_refused_total", "reason=\"cap\"");
	req->retry_after = 1;
	req->close = true;
	req->quiet = true;
	reply_error(req, 503, "server busy");
	return false;
}

/*
 * The credential check, at the headers: true when the request may go on.
 * Otherwise it has been answered: 429 for an address out of tries, 401,
 * 403, or 503 before the credential set was ever loaded.
 */
static bool
authenticate(AppRequest *req, const AppRoute *r)
{
	const union MHD_ConnectionInfo *ci;
	RateKey		key;
	bool		keyed;
	int			wait;
	AuthResult	ar;

	ci = MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ci != NULL)
	{
		char	   *xff = req_header_all(req, "X-Forwarded-For");

		keyed = ratelimit_key(ci->client_addr, xff, &key);
		free(xff);
	}
	else
		keyed = false;
	if (keyed && (wait = ratelimit_check(&key)) > 0)
	{
		int64_t		delay_ms = (int64_t) wait * 1000;

		count_refusal("limited");
		req->retry_after = wait;
		req->quiet = true;
		reply_error(req, 429, "too many failed authentications");
		/*
		 * Held back before it is sent: a client that waits for answers
		 * (as any HTTP/1.1 client does, one request at a time per
		 * connection) then makes at most one request per connection per
		 * APP_AUTH_LIMITED_DELAY_MS, and a sleeping thread costs nothing.
		 */
		if (delay_ms > app_config.auth_limited_delay_ms)
			delay_ms = app_config.auth_limited_delay_ms;
		if (delay_ms > 0 && !__atomic_load_n(&draining, __ATOMIC_RELAXED))
			usleep((useconds_t) delay_ms * 1000);
		return false;
	}
	ar = auth_check(req_header(req, MHD_HTTP_HEADER_AUTHORIZATION), r->scope,
					req->client, sizeof(req->client));
	switch (ar)
	{
		case AUTH_OK:
			return true;
		case AUTH_FORBIDDEN:
			count_refusal("forbidden");
			reply_json(req, 403, json_pack("{s:s, s:s}", "error", "insufficient scope",
										   "required_scope", auth_scope_name(r->scope)));
			return false;
		case AUTH_NOT_LOADED:
			count_refusal("not_loaded");
			req->retry_after = 1;
			reply_unavailable(req, "credentials unavailable", "the credential set is not loaded yet");
			return false;
		case AUTH_MISSING:
		case AUTH_INVALID:
			break;
	}
	count_refusal(ar == AUTH_MISSING ? "missing" : "invalid");
	if (keyed && ratelimit_fail(&key))
	{
		char		addr[64];

		ratelimit_key_text(&key, addr, sizeof(addr));
		log_event("warning", "auth_rate_limited",
				  json_pack("{s:s, s:s}", "client_address", addr, "message",
							"failed authentications over the limit: answered 429 until a try is back"));
	}
	req->www_authenticate = true;
	reply_error(req, 401, ar == AUTH_MISSING ? "missing bearer credential" : "invalid credential");
	return false;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url,
		   const char *method, const char *version, const char *upload_data,
		   size_t *upload_data_size, void **req_cls)
{
	AppRequest *req = *req_cls;

	if (req == NULL)
	{
		const char *cl;
		uint64_t	n;

		req = calloc(1, sizeof(AppRequest));
		if (req == NULL)
			return MHD_NO;
		req->conn = conn;
		req->method = method;
		req->start_us = now_us();
		n = __atomic_add_fetch(&id_counter, 1, __ATOMIC_RELAXED);
		snprintf(req->id, sizeof(req->id), "%08x-%010llx", id_prefix,
				 (unsigned long long) n);
		req->route = route_find(method, url, req->param, sizeof(req->param),
								req->allow, sizeof(req->allow));
		*req_cls = req;
		metrics_inflight_add(1);

		/*
		 * A route that needs a credential has it checked here and now, at
		 * the cost of one digest; any other request is work done for
		 * nobody in particular, and counted as such until it ends.
		 */
		if (req->route >= 0 && route_at(req->route)->scope != SCOPE_NONE)
		{
			if (!authenticate(req, route_at(req->route)))
				return send_answer(req);
		}
		else if (!unauthenticated_begin(req))
		{
			if (req->route < 0)
				req->route = -1;
			return send_answer(req);
		}

		/* A declared body over the limit is refused before it is sent. */
		cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl != NULL && strtoull(cl, NULL, 10) > APP_MAX_BODY)
		{
			req->too_large = true;
			if (req->route < 0)
				req->route = -1;
			reply_error(req, 413, "request body too large");
			return send_answer(req);
		}
		return MHD_YES;
	}

	if (*upload_data_size > 0)
	{
		size_t		n = *upload_data_size;

		*upload_data_size = 0;
		if (req->answered || req->too_large)
			return MHD_YES;
		if (req->body_len + n > APP_MAX_BODY)
		{
			req->too_large = true;
			if (req->body != NULL)
				explicit_bzero(req->body, req->body_cap);
			free(req->body);
			req->body = NULL;
			req->body_len = req->body_cap = 0;
			return MHD_YES;
		}
		if (!vc_secure_append(&req->body, &req->body_len, &req->body_cap, 1024,
							  upload_data, n))
			return MHD_NO;
		return MHD_YES;
	}

	if (req->answered)
		return MHD_YES;
	dispatch(req, url);
	return send_answer(req);
}

static void
on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
			 enum MHD_RequestTerminationCode toe)
{
	AppRequest *req = *req_cls;

	if (req == NULL)
		return;
	if (req->body != NULL)
	{
		explicit_bzero(req->body, req->body_cap);
		free(req->body);
	}
	if (req->out != NULL)
		req->out_free(req->out);
	unauthenticated_done(req);
	free(req);
	*req_cls = NULL;
	metrics_inflight_add(-1);
}

/*
 * Small JSON answers must not wait for Nagle's algorithm to meet the
 * client's delayed ACK: that alone costs 40 ms per keep-alive request.
 */
static void
on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
			  enum MHD_ConnectionNotificationCode code)
{
	const union MHD_ConnectionInfo *ci;
	int			one = 1;

	if (code != MHD_CONNECTION_NOTIFY_STARTED)
		return;
	ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (ci != NULL)
		setsockopt(ci->connect_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static void
on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char		msg[512];
	size_t		len;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	len = strlen(msg);
	while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
		msg[--len] = '\0';
	log_msg("warning", "http_server", msg);
}

bool
server_start(char *err, size_t errlen)
{
	struct addrinfo hints = {0};
	struct addrinfo *ai = NULL;
	char		port[8];
	unsigned	flags;
	int			rc;
	const union MHD_DaemonInfo *di;

	if (getrandom(&id_prefix, sizeof(id_prefix), 0) != sizeof(id_prefix))
		id_prefix = (uint32_t) time(NULL) ^ (uint32_t) getpid();
	route_labels = calloc(route_count(), sizeof(char *));
	if (route_labels == NULL)
	{
		snprintf(err, errlen, "out of memory");
		return false;
	}
	for (int i = 0; i < route_count(); i++)
		route_labels[i] = route_at(i)->pattern;
	metrics_set_routes(route_labels, route_count());
	ratelimit_init(app_config.auth_fail_burst, app_config.auth_fail_per_minute);

	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	snprintf(port, sizeof(port), "%u", app_config.listen_port);
	rc = getaddrinfo(app_config.listen_host, port, &hints, &ai);
	if (rc != 0 || ai == NULL)
	{
		snprintf(err, errlen, "cannot resolve listen address %s: %s",
				 app_config.listen, gai_strerror(rc));
		return false;
	}
	flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
		MHD_USE_ITC | MHD_USE_ERROR_LOG;
	/* [::] takes IPv4 too (as ::ffff:a.b.c.d), any other IPv6 address only IPv6 */
	if (ai->ai_family == AF_INET6)
		flags |= strcmp(app_config.listen_host, "::") == 0 ? MHD_USE_DUAL_STACK : MHD_USE_IPv6;
	daemon_handle = MHD_start_daemon(flags, app_config.listen_port, NULL, NULL,
									 on_request, NULL,
									 MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
									 MHD_OPTION_SOCK_ADDR, ai->ai_addr,
									 MHD_OPTION_LISTENING_ADDRESS_REUSE, 1,
									 MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
									 MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL,
									 MHD_OPTION_CONNECTION_LIMIT, (unsigned) app_config.max_connections,
									 MHD_OPTION_CONNECTION_TIMEOUT, 60u,
									 MHD_OPTION_THREAD_STACK_SIZE, (size_t) (512 * 1024),
									 MHD_OPTION_END);
	freeaddrinfo(ai);
	if (daemon_handle == NULL)
	{
		snprintf(err, errlen, "cannot listen on %s", app_config.listen);
		return false;
	}
	di = MHD_get_daemon_info(daemon_handle, MHD_DAEMON_INFO_BIND_PORT);
	log_event("info", "listening",
			  json_pack("{s:s, s:i}", "address", app_config.listen_host,
						"port", di ? (int) di->port : (int) app_config.listen_port));
	return true;
}

/* Stop accepting connections; open ones keep being served. */
void
server_quiesce(void)
{
	__atomic_store_n(&draining, true, __ATOMIC_RELAXED);
	if (daemon_handle != NULL)
		quiesced_fd = MHD_quiesce_daemon(daemon_handle);
	/*
	 * MHD no longer accepts on it, but the kernel would still queue new
	 * connections that nobody answers: refuse them, so that clients try
	 * elsewhere at once.  The descriptor itself stays open until MHD stops.
	 */
	if (quiesced_fd != MHD_INVALID_SOCKET)
		shutdown(quiesced_fd, SHUT_RDWR);
}

int
server_inflight(void)
{
	return metrics_inflight();
}

void
server_stop(void)
{
	if (daemon_handle != NULL)
		MHD_stop_daemon(daemon_handle);
	daemon_handle = NULL;
	/* MHD leaves a quiesced socket to us, to close after it has stopped. */
	if (quiesced_fd != MHD_INVALID_SOCKET)
		close(quiesced_fd);
	quiesced_fd = MHD_INVALID_SOCKET;
}
