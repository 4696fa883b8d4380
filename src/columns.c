/*
 * columns.c
 *    Encrypted columns: the vault_encrypt_columns() trigger, which encrypts
 *    named text columns with Vault Transit keys as rows are written and
 *    fills their blind-index columns with HMACs of the plaintexts, and the
 *    ciphertext tests that the install script's domain, migration and
 *    rewrap procedures use.
 *
 *    A value that already is a ciphertext is left as it is, so an UPDATE of
 *    other columns, or an INSERT that encrypted its values itself, costs no
 *    request.  One row at a time, the trigger makes one encrypt request per
 *    key (and one HMAC request per key with blind indexes).
 *
 *    Bulk writes do not pay that per row.  While a multi-row INSERT (with no
 *    RETURNING, ON CONFLICT or check options) or a COPY FROM is running,
 *    the trigger holds back each row that carries a plaintext: it keeps a
 *    copy and returns NULL, so that the row is not written.  When enough
 *    rows are held for vault.batch_parallel full requests (each
 *    vault_batch_items() rows: vault.batch_size, within what
 *    vault.batch_max_strings allows), and when the statement's executor run
 *    or the COPY ends, the held rows are encrypted through the batch API,
 *    those requests in flight at once, and inserted with one
 *    INSERT ... SELECT FROM unnest($1).  Executor and
 *    utility hooks know which statement is running (the innermost one is
 *    the one firing the trigger), flush at its end and add the rows
 *    inserted to its command tag.  Nothing with a plaintext reaches the
 *    table, and a failure is an error of the statement, so none of its rows
 *    is committed; held copies are wiped when written or on error.
 *
 *    Rows are held back only where the later insert is indistinguishable
 *    from the original one: an ordinary table (not a partition) without row
 *    security, statement-level INSERT triggers or transition tables, no
 *    other BEFORE INSERT row trigger that fires before this one (it would
 *    see the row twice), and a caller with INSERT on the whole table.  Any
 *    other case, and every UPDATE, is encrypted row by row.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "nodes/plannodes.h"
#include "parser/parse_func.h"
#include "parser/parsetree.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "pg_vault.h"
#include "common/vault_common.h"

/* Held rows are flushed before their copies pass this size. */
#define MAX_HELD_BYTES	(16 * 1024 * 1024)

/* The blind index is an HMAC with the column's key and this algorithm. */
#define HMAC_ALGORITHM	"sha2-256"

/* One encrypted column of a trigger's argument list. */
typedef struct EncColumn
{
	AttrNumber	attnum;
	AttrNumber	hmac_attnum;	/* InvalidAttrNumber: no blind index */
	int			key;			/* index into ColumnsConfig.keys */
	bool		envelope;		/* "!envelope": pgv1: values, not Transit */
} EncColumn;

/* A trigger's arguments resolved against its table, kept in fn_extra. */
typedef struct ColumnsConfig
{
	Oid			tgoid;
	Oid			relid;
	char	   *tgname;
	int			nkeys;
	char	  **keys;
	int			ncols;
	EncColumn  *cols;
	bool		can_hold;		/* the table allows rows to be held back */
	Oid			checked_user;	/* whose table-wide INSERT was checked */
	bool		user_can_hold;
	Oid			fn_namespace;	/* the extension's schema */
	Oid			encrypt_fn;		/* vault_encrypt_batch(text[], text, text[]) */
	Oid			hmac_fn;		/* vault_hmac_batch(text[], text, text) */
	Oid			envelope_fn;	/* vault_envelope_encrypt_batch(text[], text, text[]) */
} ColumnsConfig;

/* The rows one trigger held back during one statement. */
typedef struct HeldRows
{
	ColumnsConfig *cfg;			/* a copy: the trigger's own ends with
								 * CopyFrom, before the last flush */
	MemoryContext rowcxt;		/* the copies, reset at each flush */
	HeapTuple  *rows;
	int			nrows;
	int			maxrows;
	Size		bytes;
	char	   *insert_sql;
} HeldRows;

