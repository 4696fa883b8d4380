/*
 * columns_rows.c
 *    The bottom of the encrypted-column files: rows encrypted through the
 *    Transit (or envelope) batch API, per key one encrypt batch and, for
 *    blind indexes, one HMAC batch for all the rows given, for the role
 *    that writes them and only as far as its own grants go; and the
 *    ciphertext tests that the trigger, the install script's domain and
 *    the migration and rewrap procedures use.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "parser/parse_func.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "pg_vault.h"
#include "columns.h"
#include "common/vault_common.h"

/* The blind index is an HMAC with the column's key and this algorithm. */
#define HMAC_ALGORITHM	"sha2-256"

/* Error context of a Vault call made for a trigger. */
typedef struct ColumnsErrorArg
{
	const char *tgname;
	const char *relname;
	const char *key;
} ColumnsErrorArg;

/* ---- ciphertext tests (the parser: vc_ciphertext_version, src/common) ---- */

bool
vault_datum_is_ciphertext(Datum value)
{
	text	   *t = DatumGetTextPP(value);
	bool		result;

	result = vc_ciphertext_version(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t)) >= 0 ||
		vault_is_envelope(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
	if ((Pointer) t != DatumGetPointer(value))
		pfree(t);
	return result;
}

/*
 * SQL function: vault_is_ciphertext(value text) returns boolean: a Transit
 * (vault:vN:) or an envelope (pgv1:) ciphertext
 */
PG_FUNCTION_INFO_V1(pg_vault_is_ciphertext);
Datum
pg_vault_is_ciphertext(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(vault_datum_is_ciphertext(PG_GETARG_DATUM(0)));
}

/* SQL function: vault_ciphertext_version(value text) returns integer */
PG_FUNCTION_INFO_V1(pg_vault_ciphertext_version);
Datum
pg_vault_ciphertext_version(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);
	int			version = vc_ciphertext_version(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));

	if (version < 0)
		PG_RETURN_NULL();
	PG_RETURN_INT32(version);
}

ColumnsConfig *
vault_columns_copy_config(const ColumnsConfig *src, MemoryContext cxt)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);
	ColumnsConfig *cfg = palloc(sizeof(ColumnsConfig));
	int			i;

	*cfg = *src;
	cfg->tgname = pstrdup(src->tgname);
	cfg->keys = palloc(sizeof(char *) * Max(src->nkeys, 1));
	for (i = 0; i < src->nkeys; i++)
		cfg->keys[i] = pstrdup(src->keys[i]);
	cfg->cols = palloc(sizeof(EncColumn) * Max(src->ncols, 1));
	memcpy(cfg->cols, src->cols, sizeof(EncColumn) * src->ncols);
	MemoryContextSwitchTo(old);
	return cfg;
}

/* ---- encryption of rows ---- */

static void
columns_error_context(void *arg)
{
	ColumnsErrorArg *a = (ColumnsErrorArg *) arg;

	errcontext("vault_encrypt_columns trigger \"%s\" on table \"%s\", Vault key \"%s\"",
			   a->tgname, a->relname, a->key);
}

/*
 * The trigger acts for the role that writes the row, and does for it only
 * what that role could do itself: encrypt if it may call vault_encrypt, fill
 * a blind index if it may call vault_hmac.  Otherwise a table of its own
 * with this trigger would hand it what its grants withhold (an HMAC oracle
 * for an encrypt-only role, against a 10^9-value SSN space).
 */
static Oid
extension_function(ColumnsConfig *cfg, const char *name, Oid third_arg)
{
	Oid			args[3] = {TEXTARRAYOID, TEXTOID, third_arg};
	String	   *schema = makeString(get_namespace_name(cfg->fn_namespace));
	String	   *fname = makeString(pstrdup(name));

	List	   *qualified = lappend(lappend(NIL, schema), fname);

	return LookupFuncName(qualified, 3, args, false);
}

static void
require_execute(Oid fn, const char *sql_name, const char *grant_role, const char *what)
{
	if (pg_proc_aclcheck(fn, GetUserId(), ACL_EXECUTE) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for function %s", sql_name),
				 errdetail("The vault_encrypt_columns trigger %s only for a role that may call %s itself.",
						   what, sql_name),
				 errhint("GRANT %s TO %s;", grant_role,
						 quote_identifier(GetUserNameFromId(GetUserId(), false)))));
}

static void
check_privileges(ColumnsConfig *cfg, bool envelope, bool hmac)
{
	if (!OidIsValid(cfg->encrypt_fn))
	{
		cfg->encrypt_fn = extension_function(cfg, "vault_encrypt_batch", TEXTARRAYOID);
		cfg->hmac_fn = extension_function(cfg, "vault_hmac_batch", TEXTOID);
	}
	/* looked up only when used: an extension not updated from 0.1.0 has none */
	if (envelope && !OidIsValid(cfg->envelope_fn))
		cfg->envelope_fn = extension_function(cfg, "vault_envelope_encrypt_batch", TEXTARRAYOID);
	if (envelope)
		require_execute(cfg->envelope_fn, "vault_envelope_encrypt", "vault_encryptor", "encrypts");
	else
		require_execute(cfg->encrypt_fn, "vault_encrypt", "vault_encryptor", "encrypts");
	if (hmac)
		require_execute(cfg->hmac_fn, "vault_hmac", "vault_hasher", "computes blind indexes");
}

/*
 * Encrypts the plaintexts of n rows in place: rows[i] is replaced by a new
 * tuple when anything changed.  Per key, one encrypt batch and, for blind
 * indexes, one HMAC batch for all the rows.  A NULL encrypted column gets a
 * NULL blind index; ciphertexts are kept, with their blind index as given.
 */
