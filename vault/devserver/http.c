/*
 * http.c
 *    The listener and router of the development server: libmicrohttpd
 *    accepts the request and collects its body; dispatch() turns it into a
 *    vreq (method -> operation, query -> data, token), finds the mount,
 *    runs the existence check and the ACL, calls the engine, audits, and
 *    writes Vault's response envelope.  The fault switches for tests live
 *    here too, outside the Vault API, at /_dev/faults.
 */
#include "devserver.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "http.h"

#define MAX_REQUEST_SIZE (32 * 1024 * 1024)

vserver		g_server;
pthread_mutex_t g_state_mu = PTHREAD_MUTEX_INITIALIZER;

/* ---- fault switches (development only) ---- */
static struct
{
	int			latency_ms;
	int			fail_next;
	int			fail_status;
	int			retry_after;
	int			close_next;
	int			malformed_next;
	char		path_prefix[256];
}			faults;
static pthread_mutex_t faults_mu = PTHREAD_MUTEX_INITIALIZER;

typedef enum fault_action
{
	FAULT_NONE,
	FAULT_FAIL,
	FAULT_CLOSE,
	FAULT_MALFORMED
} fault_action;

/* Per-request state kept by libmicrohttpd between callbacks. */
typedef struct conn_req
{
	char	   *body;
	size_t		len;
	size_t		cap;
	bool		too_big;
} conn_req;

/* ---- sending ---- */

static enum MHD_Result
send_json_text(struct MHD_Connection *c, int status, char *text, int retry_after)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	if (text == NULL)
		r = MHD_create_response_from_buffer(0, (void *) "", MHD_RESPMEM_PERSISTENT);
	else
		r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
	MHD_add_response_header(r, "Content-Type", "application/json");
	MHD_add_response_header(r, "Cache-Control", "no-store");
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

static enum MHD_Result
send_errors(struct MHD_Connection *c, int status, json_t *errors)
{
	json_t	   *o = json_pack("{s:o}", "errors", errors ? errors : json_array());
	char	   *text = json_dumps(o, JSON_COMPACT);

	json_decref(o);
	return send_json_text(c, status, text, 0);
}

static enum MHD_Result
send_error(struct MHD_Connection *c, int status, const char *msg)
{
	return send_errors(c, status, msg ? json_pack("[s]", msg) : json_array());
}

/* Sends the first half of a body, then drops the connection. */
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

static enum MHD_Result
send_cut(struct MHD_Connection *c, int status, char *text)
{
	half_body  *h = malloc(sizeof(*h));
	size_t		len = text ? strlen(text) : 0;
	struct MHD_Response *r;
	enum MHD_Result ret;

	h->text = text ? text : strdup("{}");
	h->cut = len / 2;
	r = MHD_create_response_from_callback(len ? len : 2, 4096, half_reader, h, half_free);
	MHD_add_response_header(r, "Content-Type", "application/json");
	ret = MHD_queue_response(c, (unsigned int) status, r);
	MHD_destroy_response(r);
	return ret;
}

/* ---- fault switches ---- */

static fault_action
fault_take(const char *path, int *status, int *retry_after, int *latency_ms)
{
	fault_action act = FAULT_NONE;

	pthread_mutex_lock(&faults_mu);
	*latency_ms = faults.latency_ms;
	if (faults.path_prefix[0] == '\0' ||
		strncmp(path, faults.path_prefix, strlen(faults.path_prefix)) == 0)
	{
		if (faults.fail_next > 0)
		{
			faults.fail_next--;
			act = FAULT_FAIL;
			*status = faults.fail_status ? faults.fail_status : 500;
			*retry_after = faults.retry_after;
		}
		else if (faults.close_next > 0)
		{
			faults.close_next--;
			act = FAULT_CLOSE;
		}
		else if (faults.malformed_next > 0)
		{
			faults.malformed_next--;
			act = FAULT_MALFORMED;
		}
	}
	else
		*latency_ms = 0;
	pthread_mutex_unlock(&faults_mu);
	return act;
}

