/*
 * transit.c
 *    SQL functions over Vault's Transit engine: encrypt, decrypt, rewrap and
 *    HMAC, one value at a time and in batches, and key administration.
 *
 *    Values travel to Vault as base64 written straight into the request
 *    body; answers are read in place from the parsed response and decoded
 *    straight into the result datum.  A batch call sends at most
 *    vault.batch_size items (and about 16 MB) per request, with one body
 *    build and one parse per chunk, and returns its results in input order
 *    with NULLs kept.  A chunk also stays within vault.batch_max_strings
 *    JSON strings (keys and values): OpenBao's listener refuses a request
 *    body with more than max_request_json_strings (1000 by default) with
 *    "refused JSON input due to high complexity", so an encrypt batch of
 *    1000 plain items (2001 strings) would never get through.
 *
 *    Up to vault.batch_parallel chunks go out at once, each on its own
 *    connection (http.c's parallel round): bodies are built for a round,
 *    sent together, and the answers parsed in order, so results keep input
 *    order whatever order Vault answers in.
 *
 *    Decrypted text is checked against the database encoding: a value that
 *    is not valid is an error, never returned as garbage (the bytea forms
 *    are for binary data).  That error does not quote the bytes.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "pg_vault.h"
#include "common/vault_common.h"

/*
 * A chunk closes early once its body passes this size: Vault refuses
 * requests above 32 MB by default.
 */
#define MAX_BATCH_BODY (16 * 1024 * 1024)

/*---- GUC variables ----*/

int			vault_batch_size = 1000;
int			vault_batch_max_strings = 1000;
int			vault_batch_parallel = 4;
char	   *vault_transit_mount = NULL;

typedef enum TransitOp
{
	T_ENCRYPT,
	T_DECRYPT,
	T_REWRAP,
	T_HMAC
} TransitOp;

/* vault_stat's operation of each */
static const VaultStatKind transit_kinds[] = {
	[T_ENCRYPT] = VS_ENCRYPT,
	[T_DECRYPT] = VS_DECRYPT,
	[T_REWRAP] = VS_REWRAP,
	[T_HMAC] = VS_HMAC,
};

/* Per operation: Vault's path verb, field names and message wording. */
typedef struct TransitOpInfo
{
	const char *verb;
	const char *in_field;		/* request field */
	const char *out_path;		/* response field of a single call */
	const char *out_item;		/* response field of a batch item */
	const char *what;
	bool		input_base64;
} TransitOpInfo;

static const TransitOpInfo transit_ops[] = {
	[T_ENCRYPT] = {"encrypt", "plaintext", "data.ciphertext", "ciphertext",
	"encrypt with Vault key", true},
	[T_DECRYPT] = {"decrypt", "ciphertext", "data.plaintext", "plaintext",
	"decrypt with Vault key", false},
	[T_REWRAP] = {"rewrap", "ciphertext", "data.ciphertext", "ciphertext",
	"rewrap with Vault key", false},
	[T_HMAC] = {"hmac", "input", "data.hmac", "hmac",
	"compute an HMAC with Vault key", true},
};

static const char *
mount(void)
{
	return (vault_transit_mount && vault_transit_mount[0]) ? vault_transit_mount : "transit";
}

/* "<mount>/<verb>/<key><suffix>", after checking the key name. */
static char *
key_path(const char *verb, const char *key, const char *suffix)
{
	vault_check_key_name(key);
	return psprintf("%s/%s/%s%s", mount(), verb, key, suffix ? suffix : "");
}

/*
 * Raises 22021 when data is not valid text in the database encoding.
 * subscript is the array element, or 0 for a single value.
 */
static void
check_decrypted_text(const char *data, int len, const char *key, int subscript)
{
	if (pg_verify_mbstr(GetDatabaseEncoding(), data, len, true))
		return;
	if (subscript)
		ereport(ERROR,
				(errcode(ERRCODE_CHARACTER_NOT_IN_REPERTOIRE),
				 errmsg("value decrypted with Vault key \"%s\" for array element %d is not valid text in encoding \"%s\"",
						key, subscript, GetDatabaseEncodingName()),
				 errhint("Use vault_decrypt_bytea_batch() for binary data.")));
	ereport(ERROR,
			(errcode(ERRCODE_CHARACTER_NOT_IN_REPERTOIRE),
			 errmsg("value decrypted with Vault key \"%s\" is not valid text in encoding \"%s\"",
					key, GetDatabaseEncodingName()),
			 errhint("Use vault_decrypt_bytea() for binary data.")));
}

