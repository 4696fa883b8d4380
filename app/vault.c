/*
 * vault.c
 *    The app's own Vault client (libcurl), for the little it must do before
 *    it can reach PostgreSQL: get a token (VAULT_TOKEN, or an AppRole login
 *    with VAULT_ROLE_ID and the secret_id in VAULT_SECRET_ID_FILE), get
 *    dynamic database credentials from <APP_DB_MOUNT>/creds/<APP_DB_ROLE>,
 *    and keep both alive: a thread renews the token and the lease at two
 *    thirds of their TTL, logs in again when the token cannot be renewed
 *    any more, and takes new credentials when the lease cannot be (they
 *    go to the pool, which retires the old connections; then the old lease
 *    is revoked).  On shutdown the lease, and a token of its own login,
 *    are revoked.  Everything else the app does with Vault goes through
 *    pg_vault in SQL.
 *
 *    The rules it shares with the extension come from src/common
 *    (vault_client.h): paths are escaped segment by segment, failures are
 *    retried as Vault's own client does (VAULT_MAX_RETRIES times, with
 *    jittered backoff that honours Retry-After), leases and tokens are
 *    renewed or replaced on the same schedule, and the secret_id file is
 *    read by the same rules.  Lease ids go in request bodies.
 *
 *    Tokens, secret_ids and passwords are never logged; the buffers that
 *    held them are wiped.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "app.h"
#include "compat_curl.h"
#include "vault_client.h"
#include "vault_common.h"

#define MAX_RESPONSE	(1024 * 1024)
#define RETRY_US		(5 * 1000000ull)

static CURL *curl;
static pthread_mutex_t curl_lock = PTHREAD_MUTEX_INITIALIZER;

/* The token and the lease; owned by the maintenance thread once started. */
static char token[1024];
static bool token_from_login;
static VcSchedule token_sched;	/* replace: the next action is a login */

static char lease_id[512];
static VcSchedule lease_sched;	/* replace: the next action is new credentials */

static pthread_t thread;
static bool thread_started;
static bool stopping;
static pthread_mutex_t stop_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t stop_cond;

typedef struct Buf
{
	char	   *data;
	size_t		len;
	size_t		cap;
	bool		overflow;
} Buf;

static void
vault_event(const char *level, const char *event, const char *what, long status)
{
	char		labels[80];

	if (strcmp(level, "info") != 0)
	{
		snprintf(labels, sizeof(labels), "source=\"app\",kind=\"%s\"",
				 status == 0 ? "unavailable" : status == 403 ? "denied" :
				 status == 503 ? "sealed" : "other");
		metrics_count("pgv_app_vault_errors_total", labels);
	}
	log_event(level, event, json_pack("{s:s, s:i}", "message", what, "http_status", (int) status));
}

static void
lease_event(const char *event)
{
	char		labels[64];

	snprintf(labels, sizeof(labels), "event=\"%s\"", event);
	metrics_count("pgv_app_vault_lease_events_total", labels);
}

static size_t
on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	Buf		   *b = userdata;
	size_t		n = size * nmemb;

	if (b->len + n + 1 > MAX_RESPONSE)
	{
		b->overflow = true;
		return 0;
	}
	if (!vc_secure_append(&b->data, &b->len, &b->cap, 4096, ptr, n))
		return 0;
	return n;
}

bool
vault_client_init(char *err, size_t errlen)
{
	cond_init_monotonic(&stop_cond);
	curl = curl_easy_init();
	if (curl == NULL)
	{
		snprintf(err, errlen, "could not create a libcurl handle");
		return false;
	}
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	(void) vc_compat_protocols(curl);
	(void) vc_compat_watch_headers(curl);
	curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long) app_config.vault_timeout_ms);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
	if (app_config.vault_cacert != NULL)
		curl_easy_setopt(curl, CURLOPT_CAINFO, app_config.vault_cacert);
	if (app_config.vault_skip_verify)
	{
		log_msg("warning", "vault_tls", "VAULT_SKIP_VERIFY is set: the Vault server's certificate is not verified");
		curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	return true;
}

/* Append a header line holding a secret; wiped before the list is freed. */
static struct curl_slist *
append_header(struct curl_slist *list, const char *name, const char *value)
{
	char		line[1200];
	struct curl_slist *n;

	snprintf(line, sizeof(line), "%s: %s", name, value);
	n = curl_slist_append(list, line);
	explicit_bzero(line, sizeof(line));
	if (n == NULL)
		curl_slist_free_all(list);
	return n;
}