static const char *
request_token(struct MHD_Connection *c)
{
	const char *tok = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Vault-Token");

	if (tok == NULL || *tok == '\0')
	{
		const char *authz = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");

		if (authz && strncasecmp(authz, "Bearer ", 7) == 0)
			tok = authz + 7;
	}
	return (tok && *tok) ? tok : NULL;
}

static enum MHD_Result
faults_endpoint(struct MHD_Connection *c, const char *method, conn_req *cr)
{
	const char *tok = request_token(c);
	vtoken	   *t;
	bool		root;
	json_t	   *cfg;

	pthread_mutex_lock(&g_state_mu);
	t = tok ? token_lookup(tok) : NULL;
	root = t != NULL && token_is_root(t);
	pthread_mutex_unlock(&g_state_mu);
	if (!root)
		return send_error(c, 403, "permission denied");

	if (strcmp(method, "DELETE") == 0)
	{
		pthread_mutex_lock(&faults_mu);
		memset(&faults, 0, sizeof(faults));
		pthread_mutex_unlock(&faults_mu);
		return send_json_text(c, 204, NULL, 0);
	}
	if (strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0)
	{
		json_error_t jerr;

		cfg = cr->len ? json_loadb(cr->body, cr->len, 0, &jerr) : json_object();
		if (!json_is_object(cfg))
		{
			json_decref(cfg);
			return send_error(c, 400, "faults: body must be a JSON object");
		}
		pthread_mutex_lock(&faults_mu);
#define FAULT_INT(field) \
		if (json_is_integer(json_object_get(cfg, #field))) \
			faults.field = (int) json_integer_value(json_object_get(cfg, #field))
		FAULT_INT(latency_ms);
		FAULT_INT(fail_next);
		FAULT_INT(fail_status);
		FAULT_INT(retry_after);
		FAULT_INT(close_next);
		FAULT_INT(malformed_next);
#undef FAULT_INT
		if (json_is_string(json_object_get(cfg, "path_prefix")))
			snprintf(faults.path_prefix, sizeof(faults.path_prefix), "%s",
					 json_string_value(json_object_get(cfg, "path_prefix")));
		pthread_mutex_unlock(&faults_mu);
		json_decref(cfg);
		return send_json_text(c, 204, NULL, 0);
	}
	if (strcmp(method, "GET") == 0)
	{
		pthread_mutex_lock(&faults_mu);
		cfg = json_pack("{s:i, s:i, s:i, s:i, s:i, s:i, s:s}",
						"latency_ms", faults.latency_ms,
						"fail_next", faults.fail_next,
						"fail_status", faults.fail_status,
						"retry_after", faults.retry_after,
						"close_next", faults.close_next,
						"malformed_next", faults.malformed_next,
						"path_prefix", faults.path_prefix);
		pthread_mutex_unlock(&faults_mu);
		{
			char	   *text = json_dumps(cfg, JSON_COMPACT);

			json_decref(cfg);
			return send_json_text(c, 200, text, 0);
		}
	}
	return send_error(c, 405, "unsupported operation");
}

/* ---- request decoding ---- */

static enum MHD_Result
add_query_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	json_object_set_new((json_t *) cls, key, json_string(value ? value : ""));
	return MHD_YES;
}

/* Paths whose handlers need sudo on top of the operation's capability. */
static bool
root_protected(const char *path)
{
	static const char *const prefixes[] = {
		"sys/seal", "sys/step-down", "sys/audit/", "sys/raw", "sys/rotate",
		"sys/leases/revoke-prefix/", "sys/leases/revoke-force/",
		"auth/token/accessors/", "auth/token/revoke-orphan/", NULL
	};
	const char *const *p;

	for (p = prefixes; *p; p++)
		if (strncmp(path, *p, strlen(*p)) == 0)
			return true;
	return false;
}

static void
remote_of(struct MHD_Connection *c, char *addr, size_t len, int *port)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

	addr[0] = '\0';
	*port = 0;
	if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET)
	{
		const struct sockaddr_in *sin = (const struct sockaddr_in *) ci->client_addr;

		inet_ntop(AF_INET, &sin->sin_addr, addr, (socklen_t) len);
		*port = ntohs(sin->sin_port);
	}
	else if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET6)
	{
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *) ci->client_addr;

		inet_ntop(AF_INET6, &sin6->sin6_addr, addr, (socklen_t) len);
		*port = ntohs(sin6->sin6_port);
	}
}