/* A text or bytea datum from Vault's base64 plaintext. */
static struct varlena *
decode_plaintext(const char *b64, size_t b64len, bool as_text,
				 const char *key, int subscript, const VaultOp *op)
{
	struct varlena *out;
	long		n;

	if (vc_b64_decoded_maxlen(b64len) >= MaxAllocSize - VARHDRSZ)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("value decrypted with Vault key \"%s\" is too large", key)));
	out = (struct varlena *) palloc(VARHDRSZ + vc_b64_decoded_maxlen(b64len));
	n = vc_b64_decode(b64, b64len, (unsigned char *) VARDATA(out));
	if (n < 0)
		vault_raise_malformed(op, "a plaintext is not valid base64");
	SET_VARSIZE(out, VARHDRSZ + n);
	if (as_text)
		check_decrypted_text(VARDATA(out), (int) n, key, subscript);
	return out;
}

/* Writes one input value as its request field. */
static void
append_input(VaultJsonWriter *w, TransitOp top, const char *data, size_t len)
{
	vault_jw_key(w, transit_ops[top].in_field);
	if (transit_ops[top].input_base64)
		vault_append_base64(w->buf, data, len, true);
	else
		vault_append_json_string(w->buf, data, len);
}

/*
 * One value through encrypt, decrypt, rewrap or hmac.  The result is text
 * (ciphertext, HMAC, decrypted text) or, for decrypt, optionally bytea.
 */
static struct varlena *
transit_single(TransitOp top, const char *input, size_t inlen,
			   const char *key, text *context, const char *algorithm,
			   bool result_bytea)
{
	const TransitOpInfo *info = &transit_ops[top];
	VaultOp		op = {info->what, key};
	StringInfoData body;
	VaultJsonWriter w;
	VaultResult res;
	VaultDoc   *doc;
	const char *out;
	size_t		outlen;
	struct varlena *result;
	char	   *path = key_path(info->verb, key, NULL);

	initStringInfo(&body);
	vault_jw_begin(&w, &body);
	append_input(&w, top, input, inlen);
	if (context)
		vault_jw_base64(&w, "context", VARDATA_ANY(context),
						VARSIZE_ANY_EXHDR(context));
	if (algorithm)
		vault_jw_string(&w, "algorithm", algorithm);
	vault_jw_end(&w);

	vault_request(&res, VAULT_POST, path, body.data, body.len,
				  VAULT_RETRY_IDEMPOTENT | VAULT_SECRET_BODY | VAULT_KIND(transit_kinds[top]));
	/* the body may hold the plaintext */
	explicit_bzero(body.data, body.len);
	pfree(body.data);

	doc = vault_doc_parse(&res, &op, 0);
	out = vault_doc_string_ref(doc, info->out_path, &outlen, &op);
	if (top == T_DECRYPT)
		result = decode_plaintext(out, outlen, !result_bytea, key, 0, &op);
	else
		result = (struct varlena *) cstring_to_text_with_len(out, (int) outlen);
	vault_doc_free(doc);
	pfree(path);
	return result;
}

/*
 * Most plain items (one input, no context) one batch request carries: what
 * vault.batch_size and vault.batch_max_strings both allow, leaving room for
 * "batch_input" and an "algorithm" pair (498 at the default).  The column
 * trigger holds this many rows, so that its requests go out full.
 */
int
vault_batch_items(void)
{
	int			n = vault_batch_size;

	if (vault_batch_max_strings > 0)
		n = Min(n, Max(1, (vault_batch_max_strings - 3) / 2));
	return n;
}

/* One request of a batch: which input elements it carries, and its body. */
typedef struct BatchChunk
{
	int			n;				/* items */
	int		   *pos;			/* their index in the input */
	int		   *subs;			/* their subscript, for messages */
	const char **values;		/* results, parsed */
	size_t	   *lens;
	StringInfoData body;
} BatchChunk;

