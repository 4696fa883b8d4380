/*
 * transit.c
 *    The Transit secrets engine of the development server, after Vault's
 *    builtin/logical/transit and sdk/helper/keysutil: named key rings of
 *    type aes128-gcm96, aes256-gcm96, chacha20-poly1305 or hmac; encrypt,
 *    decrypt, rewrap, datakey, hmac, verify, export, hash and random, with
 *    Vault's ciphertext format ("vault:v<N>:" + base64(nonce || ct || tag)),
 *    HKDF-SHA256 key derivation, convergent encryption (version 3),
 *    batches, status codes and error strings.
 *
 *    The asymmetric key types (ed25519, ecdsa-*, rsa-*) are not
 *    implemented: creating one answers 400.  Backup/restore, trim and
 *    import are not implemented either (404 "unsupported path").
 *
 *    Every call runs under the server's state lock, so the per-mount
 *    scratch buffers and the cached cipher contexts need no locking.
 */
#include "devserver.h"

#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#define NONCE_LEN			12	/* aead.NonceSize() of GCM and ChaCha20-Poly1305 */
#define TAG_LEN				16
#define HMAC_KEY_LEN		32	/* the per-version HMAC key of encryption keys */
#define HMAC_MIN_KEY_SIZE	32	/* keysutil.HmacMinKeySize */
#define HMAC_MAX_KEY_SIZE	512 /* keysutil.HmacMaxKeySize */
#define CONVERGENT_VERSION	3	/* lock_manager.go currentConvergentVersion */
#define RANDOM_MAX_BYTES	(128 * 1024)
#define MAX_KEY_LEN			64	/* derived encryption key plus HMAC key */

#define ERR_DERIVE_CONTEXT \
	"missing 'context' for key derivation; the key was created using a derived key, which means additional, per-request information must be included in order to perform operations with the key"
#define ERR_TOO_OLD "ciphertext or signature version is disallowed by policy (too old)"
#define ERR_NONCE_NOT_ALLOWED "provided nonce not allowed for this key"

typedef enum ktype
{
	KT_AES128_GCM96,
	KT_AES256_GCM96,
	KT_CHACHA20_POLY1305,
	KT_HMAC
} ktype;

static const char *const ktype_names[] = {
	"aes128-gcm96", "aes256-gcm96", "chacha20-poly1305", "hmac"
};

/* Key types Vault knows but this server does not implement. */
static const char *const unimplemented_types[] = {
	"ed25519", "ecdsa-p256", "ecdsa-p384", "ecdsa-p521", "rsa-2048",
	"rsa-3072", "rsa-4096", "managed_key", "aes128-cmac", "aes192-cmac",
	"aes256-cmac", "ml-dsa", "hybrid", NULL
};

/* keysutil.HashTypeMap names and their OpenSSL digests */
static const struct
{
	const char *name;
	const char *digest;
}			hash_algs[] = {
	{"sha1", "SHA1"},
	{"sha2-224", "SHA2-224"},
	{"sha2-256", "SHA2-256"},
	{"sha2-384", "SHA2-384"},
	{"sha2-512", "SHA2-512"},
	{"sha3-224", "SHA3-224"},
	{"sha3-256", "SHA3-256"},
	{"sha3-384", "SHA3-384"},
	{"sha3-512", "SHA3-512"},
};

/* One version of a key ring. */
typedef struct kversion
{
	unsigned char *key;			/* the encryption (or, for hmac keys, HMAC) key */
	size_t		keylen;
	unsigned char hmac_key[HMAC_KEY_LEN];	/* independent HMAC key */
	int64_t		created;		/* unix seconds */
	int			convergent_version; /* 0 unless the ring is convergent */
	/* key schedules of non-derived keys, set up on first use */
	EVP_CIPHER_CTX *ectx;
	EVP_CIPHER_CTX *dctx;
} kversion;

/* A named key ring (keysutil.Policy). */
typedef struct tkey
{
	char	   *name;
	ktype		type;
	bool		derived;
	bool		convergent;
	bool		exportable;
	bool		allow_plaintext_backup;
	bool		deletion_allowed;
	int			key_size;		/* hmac keys only */
	int			latest;
	int			min_dec;
	int			min_enc;
	int64_t		auto_rotate;	/* seconds, 0: off */
	kversion   *v;				/* v[i] is version i + 1 */
	int			vcap;
	struct tkey *next;			/* hash chain */
} tkey;

/* A growable scratch buffer. */
typedef struct sbuf
{
	unsigned char *p;
	size_t		cap;
} sbuf;

typedef struct tstate
{
	tkey	  **buckets;
	size_t		nbuckets;
	size_t		nkeys;
	bool		disable_upsert;
	EVP_CIPHER_CTX *scratch;	/* derived keys: a new key schedule each time */
	EVP_KDF_CTX *hkdf;
	EVP_MAC_CTX *mac;
	const char *mac_digest;		/* digest the MAC context is set up for */
	/* scratch space, reused from request to request */
	sbuf		in;				/* decoded plaintext / HMAC input */
	sbuf		ctx;			/* decoded context */
	sbuf		aad;			/* decoded associated data */
	sbuf		raw;			/* binary ciphertext */
	sbuf		plain;			/* decrypted plaintext */
	sbuf		out;			/* text results */
	sbuf		tmp;
} tstate;

typedef enum te_kind
{
	TE_NONE = 0,
	TE_USER,					/* errutil.UserError: 400 */
	TE_INTERNAL					/* errutil.InternalError: 500 */
} te_kind;

typedef struct terr
{
	te_kind		kind;
	char		msg[512];
} terr;

/* One item of an encrypt/decrypt/rewrap batch (BatchRequestItem). */
typedef struct bitem
{
	const char *plaintext;
	const char *ciphertext;
	const char *context;
	const char *nonce;
	const char *aad;
	const char *reference;
	int64_t		key_version;
	te_kind		ekind;
	char	   *err;
} bitem;

static void
te_set(terr *e, te_kind kind, const char *fmt,...)
__attribute__((format(printf, 3, 4)));

static void
te_set(terr *e, te_kind kind, const char *fmt,...)
{
	va_list		ap;

	e->kind = kind;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
}

static void *
xmalloc(size_t n)
{
	void	   *p = malloc(n ? n : 1);

	if (p == NULL)
		abort();
	return p;
}

static unsigned char *
sbuf_reserve(sbuf *b, size_t n)
{
	if (n > b->cap)
	{
		size_t		cap = b->cap ? b->cap : 512;

		while (cap < n)
			cap *= 2;
		/* the old contents may be secret: never leave them in freed memory */
		{
			unsigned char *np = xmalloc(cap);

			if (b->p)
			{
				OPENSSL_cleanse(b->p, b->cap);
				free(b->p);
			}
			b->p = np;
			b->cap = cap;
		}
	}
	return b->p;
}

static void
sbuf_free(sbuf *b)
{
	if (b->p)
	{
		OPENSSL_cleanse(b->p, b->cap);
		free(b->p);
	}
	b->p = NULL;
	b->cap = 0;
}

/* ---- Go compatibility: base64 errors, strconv.Atoi, type names ---- */

static bool
b64_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		(c >= '0' && c <= '9') || c == '+' || c == '/';
}

/*
 * The offset Go's base64.StdEncoding reports in CorruptInputError for src,
 * or -1 when Go would accept it (CR and LF are skipped there).
 */
static long
go_b64_error_offset(const char *src, size_t len)
{
	size_t		si = 0;

	while (si < len)
	{
		int			j;

		for (j = 0; j < 4; j++)
		{
			unsigned char in;

			if (si == len)
				return j == 0 ? -1 : (long) (si - j);
			in = (unsigned char) src[si++];
			if (b64_char(in))
				continue;
			if (in == '\n' || in == '\r')
			{
				j--;
				continue;
			}
			if (in != '=')
				return (long) (si - 1);
			/* padding: only after two or three characters */
			if (j < 2)
				return (long) (si - 1);
			if (j == 2)
			{
				while (si < len && (src[si] == '\n' || src[si] == '\r'))
					si++;
				if (si == len)
					return (long) len;
				if (src[si] != '=')
					return (long) (si - 1);
				si++;
			}
			while (si < len && (src[si] == '\n' || src[si] == '\r'))
				si++;
			return si < len ? (long) si : -1;
		}
	}
	return -1;
}

/*
 * base64.StdEncoding.DecodeString: decode src into b.  On failure leaves
 * Go's error text in msg.
 */
static bool
b64_decode_go(sbuf *b, const char *src, size_t len, size_t *outlen,
			  char *msg, size_t msglen)
{
	unsigned char *dst = sbuf_reserve(b, vc_b64_decoded_maxlen(len) + 1);
	long		n = vc_b64_decode(src, len, dst);
	long		off;

	if (n >= 0)
	{
		*outlen = (size_t) n;
		return true;
	}
	off = go_b64_error_offset(src, len);
	if (off < 0)
	{
		/* valid once the line breaks Go ignores are gone */
		char	   *clean = xmalloc(len + 1);
		size_t		i,
					k = 0;

		for (i = 0; i < len; i++)
			if (src[i] != '\r' && src[i] != '\n')
				clean[k++] = src[i];
		n = vc_b64_decode(clean, k, dst);
		free(clean);
		if (n >= 0)
		{
			*outlen = (size_t) n;
			return true;
		}
		off = 0;
	}
	snprintf(msg, msglen, "illegal base64 data at input byte %ld", off);
	return false;
}

/* strconv.Atoi: 0 ok, 1 syntax error, 2 out of range */
static int
go_atoi(const char *s, size_t n, long long *out)
{
	size_t		i = 0;
	bool		neg = false;
	unsigned long long v = 0,
				lim;

	if (n == 0)
		return 1;
	if (s[0] == '+' || s[0] == '-')
	{
		neg = s[0] == '-';
		if (n == 1)
			return 1;
		i = 1;
	}
	lim = neg ? (unsigned long long) LLONG_MAX + 1 : (unsigned long long) LLONG_MAX;
	for (; i < n; i++)
	{
		unsigned	d;

		if (s[i] < '0' || s[i] > '9')
			return 1;
		d = (unsigned) (s[i] - '0');
		if (v > (lim - d) / 10)
			return 2;
		v = v * 10 + d;
	}
	if (neg)
		*out = v == (unsigned long long) LLONG_MAX + 1 ? LLONG_MIN : -(long long) v;
	else
		*out = (long long) v;
	return 0;
}

/* What Go's %T says of a value decoded from a JSON request (UseNumber). */
static const char *
go_type(const json_t *v)
{
	switch (json_typeof(v))
	{
		case JSON_STRING:
			return "string";
		case JSON_INTEGER:
		case JSON_REAL:
			return "json.Number";
		case JSON_TRUE:
		case JSON_FALSE:
			return "bool";
		case JSON_OBJECT:
			return "map[string]interface {}";
		case JSON_ARRAY:
			return "[]interface {}";
		default:
			return "<nil>";
	}
}

/* ---- request fields with Vault's weak typing ---- */

/*
 * A string field: numbers and booleans become text as mapstructure's weak
 * decoding makes them.  NULL when absent or null; objects and arrays set
 * *ok = false and a 400.
 */