static void
free_headers(struct curl_slist *list)
{
	struct curl_slist *l;

	for (l = list; l; l = l->next)
		explicit_bzero(l->data, strlen(l->data));
	curl_slist_free_all(list);
}

typedef struct Attempt
{
	VcTransport transport;
	long		status;
	long		retry_after_ms;
	bool		node_not_active;
} Attempt;

static VcTransport
transport_of(CURLcode rc)
{
	switch (rc)
	{
		case CURLE_COULDNT_CONNECT:
		case CURLE_COULDNT_RESOLVE_HOST:
		case CURLE_COULDNT_RESOLVE_PROXY:
			return VC_TRANSPORT_CONNECT;
		case CURLE_OPERATION_TIMEDOUT:
			return VC_TRANSPORT_TIMEOUT;
		case CURLE_SEND_ERROR:
		case CURLE_RECV_ERROR:
		case CURLE_GOT_NOTHING:
		case CURLE_PARTIAL_FILE:
			return VC_TRANSPORT_LOST;
		default:
			return VC_TRANSPORT_OTHER;
	}
}

/* One attempt; the body read goes to buf (emptied first). */
static void
perform(const char *url, const char *method, const char *payload,
		struct curl_slist *headers, Buf *buf, Attempt *at)
{
	CURLcode	rc;

	if (buf->data != NULL)
		explicit_bzero(buf->data, buf->cap);
	buf->len = 0;
	buf->overflow = false;
	memset(at, 0, sizeof(*at));
	at->retry_after_ms = -1;

	pthread_mutex_lock(&curl_lock);
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
	if (payload != NULL || strcmp(method, "GET") != 0)
	{
		/* An empty object rather than no body: some proxies want a length. */
		const char *send = payload ? payload : "{}";

		curl_easy_setopt(curl, CURLOPT_POSTFIELDS, send);
		curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long) strlen(send));
	}
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, buf);
	rc = curl_easy_perform(curl);
	if (rc == CURLE_OK)
	{
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &at->status);
		at->retry_after_ms = vc_retry_after_ms(vc_compat_retry_after(curl));
	}
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDS, NULL);
	pthread_mutex_unlock(&curl_lock);

	if (rc != CURLE_OK)
		at->transport = buf->overflow ? VC_TRANSPORT_OTHER : transport_of(rc);
	else
		at->transport = VC_TRANSPORT_OK;
	/* OpenBao on raft says so for a moment after every unseal or restart. */
	at->node_not_active = at->status == 500 && buf->data != NULL &&
		strstr(buf->data, "local node not active") != NULL;
}

static double
unit_random(void)
{
	uint32_t	r = 0;

	if (getrandom(&r, sizeof(r), 0) != sizeof(r))
		r = (uint32_t) now_us();
	return r / 4294967296.0;
}

/* The call, retried; idempotent: running it twice has no more effect. */
static long
vault_request(const char *method, const char *path, json_t *body, const char *tok,
			  bool idempotent, json_t **out)
{
	char		url[2048];
	char	   *payload = NULL;
	struct curl_slist *headers = NULL;
	Buf			buf = {0};
	Attempt		at = {0};
	long		status = 0;
	int			attempt;

	if (out != NULL)
		*out = NULL;
	if (vc_build_url(app_config.vault_addr, path, url, sizeof(url)) < 0)
	{
		log_msg("error", "vault", "a Vault path is empty, too long, or has an empty, \".\" or \"..\" segment");
		return 0;
	}
	headers = curl_slist_append(NULL, "X-Vault-Request: true");
	if (headers != NULL)
		headers = append_header(headers, "Content-Type", "application/json");
	if (headers != NULL && tok != NULL)
		headers = append_header(headers, "X-Vault-Token", tok);
	if (headers != NULL && app_config.vault_namespace != NULL)
		headers = append_header(headers, "X-Vault-Namespace", app_config.vault_namespace);
	if (headers == NULL)
		return 0;
	if (body != NULL)
		payload = json_dumps(body, JSON_COMPACT);

	for (attempt = 0;; attempt++)
	{
		perform(url, method, payload, headers, &buf, &at);
		if (attempt >= app_config.vault_max_retries ||
			!vc_should_retry(at.transport, at.status, at.node_not_active, idempotent))
			break;
		usleep((useconds_t) vc_backoff_ms(attempt, at.retry_after_ms, unit_random()) * 1000);
	}

	free_headers(headers);
	if (payload != NULL)
		json_wipe_free(payload);
	status = at.transport == VC_TRANSPORT_OK ? at.status : 0;
	if (status != 0 && out != NULL && buf.len > 0)
		*out = json_loadb(buf.data, buf.len, 0, NULL);
	if (buf.data != NULL)
	{
		explicit_bzero(buf.data, buf.cap);
		free(buf.data);
	}
	return status;
}