/*
 * Takes the next items from position *next into chunk ch and writes its
 * request body; returns false when no item is left.
 */
static bool
build_chunk(BatchChunk *ch, const TransitOpInfo *info, TransitOp top,
			Datum *elems, bool *nulls, int nelems, Datum *ctx_elems,
			bool *ctx_nulls, int lbound, const char *algorithm, int *next)
{
	int			n = 0;
	size_t		estimate = 64;
	/* "batch_input", and "algorithm" with its value */
	int			strings = 1 + (algorithm ? 2 : 0);

	while (*next < nelems && n < vault_batch_size &&
		   (n == 0 || estimate < MAX_BATCH_BODY))
	{
		int			i = *next;

		if (!nulls[i])
		{
			size_t		len = VARSIZE_ANY_EXHDR(DatumGetPointer(elems[i]));
			/* the input's key and value, and the context's */
			int			item_strings = (ctx_elems && !ctx_nulls[i]) ? 4 : 2;

			if (n > 0 && vault_batch_max_strings > 0 &&
				strings + item_strings > vault_batch_max_strings)
				break;
			strings += item_strings;

			estimate += (info->input_base64 ? vc_b64_encoded_len(len) : len) + 40;
			if (ctx_elems && !ctx_nulls[i])
				estimate += vc_b64_encoded_len(VARSIZE_ANY_EXHDR(DatumGetPointer(ctx_elems[i]))) + 16;
			ch->pos[n] = i;
			ch->subs[n] = lbound + i;
			n++;
		}
		(*next)++;
	}
	ch->n = n;
	if (n == 0)
		return false;

	initStringInfo(&ch->body);
	if (estimate < (size_t) (MaxAllocSize - 1))
		enlargeStringInfo(&ch->body, (int) estimate);
	appendStringInfoString(&ch->body, "{\"batch_input\":[");
	for (int k = 0; k < n; k++)
	{
		int			i = ch->pos[k];
		VaultJsonWriter w;
		struct varlena *v = (struct varlena *) DatumGetPointer(elems[i]);

		if (k > 0)
			appendStringInfoChar(&ch->body, ',');
		vault_jw_begin(&w, &ch->body);
		append_input(&w, top, VARDATA_ANY(v), VARSIZE_ANY_EXHDR(v));
		if (ctx_elems && !ctx_nulls[i])
		{
			struct varlena *c = (struct varlena *) DatumGetPointer(ctx_elems[i]);

			vault_jw_base64(&w, "context", VARDATA_ANY(c), VARSIZE_ANY_EXHDR(c));
		}
		vault_jw_end(&w);
	}
	appendStringInfoChar(&ch->body, ']');
	if (algorithm)
	{
		appendStringInfoString(&ch->body, ",\"algorithm\":");
		escape_json(&ch->body, algorithm);
	}
	appendStringInfoChar(&ch->body, '}');
	return true;
}

/*
 * Parses the answers of a round of chunks into out (allocated in caller_cxt).
 * The answers of a parallel round hold plaintexts: wiped, whatever happens.
 */
static void
collect_results(BatchChunk *chunks, int nchunks, VaultResult *res,
				TransitOp top, const char *key, bool result_bytea, VaultOp *op,
				Datum *out, MemoryContext chunk_cxt, MemoryContext caller_cxt)
{
	const TransitOpInfo *info = &transit_ops[top];

	PG_TRY();
	{
		for (int c = 0; c < nchunks; c++)
		{
			BatchChunk *ch = &chunks[c];
			VaultDoc   *doc;

			MemoryContextSwitchTo(chunk_cxt);
			doc = vault_doc_parse(&res[c], op, VAULT_ACCEPT_BATCH);
			vault_doc_batch(doc, info->out_item, ch->n, ch->values, ch->lens,
							ch->subs, op);

			MemoryContextSwitchTo(caller_cxt);
			for (int k = 0; k < ch->n; k++)
			{
				struct varlena *r;

				if (top == T_DECRYPT)
					r = decode_plaintext(ch->values[k], ch->lens[k], !result_bytea,
										 key, ch->subs[k], op);
				else
					r = (struct varlena *) cstring_to_text_with_len(ch->values[k],
																	(int) ch->lens[k]);
				out[ch->pos[k]] = PointerGetDatum(r);
			}
		}
	}
	PG_CATCH();
	{
		if (nchunks > 1)
			vault_http_wipe_many();
		PG_RE_THROW();
	}
	PG_END_TRY();
	if (nchunks > 1)
		vault_http_wipe_many();
}