static const char *
field_str(const vreq *req, const char *key, char *tmp, size_t tmplen,
		  bool *ok, vresp *resp)
{
	json_t	   *v = json_object_get(req->data, key);

	if (v == NULL || json_is_null(v))
		return NULL;
	if (json_is_string(v))
		return json_string_value(v);
	if (json_is_integer(v))
	{
		snprintf(tmp, tmplen, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		return tmp;
	}
	if (json_is_real(v))
	{
		snprintf(tmp, tmplen, "%.15g", json_real_value(v));
		return tmp;
	}
	if (json_is_boolean(v))
		return json_is_true(v) ? "1" : "0";
	if (*ok)
		resp_error(resp, 400,
				   "error converting input for field \"%s\": '' expected type 'string', got unconvertible type '%s'",
				   key, go_type(v));
	*ok = false;
	return NULL;
}

static bool
nonempty(const char *s)
{
	return s != NULL && *s != '\0';
}

/* 404 with {"errors":[]}, as Vault answers a read of nothing */
static void
resp_not_found(vresp *resp)
{
	resp->status = 404;
	if (resp->errors == NULL)
		resp->errors = json_array();
}

static void
resp_internal(vresp *resp, const char *msg)
{
	resp_error(resp, 500, "%s", msg);
}

/* ---- key rings ---- */

static const EVP_CIPHER *
cipher_of(ktype t)
{
	switch (t)
	{
		case KT_AES128_GCM96:
			return EVP_aes_128_gcm();
		case KT_AES256_GCM96:
			return EVP_aes_256_gcm();
		case KT_CHACHA20_POLY1305:
			return EVP_chacha20_poly1305();
		default:
			return NULL;
	}
}

static size_t
enc_key_len(ktype t)
{
	return t == KT_AES128_GCM96 ? 16 : 32;
}

static bool
is_aead(ktype t)
{
	return t != KT_HMAC;
}

static bool
parse_ktype(const char *s, ktype *out)
{
	int			i;

	for (i = 0; i <= KT_HMAC; i++)
		if (strcmp(s, ktype_names[i]) == 0)
		{
			*out = (ktype) i;
			return true;
		}
	return false;
}

static bool
is_unimplemented_type(const char *s)
{
	int			i;

	for (i = 0; unimplemented_types[i]; i++)
		if (strcmp(s, unimplemented_types[i]) == 0)
			return true;
	return false;
}

static uint64_t
name_hash(const char *s)
{
	uint64_t	h = 1469598103934665603ULL;

	while (*s)
		h = (h ^ (unsigned char) *s++) * 1099511628211ULL;
	return h;
}

static tkey *
key_find(tstate *st, const char *name)
{
	tkey	   *k;

	for (k = st->buckets[name_hash(name) % st->nbuckets]; k; k = k->next)
		if (strcmp(k->name, name) == 0)
			return k;
	return NULL;
}

static void
key_insert(tstate *st, tkey *k)
{
	size_t		b;

	if (st->nkeys >= st->nbuckets * 2)
	{
		size_t		nb = st->nbuckets * 4,
					i;
		tkey	  **nbk = calloc(nb, sizeof(tkey *));

		if (nbk == NULL)
			abort();
		for (i = 0; i < st->nbuckets; i++)
		{
			tkey	   *e = st->buckets[i];

			while (e)
			{
				tkey	   *next = e->next;
				size_t		j = name_hash(e->name) % nb;

				e->next = nbk[j];
				nbk[j] = e;
				e = next;
			}
		}
		free(st->buckets);
		st->buckets = nbk;
		st->nbuckets = nb;
	}
	b = name_hash(k->name) % st->nbuckets;
	k->next = st->buckets[b];
	st->buckets[b] = k;
	st->nkeys++;
}

static void
key_free(tkey *k)
{
	int			i;

	for (i = 0; i < k->latest; i++)
	{
		kversion   *kv = &k->v[i];

		if (kv->key)
		{
			OPENSSL_cleanse(kv->key, kv->keylen);
			free(kv->key);
		}
		OPENSSL_cleanse(kv->hmac_key, sizeof(kv->hmac_key));
		EVP_CIPHER_CTX_free(kv->ectx);
		EVP_CIPHER_CTX_free(kv->dctx);
	}
	free(k->v);
	free(k->name);
	free(k);
}

static void
key_remove(tstate *st, tkey *k)
{
	tkey	  **pp = &st->buckets[name_hash(k->name) % st->nbuckets];

	while (*pp && *pp != k)
		pp = &(*pp)->next;
	if (*pp)
	{
		*pp = k->next;
		st->nkeys--;
	}
	key_free(k);
}

static kversion *
version_add(tkey *k)
{
	kversion   *kv;

	if (k->latest == k->vcap)
	{
		int			cap = k->vcap ? k->vcap * 2 : 4;
		kversion   *nv = realloc(k->v, (size_t) cap * sizeof(kversion));

		if (nv == NULL)
			abort();
		k->v = nv;
		k->vcap = cap;
	}
	kv = &k->v[k->latest++];
	memset(kv, 0, sizeof(*kv));
	if (k->min_dec == 0)
		k->min_dec = 1;
	return kv;
}

/* Policy.RotateInMemory: a new random version */
static void
key_rotate(tkey *k)
{
	kversion   *kv = version_add(k);

	kv->keylen = k->type == KT_HMAC ? (size_t) k->key_size : enc_key_len(k->type);
	kv->key = xmalloc(kv->keylen);
	rand_bytes(kv->key, kv->keylen);
	if (k->type != KT_HMAC)
		rand_bytes(kv->hmac_key, HMAC_KEY_LEN);
	kv->created = now_unix();
	kv->convergent_version = k->convergent ? CONVERGENT_VERSION : 0;
}

static tkey *
key_new(tstate *st, const char *name, ktype type, bool derived, bool convergent,
		bool exportable, bool allow_plaintext_backup, int64_t auto_rotate,
		int key_size)
{
	tkey	   *k = calloc(1, sizeof(tkey));

	if (k == NULL)
		abort();
	k->name = strdup(name);
	if (k->name == NULL)
		abort();
	k->type = type;
	k->derived = derived;
	k->convergent = convergent;
	k->exportable = exportable;
	k->allow_plaintext_backup = allow_plaintext_backup;
	k->auto_rotate = auto_rotate;
	k->key_size = type == KT_HMAC ? (key_size ? key_size : HMAC_MIN_KEY_SIZE) : 0;
	key_rotate(k);
	key_insert(st, k);
	return k;
}

/*
 * Look a key up, rotating it first when its auto_rotate_period has passed
 * since the latest version was made (Vault's periodic rotateIfRequired,
 * done lazily here).
 */
static tkey *
key_get(tstate *st, const char *name, vresp *resp)
{
	tkey	   *k = key_find(st, name);

	if (k && k->auto_rotate > 0 && k->latest > 0 &&
		now_unix() >= k->v[k->latest - 1].created + k->auto_rotate)
	{
		key_rotate(k);
		resp->dirty = true;
	}
	return k;
}

/* formatKeyPolicy */
static json_t *
key_json(const tkey *k)
{
	json_t	   *o = json_object();
	bool		aead = is_aead(k->type);

	json_object_set_new(o, "name", json_string(k->name));
	json_object_set_new(o, "type", json_string(ktype_names[k->type]));
	json_object_set_new(o, "derived", json_boolean(k->derived));
	json_object_set_new(o, "deletion_allowed", json_boolean(k->deletion_allowed));
	json_object_set_new(o, "min_available_version", json_integer(0));
	json_object_set_new(o, "min_decryption_version", json_integer(k->min_dec));
	json_object_set_new(o, "min_encryption_version", json_integer(k->min_enc));
	json_object_set_new(o, "latest_version", json_integer(k->latest));
	json_object_set_new(o, "exportable", json_boolean(k->exportable));
	json_object_set_new(o, "allow_plaintext_backup", json_boolean(k->allow_plaintext_backup));
	json_object_set_new(o, "supports_encryption", json_boolean(aead));
	json_object_set_new(o, "supports_decryption", json_boolean(aead));
	json_object_set_new(o, "supports_signing", json_false());
	json_object_set_new(o, "supports_derivation", json_boolean(aead));
	json_object_set_new(o, "auto_rotate_period", json_integer(k->auto_rotate));
	json_object_set_new(o, "imported_key", json_false());
	if (k->key_size)
		json_object_set_new(o, "key_size", json_integer(k->key_size));
	if (k->derived)
	{
		json_object_set_new(o, "kdf", json_string("hkdf_sha256"));
		json_object_set_new(o, "convergent_encryption", json_boolean(k->convergent));

		/*
		 * Vault stores the convergent version in each key version since
		 * version 3 and leaves -1 in the policy, which is what it reports.
		 */
		if (k->convergent)
			json_object_set_new(o, "convergent_encryption_version", json_integer(-1));
	}
	if (aead)
	{
		json_t	   *keys = json_object();
		int			v;

		/* versions below min_decryption_version are archived in Vault */
		for (v = k->min_dec; v <= k->latest; v++)
		{
			char		num[16];

			snprintf(num, sizeof(num), "%d", v);
			json_object_set_new(keys, num, json_integer(k->v[v - 1].created));
		}
		json_object_set_new(o, "keys", keys);
	}
	return o;
}

/* ---- cryptography ---- */

/* One HMAC over the concatenation of parts, with a cached MAC context. */
static bool
mac_parts(tstate *st, const char *digest, const unsigned char *key, size_t keylen,
		  const unsigned char *const *parts, const size_t *lens, int nparts,
		  unsigned char *out, size_t *outlen)
{
	OSSL_PARAM	params[2];
	int			i;

	params[0] = OSSL_PARAM_construct_end();
	if (st->mac_digest != digest)
	{
		params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
													 (char *) digest, 0);
		params[1] = OSSL_PARAM_construct_end();
	}
	st->mac_digest = NULL;
	if (EVP_MAC_init(st->mac, key, keylen, params) != 1)
		return false;
	st->mac_digest = digest;
	for (i = 0; i < nparts; i++)
		if (lens[i] > 0 && EVP_MAC_update(st->mac, parts[i], lens[i]) != 1)
			return false;
	return EVP_MAC_final(st->mac, out, outlen, EVP_MAX_MD_SIZE) == 1;
}

static bool
mac_one(tstate *st, const char *digest, const unsigned char *key, size_t keylen,
		const unsigned char *msg, size_t msglen, unsigned char *out, size_t *outlen)
{
	return mac_parts(st, digest, key, keylen, &msg, &msglen, 1, out, outlen);
}

/*
 * Policy.DeriveKey with Kdf_hkdf_sha256: HKDF-SHA256, IKM = the version's
 * key, salt nil, info = the context.
 */
static bool
derive_key(tstate *st, const tkey *k, int ver, const unsigned char *ctx, size_t ctxlen,
		   size_t n, unsigned char *out, terr *e)
{
	OSSL_PARAM	params[3];
	const kversion *kv;

	if (ver <= 0 || ver > k->latest)
	{
		te_set(e, TE_USER, "invalid key version");
		return false;
	}
	if (ctxlen == 0)
	{
		te_set(e, TE_USER, ERR_DERIVE_CONTEXT);
		return false;
	}
	if (ver < k->min_dec)
	{
		te_set(e, TE_USER, "no such key version");
		return false;
	}
	kv = &k->v[ver - 1];
	params[0] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
												  kv->key, kv->keylen);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
												  (void *) ctx, ctxlen);
	params[2] = OSSL_PARAM_construct_end();
	if (EVP_KDF_derive(st->hkdf, out, n, params) != 1)
	{
		te_set(e, TE_INTERNAL, "error reading returned derived bytes: key derivation failed");
		return false;
	}
	return true;
}

/* The cached key schedule of a non-derived version, one per direction. */
static EVP_CIPHER_CTX *
version_ctx(const tkey *k, kversion *kv, bool enc)
{
	EVP_CIPHER_CTX **slot = enc ? &kv->ectx : &kv->dctx;

	if (*slot == NULL)
	{
		EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();

		if (c == NULL ||
			EVP_CipherInit_ex(c, cipher_of(k->type), NULL, kv->key, NULL, enc ? 1 : 0) != 1)
		{
			EVP_CIPHER_CTX_free(c);
			return NULL;
		}
		*slot = c;
	}
	return *slot;
}

/* AEAD Seal: out receives ct || tag (ptlen + TAG_LEN bytes). */
static bool
aead_seal(EVP_CIPHER_CTX *c, const EVP_CIPHER *cipher, const unsigned char *key,
		  const unsigned char *nonce, const unsigned char *aad, size_t aadlen,
		  const unsigned char *pt, size_t ptlen, unsigned char *out)
{
	int			len;

	if (ptlen > INT_MAX || aadlen > INT_MAX)
		return false;
	if (EVP_EncryptInit_ex(c, cipher, NULL, key, nonce) != 1)
		return false;
	if (aadlen > 0 && EVP_EncryptUpdate(c, NULL, &len, aad, (int) aadlen) != 1)
		return false;
	if (ptlen > 0 && EVP_EncryptUpdate(c, out, &len, pt, (int) ptlen) != 1)
		return false;
	if (EVP_EncryptFinal_ex(c, out + ptlen, &len) != 1)
		return false;
	return EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, TAG_LEN, out + ptlen) == 1;
}

/* AEAD Open of ct || tag: 1 ok, 0 authentication failed, -1 library error */
static int
aead_open(EVP_CIPHER_CTX *c, const EVP_CIPHER *cipher, const unsigned char *key,
		  const unsigned char *nonce, const unsigned char *aad, size_t aadlen,
		  const unsigned char *ct, size_t ctlen, unsigned char *out)
{
	int			len;
	size_t		n;

	if (ctlen < TAG_LEN)
		return 0;
	n = ctlen - TAG_LEN;
	if (n > INT_MAX || aadlen > INT_MAX)
		return -1;
	if (EVP_DecryptInit_ex(c, cipher, NULL, key, nonce) != 1)
		return -1;
	if (aadlen > 0 && EVP_DecryptUpdate(c, NULL, &len, aad, (int) aadlen) != 1)
		return -1;
	if (n > 0 && EVP_DecryptUpdate(c, out, &len, ct, (int) n) != 1)
		return -1;
	if (EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, TAG_LEN, (void *) (ct + n)) != 1)
		return -1;
	return EVP_DecryptFinal_ex(c, out + n, &len) == 1 ? 1 : 0;
}

/* The decoded associated data; false (an internal error, as Vault) on bad base64 */
static bool
decode_aad(tstate *st, const char *aad, const unsigned char **p, size_t *n, terr *e)
{
	char		msg[128];

	*p = NULL;
	*n = 0;
	if (!nonempty(aad))
		return true;
	if (!b64_decode_go(&st->aad, aad, strlen(aad), n, msg, sizeof(msg)))
	{
		te_set(e, TE_INTERNAL,
			   "unable to get associated_data/additional_data from factory[0]: %s", msg);
		return false;
	}
	*p = st->aad.p;
	return true;
}

/* "vault:v<ver>:" + base64(raw) into st->out */
static const char *
format_versioned(tstate *st, int ver, const unsigned char *raw, size_t rawlen)
{
	char	   *dst = (char *) sbuf_reserve(&st->out, 32 + vc_b64_encoded_len(rawlen) + 1);
	int			n = snprintf(dst, 32, "vault:v%d:", ver);

	vc_b64_encode(raw, rawlen, dst + n);
	return dst;
}

/*
 * Policy.EncryptWithFactory for pt under version ver (0: latest).  The
 * ciphertext string is returned in st->out; *used is the version.
 */
