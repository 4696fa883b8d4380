/*
 * vault_json.h
 *    Reading Vault's JSON answers (pure C and jansson, no PostgreSQL): the
 *    body as an object, nodes at dotted paths, integers, Vault's error
 *    messages and Transit's batch results.  src/envelope.c maps what these
 *    return to SQLSTATEs and PostgreSQL strings; fuzz/fuzz_envelope.c runs
 *    the same code on arbitrary bodies.
 */
#ifndef VAULT_JSON_H
#define VAULT_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* What a response body is. */
typedef enum VjBody
{
	VJ_BODY_OBJECT,				/* a JSON object: the only one returned */
	VJ_BODY_EMPTY,
	VJ_BODY_NOT_JSON,
	VJ_BODY_NOT_OBJECT
} VjBody;

/* The body's object (the caller's reference), or NULL with *why set. */
json_t	   *vj_parse_object(const char *body, size_t len, VjBody *why);

/* The node at a dotted path of object keys ("data.batch_results"), or NULL. */
json_t	   *vj_lookup(json_t *root, const char *path);

/*
 * An integer node, or a real one holding an integer that int64_t can hold
 * (Vault is written in Go: durations may come as 3600.0).  False otherwise.
 */
bool		vj_int(const json_t *n, int64_t *value);

/*
 * Vault's messages from an {"errors":[...]} body, joined by "; ", each
 * unfolded from Go's multierror form ("2 errors occurred:\n\t* a\n\t* b\n\n"
 * gives "a; b"), tabs and newlines as spaces.  With scrub, whatever stands
 * between double quotes is replaced by [redacted] (a failing statement's
 * value may be a generated password).  At most outsize - 1 bytes go to out,
 * NUL-terminated: a longer text is cut at a character boundary, so that
 * valid UTF-8 stays valid.  False when the body has no string message
 * (out is then "").
 */
bool		vj_error_messages(const json_t *root, bool scrub, char *out, size_t outsize);

/* One message (a batch item's "error") into out, the same way. */
void		vj_message(const char *msg, bool scrub, char *out, size_t outsize);

/* Whether root has data.batch_results as an array. */
bool		vj_has_batch_results(json_t *root);

/* What vj_batch found. */
typedef enum VjBatch
{
	VJ_BATCH_OK,
	VJ_BATCH_NOT_ARRAY,			/* no data.batch_results array */
	VJ_BATCH_COUNT,				/* not n results (*count has how many) */
	VJ_BATCH_NOT_OBJECT,		/* result *index is not an object */
	VJ_BATCH_ITEM_ERROR,		/* result *index has a non-empty "error" (*error) */
	VJ_BATCH_NO_FIELD			/* result *index has no string field */
} VjBatch;

/*
 * Reads data.batch_results, which must hold n results, each an object with
 * the string field (values[i], lens[i]: owned by root) and no "error".
 * Stops at the first result that is not so, giving its index.
 */
VjBatch		vj_batch(json_t *root, const char *field, size_t n,
					 const char **values, size_t *lens,
					 size_t *index, size_t *count, const char **error);

/* Length of the longest prefix of s[0..len) that ends on a UTF-8 character boundary. */
size_t		vj_utf8_boundary(const char *s, size_t len);

#endif							/* VAULT_JSON_H */
