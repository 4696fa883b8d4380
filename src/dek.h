/*
 * dek.h
 *    Envelope encryption's data keys (DEKs), shared by dek.c (the backend's
 *    cache of unwrapped keys), dek_catalog.c (the catalog table),
 *    dek_admin.c (data-key administration) and aead.c (the pgv1: ciphertext
 *    format and AES-256-GCM).  Only those files include it: it brings in
 *    OpenSSL's low-level AES and GCM interfaces.
 *
 *    A cached key lives in one slot of a region that dek.c maps, locks
 *    (mlock) and keeps out of core dumps (MADV_DONTDUMP): the AES key
 *    schedule, the GCM state and the context-check key are all inside the
 *    slot, so no copy of the key is on the heap.  That is why aead.c uses
 *    AES_set_encrypt_key and CRYPTO_gcm128_* rather than an EVP context,
 *    whose key schedule OpenSSL allocates on its own heap.
 */
#ifndef PG_VAULT_DEK_H
#define PG_VAULT_DEK_H

/* the low-level AES interface is deprecated, not removed, in OpenSSL 3 */
#ifndef OPENSSL_SUPPRESS_DEPRECATED
#define OPENSSL_SUPPRESS_DEPRECATED
#endif
#include <openssl/aes.h>
#include <openssl/modes.h>

#include "utils/timestamp.h"

#define DEK_KEY_BYTES		32	/* AES-256 */
#define DEK_NAME_MAX		128	/* a Transit key name, with its NUL */
#define DEK_PREFIX_MAX		32	/* "pgv1c:<id>:" with its NUL */
#define DEK_GCM_SPACE		1024	/* room for OpenSSL's GCM128_CONTEXT */

/* 64-byte aligned, so that every slot's GCM state is (its asm wants 16) */
typedef struct pg_attribute_aligned(64) VaultDek
{
	/* OpenSSL's state first, at the slot's aligned start */
	unsigned char gcm[DEK_GCM_SPACE];	/* encryption and decryption */
	unsigned char gcm_ctx[DEK_GCM_SPACE];	/* context checks */
	AES_KEY		ks;				/* the DEK's key schedule */
	AES_KEY		ks_ctx;			/* the context-check key's */
	unsigned char raw[48];		/* the unwrapped key, only while loading */

	int64		id;				/* catalog id; 0: a free slot */
	bool		encrypting;		/* the current DEK of its Transit key */
	int64		next_use;		/* reserved encryptions [next_use, end_use) */
	int64		end_use;
	int64		uses;			/* encryptions and decryptions since loaded */
	TimestampTz loaded_at;
	TimestampTz created_at;		/* the DEK's creation, for its maximum age */
	uint64		lru;
	SubTransactionId pending;	/* catalog writes not committed yet */
	int			keylen;
	char		key[DEK_NAME_MAX];
	int			prefixlen;
	char		prefix[DEK_PREFIX_MAX];	/* "pgv1:<id>:" */
	int			cprefixlen;
	char		cprefix[DEK_PREFIX_MAX];	/* "pgv1c:<id>:" (with a context) */
} VaultDek;

/*
 * The DEK that encrypts for a Transit key, one encryption reserved.  A
 * cache hit touches neither the catalog nor Vault.
 */
extern VaultDek *vault_dek_for_encrypt(const char *key, int keylen);

/* The DEK of a ciphertext; raises 22V04 (unknown) or 22V05 (deleted). */
extern VaultDek *vault_dek_for_decrypt(int64 id);

/* ---- dek.c ---- */

extern int	vault_envelope_key_ttl;

/* After a retirement (the slot stops encrypting) or a deletion (wiped). */
extern void vault_dek_forget(int64 id, bool delete);

/* ---- the catalog, as its owner (dek_catalog.c) ---- */

typedef struct VaultDekCatalog
{
	Oid			save_user;
	int			save_sec;
	char	   *table;			/* schema-qualified, quoted */
} VaultDekCatalog;

/* Switches to the table's owner and connects SPI; an abort switches back. */
extern void vault_dek_catalog_begin(VaultDekCatalog *ca);
extern void vault_dek_catalog_end(VaultDekCatalog *ca);
/* Runs a statement; raises unless SPI answers expect; returns SPI_processed. */
extern uint64 vault_dek_catalog_exec(const char *sql, int nargs, Oid *types,
									 Datum *values, int expect);
extern int64 vault_dek_catalog_int8(int row, int col);
extern char *vault_dek_catalog_text(int row, int col);
extern TimestampTz vault_dek_catalog_ts(int row, int col);
extern const char *vault_dek_transit_mount(void);

#endif							/* PG_VAULT_DEK_H */
