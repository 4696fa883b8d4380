/*
 * columns.h
 *    What the encrypted-column files share, and only they include:
 *    columns.c (the vault_encrypt_columns() trigger and its arguments),
 *    columns_bulk.c (bulk writes: rows held back during a statement and
 *    flushed in rounds) and columns_rows.c (rows encrypted through the
 *    batch API, and the ciphertext tests).  Calls go one way: columns.c ->
 *    columns_bulk.c -> columns_rows.c.
 */
#ifndef PG_VAULT_COLUMNS_H
#define PG_VAULT_COLUMNS_H

#include "access/htup.h"
#include "commands/trigger.h"
#include "utils/rel.h"

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

/* A running statement whose rows may be held back (columns_bulk.c). */
typedef struct BulkStatement BulkStatement;

/* ---- columns_rows.c ---- */
extern bool vault_datum_is_ciphertext(Datum value);
extern int	vault_columns_row_needs(ColumnsConfig *cfg, TupleDesc desc, HeapTuple row);
extern void vault_columns_encrypt_rows(ColumnsConfig *cfg, Relation rel,
									   HeapTuple *rows, int n);
extern ColumnsConfig *vault_columns_copy_config(const ColumnsConfig *src,
												MemoryContext cxt);

/* ---- columns_bulk.c ---- */
extern void vault_columns_bulk_init(void);
extern BulkStatement *vault_columns_bulk_for(TriggerData *td, ColumnsConfig *cfg);
extern void vault_columns_hold_row(BulkStatement *bulk, ColumnsConfig *cfg,
								   HeapTuple row);

#endif							/* PG_VAULT_COLUMNS_H */
