/*
 * audit.c
 *    A file audit device, as Vault's: one JSON line before each request is
 *    handled and one after, sharing request.id.  Every string in request
 *    and response data, and the client token and accessor, is written as
 *    "hmac-sha256:<hex>" keyed with the device's salt, so the log never
 *    holds a secret in clear.  Called with g_state_mu held.
 */
#include "devserver.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/evp.h>

static int	audit_fd = -1;

bool
audit_open(void)
{
	if (g_server.audit_file == NULL)
		return true;
	audit_fd = open(g_server.audit_file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	return audit_fd >= 0;
}

/*
 * HMAC-SHA256 under the salt, with the inner and outer hash states keyed
 * once (RFC 2104): a batch of thousands of items hashes every string of
 * its request and response, so per-string key setup would dominate.
 */
static EVP_MD_CTX *hmac_inner,
		   *hmac_outer,
		   *hmac_work;

static void
hmac_init(void)
{
	unsigned char ipad[64],
				opad[64];
	size_t		klen = strlen(g_server.audit_salt),
				i;

	memset(ipad, 0x36, sizeof(ipad));
	memset(opad, 0x5c, sizeof(opad));
	for (i = 0; i < klen && i < sizeof(ipad); i++)
	{
		ipad[i] ^= (unsigned char) g_server.audit_salt[i];
		opad[i] ^= (unsigned char) g_server.audit_salt[i];
	}
	hmac_inner = EVP_MD_CTX_new();
	hmac_outer = EVP_MD_CTX_new();
	hmac_work = EVP_MD_CTX_new();
	EVP_DigestInit_ex(hmac_inner, EVP_sha256(), NULL);
	EVP_DigestUpdate(hmac_inner, ipad, sizeof(ipad));
	EVP_DigestInit_ex(hmac_outer, EVP_sha256(), NULL);
	EVP_DigestUpdate(hmac_outer, opad, sizeof(opad));
}

char *
audit_hash(const char *s)
{
	unsigned char inner[32],
				mac[32];
	unsigned int len;
	char	   *out = malloc(12 + 64 + 1);

	if (hmac_inner == NULL)
		hmac_init();
	EVP_MD_CTX_copy_ex(hmac_work, hmac_inner);
	EVP_DigestUpdate(hmac_work, s, strlen(s));
	EVP_DigestFinal_ex(hmac_work, inner, &len);
	EVP_MD_CTX_copy_ex(hmac_work, hmac_outer);
	EVP_DigestUpdate(hmac_work, inner, sizeof(inner));
	EVP_DigestFinal_ex(hmac_work, mac, &len);
	memcpy(out, "hmac-sha256:", 12);
	vc_hex_encode(mac, sizeof(mac), out + 12);
	return out;
}

static json_t *
hash_string(const char *s)
{
	char	   *h = audit_hash(s);
	json_t	   *j = json_string(h);

	free(h);
	return j;
}

/* A copy of v with every string replaced by its hash. */
static json_t *
hash_json(json_t *v)
{
	if (v == NULL)
		return json_null();
	if (json_is_string(v))
		return hash_string(json_string_value(v));
	if (json_is_object(v))
	{
		json_t	   *o = json_object();
		const char *k;
		json_t	   *e;

		json_object_foreach(v, k, e)
			json_object_set_new(o, k, hash_json(e));
		return o;
	}
	if (json_is_array(v))
	{
		json_t	   *a = json_array();
		size_t		i;
		json_t	   *e;

		json_array_foreach(v, i, e)
			json_array_append_new(a, hash_json(e));
		return a;
	}
	return json_incref(v);
}

static bool
audited(const vreq *req)
{
	static const char *const skip[] = {
		"sys/health", "sys/seal-status", "sys/init", "sys/seal",
		"sys/unseal", "sys/leader", NULL
	};
	const char *const *p;

	if (audit_fd < 0)
		return false;
	for (p = skip; *p; p++)
		if (strcmp(req->path, *p) == 0)
			return false;
	return true;
}

static json_t *
auth_json(const vreq *req)
{
	const vtoken *t = req->token;

	if (t == NULL)
		return json_object();
	return json_pack("{s:o, s:o, s:s, s:O, s:O, s:O, s:s, s:s, s:I, s:I, s:{s:b}}",
					 "client_token", hash_string(t->id),
					 "accessor", hash_string(t->accessor),
					 "display_name", t->display_name,
					 "policies", t->policies,
					 "token_policies", t->policies,
					 "metadata", t->meta ? t->meta : json_null(),
					 "entity_id", t->entity_id,
					 "token_type", t->type,
					 "token_ttl", (json_int_t) t->creation_ttl,
					 "token_issue_time", (json_int_t) t->issue_time,
					 "policy_results", "allowed", 1);
}

static json_t *request_json_build(const vreq *req);

/* The request part of the request line, kept for the response line. */
static json_t *last_request;
static char last_request_id[37];

static json_t *
request_json(const vreq *req)
{
	if (last_request && strcmp(last_request_id, req->request_id) == 0)
		return json_incref(last_request);
	return request_json_build(req);
}

static json_t *
request_json_build(const vreq *req)
{
	json_t	   *r = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:{s:s}, s:s, s:o, s:s, s:i}",
							  "id", req->request_id,
							  "operation", vop_name(req->op),
							  "mount_point", req->mount ? req->mount->path : "",
							  "mount_type", req->mount ? req->mount->type : "",
							  "mount_accessor", req->mount ? req->mount->accessor : "",
							  "client_token", req->client_token ? hash_string(req->client_token) : json_string(""),
							  "namespace", "id", "root",
							  "path", req->path,
							  "data", hash_json(req->data),
							  "remote_address", req->remote_addr ? req->remote_addr : "",
							  "remote_port", req->remote_port);

	if (req->token)
		json_object_set_new(r, "client_token_accessor", hash_string(req->token->accessor));
	return r;
}