long
vault_call(const char *method, const char *path, json_t *body, const char *tok,
		   json_t **out)
{
	return vault_request(method, path, body, tok, strcmp(method, "POST") != 0, out);
}

/* ---- token ---- */

/* AppRole login; the new token replaces the current one. */
static bool
login(void)
{
	char		secret_id[512];
	char		path[256];
	json_t	   *body;
	json_t	   *resp = NULL;
	const char *t = NULL;
	json_int_t	ttl = 0;
	int			renewable = 0;
	long		status;
	VcFileStatus fs;

	fs = vc_read_secret_file(app_config.vault_secret_id_file, secret_id, sizeof(secret_id), NULL);
	if (fs != VC_FILE_OK)
	{
		char		msg[160];

		snprintf(msg, sizeof(msg), "the file named by VAULT_SECRET_ID_FILE %s",
				 vc_file_status_message(fs));
		log_event("error", "vault_login_failed", json_pack("{s:s}", "message", msg));
		return false;
	}
	body = json_pack("{s:s, s:s}", "role_id", app_config.vault_role_id, "secret_id", secret_id);
	explicit_bzero(secret_id, sizeof(secret_id));
	snprintf(path, sizeof(path), "auth/%s/login", app_config.approle_mount);
	/* not idempotent: a login Vault acted on used up one of the secret_id's uses */
	status = body ? vault_request("POST", path, body, NULL, false, &resp) : 0;
	json_decref(body);
	if (status != 200 || resp == NULL ||
		json_unpack(resp, "{s:{s:s, s:I, s:b}}", "auth", "client_token", &t,
					"lease_duration", &ttl, "renewable", &renewable) != 0 ||
		strlen(t) >= sizeof(token))
	{
		json_decref(resp);
		vault_event("error", "vault_login_failed", "AppRole login refused or failed", status);
		return false;
	}
	explicit_bzero(token, sizeof(token));
	snprintf(token, sizeof(token), "%s", t);
	json_decref(resp);
	token_from_login = true;
	vc_schedule_granted(&token_sched, now_us(), (long) ttl, 0, renewable);
	lease_event("login");
	log_event("info", "vault_login", json_pack("{s:I}", "token_ttl_s", ttl));
	return true;
}

/* VAULT_TOKEN: learn its TTL, so that it can be renewed if it expires. */
static bool
lookup_given_token(void)
{
	json_t	   *resp = NULL;
	json_int_t	ttl = 0;
	int			renewable = 0;
	long		status;

	snprintf(token, sizeof(token), "%s", app_config.vault_token);
	token_from_login = false;
	status = vault_call("GET", "auth/token/lookup-self", NULL, token, &resp);
	if (status != 200 || resp == NULL ||
		json_unpack(resp, "{s:{s:I}}", "data", "ttl", &ttl) != 0)
	{
		json_decref(resp);
		vault_event("error", "vault_token_invalid", "VAULT_TOKEN was not accepted (lookup-self)", status);
		return false;
	}
	renewable = json_is_true(json_object_get(json_object_get(resp, "data"), "renewable"));
	json_decref(resp);
	vc_schedule_granted(&token_sched, now_us(), (long) ttl, 0, renewable);
	return true;
}

static bool
renew_token(void)
{
	json_t	   *body = json_pack("{s:I}", "increment", (json_int_t) token_sched.ttl_s);
	json_t	   *resp = NULL;
	json_int_t	ttl = 0;
	int			renewable = 1;
	long		asked = token_sched.ttl_s;
	long		status;

	/* renewing twice does no harm */
	status = vault_request("POST", "auth/token/renew-self", body, token, true, &resp);
	json_decref(body);
	if (status != 200 || resp == NULL ||
		json_unpack(resp, "{s:{s:I, s?b}}", "auth", "lease_duration", &ttl,
					"renewable", &renewable) != 0)
	{
		json_decref(resp);
		vault_event("warning", "vault_token_renew_failed", "could not renew the Vault token", status);
		lease_event("token_renew_failed");
		return false;
	}
	json_decref(resp);
	vc_schedule_granted(&token_sched, now_us(), (long) ttl, asked, renewable);
	lease_event("token_renewed");
	return true;
}