static const char *
tk_encrypt(tstate *st, tkey *k, int64_t ver, const unsigned char *ctx, size_t ctxlen,
		   bool nonce_given, const unsigned char *pt, size_t ptlen, const char *aad,
		   int *used, terr *e)
{
	unsigned char keybuf[MAX_KEY_LEN];
	unsigned char nonce[NONCE_LEN];
	const unsigned char *aadp;
	size_t		aadlen,
				enclen,
				hmaclen = 0;
	kversion   *kv;
	unsigned char *raw;
	bool		ok;

	if (k->type == KT_HMAC)
	{
		te_set(e, TE_USER, "message encryption not supported for key type %s",
			   ktype_names[k->type]);
		return NULL;
	}
	if (ver == 0)
		ver = k->latest;
	else if (ver < 0)
	{
		te_set(e, TE_USER, "requested version for encryption is negative");
		return NULL;
	}
	else if (ver > k->latest)
	{
		te_set(e, TE_USER, "requested version for encryption is higher than the latest key version");
		return NULL;
	}
	else if (ver < k->min_enc)
	{
		te_set(e, TE_USER, "requested version for encryption is less than the minimum encryption key version");
		return NULL;
	}
	kv = &k->v[ver - 1];
	/* only version 1 convergent keys, which this server never makes, take a nonce */
	if (nonce_given)
	{
		te_set(e, TE_USER, "nonce provided when not allowed");
		return NULL;
	}
	enclen = enc_key_len(k->type);
	if (kv->convergent_version == CONVERGENT_VERSION)
		hmaclen = 32;
	if (k->derived)
	{
		if (!derive_key(st, k, (int) ver, ctx, ctxlen, enclen + hmaclen, keybuf, e))
			return NULL;
	}
	else if (ver < k->min_dec)
	{
		te_set(e, TE_USER, "no such key version");
		return NULL;
	}
	if (!decode_aad(st, aad, &aadp, &aadlen, e))
	{
		OPENSSL_cleanse(keybuf, sizeof(keybuf));
		return NULL;
	}

	if (hmaclen)
	{
		/* convergent: nonce = HMAC-SHA256(derived HMAC key, plaintext)[:12] */
		unsigned char sum[EVP_MAX_MD_SIZE];
		size_t		sumlen;

		if (!mac_one(st, "SHA2-256", keybuf + enclen, hmaclen, pt, ptlen, sum, &sumlen))
		{
			OPENSSL_cleanse(keybuf, sizeof(keybuf));
			te_set(e, TE_INTERNAL, "could not compute the convergent nonce");
			return NULL;
		}
		memcpy(nonce, sum, NONCE_LEN);
	}
	else
		rand_bytes(nonce, NONCE_LEN);

	raw = sbuf_reserve(&st->raw, NONCE_LEN + ptlen + TAG_LEN);
	memcpy(raw, nonce, NONCE_LEN);
	if (k->derived)
		ok = aead_seal(st->scratch, cipher_of(k->type), keybuf, nonce, aadp, aadlen,
					   pt, ptlen, raw + NONCE_LEN);
	else
	{
		EVP_CIPHER_CTX *c = version_ctx(k, kv, true);

		ok = c != NULL && aead_seal(c, NULL, NULL, nonce, aadp, aadlen,
									pt, ptlen, raw + NONCE_LEN);
	}
	OPENSSL_cleanse(keybuf, sizeof(keybuf));
	if (!ok)
	{
		te_set(e, TE_INTERNAL, "encryption failed");
		return NULL;
	}
	*used = (int) ver;
	return format_versioned(st, (int) ver, raw, NONCE_LEN + ptlen + TAG_LEN);
}

/*
 * Policy.DecryptWithFactory: the plaintext is left in st->plain (*ptlen
 * bytes); *used is the version the ciphertext names.
 */
static bool
tk_decrypt(tstate *st, tkey *k, const unsigned char *ctx, size_t ctxlen,
		   const char *value, const char *aad, size_t *ptlen, int *used, terr *e)
{
	static const char prefix[] = "vault:v";
	const char *rest,
			   *colon;
	long long	ver;
	size_t		rawlen,
				enclen;
	unsigned char keybuf[MAX_KEY_LEN];
	const unsigned char *aadp;
	size_t		aadlen;
	unsigned char *raw;
	unsigned char *out;
	int			r;
	char		msg[128];

	if (k->type == KT_HMAC)
	{
		te_set(e, TE_USER, "message decryption not supported for key type %s",
			   ktype_names[k->type]);
		return false;
	}
	if (strncmp(value, prefix, sizeof(prefix) - 1) != 0)
	{
		te_set(e, TE_USER, "invalid ciphertext: no prefix");
		return false;
	}
	rest = value + sizeof(prefix) - 1;
	colon = strchr(rest, ':');
	if (colon == NULL)
	{
		te_set(e, TE_USER, "invalid ciphertext: wrong number of fields");
		return false;
	}
	if (go_atoi(rest, (size_t) (colon - rest), &ver) != 0)
	{
		te_set(e, TE_USER, "invalid ciphertext: version number could not be decoded");
		return false;
	}
	/* ciphertexts of the first implementation counted from zero */
	if (ver == 0)
		ver = 1;
	if (ver > k->latest)
	{
		te_set(e, TE_USER, "invalid ciphertext: version is too new");
		return false;
	}
	if (k->min_dec > 0 && ver < k->min_dec)
	{
		te_set(e, TE_USER, ERR_TOO_OLD);
		return false;
	}
	if (!b64_decode_go(&st->tmp, colon + 1, strlen(colon + 1), &rawlen, msg, sizeof(msg)))
	{
		te_set(e, TE_USER, "invalid ciphertext: could not decode base64");
		return false;
	}
	raw = st->tmp.p;
	enclen = enc_key_len(k->type);
	if (k->derived &&
		!derive_key(st, k, (int) ver, ctx, ctxlen, enclen, keybuf, e))
		return false;
	if (!decode_aad(st, aad, &aadp, &aadlen, e))
	{
		OPENSSL_cleanse(keybuf, sizeof(keybuf));
		return false;
	}
	if (rawlen < NONCE_LEN)
	{
		OPENSSL_cleanse(keybuf, sizeof(keybuf));
		te_set(e, TE_USER, "invalid ciphertext length");
		return false;
	}
	out = sbuf_reserve(&st->plain, rawlen + 1);
	if (k->derived)
		r = aead_open(st->scratch, cipher_of(k->type), keybuf, raw, aadp, aadlen,
					  raw + NONCE_LEN, rawlen - NONCE_LEN, out);
	else
	{
		EVP_CIPHER_CTX *c = version_ctx(k, &k->v[ver - 1], false);

		r = c ? aead_open(c, NULL, NULL, raw, aadp, aadlen,
						  raw + NONCE_LEN, rawlen - NONCE_LEN, out) : -1;
	}
	OPENSSL_cleanse(keybuf, sizeof(keybuf));
	if (r < 0)
	{
		te_set(e, TE_INTERNAL, "decryption failed");
		return false;
	}
	if (r == 0)
	{
		/* the texts of Go's cipher.AEAD implementations */
		te_set(e, TE_USER, "%s", k->type == KT_CHACHA20_POLY1305 ?
			   "chacha20poly1305: message authentication failed" :
			   "cipher: message authentication failed");
		return false;
	}
	*ptlen = rawlen - NONCE_LEN - TAG_LEN;
	*used = (int) ver;
	return true;
}

/* Policy.HMACKey */
static const unsigned char *
hmac_key_of(const tkey *k, int64_t ver, size_t *len, terr *e)
{
	const kversion *kv;

	if (ver < 0)
	{
		te_set(e, TE_USER, "key version does not exist (cannot be negative)");
		return NULL;
	}
	if (ver > k->latest)
	{
		te_set(e, TE_USER, "key version does not exist; latest key version is %d", k->latest);
		return NULL;
	}
	if (ver < k->min_dec)
	{
		te_set(e, TE_USER, "no such key version");
		return NULL;
	}
	kv = &k->v[ver - 1];
	if (k->type == KT_HMAC)
	{
		*len = kv->keylen;
		return kv->key;
	}
	*len = HMAC_KEY_LEN;
	return kv->hmac_key;
}

static const char *
hash_digest(const char *name)
{
	size_t		i;

	for (i = 0; i < sizeof(hash_algs) / sizeof(hash_algs[0]); i++)
		if (strcmp(name, hash_algs[i].name) == 0)
			return hash_algs[i].digest;
	return NULL;
}

/* ---- batches ---- */

static void
items_free(bitem *items, size_t n)
{
	size_t		i;

	if (items == NULL)
		return;
	for (i = 0; i < n; i++)
		free(items[i].err);
	free(items);
}

