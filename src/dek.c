/*
 * dek.c
 *    Envelope encryption's data keys (DEKs): this backend's cache of
 *    unwrapped ones and the paths that fill it from the catalog table that
 *    keeps them wrapped by a Transit key (dek_catalog.c reads and writes
 *    that table and has the administration functions).
 *
 *    The catalog, vault_envelope_keys, holds each DEK only as Transit
 *    wrapped it (vault:vN:...), with its Transit key, creation time, how
 *    many encryptions have been reserved under it, and when it was retired
 *    (no more encryptions) or deleted (wrapped key gone: its rows are
 *    crypto-shredded).  PUBLIC has no access to it: this file reads and
 *    writes it as the table's owner (SetUserIdAndSecContext), so callers
 *    need only EXECUTE on the functions.  pg_dump keeps its rows
 *    (pg_extension_config_dump).
 *
 *    Unwrapped keys live only in a region of this backend's memory that is
 *    mapped on first use, locked (mlock: never swapped) and left out of
 *    core dumps (MADV_DONTDUMP).  A cached key is dropped, and its slot
 *    wiped, after vault.envelope_key_ttl, after vault.envelope_key_max_uses
 *    uses, on vault_cache_clear(), DISCARD ALL and at backend exit; the next
 *    use unwraps it again through transit/decrypt.  A cache hit touches
 *    neither the catalog nor Vault.
 *
 *    Random 96-bit nonces stay safe for 2^32 encryptions under one key.
 *    Encryptions are reserved vault.envelope_key_reserve at a time with one
 *    UPDATE ... RETURNING, not counted per row; a DEK is retired once
 *    vault.envelope_key_max_encryptions (2^31 - 1 by default) have been
 *    reserved, or when older than vault.envelope_key_max_age, and the next
 *    encryption creates a new one (transit/datakey/plaintext).  Catalog
 *    writes happen in the caller's transaction: a slot whose DEK row or
 *    reservation a rollback undoes is evicted with it.
 */
#include "postgres.h"

#include <sys/mman.h>
#include <malloc.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "pg_vault.h"
#include "dek.h"
#include "common/vault_common.h"

#define DEK_SLOTS		16

/*---- GUC variables ----*/

int			vault_envelope_key_ttl = 300;	/* seconds */
static int	envelope_key_max_uses = 100000000;
static int	envelope_key_max_encryptions = PG_INT32_MAX;
static int	envelope_key_reserve = 100000;
static int	envelope_key_max_age = 0;	/* seconds; 0: no limit */

/*---- the cache ----*/

static VaultDek *slots = NULL;
static size_t region_size = 0;
static uint64 lru_clock = 0;
static VaultDek *last_encrypt = NULL;
static VaultDek *last_decrypt = NULL;
static bool callbacks_registered = false;
static ProcessUtility_hook_type prev_ProcessUtility = NULL;

static void
dek_wipe(VaultDek *d)
{
	if (d == last_encrypt)
		last_encrypt = NULL;
	if (d == last_decrypt)
		last_decrypt = NULL;
	OPENSSL_cleanse(d, sizeof(VaultDek));
}

/* Wipes every cached key: vault_cache_clear(), DISCARD ALL, exit. */
void
vault_dek_cache_clear(void)
{
	int			i;

	if (slots == NULL)
		return;
	for (i = 0; i < DEK_SLOTS; i++)
		if (slots[i].id != 0)
			dek_wipe(&slots[i]);
}

static void
dek_at_exit(int code, Datum arg)
{
	if (slots == NULL)
		return;
	OPENSSL_cleanse(slots, region_size);
	munlock(slots, region_size);
	munmap(slots, region_size);
	slots = NULL;
}

/* A rollback takes back DEK rows and reservations: drop their slots. */
static void
dek_xact_callback(XactEvent event, void *arg)
{
	int			i;

	if (slots == NULL)
		return;
	for (i = 0; i < DEK_SLOTS; i++)
	{
		if (slots[i].id == 0 || slots[i].pending == InvalidSubTransactionId)
			continue;
		if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
			dek_wipe(&slots[i]);
		else if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT ||
				 event == XACT_EVENT_PREPARE)
			slots[i].pending = InvalidSubTransactionId;
	}
}

