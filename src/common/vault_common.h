/*
 * vault_common.h
 *    Small pure-C helpers shared by the extension (src/) and the app
 *    (app/); bench/curl_loop.c uses them too.  No PostgreSQL, curl or
 *    jansson dependencies: each program links this file as is.
 */
#ifndef VAULT_COMMON_H
#define VAULT_COMMON_H

#include <stdbool.h>
#include <stddef.h>

/* Standard padded base64 (RFC 4648, Go's StdEncoding, what Vault uses). */
size_t		vc_b64_encoded_len(size_t srclen);		/* without the NUL */
size_t		vc_b64_decoded_maxlen(size_t srclen);
/* Writes vc_b64_encoded_len(srclen) chars plus a NUL; returns the length. */
size_t		vc_b64_encode(const unsigned char *src, size_t srclen, char *dst);
/* Returns the decoded length, or -1 when src is not valid padded base64. */
long		vc_b64_decode(const char *src, size_t srclen, unsigned char *dst);

/* Lower-case hex; dst must hold 2*len+1 bytes. */
void		vc_hex_encode(const unsigned char *src, size_t len, char *dst);

/*
 * Append n bytes to a growing buffer that may hold a secret, keeping it
 * NUL-terminated.  The buffer grows by copying and wiping, never realloc,
 * so no unwiped copy of a token or plaintext is left in freed memory.
 * *cap 0 starts at first_cap.  False when out of memory (buffer unchanged).
 */
bool		vc_secure_append(char **data, size_t *len, size_t *cap, size_t first_cap,
							 const char *src, size_t n);

/*
 * free() and realloc() that first zero the whole block (its usable size, as
 * the allocator reports it), for libraries whose buffers pass secrets
 * through: libcurl's request and receive buffers, jansson's parsed trees.
 * Any malloc'd pointer may be given to them, so they can be installed at
 * any time (curl_global_init_mem, json_set_alloc_funcs).  Where the C
 * library cannot tell a block's size (not glibc), they only free.
 */
void		vc_wiping_free(void *p);
void	   *vc_wiping_realloc(void *p, size_t n);

/* Constant-time comparison of two NUL-terminated strings. */
bool		vc_ct_streq(const char *a, const char *b);

/*
 * The key version of a Vault Transit ciphertext s[0..len), or -1 for
 * anything else.  The form is the vault_ciphertext domain's:
 * ^vault:v[0-9]{1,9}:[A-Za-z0-9+/]+={0,2}$ (fuzz/fuzz_ciphertext.c).
 */
#define VC_MAX_VERSION_DIGITS 9
int			vc_ciphertext_version(const char *s, size_t len);

#endif							/* VAULT_COMMON_H */