static bool
revoke_token(const char *tok)
{
	long		status = vault_request("POST", "auth/token/revoke-self", NULL, tok, true, NULL);

	if (status == 204 || status == 200)
	{
		lease_event("token_revoked");
		return true;
	}
	vault_event("warning", "vault_token_revoke_failed", "could not revoke the app's Vault token", status);
	return false;
}

/* ---- database credentials ---- */

/*
 * New credentials for the pool.  The previous lease, if any, is copied to
 * old (when given) for the caller to dispose of once no connection uses it
 * any more; *gen is the pool generation of the new credentials.
 */
static bool
new_credentials(char *old, unsigned *gen)
{
	char		path[512];
	json_t	   *resp = NULL;
	const char *user = NULL,
			   *password = NULL,
			   *id = NULL;
	json_int_t	ttl = 0;
	int			renewable;
	long		status;

	snprintf(path, sizeof(path), "%s/creds/%s", app_config.db_mount, app_config.db_role);
	/* not idempotent: each read creates a database user */
	status = vault_request("GET", path, NULL, token, false, &resp);
	if (status != 200 || resp == NULL ||
		json_unpack(resp, "{s:s, s:I, s:{s:s, s:s}}", "lease_id", &id,
					"lease_duration", &ttl,
					"data", "username", &user, "password", &password) != 0 ||
		strlen(id) >= sizeof(lease_id))
	{
		json_decref(resp);
		vault_event("error", "db_credentials_failed", "could not get database credentials from Vault", status);
		lease_event("credentials_failed");
		return false;
	}
	renewable = json_is_true(json_object_get(resp, "renewable"));
	if (old != NULL)
		memcpy(old, lease_id, sizeof(lease_id));
	snprintf(lease_id, sizeof(lease_id), "%s", id);
	*gen = pool_set_credentials(user, password);
	json_decref(resp);
	vc_schedule_granted(&lease_sched, now_us(), (long) ttl, 0, renewable);
	lease_event("credentials_issued");
	log_event("info", "db_credentials", json_pack("{s:I, s:b}", "lease_ttl_s", ttl,
												 "renewable", renewable));
	return true;
}

/* Connections of older generations first finish their statement. */
static void
wait_retired(unsigned gen)
{
	if (!pool_wait_retired(gen, 30000))
		log_msg("warning", "db_credentials",
				"connections with the previous credentials are still open after 30 s");
}

static void
revoke_lease(const char *id)
{
	json_t	   *body = json_pack("{s:s}", "lease_id", id);
	long		status;

	status = body ? vault_request("PUT", "sys/leases/revoke", body, token, true, NULL) : 0;
	json_decref(body);
	if (status == 204 || status == 200)
	{
		lease_event("lease_revoked");
		log_msg("info", "db_credentials", "database lease revoked");
	}
	else
		vault_event("warning", "lease_revoke_failed",
					"could not revoke a database lease (the token's policy needs update on sys/leases/revoke)",
					status);
}

static bool
renew_lease(void)
{
	json_t	   *body = json_pack("{s:s, s:I}", "lease_id", lease_id, "increment",
								 (json_int_t) lease_sched.ttl_s);
	json_t	   *resp = NULL;
	json_int_t	ttl = 0;
	int			renewable = 1;
	long		asked = lease_sched.ttl_s;
	long		status;

	status = vault_request("PUT", "sys/leases/renew", body, token, true, &resp);
	json_decref(body);
	if (status != 200 || resp == NULL ||
		json_unpack(resp, "{s:I, s?b}", "lease_duration", &ttl, "renewable", &renewable) != 0)
	{
		json_decref(resp);
		vault_event("warning", "lease_renew_failed", "could not renew the database lease", status);
		lease_event("lease_renew_failed");
		return false;
	}
	json_decref(resp);
	vc_schedule_granted(&lease_sched, now_us(), (long) ttl, asked, renewable);
	lease_event("lease_renewed");
	return true;
}

/* ---- the maintenance thread ---- */