static void
item_fail(bitem *it, te_kind kind, const char *msg)
{
	it->ekind = kind;
	free(it->err);
	it->err = strdup(msg);
	if (it->err == NULL)
		abort();
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/* Collects mapstructure-style decoding errors. */
typedef struct errlist
{
	char	  **msgs;
	size_t		n;
	size_t		cap;
} errlist;

static void
errlist_add(errlist *l, const char *fmt,...)
__attribute__((format(printf, 2, 3)));

static void
errlist_add(errlist *l, const char *fmt,...)
{
	va_list		ap;
	char	   *m = NULL;

	va_start(ap, fmt);
	if (vasprintf(&m, fmt, ap) < 0)
		abort();
	va_end(ap);
	if (l->n == l->cap)
	{
		l->cap = l->cap ? l->cap * 2 : 8;
		l->msgs = realloc(l->msgs, l->cap * sizeof(char *));
		if (l->msgs == NULL)
			abort();
	}
	l->msgs[l->n++] = m;
}

/* mapstructure.Error: "N error(s) decoding:\n\n* a\n* b", sorted, as a 500 */
static void
errlist_respond(errlist *l, vresp *resp)
{
	size_t		i,
				len = 128;
	char	   *text,
			   *p;

	qsort(l->msgs, l->n, sizeof(char *), cmp_str);
	for (i = 0; i < l->n; i++)
		len += strlen(l->msgs[i]) + 3;
	text = xmalloc(len);
	p = text + sprintf(text, "failed to parse batch input: %zu error(s) decoding:\n", l->n);
	for (i = 0; i < l->n; i++)
		p += sprintf(p, "\n* %s", l->msgs[i]);
	resp_internal(resp, text);
	free(text);
}

static void
errlist_free(errlist *l)
{
	size_t		i;

	for (i = 0; i < l->n; i++)
		free(l->msgs[i]);
	free(l->msgs);
}

/* A string member of a batch item: null is allowed and means absent. */
static void
item_str(json_t *obj, size_t i, const char *key, const char **dst, errlist *errs)
{
	json_t	   *v = json_object_get(obj, key);

	if (v == NULL || json_is_null(v))
		return;
	if (json_is_string(v))
		*dst = json_string_value(v);
	else
		errlist_add(errs, "'[%zu].%s' expected type 'string', got unconvertible type '%s'",
					i, key, go_type(v));
}

/*
 * decodeBatchRequestItems: batch_input as BatchRequestItem records.
 * need is 'p' (encrypt: plaintext required), 'c' (decrypt: ciphertext
 * required) or 0.  False leaves a 500 in resp.
 */
static bool
batch_parse(json_t *in, int need, bitem **out, size_t *count, vresp *resp)
{
	errlist		errs = {0};
	bitem	   *items;
	size_t		n,
				i;

	if (!json_is_array(in))
	{
		char		msg[160];

		snprintf(msg, sizeof(msg),
				 "failed to parse batch input: source data must be an array or slice, got %s",
				 go_type(in));
		resp_internal(resp, msg);
		return false;
	}
	n = json_array_size(in);
	items = calloc(n ? n : 1, sizeof(bitem));
	if (items == NULL)
		abort();
	for (i = 0; i < n; i++)
	{
		json_t	   *obj = json_array_get(in, i);
		json_t	   *v;
		bitem	   *it = &items[i];

		if (!json_is_object(obj))
		{
			char		msg[160];

			snprintf(msg, sizeof(msg),
					 "failed to parse batch input: [%zu] expected a map, got '%s'",
					 i, go_type(obj));
			resp_internal(resp, msg);
			items_free(items, n);
			errlist_free(&errs);
			return false;
		}
		item_str(obj, i, "context", &it->context, &errs);
		item_str(obj, i, "ciphertext", &it->ciphertext, &errs);
		if (json_object_get(obj, "ciphertext") == NULL && need == 'c')
			errlist_add(&errs, "'[%zu].ciphertext' missing ciphertext to decrypt", i);
		/* a null plaintext is refused, unlike the other members */
		v = json_object_get(obj, "plaintext");
		if (v != NULL)
		{
			if (json_is_string(v))
				it->plaintext = json_string_value(v);
			else
				errlist_add(&errs, "'[%zu].plaintext' expected type 'string', got unconvertible type '%s'",
							i, go_type(v));
		}
		else if (need == 'p')
			errlist_add(&errs, "'[%zu].plaintext' missing plaintext to encrypt", i);
		item_str(obj, i, "nonce", &it->nonce, &errs);
		v = json_object_get(obj, "key_version");
		if (v != NULL && !json_is_null(v))
		{
			if (json_is_integer(v))
				it->key_version = json_integer_value(v);
			else if (json_is_real(v))
			{
				char	   *txt = json_dumps(v, JSON_ENCODE_ANY);

				errlist_add(&errs, "error decoding json.Number into [%zu].key_version: strconv.ParseInt: parsing \"%s\": invalid syntax",
							i, txt ? txt : "");
				free(txt);
			}
			else
				errlist_add(&errs, "'[%zu].key_version' expected type 'int', got unconvertible type '%s'",
							i, go_type(v));
		}
		item_str(obj, i, "associated_data", &it->aad, &errs);
		item_str(obj, i, "reference", &it->reference, &errs);
	}
	if (errs.n > 0)
	{
		errlist_respond(&errs, resp);
		errlist_free(&errs);
		items_free(items, n);
		return false;
	}
	*out = items;
	*count = n;
	return true;
}

/*
 * The batch items of hmac and verify ([]map[string]string): every member
 * becomes a string in place (numbers as their text, null as ""); other
 * types are a 500.  Returns the array or NULL.
 */
static json_t *
batch_parse_strmaps(json_t *in, vresp *resp)
{
	errlist		errs = {0};
	size_t		i;
	json_t	   *obj;

	if (!json_is_array(in))
	{
		char		msg[160];

		snprintf(msg, sizeof(msg),
				 "failed to parse batch input: '': source data must be an array or slice, got %s",
				 json_is_object(in) ? "map" : json_is_boolean(in) ? "bool" : "string");
		resp_internal(resp, msg);
		return NULL;
	}
	json_array_foreach(in, i, obj)
	{
		const char *key;
		json_t	   *v;
		void	   *iter;

		if (!json_is_object(obj))
		{
			errlist_add(&errs, "'[%zu]' expected a map, got '%s'", i,
						json_is_array(obj) ? "slice" : json_is_boolean(obj) ? "bool" : "string");
			continue;
		}
		for (iter = json_object_iter(obj); iter; iter = json_object_iter_next(obj, iter))
		{
			key = json_object_iter_key(iter);
			v = json_object_iter_value(iter);
			if (json_is_string(v))
				continue;
			if (json_is_null(v))
				json_object_iter_set_new(obj, iter, json_string(""));
			else if (json_is_number(v))
			{
				char	   *txt = json_dumps(v, JSON_ENCODE_ANY);

				json_object_iter_set_new(obj, iter, json_string(txt ? txt : ""));
				free(txt);
			}
			else
				errlist_add(&errs, "'[%zu][%s]' expected type 'string', got unconvertible type '%s'",
							i, key, go_type(v));
		}
	}
	if (errs.n > 0)
	{
		errlist_respond(&errs, resp);
		errlist_free(&errs);
		return NULL;
	}
	return in;
}

static const char *
map_str(json_t *obj, const char *key)
{
	json_t	   *v = json_object_get(obj, key);

	return v ? json_string_value(v) : NULL;
}

/*
 * batchRequestResponse: a failed item makes the whole response 400 (user
 * errors first) or 500, sent as the full envelope; the caller may replace
 * that code with partial_failure_response_code when some items succeeded.
 */
static void
batch_status(vresp *resp, bool have_pfrc, int64_t pfrc, bool successes,
			 bool user_err, bool internal_err)
{
	int			code;

	if (!user_err && !internal_err)
		return;
	code = user_err ? 400 : 500;
	if (have_pfrc && successes)
	{
		if (pfrc < 1 || pfrc > 599)
			resp_warn(resp, "invalid HTTP response code override from partial_failure_response_code, reverting to %d", code);
		else
			code = (int) pfrc;
	}
	resp->status = code;
	resp->raw_status = true;
}

static json_t *
result_reference(json_t *o, const char *reference)
{
	json_object_set_new(o, "reference", json_string(reference ? reference : ""));
	return o;
}

/*
 * The request's single item, from top-level fields; false when a field
 * has the wrong type (resp has the 400).
 */
typedef struct single_fields
{
	char		t_pt[40];
	char		t_ct[40];
	char		t_ctx[40];
	char		t_nonce[40];
	char		t_aad[40];
} single_fields;

static bool
single_item(const vreq *req, vresp *resp, bitem *it, single_fields *sf, bool with_version)
{
	bool		ok = true;

	it->plaintext = field_str(req, "plaintext", sf->t_pt, sizeof(sf->t_pt), &ok, resp);
	it->ciphertext = field_str(req, "ciphertext", sf->t_ct, sizeof(sf->t_ct), &ok, resp);
	it->context = field_str(req, "context", sf->t_ctx, sizeof(sf->t_ctx), &ok, resp);
	it->nonce = field_str(req, "nonce", sf->t_nonce, sizeof(sf->t_nonce), &ok, resp);
	it->aad = field_str(req, "associated_data", sf->t_aad, sizeof(sf->t_aad), &ok, resp);
	if (with_version && ok)
		it->key_version = req_int(req, "key_version", 0, &ok, resp);
	return ok;
}

/* Decode an item member into b; on failure the item carries Go's error. */
static bool
item_decode(bitem *it, sbuf *b, const char *s, size_t *len)
{
	char		msg[128];

	*len = 0;
	if (!nonempty(s))
		return true;
	if (b64_decode_go(b, s, strlen(s), len, msg, sizeof(msg)))
		return true;
	item_fail(it, TE_USER, msg);
	return false;
}

/* A 400 or 500 from the single item's error. */
static void
single_error(vresp *resp, const bitem *it)
{
	resp_error(resp, it->ekind == TE_INTERNAL ? 500 : 400, "%s", it->err);
}

/* ---- encrypt, decrypt, rewrap, datakey ---- */

/* key types encrypt may create (pathEncryptWrite); false leaves a 400 */
static bool
upsert_type(const char *type, ktype *out, vresp *resp)
{
	if (strcmp(type, "aes128-gcm96") == 0 || strcmp(type, "aes256-gcm96") == 0 ||
		strcmp(type, "chacha20-poly1305") == 0)
		return parse_ktype(type, out);
	if (strncmp(type, "rsa-", 4) == 0 && is_unimplemented_type(type))
		resp_error(resp, 400, "key type %s is not supported by this development server", type);
	else if (strncmp(type, "ecdsa-", 6) == 0 && is_unimplemented_type(type))
		resp_error(resp, 400, "key type %s not supported for this operation", type);
	else
		resp_error(resp, 400, "unknown key type %s", type);
	return false;
}

static void
handle_encrypt(tstate *st, vreq *req, vresp *resp, const char *name)
{
	json_t	   *batch = json_object_get(req->data, "batch_input");
	bool		is_batch = batch != NULL && !json_is_null(batch);
	bitem	   *items = NULL;
	size_t		n = 0,
				i;
	single_fields sf;
	bool		ok = true,
				context_set,
				upserted = false,
				successes = false,
				user_err = false,
				internal_err = false,
				have_pfrc;
	int64_t		pfrc = 0;
	tkey	   *k;
	json_t	   *results = NULL;

	have_pfrc = req_has(req, "partial_failure_response_code");
	if (have_pfrc)
		pfrc = req_int(req, "partial_failure_response_code", 0, &ok, resp);
	if (!ok)
		return;

	if (is_batch)
	{
		if (!batch_parse(batch, 'p', &items, &n, resp))
			return;
		if (n == 0)
		{
			resp_error(resp, 400, "missing batch input to process");
			goto done;
		}
	}
	else
	{
		items = calloc(1, sizeof(bitem));
		if (items == NULL)
			abort();
		n = 1;
		if (!single_item(req, resp, &items[0], &sf, true))
			goto done;
		if (!req_has(req, "plaintext"))
		{
			resp_error(resp, 400, "missing plaintext to encrypt");
			goto done;
		}
	}

	context_set = nonempty(items[0].context);
	for (i = 0; i < n; i++)
	{
		size_t		len;

		if (nonempty(items[i].context) != context_set)
		{
			resp_error(resp, 400, "context should be set either in all the request blocks or in none");
			goto done;
		}
		if (item_decode(&items[i], &st->in, items[i].plaintext, &len))
		{
			if (len > 0)
				OPENSSL_cleanse(st->in.p, len);
			if (item_decode(&items[i], &st->ctx, items[i].context, &len))
				item_decode(&items[i], &st->tmp, items[i].nonce, &len);
		}
	}

	if (req->op == OP_CREATE)
	{
		char		t_type[40];
		const char *type;
		bool		convergent;
		ktype		kt;

		convergent = req_bool(req, "convergent_encryption", false, &ok, resp);
		type = field_str(req, "type", t_type, sizeof(t_type), &ok, resp);
		if (!ok)
			goto done;
		if (convergent && !context_set)
		{
			resp_error(resp, 400, "convergent encryption requires derivation to be enabled, so context is required");
			goto done;
		}
		if (!upsert_type(type ? type : "aes256-gcm96", &kt, resp))
			goto done;
		k = key_get(st, name, resp);
		if (k == NULL)
		{
			if (st->disable_upsert)
			{
				resp_error(resp, 400, "encryption key not found");
				goto done;
			}
			k = key_new(st, name, kt, context_set, convergent, false, false, 0, 0);
			upserted = true;
			resp->dirty = true;
		}
	}
	else
	{
		k = key_get(st, name, resp);
		if (k == NULL)
		{
			resp_error(resp, 400, "encryption key not found");
			goto done;
		}
	}

	if (is_batch)
		results = json_array();
	for (i = 0; i < n; i++)
	{
		bitem	   *it = &items[i];
		size_t		ptlen = 0,
					ctxlen = 0;
		const char *ct = NULL;
		int			used = 0;
		terr		e = {0};

		if (it->err == NULL)
		{
			if (nonempty(it->nonce))
				item_fail(it, TE_USER, ERR_NONCE_NOT_ALLOWED);
			else if (nonempty(it->aad) && !is_aead(k->type))
			{
				/* Vault does not count this one as a user error */
				char		msg[160];

				snprintf(msg, sizeof(msg),
						 "'[%zu].associated_data' provided for non-AEAD cipher suite %s",
						 i, ktype_names[k->type]);
				item_fail(it, TE_NONE, msg);
			}
			else
			{
				item_decode(it, &st->in, it->plaintext, &ptlen);
				item_decode(it, &st->ctx, it->context, &ctxlen);
				ct = tk_encrypt(st, k, it->key_version, st->ctx.p, ctxlen, false,
								st->in.p, ptlen, it->aad, &used, &e);
				if (ptlen > 0)
					OPENSSL_cleanse(st->in.p, ptlen);
				if (ct == NULL)
					item_fail(it, e.kind, e.msg);
			}
		}
		if (it->err)
		{
			if (it->ekind == TE_INTERNAL)
				internal_err = true;
			else if (it->ekind == TE_USER)
				user_err = true;
		}
		else
			successes = true;

		if (is_batch)
		{
			json_t	   *o = json_object();

			if (ct)
			{
				json_object_set_new(o, "ciphertext", json_string(ct));
				json_object_set_new(o, "key_version", json_integer(used));
			}
			if (it->err)
				json_object_set_new(o, "error", json_string(it->err));
			json_array_append_new(results, result_reference(o, it->reference));
		}
		else if (ct)
		{
			resp->data = json_object();
			json_object_set_new(resp->data, "ciphertext", json_string(ct));
			json_object_set_new(resp->data, "key_version", json_integer(used));
		}
	}

	if (is_batch)
	{
		resp->data = json_object();
		json_object_set_new(resp->data, "batch_results", results);
	}
	else if (items[0].err)
	{
		single_error(resp, &items[0]);
		goto done;
	}
	if (req->op == OP_CREATE && !upserted)
		resp_warn(resp, "Attempted creation of the key during the encrypt operation, but it was created beforehand");
	batch_status(resp, have_pfrc, pfrc, successes, user_err, internal_err);

done:
	items_free(items, n);
}

static void
handle_decrypt(tstate *st, vreq *req, vresp *resp, const char *name)
{
	json_t	   *batch = json_object_get(req->data, "batch_input");
	bool		is_batch = batch != NULL && !json_is_null(batch);
	bitem	   *items = NULL;
	size_t		n = 0,
				i;
	single_fields sf;
	bool		ok = true,
				context_set,
				successes = false,
				user_err = false,
				internal_err = false,
				have_pfrc;
	int64_t		pfrc = 0;
	tkey	   *k;
	json_t	   *results = NULL;

	have_pfrc = req_has(req, "partial_failure_response_code");
	if (have_pfrc)
		pfrc = req_int(req, "partial_failure_response_code", 0, &ok, resp);
	if (!ok)
		return;

	if (is_batch)
	{
		if (!batch_parse(batch, 'c', &items, &n, resp))
			return;
		if (n == 0)
		{
			resp_error(resp, 400, "missing batch input to process");
			goto done;
		}
	}
	else
	{
		items = calloc(1, sizeof(bitem));
		if (items == NULL)
			abort();
		n = 1;
		if (!single_item(req, resp, &items[0], &sf, false))
			goto done;
		if (!nonempty(items[0].ciphertext))
		{
			resp_error(resp, 400, "missing ciphertext to decrypt");
			goto done;
		}
	}

	context_set = nonempty(items[0].context);
	for (i = 0; i < n; i++)
	{
		size_t		len;

		if (nonempty(items[i].context) != context_set)
		{
			resp_error(resp, 400, "context should be set either in all the request blocks or in none");
			goto done;
		}
		if (!nonempty(items[i].ciphertext))
			item_fail(&items[i], TE_USER, "missing ciphertext to decrypt");
		else if (item_decode(&items[i], &st->ctx, items[i].context, &len))
			item_decode(&items[i], &st->tmp, items[i].nonce, &len);
	}

	k = key_get(st, name, resp);
	if (k == NULL)
	{
		resp_error(resp, 400, "encryption key not found");
		goto done;
	}

	if (is_batch)
		results = json_array();
	for (i = 0; i < n; i++)
	{
		bitem	   *it = &items[i];
		size_t		ptlen = 0,
					ctxlen = 0;
		int			used;
		terr		e = {0};
		bool		good = false;

		if (it->err == NULL)
		{
			if (nonempty(it->aad) && !is_aead(k->type))
			{
				char		msg[160];

				snprintf(msg, sizeof(msg),
						 "'[%zu].associated_data' provided for non-AEAD cipher suite %s",
						 i, ktype_names[k->type]);
				item_fail(it, TE_NONE, msg);
			}
			else
			{
				item_decode(it, &st->ctx, it->context, &ctxlen);
				good = tk_decrypt(st, k, st->ctx.p, ctxlen, it->ciphertext, it->aad,
								  &ptlen, &used, &e);
				if (!good)
					item_fail(it, e.kind, e.msg);
			}
		}
		if (it->err)
		{
			if (it->ekind == TE_INTERNAL)
				internal_err = true;
			else if (it->ekind == TE_USER)
				user_err = true;
		}
		else
			successes = true;

		if (good)
		{
			char	   *b64 = (char *) sbuf_reserve(&st->out, vc_b64_encoded_len(ptlen) + 1);

			vc_b64_encode(st->plain.p, ptlen, b64);
			if (ptlen > 0)
				OPENSSL_cleanse(st->plain.p, ptlen);
		}
		if (is_batch)
		{
			json_t	   *o = json_object();

			json_object_set_new(o, "plaintext", json_string(good ? (char *) st->out.p : ""));
			if (it->err)
				json_object_set_new(o, "error", json_string(it->err));
			json_array_append_new(results, result_reference(o, it->reference));
		}
		else if (good)
		{
			resp->data = json_object();
			json_object_set_new(resp->data, "plaintext", json_string((char *) st->out.p));
		}
		if (good)
			OPENSSL_cleanse(st->out.p, vc_b64_encoded_len(ptlen));
	}

	if (is_batch)
	{
		resp->data = json_object();
		json_object_set_new(resp->data, "batch_results", results);
	}
	else if (items[0].err)
	{
		single_error(resp, &items[0]);
		goto done;
	}
	batch_status(resp, have_pfrc, pfrc, successes, user_err, internal_err);

done:
	items_free(items, n);
}

static void
handle_rewrap(tstate *st, vreq *req, vresp *resp, const char *name)
{
	json_t	   *batch = json_object_get(req->data, "batch_input");
	bool		is_batch = batch != NULL && !json_is_null(batch);
	bitem	   *items = NULL;
	size_t		n = 0,
				i;
	single_fields sf;
	bool		context_set;
	tkey	   *k;
	json_t	   *results;

	if (is_batch)
	{
		if (!batch_parse(batch, 0, &items, &n, resp))
			return;
		if (n == 0)
		{
			resp_error(resp, 400, "missing batch input to process");
			goto done;
		}
	}
	else
	{
		items = calloc(1, sizeof(bitem));
		if (items == NULL)
			abort();
		n = 1;
		if (!single_item(req, resp, &items[0], &sf, true))
			goto done;
		/* rewrap has no associated_data parameter */
		items[0].aad = NULL;
		if (!nonempty(items[0].ciphertext))
		{
			resp_error(resp, 400, "missing ciphertext to decrypt");
			goto done;
		}
	}

	context_set = nonempty(items[0].context);
	for (i = 0; i < n; i++)
	{
		size_t		len;

		if (nonempty(items[i].context) != context_set)
		{
			resp_error(resp, 400, "context should be set either in all the request blocks or in none");
			goto done;
		}
		if (!nonempty(items[i].ciphertext))
			item_fail(&items[i], TE_USER, "missing ciphertext to decrypt");
		else if (item_decode(&items[i], &st->ctx, items[i].context, &len))
			item_decode(&items[i], &st->tmp, items[i].nonce, &len);
	}

	k = key_get(st, name, resp);
	if (k == NULL)
	{
		resp_error(resp, 400, "encryption key not found");
		goto done;
	}

	results = json_array();
	for (i = 0; i < n; i++)
	{
		bitem	   *it = &items[i];
		size_t		ptlen = 0,
					ctxlen = 0;
		int			used = 0,
					oldver;
		terr		e = {0};
		const char *ct = NULL;

		if (it->err == NULL)
		{
			if (nonempty(it->nonce))
				item_fail(it, TE_USER, ERR_NONCE_NOT_ALLOWED);
			else
			{
				item_decode(it, &st->ctx, it->context, &ctxlen);
				if (tk_decrypt(st, k, st->ctx.p, ctxlen, it->ciphertext, NULL,
							   &ptlen, &oldver, &e))
				{
					ct = tk_encrypt(st, k, it->key_version, st->ctx.p, ctxlen, false,
									st->plain.p, ptlen, NULL, &used, &e);
					if (ptlen > 0)
						OPENSSL_cleanse(st->plain.p, ptlen);
				}
				if (ct == NULL)
				{
					/* only user errors are reported per item */
					if (e.kind == TE_INTERNAL)
					{
						resp_error(resp, 500, "%s", e.msg);
						json_decref(results);
						goto done;
					}
					item_fail(it, e.kind, e.msg);
				}
			}
		}
		if (is_batch)
		{
			json_t	   *o = json_object();

			if (ct)
			{
				json_object_set_new(o, "ciphertext", json_string(ct));
				json_object_set_new(o, "key_version", json_integer(used));
			}
			if (it->err)
				json_object_set_new(o, "error", json_string(it->err));
			json_array_append_new(results, result_reference(o, it->reference));
		}
		else if (ct)
		{
			resp->data = json_object();
			json_object_set_new(resp->data, "ciphertext", json_string(ct));
			json_object_set_new(resp->data, "key_version", json_integer(used));
		}
	}

	if (is_batch)
	{
		resp->data = json_object();
		json_object_set_new(resp->data, "batch_results", results);
	}
	else
	{
		json_decref(results);
		if (items[0].err)
			resp_error(resp, 400, "%s", items[0].err);
	}

done:
	items_free(items, n);
}

static void
handle_datakey(tstate *st, vreq *req, vresp *resp, const char *kind, const char *name)
{
	bool		ok = true,
				with_plaintext;
	char		t_ctx[40],
				t_nonce[40],
				t_aad[40];
	const char *context,
			   *nonce,
			   *aad,
			   *ct;
	int64_t		ver = 0,
				bits = 256;
	size_t		ctxlen = 0,
				noncelen = 0,
				nbytes;
	char		msg[128];
	tkey	   *k;
	unsigned char datakey[64];
	int			used;
	terr		e = {0};

	context = field_str(req, "context", t_ctx, sizeof(t_ctx), &ok, resp);
	nonce = field_str(req, "nonce", t_nonce, sizeof(t_nonce), &ok, resp);
	aad = field_str(req, "associated_data", t_aad, sizeof(t_aad), &ok, resp);
	if (ok)
		ver = req_int(req, "key_version", 0, &ok, resp);
	if (ok)
		bits = req_int(req, "bits", 256, &ok, resp);
	if (!ok)
		return;

	if (strcmp(kind, "plaintext") == 0)
		with_plaintext = true;
	else if (strcmp(kind, "wrapped") == 0)
		with_plaintext = false;
	else
	{
		resp_error(resp, 400, "Invalid path, must be 'plaintext' or 'wrapped'");
		return;
	}
	if (nonempty(context) &&
		!b64_decode_go(&st->ctx, context, strlen(context), &ctxlen, msg, sizeof(msg)))
	{
		resp_error(resp, 400, "failed to base64-decode context");
		return;
	}
	if (nonempty(nonce) &&
		!b64_decode_go(&st->tmp, nonce, strlen(nonce), &noncelen, msg, sizeof(msg)))
	{
		resp_error(resp, 400, "failed to base64-decode nonce");
		return;
	}
	k = key_get(st, name, resp);
	if (k == NULL)
	{
		resp_error(resp, 400, "encryption key not found");
		return;
	}
	if (bits != 128 && bits != 256 && bits != 512)
	{
		resp_error(resp, 400, "invalid bit length");
		return;
	}
	nbytes = (size_t) bits / 8;
	rand_bytes(datakey, nbytes);

	/*
	 * Vault's datakey ignores associated_data; the reference this server
	 * follows lists it, and a caller sending it expects it to be bound.
	 */
	ct = tk_encrypt(st, k, ver, st->ctx.p, ctxlen, noncelen > 0, datakey, nbytes,
					aad, &used, &e);
	if (ct == NULL)
	{
		OPENSSL_cleanse(datakey, sizeof(datakey));
		resp_error(resp, e.kind == TE_INTERNAL ? 500 : 400, "%s", e.msg);
		return;
	}
	resp->data = json_object();
	json_object_set_new(resp->data, "ciphertext", json_string(ct));
	json_object_set_new(resp->data, "key_version", json_integer(used));
	if (with_plaintext)
	{
		char		b64[100];

		vc_b64_encode(datakey, nbytes, b64);
		json_object_set_new(resp->data, "plaintext", json_string(b64));
		OPENSSL_cleanse(b64, sizeof(b64));
	}
	OPENSSL_cleanse(datakey, sizeof(datakey));
}

/* ---- hmac, verify, sign ---- */

/*
 * Vault answers an unknown algorithm with ErrorResponse("unsupported
 * algorithm %q", hashAlgorithm) where the value is the zero HashType, so
 * the text names '\x00' rather than the algorithm.
 */
#define ERR_UNSUPPORTED_ALGORITHM "unsupported algorithm '\\x00'"

static void
handle_hmac(tstate *st, vreq *req, vresp *resp, const char *name, const char *urlalg)
{
	json_t	   *batch = json_object_get(req->data, "batch_input");
	bool		is_batch = batch != NULL && !json_is_null(batch);
	bool		ok = true;
	char		t_alg[40],
				t_input[40];
	const char *alg,
			   *digest,
			   *input;
	int64_t		ver = 0;
	tkey	   *k;
	const unsigned char *key;
	size_t		keylen,
				i,
				n;
	terr		e = {0};
	json_t	   *results;

	alg = field_str(req, "algorithm", t_alg, sizeof(t_alg), &ok, resp);
	input = field_str(req, "input", t_input, sizeof(t_input), &ok, resp);
	if (ok)
		ver = req_int(req, "key_version", 0, &ok, resp);
	if (!ok)
		return;
	if (nonempty(urlalg))
		alg = urlalg;
	else if (alg == NULL)
		alg = "sha2-256";

	k = key_get(st, name, resp);
	if (k == NULL)
	{
		resp_error(resp, 400, "encryption key not found");
		return;
	}
	if (ver == 0)
		ver = k->latest;
	else if (ver != k->latest && k->min_enc > 0 && ver < k->min_enc)
	{
		resp_error(resp, 400, "cannot generate HMAC: version is too old (disallowed by policy)");
		return;
	}
	key = hmac_key_of(k, ver, &keylen, &e);
	if (key == NULL)
	{
		resp_error(resp, 400, "%s", e.msg);
		return;
	}
	digest = hash_digest(alg);
	if (digest == NULL)
	{
		resp_error(resp, 400, ERR_UNSUPPORTED_ALGORITHM);
		return;
	}

	if (is_batch)
	{
		if (batch_parse_strmaps(batch, resp) == NULL)
			return;
		n = json_array_size(batch);
		if (n == 0)
		{
			resp_error(resp, 400, "missing batch input to process");
			return;
		}
	}
	else
	{
		if (!req_has(req, "input"))
		{
			resp_error(resp, 400, "missing input for HMAC");
			return;
		}
		n = 1;
	}

	results = json_array();
	for (i = 0; i < n; i++)
	{
		json_t	   *item = is_batch ? json_array_get(batch, i) : NULL;
		const char *in = is_batch ? map_str(item, "input") : input;
		const char *err = NULL;
		char		msg[200],
					b64err[128];
		size_t		inlen = 0;
		const char *mac = NULL;

		if (in == NULL)
			err = "missing input for HMAC";
		else if (!b64_decode_go(&st->in, in, strlen(in), &inlen, b64err, sizeof(b64err)))
		{
			snprintf(msg, sizeof(msg), "unable to decode input as base64: %s", b64err);
			err = msg;
		}
		else
		{
			unsigned char sum[EVP_MAX_MD_SIZE];
			size_t		sumlen;

			if (!mac_one(st, digest, key, keylen, st->in.p, inlen, sum, &sumlen))
			{
				json_decref(results);
				resp_internal(resp, "HMAC key value could not be computed");
				return;
			}
			if (inlen > 0)
				OPENSSL_cleanse(st->in.p, inlen);
			mac = format_versioned(st, (int) ver, sum, sumlen);
		}
		if (is_batch)
		{
			json_t	   *o = json_object();

			if (mac)
				json_object_set_new(o, "hmac", json_string(mac));
			if (err)
				json_object_set_new(o, "error", json_string(err));
			json_array_append_new(results, result_reference(o, map_str(item, "reference")));
		}
		else if (err)
		{
			json_decref(results);
			resp_error(resp, 400, "%s", err);
			return;
		}
		else
		{
			json_decref(results);
			resp->data = json_object();
			json_object_set_new(resp->data, "hmac", json_string(mac));
			return;
		}
	}
	resp->data = json_object();
	json_object_set_new(resp->data, "batch_results", results);
}

/* One HMAC verification (pathHMACVerify's loop body); NULL err: valid set. */
static const char *
hmac_verify_one(tstate *st, tkey *k, const char *digest, const char *in,
				const char *hmac, bool *valid, char *msg, size_t msglen)
{
	static const char prefix[] = "vault:v";
	size_t		inlen,
				maclen,
				keylen;
	const char *colon;
	long long	ver;
	const unsigned char *key;
	unsigned char sum[EVP_MAX_MD_SIZE];
	size_t		sumlen;
	char		b64err[128];
	terr		e = {0};

	*valid = false;
	if (in == NULL)
		return "missing input";
	if (!b64_decode_go(&st->in, in, strlen(in), &inlen, b64err, sizeof(b64err)))
	{
		snprintf(msg, msglen, "unable to decode input as base64: %s", b64err);
		return msg;
	}
	if (hmac == NULL)
		return "missing hmac";
	if (strncmp(hmac, prefix, sizeof(prefix) - 1) != 0)
		return "invalid HMAC to verify: no prefix";
	colon = strchr(hmac + sizeof(prefix) - 1, ':');
	if (colon == NULL)
		return "invalid HMAC: wrong number of fields";
	if (go_atoi(hmac + sizeof(prefix) - 1, (size_t) (colon - hmac - (sizeof(prefix) - 1)), &ver) != 0)
		return "invalid HMAC: version number could not be decoded";
	if (!b64_decode_go(&st->tmp, colon + 1, strlen(colon + 1), &maclen, b64err, sizeof(b64err)))
	{
		snprintf(msg, msglen, "unable to decode verification HMAC as base64: %s", b64err);
		return msg;
	}
	if (ver > k->latest)
		return "invalid HMAC: version is too new";
	if (k->min_dec > 0 && ver < k->min_dec)
		return "cannot verify HMAC: version is too old (disallowed by policy)";
	key = hmac_key_of(k, ver, &keylen, &e);
	if (key == NULL)
	{
		snprintf(msg, msglen, "%s", e.msg);
		return msg;
	}
	if (!mac_one(st, digest, key, keylen, st->in.p, inlen, sum, &sumlen))
		return "HMAC key value could not be computed";
	if (inlen > 0)
		OPENSSL_cleanse(st->in.p, inlen);
	*valid = sumlen == maclen && CRYPTO_memcmp(sum, st->tmp.p, sumlen) == 0;
	return NULL;
}

/* pathHMACVerify; items holds the request's items (map[string]string) */
static void
hmac_verify(tstate *st, vreq *req, vresp *resp, const char *name, const char *urlalg,
			json_t *items, bool is_batch)
{
	bool		ok = true;
	char		t1[40],
				t2[40];
	const char *alg = NULL,
			   *digest;
	tkey	   *k;
	size_t		i;
	json_t	   *item;
	json_t	   *results;

	if (nonempty(urlalg))
		alg = urlalg;
	else
	{
		/* the deprecated "algorithm" counts only without "hash_algorithm" */
		const char *ha = field_str(req, "hash_algorithm", t1, sizeof(t1), &ok, resp);
		const char *a = field_str(req, "algorithm", t2, sizeof(t2), &ok, resp);

		if (!ok)
			return;
		alg = ha ? ha : a ? a : "sha2-256";
	}
	k = key_get(st, name, resp);
	if (k == NULL)
	{
		resp_error(resp, 400, "encryption key not found");
		return;
	}
	digest = hash_digest(alg);
	if (digest == NULL)
	{
		resp_error(resp, 400, ERR_UNSUPPORTED_ALGORITHM);
		return;
	}
	results = json_array();
	json_array_foreach(items, i, item)
	{
		char		msg[640];
		bool		valid;
		const char *err = hmac_verify_one(st, k, digest, map_str(item, "input"),
										  map_str(item, "hmac"), &valid, msg, sizeof(msg));

		if (is_batch)
		{
			json_t	   *o = json_object();

			if (valid)
				json_object_set_new(o, "valid", json_true());
			if (err)
				json_object_set_new(o, "error", json_string(err));
			json_array_append_new(results, result_reference(o, map_str(item, "reference")));
		}
		else
		{
			json_decref(results);
			if (err)
				resp_error(resp, 400, "%s", err);
			else
			{
				resp->data = json_object();
				json_object_set_new(resp->data, "valid", json_boolean(valid));
			}
			return;
		}
	}
	resp->data = json_object();
	json_object_set_new(resp->data, "batch_results", results);
}

static bool
valid_signing_hash(const char *s)
{
	return strcmp(s, "none") == 0 || hash_digest(s) != NULL;
}

/*
 * sign and verify with a signature: the parameter checks and key lookup
 * Vault makes before signing; no implemented key type can sign.
 */
static void
signature_unsupported(tstate *st, vreq *req, vresp *resp, const char *name,
					  const char *urlalg, bool verify)
{
	bool		ok = true;
	char		t1[40],
				t2[40],
				t3[40];
	const char *alg,
			   *marshaling;
	tkey	   *k;

	alg = urlalg;
	if (!nonempty(alg))
	{
		const char *ha = field_str(req, "hash_algorithm", t1, sizeof(t1), &ok, resp);
		const char *a = field_str(req, "algorithm", t2, sizeof(t2), &ok, resp);

		alg = nonempty(ha) ? ha : nonempty(a) ? a : "sha2-256";
	}
	marshaling = field_str(req, "marshaling_algorithm", t3, sizeof(t3), &ok, resp);
	if (!ok)
		return;
	if (marshaling == NULL)
		marshaling = "asn1";
	if (!valid_signing_hash(alg))
	{
		resp_error(resp, 400, "invalid hash algorithm \"%s\"", alg);
		return;
	}
	if (strcmp(marshaling, "asn1") != 0 && strcmp(marshaling, "jws") != 0)
	{
		resp_error(resp, 400, "invalid marshaling type \"%s\"", marshaling);
		return;
	}
	k = key_get(st, name, resp);
	if (k == NULL)
	{
		resp_error(resp, 400, "encryption key not found");
		return;
	}
	resp_error(resp, 400, "key type %s does not support %s", ktype_names[k->type],
			   verify ? "verification" : "signing");
}

static void
handle_verify(tstate *st, vreq *req, vresp *resp, const char *name, const char *urlalg)
{
	json_t	   *batch = json_object_get(req->data, "batch_input");
	bool		is_batch = batch != NULL && !json_is_null(batch);
	json_t	   *items;
	json_t	   *item;
	size_t		i;
	bool		sig_found = false,
				hmac_found = false,
				missing = false;

	if (is_batch)
	{
		if (batch_parse_strmaps(batch, resp) == NULL)
			return;
		if (json_array_size(batch) == 0)
		{
			resp_error(resp, 400, "missing batch input to process");
			return;
		}
		items = json_incref(batch);
	}
	else
	{
		bool		ok = true;
		char		t1[40],
					t2[40],
					t3[40],
					t4[40];
		const char *input = field_str(req, "input", t1, sizeof(t1), &ok, resp);
		const char *sig = field_str(req, "signature", t2, sizeof(t2), &ok, resp);
		const char *hmac = field_str(req, "hmac", t3, sizeof(t3), &ok, resp);
		const char *context = field_str(req, "context", t4, sizeof(t4), &ok, resp);
		json_t	   *o;

		if (!ok)
			return;
		o = json_object();
		json_object_set_new(o, "input", json_string(input ? input : ""));
		if (sig)
			json_object_set_new(o, "signature", json_string(sig));
		if (hmac)
			json_object_set_new(o, "hmac", json_string(hmac));
		json_object_set_new(o, "context", json_string(context ? context : ""));
		items = json_array();
		json_array_append_new(items, o);
	}

	json_array_foreach(items, i, item)
	{
		if (json_object_get(item, "signature"))
			sig_found = true;
		else if (json_object_get(item, "hmac"))
			hmac_found = true;
		else
			missing = true;
	}
	if (!is_batch && sig_found && hmac_found)
		resp_error(resp, 400, "provide one of 'signature' or 'hmac'");
	else if (!is_batch && !sig_found && !hmac_found)
		resp_error(resp, 400, "neither a 'signature' nor an 'hmac' were given to verify");
	else if (sig_found && hmac_found)
		resp_error(resp, 400, "elements of batch_input must all provide 'signature' or all provide 'hmac'");
	else if (missing && sig_found)
		resp_error(resp, 400, "some elements of batch_input are missing 'signature'");
	else if (missing && hmac_found)
		resp_error(resp, 400, "some elements of batch_input are missing 'hmac'");
	else if (missing)
		resp_error(resp, 400, "no batch_input elements have 'signature' or 'hmac'");
	else if (hmac_found)
		hmac_verify(st, req, resp, name, urlalg, items, is_batch);
	else
		signature_unsupported(st, req, resp, name, urlalg, true);
	json_decref(items);
}

/* ---- keys ---- */

static void
keys_list(tstate *st, vresp *resp)
{
	const char **names;
	size_t		i,
				n = 0;
	json_t	   *arr;

	if (st->nkeys == 0)
	{
		resp_not_found(resp);
		return;
	}
	names = xmalloc(st->nkeys * sizeof(char *));
	for (i = 0; i < st->nbuckets; i++)
	{
		tkey	   *k;

		for (k = st->buckets[i]; k; k = k->next)
			names[n++] = k->name;
	}
	qsort(names, n, sizeof(char *), cmp_str);
	arr = json_array();
	for (i = 0; i < n; i++)
		json_array_append_new(arr, json_string(names[i]));
	free(names);
	resp->data = json_object();
	json_object_set_new(resp->data, "keys", arr);
}

static void
keys_write(tstate *st, vreq *req, vresp *resp, const char *name)
{
	bool		ok = true,
				derived,
				convergent,
				exportable,
				apb;
	char		t_type[40];
	const char *type;
	int64_t		arp,
				key_size;
	ktype		kt;
	tkey	   *k;

	/* stop at the first malformed field: Vault reports one */
	type = field_str(req, "type", t_type, sizeof(t_type), &ok, resp);
	derived = ok && req_bool(req, "derived", false, &ok, resp);
	convergent = ok && req_bool(req, "convergent_encryption", false, &ok, resp);
	exportable = ok && req_bool(req, "exportable", false, &ok, resp);
	apb = ok && req_bool(req, "allow_plaintext_backup", false, &ok, resp);
	arp = ok ? req_duration(req, "auto_rotate_period", 0, &ok, resp) : 0;
	key_size = ok ? req_int(req, "key_size", 0, &ok, resp) : 0;
	if (!ok)
		return;
	if (type == NULL)
		type = "aes256-gcm96";

	if (arp != 0 && arp < 3600)
	{
		resp_error(resp, 400, "auto rotate period must be 0 to disable or at least an hour");
		return;
	}
	if (!derived && convergent)
	{
		resp_error(resp, 400, "convergent encryption requires derivation to be enabled");
		return;
	}
	if (!parse_ktype(type, &kt))
	{
		if (is_unimplemented_type(type))
			resp_error(resp, 400, "key type %s is not supported by this development server", type);
		else
			resp_error(resp, 400, "unknown key type %s", type);
		return;
	}
	if (key_size != 0)
	{
		if (kt != KT_HMAC)
		{
			resp_error(resp, 400, "key_size is not valid for algorithm %s", type);
			return;
		}
		if (key_size < HMAC_MIN_KEY_SIZE || key_size > HMAC_MAX_KEY_SIZE)
		{
			resp_error(resp, 400, "invalid key_size %" PRId64, key_size);
			return;
		}
	}

	k = key_get(st, name, resp);
	if (k != NULL)
	{
		resp->data = key_json(k);
		resp_warn(resp, "key %s already existed", name);
		return;
	}
	if (kt == KT_HMAC && (derived || convergent))
	{
		/* the lock manager's error, which Vault passes on as a 500 */
		resp_error(resp, 500, "key derivation and convergent encryption not supported for keys of type hmac");
		return;
	}
	k = key_new(st, name, kt, derived, convergent, exportable, apb, arp, (int) key_size);
	resp->dirty = true;
	resp->data = key_json(k);
}

static void
keys_read(tstate *st, vreq *req, vresp *resp, const char *name)
{
	bool		ok = true;
	char		t_ctx[40],
				msg[128];
	const char *context = field_str(req, "context", t_ctx, sizeof(t_ctx), &ok, resp);
	size_t		len;
	tkey	   *k;

	if (!ok)
		return;
	k = key_get(st, name, resp);
	if (k == NULL)
	{
		resp_not_found(resp);
		return;
	}
	if (nonempty(context) &&
		!b64_decode_go(&st->ctx, context, strlen(context), &len, msg, sizeof(msg)))
	{
		resp_error(resp, 400, "failed to base64-decode context");
		return;
	}
	resp->data = key_json(k);
}

static void
keys_delete(tstate *st, vresp *resp, const char *name)
{
	tkey	   *k = key_find(st, name);

	if (k == NULL)
	{
		resp_error(resp, 400, "error deleting policy %s: could not delete key; not found", name);
		return;
	}
	if (!k->deletion_allowed)
	{
		resp_error(resp, 400, "error deleting policy %s: deletion is not allowed for this key", name);
		return;
	}
	key_remove(st, k);
	resp->dirty = true;
}

/* pathKeysConfigWrite: validate everything, then apply */
static void
keys_config(tstate *st, vreq *req, vresp *resp, const char *name)
{
	bool		ok = true;
	bool		has_dec = req_has(req, "min_decryption_version"),
				has_enc = req_has(req, "min_encryption_version"),
				has_del = req_has(req, "deletion_allowed"),
				has_exp = req_has(req, "exportable"),
				has_apb = req_has(req, "allow_plaintext_backup"),
				has_arp = req_has(req, "auto_rotate_period");
	int64_t		dec = req_int(req, "min_decryption_version", 0, &ok, resp);
	int64_t		enc = ok ? req_int(req, "min_encryption_version", 0, &ok, resp) : 0;
	bool		del = ok && req_bool(req, "deletion_allowed", false, &ok, resp);
	bool		exp = ok && req_bool(req, "exportable", false, &ok, resp);
	bool		apb = ok && req_bool(req, "allow_plaintext_backup", false, &ok, resp);
	int64_t		arp = ok ? req_duration(req, "auto_rotate_period", 0, &ok, resp) : 0;
	tkey	   *k;
	int64_t		new_dec,
				new_enc;
	bool		changed = false,
				warn = false;

	if (!ok)
		return;
	k = key_get(st, name, resp);
	if (k == NULL)
	{
		resp_error(resp, 400, "no existing key named %s could be found", name);
		return;
	}
	new_dec = k->min_dec;
	new_enc = k->min_enc;
	if (has_dec)
	{
		if (dec < 0)
		{
			resp_error(resp, 400, "min decryption version cannot be negative");
			return;
		}
		if (dec == 0)
		{
			dec = 1;
			warn = true;
		}
		if (dec != new_dec)
		{
			if (dec > k->latest)
			{
				resp_error(resp, 400, "cannot set min decryption version of %" PRId64 ", latest key version is %d",
						   dec, k->latest);
				return;
			}
			new_dec = dec;
		}
	}
	if (has_enc)
	{
		if (enc < 0)
		{
			resp_error(resp, 400, "min encryption version cannot be negative");
			return;
		}
		if (enc != new_enc)
		{
			if (enc > k->latest)
			{
				resp_error(resp, 400, "cannot set min encryption version of %" PRId64 ", latest key version is %d",
						   enc, k->latest);
				return;
			}
			new_enc = enc;
		}
	}
	if (new_enc > 0 && new_enc < new_dec)
	{
		resp_error(resp, 400, "cannot set min encryption/decryption values; min encryption version of %" PRId64 " must be greater than or equal to min decryption version of %" PRId64,
				   new_enc, new_dec);
		return;
	}
	if (has_arp && arp != 0 && arp < 3600)
	{
		resp_error(resp, 400, "auto rotate period must be 0 to disable or at least an hour");
		return;
	}

	if (new_dec != k->min_dec || new_enc != k->min_enc)
		changed = true;
	k->min_dec = (int) new_dec;
	k->min_enc = (int) new_enc;
	if (has_del && del != k->deletion_allowed)
	{
		k->deletion_allowed = del;
		changed = true;
	}
	/* exportable and allow_plaintext_backup can be set, never unset */
	if (has_exp && exp && !k->exportable)
	{
		k->exportable = true;
		changed = true;
	}
	if (has_apb && apb && !k->allow_plaintext_backup)
	{
		k->allow_plaintext_backup = true;
		changed = true;
	}
	if (has_arp && arp != k->auto_rotate)
	{
		k->auto_rotate = arp;
		changed = true;
	}
	if (changed)
		resp->dirty = true;
	resp->data = key_json(k);
	if (warn)
		resp_warn(resp, "since Vault 0.3, transit key numbering starts at 1; forcing minimum to 1");
}

static void
keys_rotate(tstate *st, vresp *resp, const char *name)
{
	tkey	   *k = key_get(st, name, resp);

	if (k == NULL)
	{
		resp_error(resp, 400, "key not found");
		return;
	}
	key_rotate(k);
	resp->dirty = true;
	resp->data = key_json(k);
}

/* ---- export and random ---- */

static void
handle_export(tstate *st, vresp *resp, const char *type, const char *name, const char *version)
{
	tkey	   *k;
	json_t	   *keys;
	int			from,
				to,
				v;

	if (strcmp(type, "encryption-key") != 0 && strcmp(type, "signing-key") != 0 &&
		strcmp(type, "hmac-key") != 0 && strcmp(type, "public-key") != 0 &&
		strcmp(type, "certificate-chain") != 0)
	{
		resp_error(resp, 400, "invalid export type: %s", type);
		return;
	}
	k = key_get(st, name, resp);
	if (k == NULL)
	{
		resp_not_found(resp);
		return;
	}
	if (!k->exportable && strcmp(type, "public-key") != 0 &&
		strcmp(type, "certificate-chain") != 0)
	{
		resp_error(resp, 400, "private key material is not exportable");
		return;
	}
	if (strcmp(type, "encryption-key") == 0 && !is_aead(k->type))
	{
		resp_error(resp, 400, "encryption not supported for the key");
		return;
	}
	if (strcmp(type, "signing-key") == 0)
	{
		resp_error(resp, 400, "signing not supported for the key");
		return;
	}
	if (strcmp(type, "certificate-chain") == 0)
	{
		resp_error(resp, 400, "certificate chain not supported for keys that do not support signing");
		return;
	}
	if (strcmp(type, "public-key") == 0)
	{
		resp_error(resp, 500, "unknown key type %s for export type %s", ktype_names[k->type], type);
		return;
	}

	from = k->min_dec;
	to = k->latest;
	if (version != NULL)
	{
		long long	n;

		if (strcmp(version, "latest") == 0)
			n = k->latest;
		else
		{
			const char *s = version[0] == 'v' ? version + 1 : version;

			if (go_atoi(s, strlen(s), &n) != 0)
			{
				resp_error(resp, 400, "invalid key version");
				return;
			}
		}
		if (n < k->min_dec)
		{
			resp_error(resp, 400, "version for export is below minimum decryption version");
			return;
		}
		if (n > k->latest)
		{
			resp_error(resp, 400, "version does not exist or cannot be found");
			return;
		}
		from = to = (int) n;
	}
	keys = json_object();
	for (v = from; v <= to; v++)
	{
		const kversion *kv = &k->v[v - 1];
		const unsigned char *src = kv->key;
		size_t		len = kv->keylen;
		char		num[16];
		char	   *b64;

		if (strcmp(type, "hmac-key") == 0 && k->type != KT_HMAC)
		{
			src = kv->hmac_key;
			len = HMAC_KEY_LEN;
		}
		b64 = xmalloc(vc_b64_encoded_len(len) + 1);
		vc_b64_encode(src, len, b64);
		snprintf(num, sizeof(num), "%d", v);
		json_object_set_new(keys, num, json_string(b64));
		OPENSSL_cleanse(b64, vc_b64_encoded_len(len));
		free(b64);
	}
	resp->data = json_object();
	json_object_set_new(resp->data, "name", json_string(k->name));
	json_object_set_new(resp->data, "type", json_string(ktype_names[k->type]));
	json_object_set_new(resp->data, "keys", keys);
}

/* hash(/:algorithm): a plain digest of the input */
static void
handle_hash(tstate *st, vreq *req, vresp *resp, const char *urlalg)
{
	bool		ok = true;
	char		t_in[40],
				t_fmt[40],
				t_alg[40],
				b64err[128];
	const char *input = field_str(req, "input", t_in, sizeof(t_in), &ok, resp);
	const char *format = field_str(req, "format", t_fmt, sizeof(t_fmt), &ok, resp);
	const char *alg = field_str(req, "algorithm", t_alg, sizeof(t_alg), &ok, resp);
	const char *digest;
	size_t		inlen;
	unsigned char sum[EVP_MAX_MD_SIZE];
	size_t		sumlen;
	char		txt[2 * EVP_MAX_MD_SIZE + 4];

	if (!ok)
		return;
	if (nonempty(urlalg))
		alg = urlalg;
	else if (alg == NULL)
		alg = "sha2-256";
	if (format == NULL)
		format = "hex";
	if (!b64_decode_go(&st->in, input ? input : "", input ? strlen(input) : 0,
					   &inlen, b64err, sizeof(b64err)))
	{
		resp_error(resp, 400, "unable to decode input as base64: %s", b64err);
		return;
	}
	if (strcmp(format, "hex") != 0 && strcmp(format, "base64") != 0)
	{
		resp_error(resp, 400, "unsupported encoding format %s; must be \"hex\" or \"base64\"", format);
		return;
	}
	digest = strcmp(alg, "sha1") == 0 ? NULL : hash_digest(alg);
	if (digest == NULL)
	{
		resp_error(resp, 400, "unsupported algorithm %s", alg);
		return;
	}
	if (EVP_Q_digest(NULL, digest, NULL, st->in.p, inlen, sum, &sumlen) != 1)
	{
		resp_internal(resp, "hash computation failed");
		return;
	}
	if (inlen > 0)
		OPENSSL_cleanse(st->in.p, inlen);
	if (strcmp(format, "hex") == 0)
		vc_hex_encode(sum, sumlen, txt);
	else
		vc_b64_encode(sum, sumlen, txt);
	resp->data = json_object();
	json_object_set_new(resp->data, "sum", json_string(txt));
}

/* Go's %q for the simple strings a URL segment carries */
static void
go_quote(const char *s, char *out, size_t outlen)
{
	size_t		o = 0;

	if (outlen < 3)
		return;
	out[o++] = '"';
	for (; *s && o + 3 < outlen; s++)
	{
		if (*s == '"' || *s == '\\')
			out[o++] = '\\';
		out[o++] = *s;
	}
	out[o++] = '"';
	out[o] = '\0';
}

/* random(/:source)(/:bytes), as sdk/helper/random.HandleRandomAPI */
static void
handle_random(tstate *st, vreq *req, vresp *resp, const char *source_seg, const char *bytes_seg)
{
	bool		ok = true;
	char		t_fmt[40];
	const char *format;
	const char *source = "platform";
	int64_t		nbytes = 0;
	unsigned char *rnd;
	char	   *txt;

	format = field_str(req, "format", t_fmt, sizeof(t_fmt), &ok, resp);
	if (ok)
		nbytes = req_int(req, "bytes", 32, &ok, resp);
	if (!ok)
		return;
	if (format == NULL)
		format = "base64";

	if (source_seg != NULL)
	{
		bool		known = strcmp(source_seg, "platform") == 0 ||
			strcmp(source_seg, "seal") == 0 || strcmp(source_seg, "all") == 0;
		const char *count = NULL;
		char		q[96];

		if (bytes_seg == NULL && known)
			source = source_seg;
		else if (bytes_seg == NULL)
			count = source_seg;
		else
		{
			source = source_seg;
			count = bytes_seg;
		}
		if (count != NULL)
		{
			long long	n;
			int			r = go_atoi(count, strlen(count), &n);

			if (r != 0)
			{
				go_quote(count, q, sizeof(q));
				resp_error(resp, 400, "error parsing url-set byte count: strconv.Atoi: parsing %s: %s",
						   q, r == 2 ? "value out of range" : "invalid syntax");
				return;
			}
			nbytes = n;
		}
	}
	if (nbytes < 1)
	{
		resp_error(resp, 400, "\"bytes\" cannot be less than 1");
		return;
	}
	if (nbytes > RANDOM_MAX_BYTES)
	{
		resp_error(resp, 400, "\"bytes\" should be less than %d", RANDOM_MAX_BYTES);
		return;
	}
	if (strcmp(format, "hex") != 0 && strcmp(format, "base64") != 0)
	{
		char		q[96];

		go_quote(format, q, sizeof(q));
		resp_error(resp, 400, "unsupported encoding format %s; must be \"hex\" or \"base64\"", q);
		return;
	}
	if (strcmp(source, "platform") != 0 && strcmp(source, "seal") != 0 &&
		strcmp(source, "all") != 0)
	{
		char		q[96];

		go_quote(source, q, sizeof(q));
		resp_error(resp, 400, "unsupported entropy source %s; must be \"platform\" or \"seal\", or \"all\"", q);
		return;
	}
	rnd = sbuf_reserve(&st->tmp, (size_t) nbytes);
	rand_bytes(rnd, (size_t) nbytes);
	txt = (char *) sbuf_reserve(&st->out, 2 * (size_t) nbytes + 4);
	if (strcmp(format, "hex") == 0)
		vc_hex_encode(rnd, (size_t) nbytes, txt);
	else
		vc_b64_encode(rnd, (size_t) nbytes, txt);
	resp->data = json_object();
	json_object_set_new(resp->data, "random_bytes", json_string(txt));
	/* this server has no seal to augment the platform's entropy */
	if (strcmp(source, "seal") == 0)
		resp_warn(resp, "no seal/entropy augmentation available, using platform entropy source");
}

/* ---- routing ---- */

/* Split rel after prefix into a first segment (malloc'd) and the rest. */
static char *
first_segment(const char *s, const char **rest)
{
	const char *slash = strchr(s, '/');
	char	   *seg;

	if (slash == NULL)
	{
		*rest = NULL;
		seg = strdup(s);
	}
	else
	{
		*rest = slash + 1;
		seg = strndup(s, (size_t) (slash - s));
	}
	if (seg == NULL)
		abort();
	return seg;
}

static bool
is_write(vop op)
{
	return op == OP_UPDATE || op == OP_CREATE;
}

/* "<verb>/<name>" or "<verb>/<name>/<algorithm>" (hmac, verify, sign) */
static void
route_named_alg(tstate *st, vreq *req, vresp *resp, const char *after, char verb)
{
	const char *alg;
	char	   *name = first_segment(after, &alg);

	if (!valid_name(name) || (alg != NULL && *alg == '\0'))
		resp_unsupported_path(resp, req);
	else if (!is_write(req->op))
		resp_unsupported_op(resp, req);
	else if (verb == 'h')
		handle_hmac(st, req, resp, name, alg);
	else if (verb == 'v')
		handle_verify(st, req, resp, name, alg);
	else
		signature_unsupported(st, req, resp, name, alg, false);
	free(name);
}

static void
transit_handle(vmount *m, vreq *req, vresp *resp)
{
	tstate	   *st = m->state;
	const char *rel = req->rel ? req->rel : "";
	const char *after;

	if (strcmp(rel, "keys") == 0 || strcmp(rel, "keys/") == 0)
	{
		if (req->op == OP_LIST)
			keys_list(st, resp);
		else
			resp_unsupported_op(resp, req);
	}
	else if ((after = path_after(rel, "keys/")) != NULL)
	{
		const char *sub;
		char	   *name = first_segment(after, &sub);

		if (!valid_name(name))
			resp_unsupported_path(resp, req);
		else if (sub == NULL)
		{
			if (req->op == OP_READ)
				keys_read(st, req, resp, name);
			else if (is_write(req->op))
				keys_write(st, req, resp, name);
			else if (req->op == OP_DELETE)
				keys_delete(st, resp, name);
			else
				resp_unsupported_op(resp, req);
		}
		else if (strcmp(sub, "config") == 0 || strcmp(sub, "rotate") == 0)
		{
			if (!is_write(req->op))
				resp_unsupported_op(resp, req);
			else if (sub[0] == 'c')
				keys_config(st, req, resp, name);
			else
				keys_rotate(st, resp, name);
		}
		else
			resp_unsupported_path(resp, req);
		free(name);
	}
	else if (strcmp(rel, "config/keys") == 0)
	{
		if (req->op == OP_READ)
		{
			resp->data = json_object();
			json_object_set_new(resp->data, "disable_upsert", json_boolean(st->disable_upsert));
		}
		else if (is_write(req->op))
		{
			bool		ok = true;
			bool		v = req_bool(req, "disable_upsert", false, &ok, resp);

			if (!ok)
				return;
			if (v != st->disable_upsert)
			{
				st->disable_upsert = v;
				resp->dirty = true;
			}
			resp->data = json_object();
			json_object_set_new(resp->data, "disable_upsert", json_boolean(v));
		}
		else
			resp_unsupported_op(resp, req);
	}
	else if ((after = path_after(rel, "encrypt/")) != NULL ||
			 (after = path_after(rel, "decrypt/")) != NULL ||
			 (after = path_after(rel, "rewrap/")) != NULL)
	{
		if (!valid_name(after))
			resp_unsupported_path(resp, req);
		else if (!is_write(req->op))
			resp_unsupported_op(resp, req);
		else if (rel[0] == 'e')
			handle_encrypt(st, req, resp, after);
		else if (rel[0] == 'd')
			handle_decrypt(st, req, resp, after);
		else
			handle_rewrap(st, req, resp, after);
	}
	else if ((after = path_after(rel, "datakey/")) != NULL)
	{
		const char *name;
		char	   *kind = first_segment(after, &name);

		if (!valid_name(kind) || name == NULL || !valid_name(name))
			resp_unsupported_path(resp, req);
		else if (!is_write(req->op))
			resp_unsupported_op(resp, req);
		else
			handle_datakey(st, req, resp, kind, name);
		free(kind);
	}
	else if ((after = path_after(rel, "hmac/")) != NULL)
		route_named_alg(st, req, resp, after, 'h');
	else if ((after = path_after(rel, "verify/")) != NULL)
		route_named_alg(st, req, resp, after, 'v');
	else if ((after = path_after(rel, "sign/")) != NULL)
		route_named_alg(st, req, resp, after, 's');
	else if ((after = path_after(rel, "export/")) != NULL)
	{
		const char *rest,
				   *version = NULL;
		char	   *type = first_segment(after, &rest);
		char	   *name = rest ? first_segment(rest, &version) : NULL;

		if (!valid_name(type) || name == NULL || !valid_name(name) ||
			(version != NULL && *version == '\0'))
			resp_unsupported_path(resp, req);
		else if (req->op != OP_READ)
			resp_unsupported_op(resp, req);
		else
			handle_export(st, resp, type, name, version);
		free(type);
		free(name);
	}
	else if (strcmp(rel, "hash") == 0 || (after = path_after(rel, "hash/")) != NULL)
	{
		if (!is_write(req->op))
			resp_unsupported_op(resp, req);
		else
			handle_hash(st, req, resp, strcmp(rel, "hash") == 0 ? NULL : after);
	}
	else if (strcmp(rel, "random") == 0 || (after = path_after(rel, "random/")) != NULL)
	{
		char	   *source = NULL;
		const char *count = NULL;

		if (strcmp(rel, "random") != 0)
		{
			source = first_segment(after, &count);

			/*
			 * Vault's pattern takes a first segment shaped like a name as
			 * the source; otherwise the whole remainder is a byte count it
			 * then ignores in favour of the "bytes" field.
			 */
			if (!valid_name(source) || (count != NULL && *count == '\0'))
			{
				free(source);
				source = NULL;
				count = NULL;
			}
		}
		if (!is_write(req->op))
			resp_unsupported_op(resp, req);
		else
			handle_random(st, req, resp, source, count);
		free(source);
	}
	else
		resp_unsupported_path(resp, req);
}

/*
 * The existence check: only encrypt has one in Vault, so that encrypting
 * with a missing key (which creates it) needs the create capability.
 */
static int
transit_exists(vmount *m, const vreq *req)
{
	tstate	   *st = m->state;
	const char *name = path_after(req->rel ? req->rel : "", "encrypt/");

	if (name == NULL || !valid_name(name))
		return -1;
	return key_find(st, name) ? 1 : 0;
}

/* ---- state ---- */

static void
keys_clear(tstate *st)
{
	size_t		i;

	for (i = 0; i < st->nbuckets; i++)
	{
		tkey	   *k = st->buckets[i];

		while (k)
		{
			tkey	   *next = k->next;

			key_free(k);
			k = next;
		}
		st->buckets[i] = NULL;
	}
	st->nkeys = 0;
}

static void *
transit_new_state(vmount *m)
{
	tstate	   *st = calloc(1, sizeof(tstate));
	EVP_KDF    *kdf;
	EVP_MAC    *mac;
	OSSL_PARAM	params[2];

	if (st == NULL)
		abort();
	st->nbuckets = 64;
	st->buckets = calloc(st->nbuckets, sizeof(tkey *));
	st->scratch = EVP_CIPHER_CTX_new();
	kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	st->hkdf = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	EVP_KDF_free(kdf);
	mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	st->mac = mac ? EVP_MAC_CTX_new(mac) : NULL;
	EVP_MAC_free(mac);
	if (st->buckets == NULL || st->scratch == NULL || st->hkdf == NULL || st->mac == NULL)
	{
		fprintf(stderr, "vault-dev: transit: OpenSSL lacks AES-GCM, HKDF or HMAC\n");
		abort();
	}
	/* the digest never changes: set it once, pass key and info per call */
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *) "SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	if (EVP_KDF_CTX_set_params(st->hkdf, params) != 1)
		abort();
	return st;
}