static void
write_line(json_t *entry)
{
	struct timeval tv;
	char	   *ts;
	char	   *line;
	size_t		len;

	gettimeofday(&tv, NULL);
	ts = rfc3339(tv.tv_sec, tv.tv_usec * 1000L);
	json_object_set_new(entry, "time", json_string(ts));
	free(ts);
	line = json_dumps(entry, JSON_COMPACT);
	json_decref(entry);
	if (line == NULL)
		return;
	len = strlen(line);
	line[len] = '\n';
	/* one write per line: O_APPEND keeps concurrent lines whole */
	if (write(audit_fd, line, len + 1) < 0)
		fprintf(stderr, "vault-dev: writing the audit log failed\n");
	free(line);
}

void
audit_request(const vreq *req)
{
	if (!audited(req))
		return;
	json_decref(last_request);
	last_request = request_json_build(req);
	snprintf(last_request_id, sizeof(last_request_id), "%s", req->request_id);
	write_line(json_pack("{s:s, s:o, s:O}",
						 "type", "request",
						 "auth", auth_json(req),
						 "request", last_request));
}

void
audit_response(const vreq *req, const vresp *resp, int status)
{
	json_t	   *entry,
			   *r;

	if (!audited(req))
		return;
	r = json_pack("{s:s, s:s, s:s}",
				  "mount_point", req->mount ? req->mount->path : "",
				  "mount_type", req->mount ? req->mount->type : "",
				  "mount_accessor", req->mount ? req->mount->accessor : "");
	if (resp->data)
		json_object_set_new(r, "data", hash_json(resp->data));
	if (resp->auth)
		json_object_set_new(r, "auth", hash_json(resp->auth));
	if (resp->lease_id[0])
		json_object_set_new(r, "secret", json_pack("{s:s}", "lease_id", resp->lease_id));
	if (resp->warnings)
		json_object_set(r, "warnings", resp->warnings);
	entry = json_pack("{s:s, s:o, s:o, s:o}",
					  "type", "response",
					  "auth", auth_json(req),
					  "request", request_json(req),
					  "response", r);
	if (resp->errors && json_array_size(resp->errors) > 0)
	{
		json_t	   *e = json_array_get(resp->errors, 0);

		json_object_set_new(entry, "error", json_string(json_string_value(e)));
	}
	else if (status >= 400)
		json_object_set_new(entry, "error", json_sprintf("status %d", status));
	write_line(entry);
}
