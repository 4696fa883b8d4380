/*
 * aead.c
 *    Envelope ciphertexts: the pgv1: format and AES-256-GCM under a data
 *    key from dek.c, computed in the backend without a Vault request.
 *
 *      pgv1:<dek id>:<base64(nonce || ciphertext || tag)>          no context
 *      pgv1c:<dek id>:<base64(nonce || ciphertext || tag || check)> context
 *
 *    The nonce is 12 random bytes (RAND_bytes), the tag 16 bytes.  The
 *    associated data is the prefix up to and including the second colon
 *    (so the DEK id and the format are authenticated), then the context.
 *    A ciphertext made with a context carries an 8-byte context check, a
 *    GMAC of the context under the nonce with a key derived from the DEK:
 *    when authentication fails it tells a wrong context (22V02) from an
 *    altered ciphertext (22V01) without revealing the context, and since
 *    it is keyed and per nonce, it does not show which rows share one.
 *    The prefix is distinct from Transit's vault:vN:, so both kinds can
 *    share a column.
 *
 *    The hot path allocates only its result: the payload is built in a
 *    scratch buffer kept across calls, OpenSSL's GCM state lives in the
 *    key's slot and only its IV is set per call.
 */
#include "postgres.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "pg_vault.h"
#include "dek.h"
#include "common/vault_common.h"

#define NONCE_BYTES		12
#define TAG_BYTES		16
#define CHECK_BYTES		8
#define SCRATCH_KEEP	(64 * 1024)	/* larger payloads use a palloc */

static unsigned char *scratch = NULL;

static unsigned char *
payload_buffer(size_t n)
{
	if (n > SCRATCH_KEEP)
		return palloc(n);
	if (scratch == NULL)
		scratch = MemoryContextAlloc(TopMemoryContext, SCRATCH_KEEP);
	return scratch;
}

static void
payload_release(unsigned char *p)
{
	if (p != scratch)
		pfree(p);
}

/* The 8-byte context check of a nonce and a context. */
static void
context_check(VaultDek *d, const unsigned char *nonce, const char *ctx,
			  size_t ctxlen, unsigned char *out)
{
	GCM128_CONTEXT *g = (GCM128_CONTEXT *) d->gcm_ctx;
	unsigned char tag[TAG_BYTES];

	CRYPTO_gcm128_setiv(g, nonce, NONCE_BYTES);
	if (CRYPTO_gcm128_aad(g, (const unsigned char *) ctx, ctxlen) != 0)
		elog(ERROR, "AES-GCM rejected the context");
	CRYPTO_gcm128_tag(g, tag, TAG_BYTES);
	memcpy(out, tag, CHECK_BYTES);
}

/*
 * One value to its envelope ciphertext.  key is the Transit key that
 * wraps the DEK; ctx NULL means no context.
 */
static text *
envelope_encrypt(const char *plain, size_t len, const char *key, int keylen,
				 const char *ctx, size_t ctxlen)
{
	VaultDek   *d = vault_dek_for_encrypt(key, keylen);
	GCM128_CONTEXT *g = (GCM128_CONTEXT *) d->gcm;
	const char *prefix = ctx ? d->cprefix : d->prefix;
	int			prefixlen = ctx ? d->cprefixlen : d->prefixlen;
	size_t		plen = NONCE_BYTES + len + TAG_BYTES + (ctx ? CHECK_BYTES : 0);
	size_t		b64len;
	unsigned char *p;
	text	   *out;

	if (len > MaxAllocSize / 2)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("value is too large for envelope encryption")));
	b64len = vc_b64_encoded_len(plen);
	p = payload_buffer(plen);
	if (RAND_bytes(p, NONCE_BYTES) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_EXTERNAL_ROUTINE_INVOCATION_EXCEPTION),
				 errmsg("could not generate a random nonce")));
	CRYPTO_gcm128_setiv(g, p, NONCE_BYTES);
	if (CRYPTO_gcm128_aad(g, (const unsigned char *) prefix, prefixlen) != 0 ||
		(ctx && CRYPTO_gcm128_aad(g, (const unsigned char *) ctx, ctxlen) != 0) ||
		CRYPTO_gcm128_encrypt(g, (const unsigned char *) plain,
							  p + NONCE_BYTES, len) != 0)
		elog(ERROR, "AES-GCM encryption failed");
	CRYPTO_gcm128_tag(g, p + NONCE_BYTES + len, TAG_BYTES);
	if (ctx)
		context_check(d, p, ctx, ctxlen, p + NONCE_BYTES + len + TAG_BYTES);

	out = (text *) palloc(VARHDRSZ + prefixlen + b64len + 1);
	memcpy(VARDATA(out), prefix, prefixlen);
	vc_b64_encode(p, plen, VARDATA(out) + prefixlen);
	SET_VARSIZE(out, VARHDRSZ + prefixlen + b64len);
	payload_release(p);
	return out;
}