/*
 * The arguments of a batch form: input's elements, and contexts' (one per
 * element) when given; both must be one-dimensional.  Returns input's lower
 * bound, for subscripts in messages.
 */
int
vault_batch_args(ArrayType *input, ArrayType *contexts, Datum **elems,
				 bool **nulls, int *n, Datum **ctx_elems, bool **ctx_nulls)
{
	int16		typlen;
	bool		typbyval;
	char		typalign;
	int			nctx;

	if (ARR_NDIM(input) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("batch input must be a one-dimensional array")));
	get_typlenbyvalalign(ARR_ELEMTYPE(input), &typlen, &typbyval, &typalign);
	deconstruct_array(input, ARR_ELEMTYPE(input), typlen, typbyval, typalign,
					  elems, nulls, n);
	*ctx_elems = NULL;
	*ctx_nulls = NULL;
	if (contexts != NULL)
	{
		if (ARR_NDIM(contexts) > 1)
			ereport(ERROR,
					(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
					 errmsg("batch contexts must be a one-dimensional array")));
		deconstruct_array(contexts, TEXTOID, -1, false, TYPALIGN_INT,
						  ctx_elems, ctx_nulls, &nctx);
		if (nctx != *n)
			ereport(ERROR,
					(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
					 errmsg("batch has %d elements but %d contexts", *n, nctx)));
	}
	return ARR_NDIM(input) == 1 ? ARR_LBOUND(input)[0] : 1;
}

/*
 * nelems values (untoasted varlenas; NULL where nulls says) through a
 * transit operation, vault.batch_size items per request, up to
 * vault.batch_parallel requests at once; the results in input order, NULL
 * where the input was.  ctx_elems, when given, has one context (or NULL)
 * per value.  lbound numbers the values in error messages.
 */
static Datum *
transit_batch_values(TransitOp top, Datum *elems, bool *nulls, int nelems,
					 Datum *ctx_elems, bool *ctx_nulls, int lbound,
					 const char *key, const char *algorithm, bool result_bytea)
{
	const TransitOpInfo *info = &transit_ops[top];
	VaultOp		op = {info->what, key};
	Datum	   *out;
	char	   *path;
	MemoryContext chunk_cxt;
	MemoryContext caller_cxt = CurrentMemoryContext;
	int			next = 0;
	int			parallel = Min(vault_batch_parallel, VAULT_MAX_PARALLEL);
	BatchChunk	chunks[VAULT_MAX_PARALLEL];
	int			flags = VAULT_RETRY_IDEMPOTENT | VAULT_SECRET_BODY |
		VAULT_KIND(transit_kinds[top]);

	path = key_path(info->verb, key, NULL);
	out = palloc0(sizeof(Datum) * Max(nelems, 1));
	/* no more requests than the input fills */
	parallel = Max(1, Min(parallel, nelems / Max(vault_batch_items(), 1) + 1));
	for (int c = 0; c < parallel; c++)
	{
		chunks[c].pos = palloc(sizeof(int) * vault_batch_size);
		chunks[c].subs = palloc(sizeof(int) * vault_batch_size);
		chunks[c].values = palloc(sizeof(char *) * vault_batch_size);
		chunks[c].lens = palloc(sizeof(size_t) * vault_batch_size);
	}

	chunk_cxt = AllocSetContextCreate(CurrentMemoryContext,
									  "pg_vault batch chunk",
									  ALLOCSET_DEFAULT_SIZES);

	for (;;)
	{
		int			nchunks = 0;
		VaultResult res[VAULT_MAX_PARALLEL];
		const char *bodies[VAULT_MAX_PARALLEL];
		size_t		blens[VAULT_MAX_PARALLEL];
		int64		rows[VAULT_MAX_PARALLEL];

		MemoryContextSwitchTo(chunk_cxt);
		while (nchunks < parallel &&
			   build_chunk(&chunks[nchunks], info, top, elems, nulls, nelems,
						   ctx_elems, ctx_nulls, lbound, algorithm, &next))
		{
			bodies[nchunks] = chunks[nchunks].body.data;
			blens[nchunks] = chunks[nchunks].body.len;
			rows[nchunks] = chunks[nchunks].n;
			nchunks++;
		}
		if (nchunks == 0)
			break;

		if (nchunks == 1)
		{
			vault_stat_set_rows(rows[0]);
			vault_request(&res[0], VAULT_POST, path, bodies[0], blens[0], flags);
		}
		else
			vault_request_many(res, nchunks, VAULT_POST, path, bodies, blens,
							   rows, flags);
		for (int c = 0; c < nchunks; c++)
			explicit_bzero(chunks[c].body.data, chunks[c].body.len);

		collect_results(chunks, nchunks, res, top, key, result_bytea, &op,
						out, chunk_cxt, caller_cxt);
		/* frees the bodies and, through its callback, the parsed responses */
		MemoryContextReset(chunk_cxt);
	}
	MemoryContextSwitchTo(caller_cxt);
	MemoryContextDelete(chunk_cxt);
	return out;
}