static void
dek_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					 SubTransactionId parentSubid, void *arg)
{
	int			i;

	if (slots == NULL)
		return;
	for (i = 0; i < DEK_SLOTS; i++)
	{
		if (slots[i].id == 0 || slots[i].pending != mySubid)
			continue;
		if (event == SUBXACT_EVENT_ABORT_SUB)
			dek_wipe(&slots[i]);
		else if (event == SUBXACT_EVENT_COMMIT_SUB)
			slots[i].pending = parentSubid;
	}
}

/*
 * Maps the locked region on first use.  OpenSSL's GCM state is initialised
 * inside each slot; its size is not public, so the size of one that
 * OpenSSL allocates itself is checked against the room a slot has.
 */
static void
dek_region(void)
{
	static const unsigned char probe_key[DEK_KEY_BYTES];
	AES_KEY		probe_ks;
	GCM128_CONTEXT *probe;
	size_t		need;
	void	   *p;

	if (slots != NULL)
		return;

	AES_set_encrypt_key(probe_key, 256, &probe_ks);
	probe = CRYPTO_gcm128_new(&probe_ks, (block128_f) AES_encrypt);
	if (probe == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not set up AES-GCM for envelope encryption")));
	need = malloc_usable_size(probe);
	CRYPTO_gcm128_release(probe);
	if (need > DEK_GCM_SPACE)
		ereport(ERROR,
				(errcode(ERRCODE_EXTERNAL_ROUTINE_INVOCATION_EXCEPTION),
				 errmsg("OpenSSL's GCM state (%zu bytes) does not fit pg_vault's key slots (%d bytes)",
						need, DEK_GCM_SPACE)));

	region_size = TYPEALIGN(sysconf(_SC_PAGESIZE), sizeof(VaultDek) * DEK_SLOTS);
	p = mmap(NULL, region_size, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not map memory for envelope data keys: %m")));
	if (madvise(p, region_size, MADV_DONTDUMP) != 0 ||
		madvise(p, region_size, MADV_DONTFORK) != 0)
	{
		munmap(p, region_size);
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("could not exclude envelope data keys from core dumps: %m")));
	}
	if (mlock(p, region_size) != 0)
	{
		munmap(p, region_size);
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
				 errmsg("could not lock %zu bytes of memory for envelope data keys: %m",
						region_size),
				 errhint("Raise the memory lock limit (RLIMIT_MEMLOCK, LimitMEMLOCK= in systemd) of the PostgreSQL server.")));
	}
	memset(p, 0, region_size);
	slots = (VaultDek *) p;
	on_proc_exit(dek_at_exit, (Datum) 0);
	if (!callbacks_registered)
	{
		RegisterXactCallback(dek_xact_callback, NULL);
		RegisterSubXactCallback(dek_subxact_callback, NULL);
		callbacks_registered = true;
	}
}

/* Whether a cached key may still be used; evicts it if not. */
static inline bool
dek_fresh(VaultDek *d, TimestampTz now)
{
	if (d->uses < envelope_key_max_uses &&
		now - d->loaded_at < (int64) vault_envelope_key_ttl * USECS_PER_SEC)
		return true;
	dek_wipe(d);
	return false;
}

/* A free slot, or the least recently used one, wiped. */
static VaultDek *
dek_free_slot(void)
{
	VaultDek   *best = NULL;
	int			i;

	dek_region();
	for (i = 0; i < DEK_SLOTS; i++)
	{
		if (slots[i].id == 0)
			return &slots[i];
		if (best == NULL || slots[i].lru < best->lru)
			best = &slots[i];
	}
	dek_wipe(best);
	return best;
}

/*
 * Fills a slot from d->raw (the unwrapped key), then wipes d->raw.  The
 * context-check key is derived from the DEK by encrypting two constant
 * blocks, so that no HMAC context holds the key on OpenSSL's heap.
 */
