/*
 * fuzz_envelope.c
 *    libFuzzer target: a Vault answer's body, read the way src/envelope.c
 *    reads it, through src/common/vault_json.c (the same code the
 *    extension runs).  Properties: no memory error or undefined
 *    behaviour; error details fit their buffer and, jansson's strings
 *    being UTF-8, stay valid UTF-8 when cut; the scrubbed detail keeps no
 *    quoted text; integers read from reals are exact.
 */
#include <stdint.h>
#include <string.h>

#include "vault_common.h"
#include "vault_json.h"
#include "fuzz_util.h"

int			LLVMFuzzerInitialize(int *argc, char ***argv);
int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	/* as vault_envelope_init does */
	json_set_alloc_funcs(malloc, vc_wiping_free);
	return 0;
}

/*
 * Quoted parts of a scrubbed message hold nothing but the placeholder (a
 * quote left open is closed).
 */
static void
check_scrubbed(const char *s)
{
	const char *q = s;

	while ((q = strchr(q, '"')) != NULL)
	{
		size_t		rest = strlen(q + 1);

		/* the text may be cut inside the last placeholder */
		FUZZ_ASSERT(strncmp(q + 1, "[redacted]\"", rest < 11 ? rest : 11) == 0);
		if (rest < 11)
			break;
		q += 12;
	}
}

static void
check_message_sizes(json_t *root)
{
	static const size_t sizes[] = {1, 2, 3, 4, 5, 17, 2001};
	char		buf[2001];

	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++)
	{
		for (int scrub = 0; scrub <= 1; scrub++)
		{
			bool		any;

			memset(buf, 'x', sizeof(buf));
			any = vj_error_messages(root, scrub, buf, sizes[k]);
			FUZZ_ASSERT(strlen(buf) < sizes[k]);
			FUZZ_ASSERT(fuzz_utf8_valid((const unsigned char *) buf, strlen(buf)));
			if (!any)
				FUZZ_ASSERT(buf[0] == '\0');
			if (scrub && sizes[k] == sizeof(buf))
				check_scrubbed(buf);
		}
	}
}

static void
check_int(json_t *n)
{
	int64_t		v;

	if (!vj_int(n, &v))
		return;
	if (json_is_integer(n))
		FUZZ_ASSERT(v == (int64_t) json_integer_value(n));
	else
		FUZZ_ASSERT((double) v == json_real_value(n));
}

static void
check_batch(json_t *root, const char *field)
{
	json_t	   *results = vj_lookup(root, "data.batch_results");
	size_t		n = json_is_array(results) ? json_array_size(results) : 1;
	const char **values;
	size_t	   *lens;
	size_t		index,
				count;
	const char *error;
	VjBatch		r;

	if (n > 4096)
		return;
	values = calloc(n + 1, sizeof(*values));
	lens = calloc(n + 1, sizeof(*lens));
	if (values == NULL || lens == NULL)
		abort();
	r = vj_batch(root, field, n, values, lens, &index, &count, &error);
	FUZZ_ASSERT(vj_has_batch_results(root) == (r != VJ_BATCH_NOT_ARRAY));
	if (r == VJ_BATCH_OK)
	{
		for (size_t i = 0; i < n; i++)
			FUZZ_ASSERT(values[i] != NULL && strlen(values[i]) <= lens[i]);
	}
	else if (r == VJ_BATCH_ITEM_ERROR)
	{
		char		msg[64];

		FUZZ_ASSERT(index < n && error != NULL && error[0] != '\0');
		vj_message(error, true, msg, sizeof(msg));
		FUZZ_ASSERT(strlen(msg) < sizeof(msg));
		FUZZ_ASSERT(fuzz_utf8_valid((const unsigned char *) msg, strlen(msg)));
	}
	else if (r != VJ_BATCH_NOT_ARRAY && r != VJ_BATCH_COUNT)
		FUZZ_ASSERT(index < n);
	/* and with a count that does not match */
	if (vj_batch(root, field, n + 1, values, lens, &index, &count, &error) != VJ_BATCH_NOT_ARRAY)
		FUZZ_ASSERT(count == n);
	free(values);
	free(lens);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const paths[] = {
		"data", "data.ciphertext", "data.plaintext", "data.keys", "data.data",
		"data.metadata.version", "data.latest_version", "data.batch_results",
		"auth.client_token", "auth.lease_duration", "lease_duration",
		"lease_id", "renewable", "warnings", "errors", "data.a.b.c.d", ".", "", "..x",
	};
	VjBody		why;
	json_t	   *root = vj_parse_object((const char *) data, size, &why);

	if (root == NULL)
	{
		FUZZ_ASSERT(why != VJ_BODY_OBJECT);
		FUZZ_ASSERT((why == VJ_BODY_EMPTY) == (size == 0));
		return 0;
	}
	FUZZ_ASSERT(why == VJ_BODY_OBJECT && json_is_object(root));

	check_message_sizes(root);
	for (size_t k = 0; k < sizeof(paths) / sizeof(paths[0]); k++)
	{
		json_t	   *n = vj_lookup(root, paths[k]);

		check_int(n);
		if (json_is_string(n))
		{
			char		msg[32];

			vj_message(json_string_value(n), false, msg, sizeof(msg));
			FUZZ_ASSERT(fuzz_utf8_valid((const unsigned char *) msg, strlen(msg)));
		}
	}
	check_batch(root, "ciphertext");
	check_batch(root, "plaintext");
	json_decref(root);
	return 0;
}