/* A running statement whose rows may be held back. */
typedef struct BulkStatement
{
	Oid			relid;			/* its target; InvalidOid until the first
								 * held row of a COPY */
	MemoryContext parent;		/* where held rows are kept */
	MemoryContext cxt;			/* NULL until a row is held */
	List	   *held;			/* HeldRows, one per trigger */
	uint64		inserted;		/* rows the flushes inserted */
} BulkStatement;

/*
 * The statements executing right now, innermost last: one entry per
 * ExecutorRun in progress (NULL for those that hold nothing) and per COPY
 * FROM.  A BEFORE row trigger is always fired by the innermost one.
 */
static BulkStatement **running = NULL;
static int	nrunning = 0;
static int	maxrunning = 0;

static ExecutorRun_hook_type prev_ExecutorRun = NULL;
static ProcessUtility_hook_type prev_ProcessUtility = NULL;

/* Error context of a Vault call made for a trigger. */
typedef struct ColumnsErrorArg
{
	const char *tgname;
	const char *relname;
	const char *key;
} ColumnsErrorArg;

/* ---- ciphertext tests (the parser: vc_ciphertext_version, src/common) ---- */

static bool
datum_is_ciphertext(Datum value)
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
	PG_RETURN_BOOL(datum_is_ciphertext(PG_GETARG_DATUM(0)));
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

/* ---- the trigger's arguments ---- */

/* A column that holds ciphertexts or HMACs: text, varchar or a domain of them. */
static void
check_text_column(Relation rel, AttrNumber attnum, const char *name)
{
	Oid			base = getBaseType(TupleDescAttr(RelationGetDescr(rel), attnum - 1)->atttypid);

	if (base != TEXTOID && base != VARCHAROID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("column \"%s\" of table \"%s\" is of type %s, not text",
						name, RelationGetRelationName(rel),
						format_type_be(TupleDescAttr(RelationGetDescr(rel), attnum - 1)->atttypid)),
				 errhint("Columns named by vault_encrypt_columns() hold ciphertexts or HMACs, which are text.")));
}

static AttrNumber
lookup_column(Relation rel, const char *name)
{
	int			attnum = SPI_fnumber(RelationGetDescr(rel), name);

	if (attnum <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of table \"%s\" does not exist",
						name, RelationGetRelationName(rel)),
				 errhint("vault_encrypt_columns() arguments name columns as they are spelled in the table, without quotes.")));
	check_text_column(rel, (AttrNumber) attnum, name);
	return (AttrNumber) attnum;
}

static int
add_key(ColumnsConfig *cfg, const char *key)
{
	int			i;

	for (i = 0; i < cfg->nkeys; i++)
		if (strcmp(cfg->keys[i], key) == 0)
			return i;
	vault_check_key_name(key);
	cfg->keys[cfg->nkeys] = pstrdup(key);
	return cfg->nkeys++;
}

static void
bad_spec(const char *spec, const char *why)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid vault_encrypt_columns() argument \"%s\": %s", spec, why),
			 errhint("Arguments are a Vault key, then columns written column[:hmac_column][@key][!envelope], "
					 "for example vault_encrypt_columns('user-data', 'ssn:ssn_hmac', 'payment_token@payment-data').")));
}

/*
 * Whether held rows can be inserted later exactly as the original insert
 * would have: see the file header.
 */
static bool
table_can_hold(Relation rel, Trigger *self, Oid fnoid)
{
	TriggerDesc *td = rel->trigdesc;
	int			i;

	if (rel->rd_rel->relkind != RELKIND_RELATION || rel->rd_rel->relispartition ||
		rel->rd_rel->relrowsecurity)
		return false;
	if (td->trig_insert_before_statement || td->trig_insert_after_statement ||
		td->trig_insert_new_table)
		return false;
	/* triggers fire in name order, as they are listed */
	for (i = 0; i < td->numtriggers; i++)
	{
		Trigger    *t = &td->triggers[i];

		if (t->tgoid == self->tgoid)
			break;
		if (TRIGGER_TYPE_MATCHES(t->tgtype, TRIGGER_TYPE_ROW, TRIGGER_TYPE_BEFORE,
								 TRIGGER_TYPE_INSERT) && t->tgfoid != fnoid)
			return false;
	}
	return true;
}