void
vault_columns_encrypt_rows(ColumnsConfig *cfg, Relation rel, HeapTuple *rows, int n)
{
	TupleDesc	desc = RelationGetDescr(rel);
	int			maxrepl = cfg->ncols * 2;
	int		   *nrepl = palloc0(sizeof(int) * n);
	int		   *repl_cols = palloc(sizeof(int) * n * maxrepl);
	Datum	   *repl_values = palloc(sizeof(Datum) * n * maxrepl);
	bool	   *repl_nulls = palloc(sizeof(bool) * n * maxrepl);
	Datum	   *plain = palloc(sizeof(Datum) * n * cfg->ncols);
	int		   *plain_row = palloc(sizeof(int) * n * cfg->ncols);
	int		   *plain_col = palloc(sizeof(int) * n * cfg->ncols);
	ErrorContextCallback errcb;
	ColumnsErrorArg errarg;
	int			i;

#define REPLACE(row, attnum, value, isnull) \
	do { \
		int		_r = (row) * maxrepl + nrepl[row]++; \
		repl_cols[_r] = (attnum); \
		repl_values[_r] = (value); \
		repl_nulls[_r] = (isnull); \
	} while (0)

	errarg.tgname = cfg->tgname;
	errarg.relname = RelationGetRelationName(rel);
	errcb.callback = columns_error_context;
	errcb.arg = &errarg;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;

	for (int pass = 0; pass < cfg->nkeys * 2; pass++)
	{
		int			k = pass / 2;
		bool		envelope = (pass % 2) == 1;
		int			np = 0;
		int			nh = 0;
		int			p;
		int			m;
		Datum	   *cts;
		Datum	   *macs = NULL;

		/* set before anything can raise: the context callback prints it */
		errarg.key = cfg->keys[k];
		for (i = 0; i < n; i++)
		{
			int			c;

			for (c = 0; c < cfg->ncols; c++)
			{
				EncColumn  *col = &cfg->cols[c];
				bool		isnull;
				Datum		v;

				if (col->key != k || col->envelope != envelope)
					continue;
				v = heap_getattr(rows[i], col->attnum, desc, &isnull);
				if (isnull)
				{
					if (col->hmac_attnum != InvalidAttrNumber &&
						!heap_attisnull(rows[i], col->hmac_attnum, desc))
						REPLACE(i, col->hmac_attnum, (Datum) 0, true);
					continue;
				}
				if (vault_datum_is_ciphertext(v))
					continue;
				plain[np] = v;
				plain_row[np] = i;
				plain_col[np] = c;
				np++;
				if (col->hmac_attnum != InvalidAttrNumber)
					nh++;
			}
		}
		if (np == 0)
			continue;

		/* before any request: nothing is sent for a role that may not */
		check_privileges(cfg, envelope, nh > 0);
		cts = envelope ? vault_envelope_encrypt_values(plain, np, cfg->keys[k]) :
			vault_transit_encrypt_values(plain, np, cfg->keys[k]);
		if (nh > 0)
		{
			Datum	   *hplain = palloc(sizeof(Datum) * nh);
			int			h = 0;

			for (p = 0; p < np; p++)
				if (cfg->cols[plain_col[p]].hmac_attnum != InvalidAttrNumber)
					hplain[h++] = plain[p];
			macs = vault_transit_hmac_values(hplain, nh, cfg->keys[k], HMAC_ALGORITHM);
			pfree(hplain);
		}

		for (p = 0, m = 0; p < np; p++)
		{
			EncColumn  *col = &cfg->cols[plain_col[p]];
			text	   *ct = DatumGetTextPP(cts[p]);

			/* a value the trigger would not recognise would be encrypted again */
			if (envelope ? !vault_is_envelope(VARDATA_ANY(ct), VARSIZE_ANY_EXHDR(ct)) :
				vc_ciphertext_version(VARDATA_ANY(ct), VARSIZE_ANY_EXHDR(ct)) < 0)
				ereport(ERROR,
						(errcode(ERRCODE_VAULT_BAD_RESPONSE),
						 errmsg("Vault returned a ciphertext of an unexpected form for key \"%s\"",
								cfg->keys[k])));
			REPLACE(plain_row[p], col->attnum, cts[p], false);
			if (col->hmac_attnum != InvalidAttrNumber)
				REPLACE(plain_row[p], col->hmac_attnum, macs[m++], false);
		}
	}
	error_context_stack = errcb.previous;

	for (i = 0; i < n; i++)
		if (nrepl[i] > 0)
			rows[i] = heap_modify_tuple_by_cols(rows[i], desc, nrepl[i],
												&repl_cols[i * maxrepl],
												&repl_values[i * maxrepl],
												&repl_nulls[i * maxrepl]);
#undef REPLACE
}

/*
 * What a row needs: 0 nothing, 1 only blind indexes cleared (no request),
 * 2 encryption.
 */
int
vault_columns_row_needs(ColumnsConfig *cfg, TupleDesc desc, HeapTuple row)
{
	int			need = 0;
	int			c;

	for (c = 0; c < cfg->ncols; c++)
	{
		EncColumn  *col = &cfg->cols[c];
		bool		isnull;
		Datum		v = heap_getattr(row, col->attnum, desc, &isnull);

		if (isnull)
		{
			if (col->hmac_attnum != InvalidAttrNumber &&
				!heap_attisnull(row, col->hmac_attnum, desc))
				need = 1;
		}
		else if (!vault_datum_is_ciphertext(v))
			return 2;
	}
	return need;
}