static void
dek_install(VaultDek *d, int64 id, const char *key, TimestampTz created_at)
{
	/* two 16-byte blocks (the arrays keep the strings' NUL: GCC 15 wants it) */
	static const unsigned char c1[17] = "pg_vault ctx k 1";
	static const unsigned char c2[17] = "pg_vault ctx k 2";

	AES_set_encrypt_key(d->raw, 256, &d->ks);
	/* d->raw, no longer needed, becomes the derived key */
	AES_encrypt(c1, d->raw, &d->ks);
	AES_encrypt(c2, d->raw + 16, &d->ks);
	AES_set_encrypt_key(d->raw, 256, &d->ks_ctx);
	OPENSSL_cleanse(d->raw, sizeof(d->raw));
	CRYPTO_gcm128_init((GCM128_CONTEXT *) d->gcm, &d->ks, (block128_f) AES_encrypt);
	CRYPTO_gcm128_init((GCM128_CONTEXT *) d->gcm_ctx, &d->ks_ctx, (block128_f) AES_encrypt);

	d->id = id;
	d->encrypting = false;
	d->next_use = d->end_use = 0;
	d->uses = 0;
	d->loaded_at = GetCurrentTimestamp();
	d->created_at = created_at;
	d->lru = ++lru_clock;
	d->pending = InvalidSubTransactionId;
	d->keylen = (int) strlen(key);
	memcpy(d->key, key, d->keylen + 1);
	d->prefixlen = snprintf(d->prefix, DEK_PREFIX_MAX, "pgv1:" INT64_FORMAT ":", id);
	d->cprefixlen = snprintf(d->cprefix, DEK_PREFIX_MAX, "pgv1c:" INT64_FORMAT ":", id);
}

/*---- Vault: create, unwrap, rewrap ----*/

/* Decodes Vault's base64 key into d->raw and wipes every copy of it. */
static void
dek_take_plaintext(VaultDoc *doc, VaultDek *d, const VaultOp *op)
{
	const char *b64;
	size_t		len;
	long		n;

	b64 = vault_doc_string_ref(doc, "data.plaintext", &len, op);
	n = (len <= 44) ? vc_b64_decode(b64, len, d->raw) : -1;
	vault_doc_wipe_string(doc, "data.plaintext");
	vault_http_wipe_response();
	if (n != DEK_KEY_BYTES)
	{
		OPENSSL_cleanse(d->raw, sizeof(d->raw));
		vault_raise_malformed(op, "the data key is not 32 bytes of base64");
	}
}

/* transit/datakey/plaintext/<key>: a new DEK into d->raw; its wrapped form. */
static char *
dek_vault_create(const char *key, VaultDek *d)
{
	VaultOp		op = {"create a data key with Vault key", key};
	static const char body[] = "{\"bits\":256}";
	VaultResult res;
	VaultDoc   *doc;
	char	   *path;
	char	   *wrapped;
	const char *ct;
	size_t		len;

	vault_check_key_name(key);
	path = psprintf("%s/datakey/plaintext/%s", vault_dek_transit_mount(), key);
	vault_request(&res, VAULT_POST, path, body, sizeof(body) - 1,
				  VAULT_RETRY_IDEMPOTENT | VAULT_KIND(VS_DATAKEY));
	doc = vault_doc_parse(&res, &op, 0);
	ct = vault_doc_string_ref(doc, "data.ciphertext", &len, &op);
	wrapped = pnstrdup(ct, len);
	dek_take_plaintext(doc, d, &op);
	vault_doc_free(doc);
	pfree(path);
	return wrapped;
}