/*
 * Parses the prefix: the DEK id, whether it carries a context check, and
 * where the prefix ends (the base64 starts).  -1 when it is not pgv1.
 */
static int
parse_prefix(const char *s, size_t len, int64 *id, bool *with_ctx)
{
	size_t		i;
	int64		v = 0;

	if (len >= 5 && memcmp(s, "pgv1:", 5) == 0)
	{
		*with_ctx = false;
		i = 5;
	}
	else if (len >= 6 && memcmp(s, "pgv1c:", 6) == 0)
	{
		*with_ctx = true;
		i = 6;
	}
	else
		return -1;
	if (i >= len || s[i] < '1' || s[i] > '9')
		return -1;
	for (; i < len && s[i] >= '0' && s[i] <= '9'; i++)
	{
		if (v > (PG_INT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	if (i >= len || s[i] != ':')
		return -1;
	*id = v;
	return (int) i + 1;
}

bool
vault_is_envelope(const char *s, size_t len)
{
	int64		id;
	bool		with_ctx;
	int			start = parse_prefix(s, len, &id, &with_ctx);
	size_t		rest;
	size_t		i;

	if (start < 0)
		return false;
	rest = len - start;
	if (rest == 0 || rest % 4 != 0)
		return false;
	for (i = start; i < len; i++)
	{
		char		c = s[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			  (c >= '0' && c <= '9') || c == '+' || c == '/' ||
			  (c == '=' && i >= len - 2)))
			return false;
	}
	return true;
}

pg_noreturn static void
raise_malformed(int subscript)
{
	if (subscript)
		ereport(ERROR,
				(errcode(ERRCODE_VAULT_ENVELOPE_MALFORMED),
				 errmsg("array element %d is not an envelope ciphertext", subscript),
				 errhint("Envelope ciphertexts start with pgv1: or pgv1c:, then the data key id.")));
	ereport(ERROR,
			(errcode(ERRCODE_VAULT_ENVELOPE_MALFORMED),
			 errmsg("value is not an envelope ciphertext"),
			 errhint("Envelope ciphertexts start with pgv1: or pgv1c:, then the data key id.")));
}

pg_noreturn static void
raise_context(int64 id, int subscript, const char *why)
{
	ereport(ERROR,
			(errcode(ERRCODE_VAULT_ENVELOPE_CONTEXT),
			 subscript ?
			 errmsg("envelope ciphertext of array element %d does not match the context given", subscript) :
			 errmsg("envelope ciphertext does not match the context given"),
			 errdetail("%s (data key " INT64_FORMAT ").", why, id)));
}

/* One envelope ciphertext to its plaintext, as text or bytea. */
static struct varlena *
envelope_decrypt(const char *s, size_t len, const char *ctx, size_t ctxlen,
				 bool as_text, int subscript)
{
	int64		id;
	bool		with_ctx;
	int			start = parse_prefix(s, len, &id, &with_ctx);
	size_t		b64len;
	unsigned char *p;
	long		plen;
	size_t		mlen;
	VaultDek   *d;
	GCM128_CONTEXT *g;
	struct varlena *out;
	size_t		overhead;

	if (start < 0)
		raise_malformed(subscript);
	b64len = len - start;
	if (b64len > MaxAllocSize / 2)
		raise_malformed(subscript);
	p = payload_buffer(vc_b64_decoded_maxlen(b64len) + 1);
	plen = vc_b64_decode(s + start, b64len, p);
	overhead = NONCE_BYTES + TAG_BYTES + (with_ctx ? CHECK_BYTES : 0);
	if (plen < 0 || (size_t) plen < overhead)
	{
		payload_release(p);
		raise_malformed(subscript);
	}
	if (with_ctx != (ctx != NULL))
	{
		payload_release(p);
		raise_context(id, subscript, with_ctx ?
					  "It was encrypted with a context, and none was given" :
					  "It was encrypted without a context, and one was given");
	}
	mlen = plen - overhead;

	d = vault_dek_for_decrypt(id);
	g = (GCM128_CONTEXT *) d->gcm;
	out = (struct varlena *) palloc(VARHDRSZ + mlen);
	SET_VARSIZE(out, VARHDRSZ + mlen);
	CRYPTO_gcm128_setiv(g, p, NONCE_BYTES);
	if (CRYPTO_gcm128_aad(g, (const unsigned char *) s, start) != 0 ||
		(ctx && CRYPTO_gcm128_aad(g, (const unsigned char *) ctx, ctxlen) != 0) ||
		CRYPTO_gcm128_decrypt(g, p + NONCE_BYTES, (unsigned char *) VARDATA(out), mlen) != 0 ||
		CRYPTO_gcm128_finish(g, p + NONCE_BYTES + mlen, TAG_BYTES) != 0)
	{
		bool		context_wrong = false;

		OPENSSL_cleanse(VARDATA(out), mlen);
		pfree(out);
		if (with_ctx)
		{
			unsigned char check[CHECK_BYTES];

			context_check(d, p, ctx, ctxlen, check);
			context_wrong = CRYPTO_memcmp(check, p + NONCE_BYTES + mlen + TAG_BYTES,
										  CHECK_BYTES) != 0;
		}
		payload_release(p);
		if (context_wrong)
			raise_context(id, subscript,
						  "It was encrypted with another context, or its context check was altered");
		ereport(ERROR,
				(errcode(ERRCODE_VAULT_ENVELOPE_TAMPERED),
				 subscript ?
				 errmsg("envelope ciphertext of array element %d failed authentication", subscript) :
				 errmsg("envelope ciphertext failed authentication"),
				 errdetail("It was altered, or was not made under data key " INT64_FORMAT ".", id)));
	}
	payload_release(p);
	if (as_text && !pg_verify_mbstr(GetDatabaseEncoding(), VARDATA(out), (int) mlen, true))
	{
		OPENSSL_cleanse(VARDATA(out), mlen);
		ereport(ERROR,
				(errcode(ERRCODE_CHARACTER_NOT_IN_REPERTOIRE),
				 errmsg("value decrypted from an envelope ciphertext is not valid text in encoding \"%s\"",
						GetDatabaseEncodingName()),
				 errhint("Use vault_envelope_decrypt_bytea() for binary data.")));
	}
	return out;
}

/* ---- SQL functions ---- */

/* SQL function: vault_envelope_encrypt(plaintext text|bytea, key text, context text) */
PG_FUNCTION_INFO_V1(pg_vault_envelope_encrypt);
Datum
pg_vault_envelope_encrypt(PG_FUNCTION_ARGS)
{
	struct varlena *plain;
	text	   *key;
	text	   *ctx = NULL;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	plain = PG_GETARG_VARLENA_PP(0);
	key = PG_GETARG_TEXT_PP(1);
	if (!PG_ARGISNULL(2))
		ctx = PG_GETARG_TEXT_PP(2);
	PG_RETURN_TEXT_P(envelope_encrypt(VARDATA_ANY(plain), VARSIZE_ANY_EXHDR(plain),
									  VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key),
									  ctx ? VARDATA_ANY(ctx) : NULL,
									  ctx ? VARSIZE_ANY_EXHDR(ctx) : 0));
}

static Datum
decrypt_common(FunctionCallInfo fcinfo, bool as_text)
{
	text	   *ct;
	text	   *ctx = NULL;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	ct = PG_GETARG_TEXT_PP(0);
	if (!PG_ARGISNULL(1))
		ctx = PG_GETARG_TEXT_PP(1);
	PG_RETURN_POINTER(envelope_decrypt(VARDATA_ANY(ct), VARSIZE_ANY_EXHDR(ct),
									   ctx ? VARDATA_ANY(ctx) : NULL,
									   ctx ? VARSIZE_ANY_EXHDR(ctx) : 0,
									   as_text, 0));
}

/* SQL function: vault_envelope_decrypt(ciphertext text, context text) */
PG_FUNCTION_INFO_V1(pg_vault_envelope_decrypt);
Datum
pg_vault_envelope_decrypt(PG_FUNCTION_ARGS)
{
	return decrypt_common(fcinfo, true);
}

/* SQL function: vault_envelope_decrypt_bytea(ciphertext text, context text) */
PG_FUNCTION_INFO_V1(pg_vault_envelope_decrypt_bytea);
Datum
pg_vault_envelope_decrypt_bytea(PG_FUNCTION_ARGS)
{
	return decrypt_common(fcinfo, false);
}

/*
 * The array forms: every element through the same path as one value, in
 * order, NULLs kept; a failing element names its subscript.
 */
static ArrayType *
envelope_batch(ArrayType *input, text *key, ArrayType *contexts,
			   bool encrypt, bool as_text)
{
	int			lbound;
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	Datum	   *ctx_elems;
	bool	   *ctx_nulls;
	Datum	   *out;
	int			dims[1];
	int			lbs[1];
	Oid			result_type = (encrypt || as_text) ? TEXTOID : BYTEAOID;

	lbound = vault_batch_args(input, contexts, &elems, &nulls, &n,
							  &ctx_elems, &ctx_nulls);
	if (n == 0)
		return construct_empty_array(result_type);

	out = palloc(sizeof(Datum) * n);
	for (int i = 0; i < n; i++)
	{
		struct varlena *v;
		text	   *c = NULL;

		if (nulls[i])
			continue;
		v = (struct varlena *) DatumGetPointer(elems[i]);
		if (ctx_elems && !ctx_nulls[i])
			c = (text *) DatumGetPointer(ctx_elems[i]);
		if (encrypt)
			out[i] = PointerGetDatum(envelope_encrypt(VARDATA_ANY(v), VARSIZE_ANY_EXHDR(v),
													  VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key),
													  c ? VARDATA_ANY(c) : NULL,
													  c ? VARSIZE_ANY_EXHDR(c) : 0));
		else
			out[i] = PointerGetDatum(envelope_decrypt(VARDATA_ANY(v), VARSIZE_ANY_EXHDR(v),
													  c ? VARDATA_ANY(c) : NULL,
													  c ? VARSIZE_ANY_EXHDR(c) : 0,
													  as_text, lbound + i));
	}
	dims[0] = n;
	lbs[0] = lbound;
	return construct_md_array(out, nulls, 1, dims, lbs, result_type, -1, false, TYPALIGN_INT);
}