static bool
sleep_until(uint64_t when)
{
	struct timespec ts;
	uint64_t	now = now_us();
	bool		stop;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	if (when > now)
	{
		uint64_t	d = when - now;

		ts.tv_sec += d / 1000000u;
		ts.tv_nsec += (d % 1000000u) * 1000;
		if (ts.tv_nsec >= 1000000000L)
		{
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
	}
	pthread_mutex_lock(&stop_lock);
	while (!stopping && now_us() < when)
		if (pthread_cond_timedwait(&stop_cond, &stop_lock, &ts) == ETIMEDOUT)
			break;
	stop = stopping;
	pthread_mutex_unlock(&stop_lock);
	return !stop;
}

static void
token_step(void)
{
	char		old[sizeof(token)];

	if (!token_sched.replace && renew_token())
		return;
	if (!token_from_login)
	{
		token_sched.next_us = vc_schedule_retry(now_us(), token_sched.expires_us, RETRY_US);
		return;
	}
	/*
	 * A new login.  The database lease belongs to the old token and would
	 * end with it: take new credentials under the new one, then revoke the
	 * old token, and with it its lease.
	 */
	memcpy(old, token, sizeof(old));
	if (!login())
	{
		memcpy(token, old, sizeof(token));
		explicit_bzero(old, sizeof(old));
		token_sched.next_us = vc_schedule_retry(now_us(), token_sched.expires_us, RETRY_US);
		return;
	}
	if (app_config.db_role != NULL)
	{
		unsigned	gen;

		if (new_credentials(NULL, &gen))
			wait_retired(gen);
		else
			lease_sched.next_us = now_us();
	}
	revoke_token(old);
	explicit_bzero(old, sizeof(old));
}

static void
lease_step(void)
{
	char		old[sizeof(lease_id)];
	unsigned	gen;

	if (!lease_sched.replace && renew_lease())
		return;
	if (!new_credentials(old, &gen))
	{
		lease_sched.next_us = vc_schedule_retry(now_us(), lease_sched.expires_us, RETRY_US);
		return;
	}
	wait_retired(gen);
	revoke_lease(old);
	explicit_bzero(old, sizeof(old));
}

static void *
maintenance(void *arg)
{
	for (;;)
	{
		uint64_t	next = UINT64_MAX;

		if (token_sched.next_us != 0)
			next = token_sched.next_us;
		if (app_config.db_role != NULL && lease_sched.next_us != 0 && lease_sched.next_us < next)
			next = lease_sched.next_us;
		if (!sleep_until(next))
			break;
		if (token_sched.next_us != 0 && now_us() >= token_sched.next_us)
			token_step();
		if (app_config.db_role != NULL && lease_sched.next_us != 0 &&
			now_us() >= lease_sched.next_us)
			lease_step();
	}
	return NULL;
}

bool
vault_startup(void)
{
	uint64_t	deadline = now_us() + (uint64_t) app_config.startup_timeout * 1000000u;

	if (app_config.db_role == NULL)
	{
		if (app_config.vault_role_id != NULL)
			log_msg("warning", "vault", "VAULT_ROLE_ID is set but APP_DB_ROLE is not: the app has nothing to ask Vault for itself");
		return true;
	}
	/* Vault may still be starting, as in a compose file: wait for it a while. */
	for (;;)
	{
		bool		ok;

		unsigned	gen;

		ok = app_config.vault_role_id != NULL ? login() : lookup_given_token();
		if (ok && new_credentials(NULL, &gen))
			break;
		if (now_us() >= deadline)
		{
			log_msg("error", "vault", "could not get database credentials from Vault within APP_STARTUP_TIMEOUT");
			return false;
		}
		sleep(1);
	}
	if (pthread_create(&thread, NULL, maintenance, NULL) != 0)
	{
		log_msg("error", "vault", "could not start the renewal thread");
		return false;
	}
	thread_started = true;
	return true;
}

/* After the pool is closed: nobody uses the lease any more. */
void
vault_shutdown(void)
{
	if (thread_started)
	{
		pthread_mutex_lock(&stop_lock);
		stopping = true;
		pthread_cond_signal(&stop_cond);
		pthread_mutex_unlock(&stop_lock);
		pthread_join(thread, NULL);
		thread_started = false;
	}
	/*
	 * Revoking our own login's token revokes every lease it made, and the
	 * default policy allows it; a given token is not ours to revoke, so its
	 * lease is revoked by id.
	 */
	if (token_from_login)
	{
		if (revoke_token(token))
			log_msg("info", "vault", "the app's token revoked, and with it its database lease");
	}
	else if (lease_id[0] != '\0')
		revoke_lease(lease_id);
	explicit_bzero(lease_id, sizeof(lease_id));
	explicit_bzero(token, sizeof(token));
	if (curl != NULL)
		curl_easy_cleanup(curl);
	curl = NULL;
}