/*
 * An array through a transit operation (transit_batch_values), an array of
 * the results with the input's bounds and NULLs.  contexts, when given, has
 * one context (or NULL) per input element.
 */
static ArrayType *
transit_batch(TransitOp top, ArrayType *input, const char *key,
			  ArrayType *contexts, const char *algorithm, bool result_bytea)
{
	int			lbound;
	Datum	   *elems;
	bool	   *nulls;
	int			nelems;
	Datum	   *ctx_elems;
	bool	   *ctx_nulls;
	Datum	   *out;
	int			dims[1];
	int			lbs[1];
	Oid			result_type = result_bytea ? BYTEAOID : TEXTOID;

	lbound = vault_batch_args(input, contexts, &elems, &nulls, &nelems,
							  &ctx_elems, &ctx_nulls);
	out = transit_batch_values(top, elems, nulls, nelems, ctx_elems, ctx_nulls,
							   lbound, key, algorithm, result_bytea);
	if (nelems == 0)
		return construct_empty_array(result_type);
	dims[0] = nelems;
	lbs[0] = lbound;
	return construct_md_array(out, nulls, 1, dims, lbs, result_type,
							  -1, false, TYPALIGN_INT);
}

/*
 * The C interface for other areas (the column trigger): n text values, no
 * NULL, encrypted (or HMACed) under key as the batch forms do it, without
 * an array built and taken apart on the way.  Values may be toasted; the
 * results are text, in input order.
 */
static Datum *
transit_values(TransitOp top, const Datum *values, int n, const char *key,
			   const char *algorithm)
{
	Datum	   *elems = palloc(sizeof(Datum) * Max(n, 1));
	bool	   *nulls = palloc0(sizeof(bool) * Max(n, 1));
	Datum	   *out;

	for (int i = 0; i < n; i++)
		elems[i] = PointerGetDatum(pg_detoast_datum_packed((struct varlena *) DatumGetPointer(values[i])));
	out = transit_batch_values(top, elems, nulls, n, NULL, NULL, 1, key,
							   algorithm, false);
	/* copies of plaintexts the detoasting made */
	for (int i = 0; i < n; i++)
		if (elems[i] != values[i])
		{
			explicit_bzero(DatumGetPointer(elems[i]), VARSIZE_ANY(DatumGetPointer(elems[i])));
			pfree(DatumGetPointer(elems[i]));
		}
	pfree(elems);
	pfree(nulls);
	return out;
}

Datum *
vault_transit_encrypt_values(const Datum *values, int n, const char *key)
{
	return transit_values(T_ENCRYPT, values, n, key, NULL);
}