/*
 * The C interface for other areas (the column trigger): n text values, no
 * NULL, in envelope form under key's data key, without an array built and
 * taken apart on the way.  Values may be toasted; results in input order.
 */
Datum *
vault_envelope_encrypt_values(const Datum *values, int n, const char *key)
{
	Datum	   *out = palloc(sizeof(Datum) * Max(n, 1));
	int			keylen = (int) strlen(key);

	for (int i = 0; i < n; i++)
	{
		struct varlena *v = pg_detoast_datum_packed((struct varlena *) DatumGetPointer(values[i]));

		out[i] = PointerGetDatum(envelope_encrypt(VARDATA_ANY(v), VARSIZE_ANY_EXHDR(v),
												  key, keylen, NULL, 0));
		if (PointerGetDatum(v) != values[i])
		{
			explicit_bzero(v, VARSIZE_ANY(v));
			pfree(v);
		}
	}
	return out;
}

/* SQL function: vault_envelope_encrypt_batch(plaintexts text[]|bytea[], key text, contexts text[]) */
PG_FUNCTION_INFO_V1(pg_vault_envelope_encrypt_batch);
Datum
pg_vault_envelope_encrypt_batch(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	PG_RETURN_ARRAYTYPE_P(envelope_batch(PG_GETARG_ARRAYTYPE_P(0), PG_GETARG_TEXT_PP(1),
										 PG_ARGISNULL(2) ? NULL : PG_GETARG_ARRAYTYPE_P(2),
										 true, false));
}