static void
transit_free_state(vmount *m)
{
	tstate	   *st = m->state;

	if (st == NULL)
		return;
	keys_clear(st);
	free(st->buckets);
	EVP_CIPHER_CTX_free(st->scratch);
	EVP_KDF_CTX_free(st->hkdf);
	EVP_MAC_CTX_free(st->mac);
	sbuf_free(&st->in);
	sbuf_free(&st->ctx);
	sbuf_free(&st->aad);
	sbuf_free(&st->raw);
	sbuf_free(&st->plain);
	sbuf_free(&st->out);
	sbuf_free(&st->tmp);
	free(st);
	m->state = NULL;
}

static json_t *
b64_json(const unsigned char *p, size_t n)
{
	char	   *s = xmalloc(vc_b64_encoded_len(n) + 1);
	json_t	   *j;

	vc_b64_encode(p, n, s);
	j = json_string(s);
	OPENSSL_cleanse(s, vc_b64_encoded_len(n));
	free(s);
	return j;
}

/*
 * The mount's keys as JSON for the state file (the only place key
 * material is ever written):
 * {"disable_upsert":b, "keys":{name:{settings..., "versions":[{...}]}}}
 */
static json_t *
transit_save(vmount *m)
{
	tstate	   *st = m->state;
	json_t	   *root = json_object();
	json_t	   *keys = json_object();
	size_t		b;

	json_object_set_new(root, "disable_upsert", json_boolean(st->disable_upsert));
	for (b = 0; b < st->nbuckets; b++)
	{
		tkey	   *k;

		for (k = st->buckets[b]; k; k = k->next)
		{
			json_t	   *o = json_object();
			json_t	   *vers = json_array();
			int			i;

			json_object_set_new(o, "type", json_string(ktype_names[k->type]));
			json_object_set_new(o, "derived", json_boolean(k->derived));
			json_object_set_new(o, "convergent_encryption", json_boolean(k->convergent));
			json_object_set_new(o, "exportable", json_boolean(k->exportable));
			json_object_set_new(o, "allow_plaintext_backup", json_boolean(k->allow_plaintext_backup));
			json_object_set_new(o, "deletion_allowed", json_boolean(k->deletion_allowed));
			json_object_set_new(o, "key_size", json_integer(k->key_size));
			json_object_set_new(o, "min_decryption_version", json_integer(k->min_dec));
			json_object_set_new(o, "min_encryption_version", json_integer(k->min_enc));
			json_object_set_new(o, "auto_rotate_period", json_integer(k->auto_rotate));
			for (i = 0; i < k->latest; i++)
			{
				const kversion *kv = &k->v[i];
				json_t	   *vo = json_object();

				json_object_set_new(vo, "version", json_integer(i + 1));
				json_object_set_new(vo, "key", b64_json(kv->key, kv->keylen));
				if (k->type != KT_HMAC)
					json_object_set_new(vo, "hmac_key", b64_json(kv->hmac_key, HMAC_KEY_LEN));
				json_object_set_new(vo, "creation_time", json_integer(kv->created));
				json_object_set_new(vo, "convergent_version", json_integer(kv->convergent_version));
				json_array_append_new(vers, vo);
			}
			json_object_set_new(o, "versions", vers);
			json_object_set_new(keys, k->name, o);
		}
	}
	json_object_set_new(root, "keys", keys);
	return root;
}