/* The envelope of a successful (or raw-status) response; NULL for 204. */
static json_t *
envelope(const vreq *req, vresp *resp)
{
	json_t	   *env;

	if (resp->data == NULL && resp->auth == NULL && resp->warnings == NULL &&
		resp->lease_id[0] == '\0' && !resp->raw_status)
		return NULL;
	env = json_pack("{s:s, s:s, s:b, s:I}",
					"request_id", req->request_id,
					"lease_id", resp->lease_id,
					"renewable", resp->renewable,
					"lease_duration", (json_int_t) resp->lease_duration);
	json_object_set(env, "data", resp->data ? resp->data : json_null());
	json_object_set_new(env, "wrap_info", json_null());
	json_object_set(env, "warnings", resp->warnings ? resp->warnings : json_null());
	json_object_set(env, "auth", resp->auth ? resp->auth : json_null());
	json_object_set_new(env, "mount_type", json_string(req->mount ? req->mount->type : ""));
	if (resp->sys_inject && json_is_object(resp->data))
	{
		const char *k;
		json_t	   *v;

		json_object_foreach(resp->data, k, v)
			if (json_object_get(env, k) == NULL)
			json_object_set(env, k, v);
	}
	return env;
}

static void
resp_release(vresp *resp)
{
	json_decref(resp->data);
	json_decref(resp->auth);
	json_decref(resp->warnings);
	json_decref(resp->errors);
	json_decref(resp->body);
}

/*
 * Handle one Vault API request under the state lock.  Returns the status
 * and sets *text to the body (malloc'd) or NULL for no body.
 */