static ColumnsConfig *
parse_config(TriggerData *td, Oid fnoid, MemoryContext cxt)
{
	Trigger    *tg = td->tg_trigger;
	Relation	rel = td->tg_relation;
	MemoryContext old = MemoryContextSwitchTo(cxt);
	ColumnsConfig *cfg = palloc0(sizeof(ColumnsConfig));
	int			i;
	int			j;

	cfg->fn_namespace = get_func_namespace(fnoid);

	if (tg->tgnargs < 2)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("trigger \"%s\" on table \"%s\" needs a Vault key and at least one column",
						tg->tgname, RelationGetRelationName(rel)),
				 errhint("For example: EXECUTE FUNCTION vault_encrypt_columns('user-data', 'ssn:ssn_hmac', 'payment_token@payment-data').")));

	cfg->tgoid = tg->tgoid;
	cfg->relid = RelationGetRelid(rel);
	cfg->tgname = pstrdup(tg->tgname);
	cfg->keys = palloc(sizeof(char *) * tg->tgnargs);
	cfg->cols = palloc0(sizeof(EncColumn) * (tg->tgnargs - 1));
	add_key(cfg, tg->tgargs[0]);

	for (i = 1; i < tg->tgnargs; i++)
	{
		char	   *spec = pstrdup(tg->tgargs[i]);
		char	   *bang = strrchr(spec, '!');
		char	   *at;
		char	   *colon;
		EncColumn  *c = &cfg->cols[cfg->ncols];

		c->key = 0;
		c->envelope = false;
		if (bang != NULL)
		{
			if (strcmp(bang, "!envelope") != 0)
				bad_spec(tg->tgargs[i], "the only mode after \"!\" is \"envelope\"");
			*bang = '\0';
			c->envelope = true;
		}
		at = strrchr(spec, '@');
		if (at != NULL)
		{
			*at = '\0';
			if (at[1] == '\0')
				bad_spec(tg->tgargs[i], "the key after \"@\" is empty");
			c->key = add_key(cfg, at + 1);
		}
		colon = strchr(spec, ':');
		if (colon != NULL)
		{
			*colon = '\0';
			if (colon[1] == '\0')
				bad_spec(tg->tgargs[i], "the blind-index column after \":\" is empty");
			c->hmac_attnum = lookup_column(rel, colon + 1);
		}
		if (spec[0] == '\0')
			bad_spec(tg->tgargs[i], "the column name is empty");
		c->attnum = lookup_column(rel, spec);
		if (c->attnum == c->hmac_attnum)
			bad_spec(tg->tgargs[i], "a column cannot be its own blind index");
		cfg->ncols++;
	}

	/* every column is written once, by one role */
	for (i = 0; i < cfg->ncols; i++)
		for (j = 0; j < cfg->ncols; j++)
		{
			EncColumn  *a = &cfg->cols[i];
			EncColumn  *b = &cfg->cols[j];

			if ((i < j && a->attnum == b->attnum) ||
				(a->hmac_attnum != InvalidAttrNumber &&
				 (a->hmac_attnum == b->attnum ||
				  (i < j && a->hmac_attnum == b->hmac_attnum))))
				bad_spec(tg->tgargs[i + 1], "a column is named twice");
		}

	cfg->can_hold = table_can_hold(rel, tg, fnoid);
	cfg->checked_user = InvalidOid;
	MemoryContextSwitchTo(old);
	return cfg;
}

static ColumnsConfig *
copy_config(const ColumnsConfig *src, MemoryContext cxt)
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

/* A transit batch function of transit.c called with (values, key, third). */
static ArrayType *
call_batch(PGFunction fn, ArrayType *values, const char *key, const char *third)
{
	LOCAL_FCINFO(fc, 3);
	Datum		result;

	InitFunctionCallInfoData(*fc, NULL, 3, InvalidOid, NULL, NULL);
	fc->args[0].value = PointerGetDatum(values);
	fc->args[0].isnull = false;
	fc->args[1].value = CStringGetTextDatum(key);
	fc->args[1].isnull = false;
	fc->args[2].value = third ? CStringGetTextDatum(third) : (Datum) 0;
	fc->args[2].isnull = third == NULL;
	result = fn(fc);
	if (fc->isnull)
		elog(ERROR, "transit batch function returned NULL");
	return DatumGetArrayTypeP(result);
}