/* Decode a saved base64 key of exactly want bytes (0: any length) */
static unsigned char *
load_b64(json_t *v, size_t want, size_t *len)
{
	const char *s = json_string_value(v);
	unsigned char *p;
	long		n;

	if (s == NULL)
		return NULL;
	p = xmalloc(vc_b64_decoded_maxlen(strlen(s)) + 1);
	n = vc_b64_decode(s, strlen(s), p);
	if (n <= 0 || (want && (size_t) n != want))
	{
		free(p);
		return NULL;
	}
	*len = (size_t) n;
	return p;
}

/* One saved key ring; NULL when the record is unusable. */
static tkey *
load_key(const char *name, json_t *o)
{
	tkey	   *k;
	ktype		kt;
	json_t	   *vers = json_object_get(o, "versions");
	json_t	   *vo;
	size_t		i;

	if (!valid_name(name) || !json_is_string(json_object_get(o, "type")) ||
		!parse_ktype(json_string_value(json_object_get(o, "type")), &kt) ||
		!json_is_array(vers) || json_array_size(vers) == 0)
		return NULL;
	k = calloc(1, sizeof(tkey));
	if (k == NULL || (k->name = strdup(name)) == NULL)
		abort();
	k->type = kt;
	k->derived = json_is_true(json_object_get(o, "derived"));
	k->convergent = k->derived && json_is_true(json_object_get(o, "convergent_encryption"));
	k->exportable = json_is_true(json_object_get(o, "exportable"));
	k->allow_plaintext_backup = json_is_true(json_object_get(o, "allow_plaintext_backup"));
	k->deletion_allowed = json_is_true(json_object_get(o, "deletion_allowed"));
	k->key_size = (int) json_integer_value(json_object_get(o, "key_size"));
	k->auto_rotate = json_integer_value(json_object_get(o, "auto_rotate_period"));
	if (kt == KT_HMAC && (k->key_size < HMAC_MIN_KEY_SIZE || k->key_size > HMAC_MAX_KEY_SIZE))
		goto bad;
	json_array_foreach(vers, i, vo)
	{
		kversion   *kv;
		size_t		len;
		unsigned char *key,
				   *hk = NULL;

		if (json_integer_value(json_object_get(vo, "version")) != (json_int_t) (i + 1))
			goto bad;
		key = load_b64(json_object_get(vo, "key"),
					   kt == KT_HMAC ? (size_t) k->key_size : enc_key_len(kt), &len);
		if (key == NULL)
			goto bad;
		if (kt != KT_HMAC &&
			(hk = load_b64(json_object_get(vo, "hmac_key"), HMAC_KEY_LEN, &len)) == NULL)
		{
			OPENSSL_cleanse(key, enc_key_len(kt));
			free(key);
			goto bad;
		}
		kv = version_add(k);
		kv->key = key;
		kv->keylen = kt == KT_HMAC ? (size_t) k->key_size : enc_key_len(kt);
		if (hk)
		{
			memcpy(kv->hmac_key, hk, HMAC_KEY_LEN);
			OPENSSL_cleanse(hk, HMAC_KEY_LEN);
			free(hk);
		}
		kv->created = json_integer_value(json_object_get(vo, "creation_time"));
		kv->convergent_version = k->convergent ? CONVERGENT_VERSION : 0;
	}
	k->min_dec = (int) json_integer_value(json_object_get(o, "min_decryption_version"));
	k->min_enc = (int) json_integer_value(json_object_get(o, "min_encryption_version"));
	if (k->min_dec < 1 || k->min_dec > k->latest)
		k->min_dec = 1;
	if (k->min_enc < 0 || k->min_enc > k->latest)
		k->min_enc = 0;
	return k;

bad:
	key_free(k);
	return NULL;
}

static void
transit_load(vmount *m, json_t *saved)
{
	tstate	   *st = m->state;
	const char *name;
	json_t	   *o;

	if (!json_is_object(saved))
		return;
	keys_clear(st);
	st->disable_upsert = json_is_true(json_object_get(saved, "disable_upsert"));
	json_object_foreach(json_object_get(saved, "keys"), name, o)
	{
		tkey	   *k = load_key(name, o);

		if (k == NULL)
		{
			fprintf(stderr, "vault-dev: state file: transit key \"%s\" in %s is unusable, skipped\n",
					name, m->path);
			continue;
		}
		key_insert(st, k);
	}
}

const vengine engine_transit = {
	.type = "transit",
	.is_auth = false,
	.new_state = transit_new_state,
	.free_state = transit_free_state,
	.exists = transit_exists,
	.handle = transit_handle,
	.save = transit_save,
	.load = transit_load,
};
