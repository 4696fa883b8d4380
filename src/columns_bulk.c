/*
 * columns_bulk.c
 *    Bulk writes through the vault_encrypt_columns() trigger.  While a
 *    multi-row INSERT (with no RETURNING, ON CONFLICT or check options) or
 *    a COPY FROM is running, the trigger holds back each row that carries a
 *    plaintext: it keeps a copy and returns NULL, so that the row is not
 *    written.  When enough rows are held for vault.batch_parallel full
 *    requests (each vault_batch_items() rows: vault.batch_size, within what
 *    vault.batch_max_strings allows), and when the statement's executor run
 *    or the COPY ends, the held rows are encrypted through the batch API
 *    (columns_rows.c), those requests in flight at once, and inserted with
 *    one INSERT ... SELECT FROM unnest($1).  Executor and utility hooks
 *    know which statement is running (the innermost one is the one firing
 *    the trigger), flush at its end and add the rows inserted to its
 *    command tag.  Nothing with a plaintext reaches the table, and a failure
 *    is an error of the statement, so none of its rows is committed; held
 *    copies are wiped when written or on error.
 *
 *    Rows are held back only where the later insert is indistinguishable
 *    from the original one (columns.c decides what a table allows, here
 *    what the caller may do); any other case is encrypted row by row.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "nodes/plannodes.h"
#include "parser/parsetree.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "pg_vault.h"
#include "columns.h"

/* Held rows are flushed before their copies pass this size. */
#define MAX_HELD_BYTES	(16 * 1024 * 1024)

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
struct BulkStatement
{
	Oid			relid;			/* its target; InvalidOid until the first
								 * held row of a COPY */
	MemoryContext parent;		/* where held rows are kept */
	MemoryContext cxt;			/* NULL until a row is held */
	List	   *held;			/* HeldRows, one per trigger */
	uint64		inserted;		/* rows the flushes inserted */
};

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
	vault_columns_encrypt_rows(h->cfg, rel, rows, h->nrows);

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
BulkStatement *
vault_columns_bulk_for(TriggerData *td, ColumnsConfig *cfg)
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

void
vault_columns_hold_row(BulkStatement *bulk, ColumnsConfig *cfg, HeapTuple row)
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
		h->cfg = vault_columns_copy_config(cfg, bulk->cxt);
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

void
vault_columns_bulk_init(void)
{
	prev_ExecutorRun = ExecutorRun_hook;
	ExecutorRun_hook = columns_ExecutorRun;
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = columns_ProcessUtility;
}