/* The text elements of a batch result, which has as many as were sent. */
static Datum *
batch_results(ArrayType *arr, int expected)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int			i;

	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	if (n != expected)
		elog(ERROR, "transit batch returned %d results for %d values", n, expected);
	for (i = 0; i < n; i++)
		if (nulls[i])
			elog(ERROR, "transit batch returned NULL for a value");
	return elems;
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

static void
wipe_array(ArrayType *arr)
{
	explicit_bzero(ARR_DATA_PTR(arr), ARR_SIZE(arr) - ARR_DATA_OFFSET(arr));
}

/*
 * Encrypts the plaintexts of n rows in place: rows[i] is replaced by a new
 * tuple when anything changed.  Per key, one encrypt batch and, for blind
 * indexes, one HMAC batch for all the rows.  A NULL encrypted column gets a
 * NULL blind index; ciphertexts are kept, with their blind index as given.
 */
static void
encrypt_rows(ColumnsConfig *cfg, Relation rel, HeapTuple *rows, int n)
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
		ArrayType  *in;
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
				if (datum_is_ciphertext(v))
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
		in = construct_array(plain, np, TEXTOID, -1, false, TYPALIGN_INT);
		cts = batch_results(call_batch(envelope ? pg_vault_envelope_encrypt_batch : pg_vault_encrypt_batch,
									   in, cfg->keys[k], NULL), np);
		if (nh > 0)
		{
			ArrayType  *hin;
			Datum	   *hplain = palloc(sizeof(Datum) * nh);
			int			h = 0;

			for (p = 0; p < np; p++)
				if (cfg->cols[plain_col[p]].hmac_attnum != InvalidAttrNumber)
					hplain[h++] = plain[p];
			hin = construct_array(hplain, nh, TEXTOID, -1, false, TYPALIGN_INT);
			macs = batch_results(call_batch(pg_vault_hmac_batch, hin, cfg->keys[k],
											HMAC_ALGORITHM), nh);
			wipe_array(hin);
			pfree(hin);
			pfree(hplain);
		}
		wipe_array(in);
		pfree(in);

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
static int
row_needs(ColumnsConfig *cfg, TupleDesc desc, HeapTuple row)
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
		else if (!datum_is_ciphertext(v))
			return 2;
	}
	return need;
}

/* ---- held rows ---- */

/* INSERT INTO rel (cols) OVERRIDING SYSTEM VALUE SELECT r.cols FROM unnest($1) r */
static char *
build_insert_sql(Relation rel)
{
	TupleDesc	desc = RelationGetDescr(rel);
	StringInfoData cols;
	StringInfoData sel;
	int			i;
	bool		first = true;

	initStringInfo(&cols);
	initStringInfo(&sel);
	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute a = TupleDescAttr(desc, i);
		const char *name;

		/* generated columns are computed by the insert itself */
		if (a->attisdropped || a->attgenerated)
			continue;
		name = quote_identifier(NameStr(a->attname));
		appendStringInfo(&cols, "%s%s", first ? "" : ", ", name);
		appendStringInfo(&sel, "%sr.%s", first ? "" : ", ", name);
		first = false;
	}
	return psprintf("INSERT INTO %s (%s) OVERRIDING SYSTEM VALUE SELECT %s FROM pg_catalog.unnest($1) AS r",
					quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
											   RelationGetRelationName(rel)),
					cols.data, sel.data);
}

static void
wipe_held(HeldRows *h)
{
	int			i;

	for (i = 0; i < h->nrows; i++)
		explicit_bzero(h->rows[i]->t_data, h->rows[i]->t_len);
	h->nrows = 0;
	h->bytes = 0;
	MemoryContextReset(h->rowcxt);
	h->rows = NULL;
	h->maxrows = 0;
}

