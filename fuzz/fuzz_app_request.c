/*
 * fuzz_app_request.c
 *    libFuzzer target: what the app (app/) makes of a request before any
 *    network or database work, with the app's own code: the route lookup
 *    (routes.c: path, method, the {id} segment, the Allow list of a 405),
 *    the id check of /api/users/{id}/ssn, the Authorization header
 *    (auth_bearer_token), a credential's scopes (auth_parse_scopes), the
 *    JSON bodies of every POST endpoint (json_parse_fields), the
 *    ciphertext check of /api/decrypt, and the client address the
 *    failed-authentication limit takes from X-Forwarded-For behind a
 *    trusted proxy (ratelimit_key; the Authorization line serves as the
 *    header's value too).
 *
 *    Input: method '\n' path '\n' Authorization header '\n' body.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>

#include "app.h"
#include "vault_common.h"
#include "fuzz_util.h"

int			LLVMFuzzerInitialize(int *argc, char ***argv);
int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	json_wipe_init();
	return 0;
}

/* The next '\n'-terminated part of data as a C string (malloc'd). */
static char *
next_part(const uint8_t **data, size_t *size)
{
	const uint8_t *nl = memchr(*data, '\n', *size);
	size_t		n = nl ? (size_t) (nl - *data) : *size;
	char	   *s = malloc(n + 1);

	if (s == NULL)
		abort();
	memcpy(s, *data, n);
	s[n] = '\0';
	*data += n + (nl ? 1 : 0);
	*size -= n + (nl ? 1 : 0);
	return s;
}

static void
check_route(const char *method, const char *path)
{
	char		param[64];
	char		allowed[64];
	int			r;

	memset(param, 'x', sizeof(param));
	r = route_find(method, path, param, sizeof(param), allowed, sizeof(allowed));
	FUZZ_ASSERT(r >= -2 && r < route_count());
	FUZZ_ASSERT(strlen(allowed) < sizeof(allowed));
	if (r >= 0)
	{
		const AppRoute *route = route_at(r);

		FUZZ_ASSERT(strcmp(route->method, strcmp(method, "HEAD") == 0 ? "GET" : method) == 0);
		FUZZ_ASSERT(strlen(param) < sizeof(param));
		if (strchr(route->pattern, '{') != NULL)
		{
			FUZZ_ASSERT(param[0] != '\0' && strchr(param, '/') == NULL);
			FUZZ_ASSERT(strstr(path, param) != NULL);
			r = user_id_check(param);
			FUZZ_ASSERT(r == 0 || r == 400 || r == 404);
			if (r == 0)
				FUZZ_ASSERT(strspn(param, "0123456789") == strlen(param) && strlen(param) <= 18);
		}
		else
			FUZZ_ASSERT(strcmp(route->pattern, path) == 0);
	}
	else if (r == -1)
		FUZZ_ASSERT(allowed[0] != '\0');
}

static void
check_authorization(const char *header)
{
	size_t		len = 0;
	const char *token = auth_bearer_token(header, &len);

	if (token == NULL)
		return;
	FUZZ_ASSERT(token >= header + 7 && token + len <= header + strlen(header));
	FUZZ_ASSERT(len >= 16 && len <= 512);
	FUZZ_ASSERT(token[0] != ' ' && token[len - 1] != ' ');
}

static void
check_body(const char *body, size_t len)
{
	const char *email,
			   *name,
			   *ssn,
			   *payment,
			   *plaintext,
			   *ciphertext,
			   *key;
	const JsonField users[] = {
		{"email", true, &email, 320},
		{"name", true, &name, 200},
		{"ssn", false, &ssn, 0},
		{"payment_token", false, &payment, 1024},
		{NULL}
	};
	const JsonField encrypt[] = {
		{"plaintext", true, &plaintext, 0},
		{"key_name", false, &key, 128},
		{NULL}
	};
	const JsonField decrypt[] = {
		{"ciphertext", true, &ciphertext, 0},
		{"key_name", false, &key, 128},
		{NULL}
	};
	const JsonField *const sets[] = {users, encrypt, decrypt};

	for (size_t k = 0; k < 3; k++)
	{
		char		msg[160];
		json_t	   *root;

		msg[0] = '\0';
		root = json_parse_fields(body, len, sets[k], msg, sizeof(msg));
		if (root == NULL)
		{
			FUZZ_ASSERT(msg[0] != '\0');
			for (const JsonField *f = sets[k]; f->name; f++)
				FUZZ_ASSERT(*f->value == NULL);
			continue;
		}
		for (const JsonField *f = sets[k]; f->name; f++)
		{
			if (f->required)
				FUZZ_ASSERT(*f->value != NULL);
			if (*f->value && f->max_len)
				FUZZ_ASSERT(strlen(*f->value) <= f->max_len);
		}
		if (k == 2)
			(void) vc_ciphertext_version(ciphertext, strlen(ciphertext));
		json_decref(root);
	}
}

/* From a trusted proxy (127.0.0.1), any X-Forwarded-For gives a key. */
static void
check_forwarded(const char *xff)
{
	static bool trusted = false;
	struct sockaddr_in peer = {0};
	RateKey		key;
	char		text[64];

	if (!trusted)
	{
		char		err[160];

		FUZZ_ASSERT(ratelimit_trust("127.0.0.0/8, 10.0.0.0/8, fd00::/8", err, sizeof(err)));
		FUZZ_ASSERT(!ratelimit_trust("10.0.0.0/33", err, sizeof(err)));
		FUZZ_ASSERT(ratelimit_trust("127.0.0.0/8, 10.0.0.0/8, fd00::/8", err, sizeof(err)));
		trusted = true;
	}
	peer.sin_family = AF_INET;
	peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	FUZZ_ASSERT(ratelimit_key(&peer, xff, &key));
	ratelimit_key_text(&key, text, sizeof(text));
	FUZZ_ASSERT(text[0] != '\0');
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	   *method = next_part(&data, &size);
	char	   *path = next_part(&data, &size);
	char	   *authorization = next_part(&data, &size);
	char	   *body = malloc(size + 1);

	if (body == NULL)
		abort();
	memcpy(body, data, size);
	body[size] = '\0';

	check_route(method, path);
	check_authorization(authorization);
	check_forwarded(authorization);
	(void) auth_parse_scopes(body);
	check_body(body, size);

	free(method);
	free(path);
	free(authorization);
	free(body);
	return 0;
}