static int
handle_vault(struct MHD_Connection *c, const char *method, const char *url,
			 conn_req *cr, char **text, int *retry_after)
{
	vreq		req;
	vresp		resp;
	json_t	   *query = json_object();
	json_t	   *body = NULL;
	const char *p = url + 4;	/* past "/v1/" */
	bool		is_list = false;
	bool		is_head = strcmp(method, "HEAD") == 0;
	char		remote[64];
	int			status;
	vmount	   *m;

	memset(&req, 0, sizeof(req));
	memset(&resp, 0, sizeof(resp));
	*text = NULL;
	while (*p == '/')
		p++;

	MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, add_query_arg, query);
	if (json_is_string(json_object_get(query, "list")))
	{
		const char *l = json_string_value(json_object_get(query, "list"));

		is_list = !strcasecmp(l, "true") || !strcmp(l, "1");
		json_object_del(query, "list");
	}

	if (!strcmp(method, "GET") || is_head)
		req.op = is_list ? OP_LIST : OP_READ;
	else if (!strcmp(method, "LIST"))
		req.op = OP_LIST;
	else if (!strcmp(method, "POST") || !strcmp(method, "PUT"))
		req.op = OP_UPDATE;
	else if (!strcmp(method, "DELETE"))
		req.op = OP_DELETE;
	else if (!strcmp(method, "PATCH"))
		req.op = OP_PATCH;
	else
	{
		json_decref(query);
		*text = strdup("{\"errors\":[\"unsupported operation\"]}");
		return 405;
	}
	if (is_head && strcmp(p, "sys/health") != 0)
	{
		json_decref(query);
		*text = strdup("{\"errors\":[\"unsupported operation\"]}");
		return 405;
	}

	/* body: JSON object (POST/PUT/PATCH); query parameters otherwise */
	if (cr->len > 0 && (req.op == OP_UPDATE || req.op == OP_PATCH))
	{
		json_error_t jerr;

		body = json_loadb(cr->body, cr->len, JSON_DECODE_ANY, &jerr);
		if (!json_is_object(body) && !json_is_null(body))
		{
			char		msg[300];

			json_decref(body);
			json_decref(query);
			snprintf(msg, sizeof(msg), "failed to parse JSON input: %s",
					 body ? "body is not a JSON object" : jerr.text);
			{
				json_t	   *o = json_pack("{s:[s]}", "errors", msg);

				*text = json_dumps(o, JSON_COMPACT);
				json_decref(o);
			}
			return 400;
		}
		if (json_is_null(body))
		{
			json_decref(body);
			body = NULL;
		}
	}
	if (body)
	{
		json_decref(query);
		req.data = body;
	}
	else
		req.data = query;

	req.method = method;
	{
		size_t		plen = strlen(p);
		bool		slash = plen > 0 && p[plen - 1] == '/';

		if (asprintf(&req.path, "%s%s", p, (req.op == OP_LIST && !slash) ? "/" : "") < 0)
			abort();
	}
	req.client_token = request_token(c);
	req.content_type = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
	remote_of(c, remote, sizeof(remote), &req.remote_port);
	req.remote_addr = remote;
	rand_uuid(req.request_id);

	pthread_mutex_lock(&g_state_mu);

	m = mount_find(req.path);
	req.mount = m;
	if (m != NULL)
		req.rel = strlen(req.path) >= strlen(m->path) ? req.path + strlen(m->path) : "";

	if (g_server.sealed &&
		!(m && m->eng == &engine_system && m->eng->unauthenticated(req.rel)))
	{
		resp_error(&resp, 503, "Vault is sealed");
		goto done;
	}
	if (m == NULL)
	{
		resp_error(&resp, 404, "no handler for route \"%s\". route entry not found.", req.path);
		goto done;
	}

	if (req.client_token)
		req.token = token_lookup(req.client_token);
	if (!(m->eng->unauthenticated && m->eng->unauthenticated(req.rel)))
	{
		unsigned	need;

		if (req.token == NULL)
		{
			resp_error(&resp, 403, "permission denied");
			/* Vault names a token it does not know as invalid */
			if (req.client_token)
				json_array_append_new(resp.errors, json_string("invalid token"));
			goto done;
		}
		if ((req.op == OP_UPDATE) && m->eng->exists)
		{
			int			e = m->eng->exists(m, &req);

			if (e == 0)
				req.op = OP_CREATE;
		}
		req.caps = acl_capabilities_op(req.token, req.path, req.op);
		need = acl_cap_for_op(req.op);
		if (!(req.caps & need) || (req.caps & CAP_DENY) ||
			(root_protected(req.path) && !(req.caps & CAP_SUDO)))
		{
			resp_error(&resp, 403, "permission denied");
			goto done;
		}
		if (!token_use(req.token))
		{
			req.token = NULL;
			resp_error(&resp, 403, "permission denied");
			json_array_append_new(resp.errors, json_string("invalid token"));
			goto done;
		}
	}
	else if ((req.op == OP_UPDATE) && m->eng->exists && m->eng->exists(m, &req) == 0)
		req.op = OP_CREATE;

	audit_request(&req);
	m->eng->handle(m, &req, &resp);
	if (m->eng == &engine_system)
		resp.sys_inject = true;

done:
	if (resp.body)
	{
		status = resp.status ? resp.status : 200;
		*text = json_dumps(resp.body, JSON_COMPACT);
	}
	else if (resp.errors && !resp.raw_status)
	{
		json_t	   *o = json_pack("{s:O}", "errors", resp.errors);

		status = resp.status ? resp.status : 400;
		*text = json_dumps(o, JSON_COMPACT);
		json_decref(o);
	}
	else
	{
		json_t	   *env = envelope(&req, &resp);

		if (env)
		{
			status = resp.status ? resp.status : 200;
			*text = json_dumps(env, JSON_COMPACT);
			json_decref(env);
		}
		else
			status = resp.status ? resp.status : 204;
	}
	if (req.mount)
		audit_response(&req, &resp, status);
	if (resp.dirty)
		store_save();
	pthread_mutex_unlock(&g_state_mu);

	*retry_after = resp.retry_after;
	resp_release(&resp);
	json_decref(req.data);
	free(req.path);
	return status;
}