/* transit/decrypt/<key> of a wrapped DEK into d->raw. */
static void
dek_vault_unwrap(const char *key, const char *wrapped, VaultDek *d)
{
	VaultOp		op = {"unwrap a data key with Vault key", key};
	StringInfoData body;
	VaultJsonWriter w;
	VaultResult res;
	VaultDoc   *doc;
	char	   *path;

	vault_check_key_name(key);
	path = psprintf("%s/decrypt/%s", vault_dek_transit_mount(), key);
	initStringInfo(&body);
	vault_jw_begin(&w, &body);
	vault_jw_string(&w, "ciphertext", wrapped);
	vault_jw_end(&w);
	/* counted as "datakey" in vault_stat: unwraps, not row decryptions */
	vault_request(&res, VAULT_POST, path, body.data, body.len,
				  VAULT_RETRY_IDEMPOTENT | VAULT_KIND(VS_DATAKEY));
	doc = vault_doc_parse(&res, &op, 0);
	dek_take_plaintext(doc, d, &op);
	vault_doc_free(doc);
	pfree(body.data);
	pfree(path);
}

static void
dek_mark_pending(VaultDek *d)
{
	if (d->pending == InvalidSubTransactionId)
		d->pending = GetCurrentSubTransactionId();
}

static void
catalog_retire(VaultDekCatalog *ca, int64 id)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(id)};

	vault_dek_catalog_exec(psprintf("UPDATE %s SET retired_at = pg_catalog.now() "
						  "WHERE id OPERATOR(pg_catalog.=) $1 AND retired_at IS NULL",
						  ca->table), 1, types, values, SPI_OK_UPDATE);
}

/*
 * Reserves the next block of encryptions for d.  False when the DEK is
 * retired or deleted (by anyone), used up or too old: it is retired then.
 */
static bool
dek_reserve(VaultDekCatalog *ca, VaultDek *d)
{
	Oid			types[3] = {INT8OID, INT8OID, INT8OID};
	Datum		values[3];
	int64		limit = envelope_key_max_encryptions;

	if (envelope_key_max_age > 0 &&
		GetCurrentTimestamp() - d->created_at >= (int64) envelope_key_max_age * USECS_PER_SEC)
	{
		catalog_retire(ca, d->id);
		dek_mark_pending(d);
		return false;
	}
	values[0] = Int64GetDatum(d->id);
	values[1] = Int64GetDatum(Max(1, envelope_key_reserve));
	values[2] = Int64GetDatum(limit);
	if (vault_dek_catalog_exec(psprintf("WITH o AS (SELECT uses_reserved FROM %1$s WHERE id OPERATOR(pg_catalog.=) $1 "
							  "AND retired_at IS NULL AND deleted_at IS NULL "
							  "AND uses_reserved OPERATOR(pg_catalog.<) $3 FOR UPDATE) "
							  "UPDATE %1$s AS k SET uses_reserved = "
							  "LEAST(k.uses_reserved OPERATOR(pg_catalog.+) $2, $3) FROM o "
							  "WHERE k.id OPERATOR(pg_catalog.=) $1 RETURNING o.uses_reserved, k.uses_reserved",
							  ca->table),
					 3, types, values, SPI_OK_UPDATE_RETURNING) != 1)
		return false;
	dek_mark_pending(d);
	d->next_use = vault_dek_catalog_int8(0, 1);
	d->end_use = vault_dek_catalog_int8(0, 2);
	if (d->end_use >= limit)
		catalog_retire(ca, d->id);	/* this block is its last */
	return d->next_use < d->end_use;
}