/* Encrypts the held rows in batches and inserts them with one statement. */
static void
flush_held(BulkStatement *bulk, HeldRows *h)
{
	Relation	rel;
	MemoryContext work;
	MemoryContext old;
	HeapTuple  *rows;
	Datum	   *composites;
	ArrayType  *arr;
	Oid			rowtype;
	Oid			arraytype;
	int16		typlen;
	bool		typbyval;
	char		typalign;
	Datum		param;
	int			ret;
	int			i;

	if (h->nrows == 0)
		return;

	/* the statement holds its lock on the table until the end */
	rel = table_open(bulk->relid, NoLock);
	work = AllocSetContextCreate(CurrentMemoryContext, "pg_vault held rows flush",
								 ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(work);

	rows = palloc(sizeof(HeapTuple) * h->nrows);
	memcpy(rows, h->rows, sizeof(HeapTuple) * h->nrows);
	encrypt_rows(h->cfg, rel, rows, h->nrows);

	rowtype = rel->rd_rel->reltype;
	arraytype = get_array_type(rowtype);
	if (!OidIsValid(arraytype))
		elog(ERROR, "row type of table \"%s\" has no array type", RelationGetRelationName(rel));
	get_typlenbyvalalign(rowtype, &typlen, &typbyval, &typalign);
	composites = palloc(sizeof(Datum) * h->nrows);
	for (i = 0; i < h->nrows; i++)
		composites[i] = heap_copy_tuple_as_datum(rows[i], RelationGetDescr(rel));
	arr = construct_array(composites, h->nrows, rowtype, typlen, typbyval, typalign);
	param = PointerGetDatum(arr);

	if (h->insert_sql == NULL)
		h->insert_sql = MemoryContextStrdup(bulk->cxt, build_insert_sql(rel));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	ret = SPI_execute_with_args(h->insert_sql, 1, &arraytype, &param, NULL, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "insert of held rows into \"%s\" failed: %s",
			 RelationGetRelationName(rel), SPI_result_code_string(ret));
	bulk->inserted += SPI_processed;
	SPI_finish();

	MemoryContextSwitchTo(old);
	MemoryContextDelete(work);
	table_close(rel, NoLock);
	wipe_held(h);
}

static void
flush_all(BulkStatement *bulk)
{
	ListCell   *lc;

	foreach(lc, bulk->held)
		flush_held(bulk, (HeldRows *) lfirst(lc));
}

/* On error: the copies are wiped, nothing is written. */
static void
discard_all(BulkStatement *bulk)
{
	ListCell   *lc;

	if (bulk->cxt == NULL)
		return;
	foreach(lc, bulk->held)
	{
		HeldRows   *h = (HeldRows *) lfirst(lc);
		int			i;

		for (i = 0; i < h->nrows; i++)
			explicit_bzero(h->rows[i]->t_data, h->rows[i]->t_len);
	}
	MemoryContextDelete(bulk->cxt);
	bulk->cxt = NULL;
	bulk->held = NIL;
}

/* The running statement that may hold this trigger's row, or NULL. */
static BulkStatement *
bulk_for(TriggerData *td, ColumnsConfig *cfg)
{
	BulkStatement *bulk;
	Oid			relid = RelationGetRelid(td->tg_relation);
	Oid			user = GetUserId();

	if (nrunning == 0 || (bulk = running[nrunning - 1]) == NULL || !cfg->can_hold)
		return NULL;
	if (OidIsValid(bulk->relid) && bulk->relid != relid)
		return NULL;
	if (cfg->checked_user != user)
	{
		/* the later insert names every column: table-wide INSERT is needed */
		cfg->user_can_hold = pg_class_aclcheck(relid, user, ACL_INSERT) == ACLCHECK_OK;
		cfg->checked_user = user;
	}
	if (!cfg->user_can_hold)
		return NULL;
	bulk->relid = relid;
	return bulk;
}

static void
hold_row(BulkStatement *bulk, ColumnsConfig *cfg, HeapTuple row)
{
	HeldRows   *h = NULL;
	ListCell   *lc;
	MemoryContext old;

	if (bulk->cxt == NULL)
		bulk->cxt = AllocSetContextCreate(bulk->parent, "pg_vault held rows",
										  ALLOCSET_DEFAULT_SIZES);
	foreach(lc, bulk->held)
	{
		if (((HeldRows *) lfirst(lc))->cfg->tgoid == cfg->tgoid)
		{
			h = (HeldRows *) lfirst(lc);
			break;
		}
	}
	if (h == NULL)
	{
		old = MemoryContextSwitchTo(bulk->cxt);
		h = palloc0(sizeof(HeldRows));
		h->cfg = copy_config(cfg, bulk->cxt);
		h->rowcxt = AllocSetContextCreate(bulk->cxt, "pg_vault held row copies",
										  ALLOCSET_DEFAULT_SIZES);
		bulk->held = lappend(bulk->held, h);
		MemoryContextSwitchTo(old);
	}

	old = MemoryContextSwitchTo(h->rowcxt);
	if (h->nrows == h->maxrows)
	{
		h->maxrows = Max(64, h->maxrows * 2);
		h->rows = h->rows ? repalloc(h->rows, sizeof(HeapTuple) * h->maxrows)
			: palloc(sizeof(HeapTuple) * h->maxrows);
	}
	h->rows[h->nrows++] = heap_copytuple(row);
	h->bytes += row->t_len;
	MemoryContextSwitchTo(old);

	/* a flush is one round: vault.batch_parallel full requests at once */
	if (h->nrows >= vault_batch_items() * Min(vault_batch_parallel, VAULT_MAX_PARALLEL) ||
		h->bytes >= MAX_HELD_BYTES)
		flush_held(bulk, h);
}

/* ---- the trigger ---- */

/*
 * SQL function: vault_encrypt_columns() returns trigger
 * Arguments: a Vault key, then column[:hmac_column][@key] per column.
 */
PG_FUNCTION_INFO_V1(pg_vault_encrypt_columns);
Datum
pg_vault_encrypt_columns(PG_FUNCTION_ARGS)
{
	TriggerData *td;
	ColumnsConfig *cfg;
	HeapTuple	row;
	bool		insert;
	int			need;
	BulkStatement *bulk;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("vault_encrypt_columns() was not called by the trigger manager")));
	td = (TriggerData *) fcinfo->context;
	insert = TRIGGER_FIRED_BY_INSERT(td->tg_event);
	if (!TRIGGER_FIRED_BEFORE(td->tg_event) || !TRIGGER_FIRED_FOR_ROW(td->tg_event) ||
		!(insert || TRIGGER_FIRED_BY_UPDATE(td->tg_event)))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("vault_encrypt_columns() must be fired BEFORE INSERT OR UPDATE FOR EACH ROW")));

	cfg = (ColumnsConfig *) fcinfo->flinfo->fn_extra;
	if (cfg == NULL || cfg->tgoid != td->tg_trigger->tgoid ||
		cfg->relid != RelationGetRelid(td->tg_relation))
	{
		cfg = parse_config(td, fcinfo->flinfo->fn_oid, fcinfo->flinfo->fn_mcxt);
		fcinfo->flinfo->fn_extra = cfg;
	}

	row = insert ? td->tg_trigtuple : td->tg_newtuple;
	need = row_needs(cfg, RelationGetDescr(td->tg_relation), row);
	if (need == 0)
		return PointerGetDatum(row);
	if (need == 2 && insert && (bulk = bulk_for(td, cfg)) != NULL)
	{
		hold_row(bulk, cfg, row);
		return PointerGetDatum(NULL);
	}
	encrypt_rows(cfg, td->tg_relation, &row, 1);
	return PointerGetDatum(row);
}

