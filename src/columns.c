/*
 * columns.c
 *    Encrypted columns: the vault_encrypt_columns() trigger, which encrypts
 *    named text columns with Vault Transit keys as rows are written and
 *    fills their blind-index columns with HMACs of the plaintexts: its
 *    arguments, what a table allows, and the trigger itself.
 *
 *    A value that already is a ciphertext is left as it is, so an UPDATE of
 *    other columns, or an INSERT that encrypted its values itself, costs no
 *    request.  One row at a time, the trigger makes one encrypt request per
 *    key (and one HMAC request per key with blind indexes).
 *
 *    Bulk writes do not pay that per row: during a multi-row INSERT or a
 *    COPY FROM the trigger holds rows back and has them encrypted in
 *    rounds of batch requests (columns_bulk.c; rows are encrypted in
 *    columns_rows.c).
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
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "pg_vault.h"
#include "columns.h"

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
	need = vault_columns_row_needs(cfg, RelationGetDescr(td->tg_relation), row);
	if (need == 0)
		return PointerGetDatum(row);
	if (need == 2 && insert && (bulk = vault_columns_bulk_for(td, cfg)) != NULL)
	{
		vault_columns_hold_row(bulk, cfg, row);
		return PointerGetDatum(NULL);
	}
	vault_columns_encrypt_rows(cfg, td->tg_relation, &row, 1);
	return PointerGetDatum(row);
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
	vault_columns_bulk_init();
}
