/*
 * curl_loop.c
 *    The round-trip floor for pg_vault's per-row benchmark: a bare libcurl
 *    keep-alive loop making the same Transit requests the extension makes
 *    (one POST per value, same headers, same body shape), with nothing
 *    else in the way.  Prints "<requests> <seconds> <requests/s>".
 *
 *    usage: curl-loop encrypt|decrypt KEY N
 *    VAULT_ADDR and VAULT_TOKEN come from the environment.  decrypt first
 *    encrypts one value and then decrypts that ciphertext N times.
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vault_common.h"

typedef struct buf
{
	char		data[4096];
	size_t		len;
} buf;

static size_t
collect(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	buf		   *b = userdata;
	size_t		n = size * nmemb;

	if (b->len + n < sizeof(b->data))
	{
		memcpy(b->data + b->len, ptr, n);
		b->len += n;
		b->data[b->len] = '\0';
	}
	return n;
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static long
post(CURL *h, const char *url, const char *body, buf *out)
{
	long		code = 0;

	out->len = 0;
	out->data[0] = '\0';
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	if (curl_easy_perform(h) != CURLE_OK)
		return -1;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	return code;
}

int
main(int argc, char **argv)
{
	const char *addr = getenv("VAULT_ADDR");
	const char *token = getenv("VAULT_TOKEN");
	struct curl_slist *headers = NULL;
	char		url[1024],
				body[1024],
				hdr[1024];
	buf			out;
	CURL	   *h;
	long		n,
				i;
	double		t0,
				dt;
	int			decrypt;

	if (argc != 4 || addr == NULL || token == NULL ||
		(strcmp(argv[1], "encrypt") != 0 && strcmp(argv[1], "decrypt") != 0))
	{
		fprintf(stderr, "usage: VAULT_ADDR=... VAULT_TOKEN=... curl-loop encrypt|decrypt KEY N\n");
		return 2;
	}
	decrypt = strcmp(argv[1], "decrypt") == 0;
	n = atol(argv[3]);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	h = curl_easy_init();
	snprintf(hdr, sizeof(hdr), "X-Vault-Token: %s", token);
	headers = curl_slist_append(headers, hdr);
	headers = curl_slist_append(headers, "X-Vault-Request: true");
	headers = curl_slist_append(headers, "Content-Type: application/json");
	headers = curl_slist_append(headers, "Expect:");
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &out);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);

	if (decrypt)
	{
		char	   *ct,
				   *end;

		snprintf(url, sizeof(url), "%s/v1/transit/encrypt/%s", addr, argv[2]);
		if (post(h, url, "{\"plaintext\":\"MTIzNDU2Nzg5\"}", &out) != 200 ||
			(ct = strstr(out.data, "\"ciphertext\":\"")) == NULL)
		{
			fprintf(stderr, "curl-loop: the first encrypt failed\n");
			return 1;
		}
		ct += 14;
		end = strchr(ct, '"');
		snprintf(body, sizeof(body), "{\"ciphertext\":\"%.*s\"}", (int) (end - ct), ct);
		snprintf(url, sizeof(url), "%s/v1/transit/decrypt/%s", addr, argv[2]);
	}
	else
		snprintf(url, sizeof(url), "%s/v1/transit/encrypt/%s", addr, argv[2]);

	t0 = now();
	for (i = 0; i < n; i++)
	{
		char		pt[32],
					b64[64];

		if (!decrypt)
		{
			/* a different value each time, as a table's rows are */
			int			len = snprintf(pt, sizeof(pt), "%ld", i + 1);

			vc_b64_encode((const unsigned char *) pt, (size_t) len, b64);
			snprintf(body, sizeof(body), "{\"plaintext\":\"%s\"}", b64);
		}
		if (post(h, url, body, &out) != 200)
		{
			fprintf(stderr, "curl-loop: request %ld failed\n", i);
			return 1;
		}
	}
	dt = now() - t0;
	printf("%ld %.3f %.0f\n", n, dt, n / dt);
	curl_slist_free_all(headers);
	curl_easy_cleanup(h);
	curl_global_cleanup();
	return 0;
}