/* ---- statements that may hold rows ---- */

static void
push_running(BulkStatement *bulk)
{
	if (nrunning == maxrunning)
	{
		maxrunning = Max(16, maxrunning * 2);
		running = running
			? repalloc(running, sizeof(BulkStatement *) * maxrunning)
			: MemoryContextAlloc(TopMemoryContext, sizeof(BulkStatement *) * maxrunning);
	}
	running[nrunning++] = bulk;
}

/* A plain INSERT into one table, whose rows nobody sees before it ends. */
static bool
insert_can_hold(QueryDesc *qd, Oid *relid)
{
	PlannedStmt *ps = qd->plannedstmt;
	ModifyTable *mt;

	if (ps == NULL || ps->commandType != CMD_INSERT || ps->hasReturning ||
		ps->hasModifyingCTE || qd->estate == NULL || !IsA(ps->planTree, ModifyTable))
		return false;
	mt = (ModifyTable *) ps->planTree;
	if (mt->operation != CMD_INSERT || mt->onConflictAction != ONCONFLICT_NONE ||
		mt->withCheckOptionLists != NIL || list_length(mt->resultRelations) != 1)
		return false;
	/* one VALUES row: nothing to batch, and holding it back costs an insert */
	if (outerPlan(mt) != NULL && IsA(outerPlan(mt), Result) &&
		outerPlan(outerPlan(mt)) == NULL)
		return false;
	*relid = rt_fetch(linitial_int(mt->resultRelations), ps->rtable)->relid;
	return true;
}