static Datum
decrypt_batch_common(FunctionCallInfo fcinfo, bool as_text)
{
	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	PG_RETURN_ARRAYTYPE_P(envelope_batch(PG_GETARG_ARRAYTYPE_P(0), NULL,
										 PG_ARGISNULL(1) ? NULL : PG_GETARG_ARRAYTYPE_P(1),
										 false, as_text));
}

/* SQL function: vault_envelope_decrypt_batch(ciphertexts text[], contexts text[]) */
PG_FUNCTION_INFO_V1(pg_vault_envelope_decrypt_batch);
Datum
pg_vault_envelope_decrypt_batch(PG_FUNCTION_ARGS)
{
	return decrypt_batch_common(fcinfo, true);
}

/* SQL function: vault_envelope_decrypt_bytea_batch(ciphertexts text[], contexts text[]) */
PG_FUNCTION_INFO_V1(pg_vault_envelope_decrypt_bytea_batch);
Datum
pg_vault_envelope_decrypt_bytea_batch(PG_FUNCTION_ARGS)
{
	return decrypt_batch_common(fcinfo, false);
}

/* SQL function: vault_envelope_key_id(ciphertext text) returns bigint; NULL if not pgv1 */
PG_FUNCTION_INFO_V1(pg_vault_envelope_key_id);
Datum
pg_vault_envelope_key_id(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);
	int64		id;
	bool		with_ctx;

	if (!vault_is_envelope(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t)) ||
		parse_prefix(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t), &id, &with_ctx) < 0)
		PG_RETURN_NULL();
	PG_RETURN_INT64(id);
}
