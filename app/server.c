/*
 * server.c
 *    The HTTP side: libmicrohttpd with a thread per connection (a handler
 *    may block on the database; other connections go on), keep-alive, and
 *    TCP_NODELAY on every accepted socket.  Per request it gathers the body
 *    (64 KiB at most), finds the route, checks the credential's scope, runs
 *    the handler, and sends the JSON answer with the request id; then one
 *    log line and the metrics.  Draining on shutdown counts requests from
 *    their first byte to their completion.
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
static int	inflight;
static bool draining;
static uint32_t id_prefix;
static uint64_t id_counter;

uint64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t) ts.tv_sec * 1000000u + ts.tv_nsec / 1000;
}

const char *
req_header(AppRequest *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *
req_query(AppRequest *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

typedef struct QueryCheck
{
	const char *const *names;
	bool		ok;
} QueryCheck;

static enum MHD_Result
check_query_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	QueryCheck *qc = cls;
	const char *const *n;

	for (n = qc->names; *n; n++)
		if (strcmp(*n, key) == 0)
			return MHD_YES;
	qc->ok = false;
	return MHD_NO;
}

/* True when every query argument is one of names (NULL-terminated). */
bool
req_query_only(AppRequest *req, const char *const *names)
{
	QueryCheck	qc = {names, true};

	MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, check_query_arg, &qc);
	return qc.ok;
}

/* ---- answers ---- */

static void
set_answer(AppRequest *req, int status, char *out, size_t len, const char *ctype,
		   void (*out_free) (void *))
{
	if (req->answered)
	{
		if (out != NULL)
			out_free(out);
		return;
	}
	req->answered = true;
	req->status = status;
	req->out = out;
	req->out_len = len;
	req->out_free = out_free;
	req->content_type = ctype;
}

void
reply_json(AppRequest *req, int status, json_t *body)
{
	char	   *text = body ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;

	json_decref(body);
	if (text == NULL)
	{
		/* Out of memory building the answer: a fixed one will do. */
		text = strdup("{\"error\":\"internal error\"}");
		req->log_error = "could not build the answer";
		set_answer(req, 500, text, text ? strlen(text) : 0, "application/json", free);
		return;
	}
	set_answer(req, status, text, strlen(text), "application/json", json_wipe_free);
}

void
reply_error(AppRequest *req, int status, const char *message)
{
	reply_json(req, status, json_pack("{s:s}", "error", message));
}

/* A 500 says only that, and the request id the log line carries. */
void
reply_internal(AppRequest *req, const char *why)
{
	req->log_error = why;
	reply_json(req, 500, json_pack("{s:s, s:s}", "error", "internal error",
								   "request_id", req->id));
}

void
reply_unavailable(AppRequest *req, const char *what, const char *why)
{
	req->log_error = why;
	reply_json(req, 503, json_pack("{s:s, s:s}", "error", what, "request_id", req->id));
}

/* text is taken over (malloc'ed). */
void
reply_text(AppRequest *req, int status, char *text, size_t len, const char *content_type)
{
	set_answer(req, status, text, len, content_type, free);
}

/* ---- the request cycle ---- */

static void
log_request(AppRequest *req, uint64_t elapsed_us)
{
	json_t	   *f;

	if (!app_config.log_requests && req->status < 500)
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
	if (__atomic_load_n(&draining, __ATOMIC_RELAXED) || req->too_large)
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
	if (r->scope != SCOPE_NONE && !auth_check(req, r->scope))
		return;
	r->handler(req);
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
		__atomic_add_fetch(&inflight, 1, __ATOMIC_RELAXED);

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
	free(req);
	*req_cls = NULL;
	__atomic_sub_fetch(&inflight, 1, __ATOMIC_RELAXED);
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
	if (ai->ai_family == AF_INET6)
		flags |= MHD_USE_IPv6;
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
	return __atomic_load_n(&inflight, __ATOMIC_RELAXED);
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