/* The current DEK of a Transit key into a slot: the newest usable, or a new one. */
static VaultDek *
dek_load_current(VaultDekCatalog *ca, const char *key)
{
	Oid			types[2] = {TEXTOID, INT8OID};
	Datum		values[2];
	VaultDek   *d = dek_free_slot();

	values[0] = CStringGetTextDatum(key);
	values[1] = Int64GetDatum(envelope_key_max_encryptions);
	vault_dek_catalog_exec(psprintf("SELECT id, wrapped_key, created_at FROM %s "
						  "WHERE transit_key OPERATOR(pg_catalog.=) $1 AND retired_at IS NULL "
						  "AND deleted_at IS NULL AND uses_reserved OPERATOR(pg_catalog.<) $2 "
						  "ORDER BY id DESC LIMIT 1", ca->table),
				 2, types, values, SPI_OK_SELECT);
	if (SPI_processed == 1)
	{
		int64		id = vault_dek_catalog_int8(0, 1);
		char	   *wrapped = vault_dek_catalog_text(0, 2);
		TimestampTz created = vault_dek_catalog_ts(0, 3);

		if (envelope_key_max_age > 0 &&
			GetCurrentTimestamp() - created >= (int64) envelope_key_max_age * USECS_PER_SEC)
			catalog_retire(ca, id);
		else
		{
			dek_vault_unwrap(key, wrapped, d);
			dek_install(d, id, key, created);
			d->encrypting = true;
			return d;
		}
	}

	{
		char	   *wrapped = dek_vault_create(key, d);
		Oid			itypes[2] = {TEXTOID, TEXTOID};
		Datum		ivalues[2] = {CStringGetTextDatum(key), CStringGetTextDatum(wrapped)};

		PG_TRY();
		{
			vault_dek_catalog_exec(psprintf("INSERT INTO %s (transit_key, wrapped_key) VALUES ($1, $2) "
								  "RETURNING id, created_at", ca->table),
						 2, itypes, ivalues, SPI_OK_INSERT_RETURNING);
		}
		PG_CATCH();
		{
			OPENSSL_cleanse(d->raw, sizeof(d->raw));
			PG_RE_THROW();
		}
		PG_END_TRY();
		dek_install(d, vault_dek_catalog_int8(0, 1), key, vault_dek_catalog_ts(0, 2));
		d->encrypting = true;
		dek_mark_pending(d);
		return d;
	}
}

/*---- the hot paths ----*/

static inline bool
dek_is_key(const VaultDek *d, const char *key, int keylen)
{
	return d->keylen == keylen && memcmp(d->key, key, keylen) == 0;
}

VaultDek *
vault_dek_for_encrypt(const char *key, int keylen)
{
	TimestampTz now = GetCurrentTimestamp();
	VaultDek   *d = last_encrypt;
	VaultDekCatalog ca;
	char	   *keyname;

	if (d == NULL || !d->encrypting || !dek_is_key(d, key, keylen))
	{
		d = NULL;
		if (slots != NULL)
			for (int i = 0; i < DEK_SLOTS; i++)
				if (slots[i].id != 0 && slots[i].encrypting &&
					dek_is_key(&slots[i], key, keylen))
				{
					d = &slots[i];
					break;
				}
	}
	if (d != NULL && dek_fresh(d, now) && d->next_use < d->end_use)
	{
		d->next_use++;
		d->uses++;
		d->lru = ++lru_clock;
		last_encrypt = d;
		return d;
	}

	/* a miss, or the reservation is used up */
	if (keylen >= DEK_NAME_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_NAME_TOO_LONG),
				 errmsg("Vault key name is longer than %d bytes", DEK_NAME_MAX - 1)));
	keyname = pnstrdup(key, keylen);
	vault_check_key_name(keyname);
	vault_dek_catalog_begin(&ca);
	if (d != NULL && d->id != 0 && !dek_reserve(&ca, d))
		d->encrypting = false;
	if (d == NULL || d->id == 0 || !d->encrypting)
	{
		int			tries = 0;

		for (;;)
		{
			d = dek_load_current(&ca, keyname);
			if (dek_reserve(&ca, d))
				break;
			d->encrypting = false;
			if (++tries >= 3)
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("could not reserve encryptions under a data key of Vault key \"%s\"",
								keyname)));
		}
	}
	vault_dek_catalog_end(&ca);
	d->next_use++;
	d->uses++;
	d->lru = ++lru_clock;
	last_encrypt = d;
	return d;
}