static enum MHD_Result
dispatch(struct MHD_Connection *c, const char *url, const char *method, conn_req *cr)
{
	fault_action act;
	int			status = 0,
				retry_after = 0,
				latency_ms = 0;
	char	   *text;

	if (cr->too_big)
		return send_error(c, 413, "http: request body too large");
	if (strcmp(url, "/_dev/faults") == 0)
		return faults_endpoint(c, method, cr);
	if (strncmp(url, "/v1/", 4) != 0)
		return send_error(c, 404, NULL);

	act = fault_take(url + 4, &status, &retry_after, &latency_ms);
	if (latency_ms > 0)
		usleep((useconds_t) latency_ms * 1000);
	if (act == FAULT_FAIL)
	{
		json_t	   *o = json_pack("{s:[s]}", "errors",
								  "injected failure (vault-dev fault switch)");

		text = json_dumps(o, JSON_COMPACT);
		json_decref(o);
		return send_json_text(c, status, text, retry_after);
	}

	status = handle_vault(c, method, url, cr, &text, &retry_after);
	if (act == FAULT_CLOSE)
		return send_cut(c, status, text);
	if (act == FAULT_MALFORMED && text)
		text[strlen(text) / 2] = '\0';
	return send_json_text(c, status, text, retry_after);
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url,
		   const char *method, const char *version, const char *upload_data,
		   size_t *upload_data_size, void **req_cls)
{
	conn_req   *cr = *req_cls;

	if (cr == NULL)
	{
		cr = calloc(1, sizeof(*cr));
		*req_cls = cr;
		return MHD_YES;
	}
	if (*upload_data_size > 0)
	{
		size_t		n = *upload_data_size;

		*upload_data_size = 0;
		if (cr->too_big || cr->len + n > MAX_REQUEST_SIZE)
		{
			cr->too_big = true;
			return MHD_YES;
		}
		if (!vc_secure_append(&cr->body, &cr->len, &cr->cap, 4096, upload_data, n))
			return MHD_NO;
		return MHD_YES;
	}
	return dispatch(c, url, method, cr);
}

static void
on_completed(void *cls, struct MHD_Connection *c, void **req_cls,
			 enum MHD_RequestTerminationCode toe)
{
	conn_req   *cr = *req_cls;

	if (cr == NULL)
		return;
	if (cr->body)
	{
		/* request bodies carry plaintexts and secrets */
		explicit_bzero(cr->body, cr->len);
		free(cr->body);
	}
	free(cr);
	*req_cls = NULL;
}

static void
on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
			  enum MHD_ConnectionNotificationCode toe)
{
	const union MHD_ConnectionInfo *ci;
	int			one = 1;

	if (toe != MHD_CONNECTION_NOTIFY_STARTED)
		return;
	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (ci)
		setsockopt(ci->connect_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

struct MHD_Daemon *
http_start(const struct sockaddr_in *addr, const char *tls_cert, const char *tls_key,
		   int *bound_port)
{
	unsigned int flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
		MHD_USE_AUTO | MHD_USE_ERROR_LOG;
	struct MHD_Daemon *d;
	const union MHD_DaemonInfo *di;

	if (tls_cert)
		flags |= MHD_USE_TLS;
	d = MHD_start_daemon(flags, ntohs(addr->sin_port), NULL, NULL,
						 on_request, NULL,
						 MHD_OPTION_SOCK_ADDR, addr,
						 MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
						 MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL,
						 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int) 120,
						 MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned int) 1024,
						 tls_cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, tls_cert,
						 MHD_OPTION_HTTPS_MEM_KEY, tls_key,
						 MHD_OPTION_END);
	if (d == NULL)
		return NULL;
	di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	*bound_port = di ? di->port : ntohs(addr->sin_port);
	return d;
}