Datum *
vault_transit_hmac_values(const Datum *values, int n, const char *key,
						  const char *algorithm)
{
	return transit_values(T_HMAC, values, n, key, algorithm);
}

/* ---- SQL functions ---- */

#define ARG_TEXT_OR_NULL(n) (PG_ARGISNULL(n) ? NULL : PG_GETARG_TEXT_PP(n))

/* SQL function: vault_encrypt(plaintext text, key text, context text) */
PG_FUNCTION_INFO_V1(pg_vault_encrypt_text);
Datum
pg_vault_encrypt_text(PG_FUNCTION_ARGS)
{
	text	   *plain;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	plain = PG_GETARG_TEXT_PP(0);
	PG_RETURN_POINTER(transit_single(T_ENCRYPT, VARDATA_ANY(plain),
									 VARSIZE_ANY_EXHDR(plain),
									 text_to_cstring(PG_GETARG_TEXT_PP(1)),
									 ARG_TEXT_OR_NULL(2), NULL, false));
}

/* SQL function: vault_encrypt(plaintext bytea, key text, context text) */
PG_FUNCTION_INFO_V1(pg_vault_encrypt_bytea);
Datum
pg_vault_encrypt_bytea(PG_FUNCTION_ARGS)
{
	bytea	   *plain;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	plain = PG_GETARG_BYTEA_PP(0);
	PG_RETURN_POINTER(transit_single(T_ENCRYPT, VARDATA_ANY(plain),
									 VARSIZE_ANY_EXHDR(plain),
									 text_to_cstring(PG_GETARG_TEXT_PP(1)),
									 ARG_TEXT_OR_NULL(2), NULL, false));
}

static Datum
decrypt_common(FunctionCallInfo fcinfo, TransitOp top, bool result_bytea)
{
	text	   *ct;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	ct = PG_GETARG_TEXT_PP(0);
	PG_RETURN_POINTER(transit_single(top, VARDATA_ANY(ct),
									 VARSIZE_ANY_EXHDR(ct),
									 text_to_cstring(PG_GETARG_TEXT_PP(1)),
									 ARG_TEXT_OR_NULL(2), NULL, result_bytea));
}

/* SQL function: vault_decrypt(ciphertext text, key text, context text) */
PG_FUNCTION_INFO_V1(pg_vault_decrypt_text);
Datum
pg_vault_decrypt_text(PG_FUNCTION_ARGS)
{
	return decrypt_common(fcinfo, T_DECRYPT, false);
}

/* SQL function: vault_decrypt_bytea(ciphertext text, key text, context text) */
PG_FUNCTION_INFO_V1(pg_vault_decrypt_bytea);
Datum
pg_vault_decrypt_bytea(PG_FUNCTION_ARGS)
{
	return decrypt_common(fcinfo, T_DECRYPT, true);
}

/* SQL function: vault_rewrap(ciphertext text, key text, context text) */
PG_FUNCTION_INFO_V1(pg_vault_rewrap);
Datum
pg_vault_rewrap(PG_FUNCTION_ARGS)
{
	return decrypt_common(fcinfo, T_REWRAP, false);
}

/* SQL function: vault_hmac(input text|bytea, key text, algorithm text) */
PG_FUNCTION_INFO_V1(pg_vault_hmac);
Datum
pg_vault_hmac(PG_FUNCTION_ARGS)
{
	struct varlena *input = PG_GETARG_VARLENA_PP(0);

	PG_RETURN_POINTER(transit_single(T_HMAC, VARDATA_ANY(input),
									 VARSIZE_ANY_EXHDR(input),
									 text_to_cstring(PG_GETARG_TEXT_PP(1)),
									 NULL,
									 text_to_cstring(PG_GETARG_TEXT_PP(2)),
									 false));
}

static Datum
batch_common(FunctionCallInfo fcinfo, TransitOp top, bool result_bytea)
{
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	PG_RETURN_ARRAYTYPE_P(transit_batch(top, PG_GETARG_ARRAYTYPE_P(0),
										text_to_cstring(PG_GETARG_TEXT_PP(1)),
										PG_ARGISNULL(2) ? NULL : PG_GETARG_ARRAYTYPE_P(2),
										NULL, result_bytea));
}

