/*
 * fuzz_ciphertext.c
 *    libFuzzer target: vc_ciphertext_version (src/common/vault_common.c),
 *    the parser of Transit ciphertexts behind vault_is_ciphertext,
 *    vault_ciphertext_version, the column triggers and the app's
 *    /api/decrypt.  Its answer is checked against the vault_ciphertext
 *    domain's regular expression, run by the C library's regex engine.
 */
#include <regex.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vault_common.h"
#include "fuzz_util.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static regex_t domain_re;
static bool compiled;

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *) data;
	int			version = vc_ciphertext_version(s, size);
	char	   *copy;
	regmatch_t	m[2];
	int			expected = -1;

	if (!compiled)
	{
		if (regcomp(&domain_re, "^vault:v([0-9]{1,9}):[A-Za-z0-9+/]+={0,2}$", REG_EXTENDED) != 0)
			abort();
		compiled = true;
	}
	/* the oracle sees a C string: a NUL byte is never part of a ciphertext */
	if (memchr(s, '\0', size) == NULL)
	{
		copy = malloc(size + 1);
		if (copy == NULL)
			abort();
		memcpy(copy, s, size);
		copy[size] = '\0';
		if (regexec(&domain_re, copy, 2, m, 0) == 0)
			expected = atoi(copy + m[1].rm_so);
		free(copy);
	}
	FUZZ_ASSERT(version == expected);
	return 0;
}