/* The hooks' signatures changed in PostgreSQL 14 and 18. */
#if PG_VERSION_NUM >= 180000
#define EXECUTOR_RUN_PARAMS QueryDesc *queryDesc, ScanDirection direction, uint64 count
#define EXECUTOR_RUN_ARGS queryDesc, direction, count
#else
#define EXECUTOR_RUN_PARAMS QueryDesc *queryDesc, ScanDirection direction, uint64 count, \
	bool execute_once
#define EXECUTOR_RUN_ARGS queryDesc, direction, count, execute_once
#endif

static void
columns_ExecutorRun(EXECUTOR_RUN_PARAMS)
{
	BulkStatement bulk;
	BulkStatement *volatile self = NULL;
	Oid			relid;

	if (insert_can_hold(queryDesc, &relid))
	{
		memset(&bulk, 0, sizeof(bulk));
		bulk.relid = relid;
		bulk.parent = queryDesc->estate->es_query_cxt;
		self = &bulk;
	}
	push_running(self);
	PG_TRY();
	{
		if (prev_ExecutorRun)
			prev_ExecutorRun(EXECUTOR_RUN_ARGS);
		else
			standard_ExecutorRun(EXECUTOR_RUN_ARGS);
		if (self != NULL)
		{
			flush_all(self);
			queryDesc->estate->es_processed += self->inserted;
			discard_all(self);
		}
	}
	PG_CATCH();
	{
		nrunning--;
		if (self != NULL)
			discard_all(self);
		PG_RE_THROW();
	}
	PG_END_TRY();
	nrunning--;
}

static void
columns_ProcessUtility(UTILITY_PARAMS)
{
	Node	   *parsetree = pstmt->utilityStmt;
	BulkStatement bulk;

	if (!IsA(parsetree, CopyStmt) || !((CopyStmt *) parsetree)->is_from)
	{
		if (prev_ProcessUtility)
			prev_ProcessUtility(UTILITY_ARGS);
		else
			standard_ProcessUtility(UTILITY_ARGS);
		return;
	}

	/* a COPY FROM: its target is bound by the first row held */
	memset(&bulk, 0, sizeof(bulk));
	bulk.relid = InvalidOid;
	bulk.parent = CurrentMemoryContext;
	push_running(&bulk);
	PG_TRY();
	{
		if (prev_ProcessUtility)
			prev_ProcessUtility(UTILITY_ARGS);
		else
			standard_ProcessUtility(UTILITY_ARGS);
		flush_all(&bulk);
		if (qc != NULL)
			qc->nprocessed += bulk.inserted;
		discard_all(&bulk);
	}
	PG_CATCH();
	{
		nrunning--;
		discard_all(&bulk);
		PG_RE_THROW();
	}
	PG_END_TRY();
	nrunning--;
}

/*
 * vault.progress_interval: how often vault_encrypt_column and
 * vault_rewrap_column (the PL/pgSQL procedure vault_column_rewrite, which
 * reads it with current_setting) report progress; 0 never.
 */
static int	vault_progress_interval_ms = 1000;

void
vault_columns_init(void)
{
	DefineCustomIntVariable("vault.progress_interval",
							gettext_noop("How often vault_encrypt_column and vault_rewrap_column report progress; 0 never."),
							NULL,
							&vault_progress_interval_ms, 1000, 0, 3600000,
							PGC_USERSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
	prev_ExecutorRun = ExecutorRun_hook;
	ExecutorRun_hook = columns_ExecutorRun;
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = columns_ProcessUtility;
}