/* SQL function: vault_encrypt_batch(plaintexts text[]|bytea[], key, contexts) */
PG_FUNCTION_INFO_V1(pg_vault_encrypt_batch);
Datum
pg_vault_encrypt_batch(PG_FUNCTION_ARGS)
{
	return batch_common(fcinfo, T_ENCRYPT, false);
}

/* SQL function: vault_decrypt_batch(ciphertexts text[], key, contexts) */
PG_FUNCTION_INFO_V1(pg_vault_decrypt_batch);
Datum
pg_vault_decrypt_batch(PG_FUNCTION_ARGS)
{
	return batch_common(fcinfo, T_DECRYPT, false);
}

/* SQL function: vault_decrypt_bytea_batch(ciphertexts text[], key, contexts) */
PG_FUNCTION_INFO_V1(pg_vault_decrypt_bytea_batch);
Datum
pg_vault_decrypt_bytea_batch(PG_FUNCTION_ARGS)
{
	return batch_common(fcinfo, T_DECRYPT, true);
}

/* SQL function: vault_rewrap_batch(ciphertexts text[], key, contexts) */
PG_FUNCTION_INFO_V1(pg_vault_rewrap_batch);
Datum
pg_vault_rewrap_batch(PG_FUNCTION_ARGS)
{
	return batch_common(fcinfo, T_REWRAP, false);
}

/* SQL function: vault_hmac_batch(inputs text[]|bytea[], key, algorithm) */
PG_FUNCTION_INFO_V1(pg_vault_hmac_batch);
Datum
pg_vault_hmac_batch(PG_FUNCTION_ARGS)
{
	PG_RETURN_ARRAYTYPE_P(transit_batch(T_HMAC, PG_GETARG_ARRAYTYPE_P(0),
										text_to_cstring(PG_GETARG_TEXT_PP(1)),
										NULL,
										text_to_cstring(PG_GETARG_TEXT_PP(2)),
										false));
}

/* ---- key administration ---- */

static Datum
json_to_jsonb(const char *json)
{
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(json));
}

/* data of GET <mount>/keys/<key>, as JSON text. */
static char *
read_key_info(const char *key)
{
	VaultOp		op = {"read Vault key", key};
	char	   *path = key_path("keys", key, NULL);
	VaultResult res;
	VaultDoc   *doc;
	char	   *json;

	vault_request(&res, VAULT_GET, path, NULL, 0, VAULT_RETRY_IDEMPOTENT | VAULT_KIND(VS_KEY_ADMIN));
	doc = vault_doc_parse(&res, &op, 0);
	json = vault_doc_json(doc, "data", NULL);
	if (json == NULL)
		vault_raise_malformed(&op, "\"data\" is missing");
	vault_doc_free(doc);
	pfree(path);
	return json;
}

/* SQL function: vault_key_info(key text) returns jsonb */
PG_FUNCTION_INFO_V1(pg_vault_key_info);
Datum
pg_vault_key_info(PG_FUNCTION_ARGS)
{
	char	   *key = text_to_cstring(PG_GETARG_TEXT_PP(0));

	return json_to_jsonb(read_key_info(key));
}

/* SQL function: vault_key_rotate(key text) returns the new latest version */
PG_FUNCTION_INFO_V1(pg_vault_key_rotate);
Datum
pg_vault_key_rotate(PG_FUNCTION_ARGS)
{
	char	   *key = text_to_cstring(PG_GETARG_TEXT_PP(0));
	VaultOp		op = {"rotate Vault key", key};
	char	   *path = key_path("keys", key, "/rotate");
	VaultResult res;
	VaultDoc   *doc;
	int64		version;
	static const char body[] = "{}";

	/* not idempotent: retried only where Vault cannot have rotated */
	vault_request(&res, VAULT_POST, path, body, sizeof(body) - 1, VAULT_KIND(VS_KEY_ADMIN));
	doc = vault_doc_parse(&res, &op, 0);
	if (!vault_doc_int_opt(doc, "data.latest_version", &version))
	{
		/* Vault before 1.12 answers 204: read the key to learn the version */
		VaultOp		rop = {"read Vault key", key};
		char	   *rpath = key_path("keys", key, NULL);

		vault_doc_free(doc);
		vault_request(&res, VAULT_GET, rpath, NULL, 0, VAULT_RETRY_IDEMPOTENT | VAULT_KIND(VS_KEY_ADMIN));
		doc = vault_doc_parse(&res, &rop, 0);
		version = vault_doc_int(doc, "data.latest_version", &rop);
	}
	vault_doc_free(doc);
	if (version < 1 || version > PG_INT32_MAX)
		vault_raise_malformed(&op, "\"data.latest_version\" is out of range");
	PG_RETURN_INT32((int32) version);
}