VaultDek *
vault_dek_for_decrypt(int64 id)
{
	TimestampTz now;
	VaultDek   *d = last_decrypt;
	VaultDekCatalog ca;
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(id)};
	char	   *key;
	char	   *wrapped;
	TimestampTz created;

	if (d == NULL || d->id != id)
	{
		d = NULL;
		if (slots != NULL)
			for (int i = 0; i < DEK_SLOTS; i++)
				if (slots[i].id == id)
				{
					d = &slots[i];
					break;
				}
	}
	now = GetCurrentTimestamp();
	if (d != NULL && dek_fresh(d, now))
	{
		d->uses++;
		d->lru = ++lru_clock;
		last_decrypt = d;
		return d;
	}

	vault_dek_catalog_begin(&ca);
	vault_dek_catalog_exec(psprintf("SELECT transit_key, wrapped_key, created_at, deleted_at IS NOT NULL "
						  "FROM %s WHERE id OPERATOR(pg_catalog.=) $1", ca.table),
				 1, types, values, SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_VAULT_DEK_UNKNOWN),
				 errmsg("envelope ciphertext names data key " INT64_FORMAT ", which does not exist", id),
				 errhint("The data key table (vault_envelope_keys) of this database does not have it: was it restored with the data?")));
	if (strcmp(vault_dek_catalog_text(0, 4), "t") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_VAULT_DEK_DELETED),
				 errmsg("envelope ciphertext names data key " INT64_FORMAT ", which was deleted", id),
				 errdetail("Its values were crypto-shredded by vault_envelope_delete_key().")));
	key = vault_dek_catalog_text(0, 1);
	wrapped = vault_dek_catalog_text(0, 2);
	created = vault_dek_catalog_ts(0, 3);
	d = dek_free_slot();
	dek_vault_unwrap(key, wrapped, d);
	dek_install(d, id, key, created);
	vault_dek_catalog_end(&ca);
	d->uses++;
	last_decrypt = d;
	return d;
}

/*---- SQL functions: administration ----*/

/* SQL function: vault_cache_clear() */
PG_FUNCTION_INFO_V1(pg_vault_cache_clear);
Datum
pg_vault_cache_clear(PG_FUNCTION_ARGS)
{
	vault_dek_cache_clear();
	PG_RETURN_VOID();
}

/* After a retirement (no more encryptions) or a deletion (wiped). */
void
vault_dek_forget(int64 id, bool delete)
{
	if (slots == NULL)
		return;
	for (int i = 0; i < DEK_SLOTS; i++)
		if (slots[i].id == id)
		{
			if (delete)
				dek_wipe(&slots[i]);
			else
				slots[i].encrypting = false;
		}
}

/*---- DISCARD ALL, settings ----*/

static void
dek_ProcessUtility(UTILITY_PARAMS)
{
	Node	   *parsetree = pstmt->utilityStmt;

	if (prev_ProcessUtility)
		prev_ProcessUtility(UTILITY_ARGS);
	else
		standard_ProcessUtility(UTILITY_ARGS);
	if (IsA(parsetree, DiscardStmt) && ((DiscardStmt *) parsetree)->target == DISCARD_ALL)
		vault_dek_cache_clear();
}

void
vault_dek_init(void)
{
	DefineCustomIntVariable("vault.envelope_key_ttl",
							gettext_noop("How long an unwrapped envelope data key stays in a backend's memory."),
							NULL,
							&vault_envelope_key_ttl, 300, 1, 86400,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("vault.envelope_key_max_uses",
							gettext_noop("Encryptions and decryptions after which a backend drops an unwrapped data key."),
							NULL,
							&envelope_key_max_uses, 100000000, 1, INT_MAX,
							PGC_SUSET, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("vault.envelope_key_max_encryptions",
							gettext_noop("Encryptions reserved under one data key before it is retired."),
							gettext_noop("Random 96-bit nonces are safe for 2^32 encryptions under one key; the default is 2^31 - 1."),
							&envelope_key_max_encryptions, PG_INT32_MAX, 1, PG_INT32_MAX,
							PGC_SUSET, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("vault.envelope_key_reserve",
							gettext_noop("Encryptions a backend reserves under a data key with one catalog update."),
							NULL,
							&envelope_key_reserve, 100000, 1, PG_INT32_MAX,
							PGC_SUSET, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("vault.envelope_key_max_age",
							gettext_noop("Age after which a data key is retired and a new one made; 0: no limit."),
							NULL,
							&envelope_key_max_age, 0, 0, INT_MAX,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);

	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = dek_ProcessUtility;
}