/*
 * SQL function: vault_key_config(key text, min_decryption_version int,
 * min_encryption_version int, deletion_allowed bool, auto_rotate_period
 * interval) returns jsonb; NULL arguments are left unchanged.
 */
PG_FUNCTION_INFO_V1(pg_vault_key_config);
Datum
pg_vault_key_config(PG_FUNCTION_ARGS)
{
	char	   *key;
	VaultOp		op = {0};
	char	   *path;
	StringInfoData body;
	VaultJsonWriter w;
	VaultResult res;
	VaultDoc   *doc;
	char	   *json;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	key = text_to_cstring(PG_GETARG_TEXT_PP(0));
	op.what = "configure Vault key";
	op.object = key;
	path = key_path("keys", key, "/config");

	initStringInfo(&body);
	vault_jw_begin(&w, &body);
	if (!PG_ARGISNULL(1))
		vault_jw_int(&w, "min_decryption_version", PG_GETARG_INT32(1));
	if (!PG_ARGISNULL(2))
		vault_jw_int(&w, "min_encryption_version", PG_GETARG_INT32(2));
	if (!PG_ARGISNULL(3))
		vault_jw_bool(&w, "deletion_allowed", PG_GETARG_BOOL(3));
	if (!PG_ARGISNULL(4))
	{
		Interval   *iv = PG_GETARG_INTERVAL_P(4);
		int64		secs;

		secs = iv->time / USECS_PER_SEC +
			((int64) iv->month * DAYS_PER_MONTH + iv->day) * SECS_PER_DAY;
		if (secs < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("auto_rotate_period must not be negative")));
		vault_jw_int(&w, "auto_rotate_period", secs);
	}
	vault_jw_end(&w);

	vault_request(&res, VAULT_POST, path, body.data, body.len,
				  VAULT_RETRY_IDEMPOTENT | VAULT_KIND(VS_KEY_ADMIN));
	doc = vault_doc_parse(&res, &op, 0);
	json = vault_doc_json(doc, "data", NULL);
	vault_doc_free(doc);
	/* older Vault answers 204 */
	if (json == NULL || strcmp(json, "null") == 0)
		json = read_key_info(key);
	return json_to_jsonb(json);
}

void
vault_transit_init(void)
{
	DefineCustomIntVariable("vault.batch_size",
							gettext_noop("Largest number of items sent to Vault in one batch request."),
							NULL,
							&vault_batch_size, 1000, 1, 100000,
							PGC_USERSET, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("vault.batch_max_strings",
							gettext_noop("Largest number of JSON strings (keys and values) in one batch request; 0 means no limit."),
							gettext_noop("OpenBao refuses request bodies with more strings than its listener's "
										 "max_request_json_strings, 1000 by default; raise both together."),
							&vault_batch_max_strings, 1000, 0, 10000000,
							PGC_USERSET, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("vault.batch_parallel",
							gettext_noop("Largest number of batch requests a batch call keeps in flight at once, each on its own connection to Vault."),
							gettext_noop("1 sends them one after another."),
							&vault_batch_parallel, 4, 1, VAULT_MAX_PARALLEL,
							PGC_SUSET, 0,
							NULL, NULL, NULL);
	DefineCustomStringVariable("vault.transit_mount",
							   gettext_noop("Path where Vault's Transit engine is mounted."),
							   NULL,
							   &vault_transit_mount, "transit",
							   PGC_SUSET, 0,
							   NULL, NULL, NULL);
}
