/*
 * token.c
 *    The token store of the development server, after Vault's
 *    vault/token_store.go: service tokens ("hvs." + 24 base62) and their
 *    accessors, the parent/child tree (revoking a token revokes its
 *    children and the leases they created), TTLs and renewal, use counts,
 *    and the auth/token/ endpoints (engine_token).  Token roles are not
 *    implemented: create/:role_name answers Vault's "unknown role".
 *
 *    A revoked token is unlinked from every index at once, but its memory
 *    is freed only by the timer's sweep (tokens_expire_due): the request
 *    that revoked it (its last use, revoke-self) still points at it until
 *    its audit line is written, and the sweep runs under the same lock,
 *    between requests.
 */
#include "devserver.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOKEN_RAND_LEN		24	/* Vault's TokenLength */
#define SERVICE_PREFIX		"hvs."
#define ROOT_TOKEN_PATH		"auth/token/root"

/*
 * Each vtoken is the head of a private entry; token_insert() and
 * tokens_load() are the only places that allocate one.
 */
typedef struct tentry
{
	vtoken		t;				/* must stay first */
	struct tentry *prev;		/* live list; t.next links forward */
	struct tentry *parent_ent;	/* NULL: orphan */
	struct tentry *child;		/* first child */
	struct tentry *sib_prev;
	struct tentry *sib_next;
	bool		revoked;
} tentry;

#define NEXT(e)		((tentry *) (e)->t.next)

static tentry *live;			/* every valid token */
static tentry *graveyard;		/* revoked, freed by the next sweep */
static bool unsaved;			/* changed outside a handler's resp->dirty */

/* ---- hash indexes by id and by accessor (open addressing) ---- */

typedef struct tindex
{
	tentry	  **slot;
	size_t		cap;			/* a power of two, or 0 */
	size_t		used;			/* entries plus tombstones */
	size_t		count;			/* entries */
	bool		by_accessor;
} tindex;

static tindex id_index = {NULL, 0, 0, 0, false};
static tindex accessor_index = {NULL, 0, 0, 0, true};
static tentry tombstone;

static uint64_t
hash_key(const char *s)
{
	uint64_t	h = 1469598103934665603ULL;

	while (*s)
	{
		h ^= (unsigned char) *s++;
		h *= 1099511628211ULL;
	}
	return h;
}

static const char *
ix_key(const tindex *ix, const tentry *e)
{
	return ix->by_accessor ? e->t.accessor : e->t.id;
}

static tentry *
ix_get(const tindex *ix, const char *key)
{
	size_t		mask,
				i;

	if (ix->cap == 0)
		return NULL;
	mask = ix->cap - 1;
	for (i = hash_key(key) & mask; ix->slot[i]; i = (i + 1) & mask)
		if (ix->slot[i] != &tombstone && vc_ct_streq(ix_key(ix, ix->slot[i]), key))
			return ix->slot[i];
	return NULL;
}

/* Store e in the first free slot of its probe sequence (key not present). */
static void
ix_place(tindex *ix, tentry *e)
{
	size_t		mask = ix->cap - 1,
				i = hash_key(ix_key(ix, e)) & mask;

	while (ix->slot[i] && ix->slot[i] != &tombstone)
		i = (i + 1) & mask;
	if (ix->slot[i] == NULL)
		ix->used++;
	ix->slot[i] = e;
	ix->count++;
}

static void
ix_add(tindex *ix, tentry *e)
{
	if ((ix->used + 1) * 2 > ix->cap)
	{
		tentry	  **old = ix->slot;
		size_t		oldcap = ix->cap,
					cap = 64,
					i;

		while (cap < (ix->count + 1) * 4)
			cap *= 2;
		ix->slot = calloc(cap, sizeof(tentry *));
		if (ix->slot == NULL)
			abort();
		ix->cap = cap;
		ix->used = ix->count = 0;
		for (i = 0; i < oldcap; i++)
			if (old[i] && old[i] != &tombstone)
				ix_place(ix, old[i]);
		free(old);
	}
	ix_place(ix, e);
}

static void
ix_del(tindex *ix, tentry *e)
{
	size_t		mask,
				i;

	if (ix->cap == 0)
		return;
	mask = ix->cap - 1;
	for (i = hash_key(ix_key(ix, e)) & mask; ix->slot[i]; i = (i + 1) & mask)
		if (ix->slot[i] == e)
		{
			ix->slot[i] = &tombstone;
			ix->count--;
			return;
		}
}

static void
ix_clear(tindex *ix)
{
	free(ix->slot);
	ix->slot = NULL;
	ix->cap = ix->used = ix->count = 0;
}

/* ---- the live list and the tree ---- */

static void
live_link(tentry *e)
{
	e->prev = NULL;
	e->t.next = live ? &live->t : NULL;
	if (live)
		live->prev = e;
	live = e;
}

static void
live_unlink(tentry *e)
{
	if (e->prev)
		e->prev->t.next = e->t.next;
	else
		live = NEXT(e);
	if (e->t.next)
		NEXT(e)->prev = e->prev;
	e->prev = NULL;
	e->t.next = NULL;
}

static void
child_link(tentry *parent, tentry *e)
{
	e->parent_ent = parent;
	e->sib_prev = NULL;
	e->sib_next = parent->child;
	if (parent->child)
		parent->child->sib_prev = e;
	parent->child = e;
}

static void
child_unlink(tentry *e)
{
	if (e->parent_ent == NULL)
		return;
	if (e->sib_prev)
		e->sib_prev->sib_next = e->sib_next;
	else
		e->parent_ent->child = e->sib_next;
	if (e->sib_next)
		e->sib_next->sib_prev = e->sib_prev;
	e->parent_ent = e->sib_prev = e->sib_next = NULL;
}

static void
entry_free(tentry *e)
{
	json_decref(e->t.policies);
	json_decref(e->t.meta);
	explicit_bzero(e->t.id, sizeof(e->t.id));
	free(e);
}

/* Revoke one token: out of every index, its leases revoked. */
static void
revoke_one(tentry *e)
{
	child_unlink(e);
	live_unlink(e);
	ix_del(&id_index, e);
	ix_del(&accessor_index, e);
	e->revoked = true;
	e->t.next = graveyard ? &graveyard->t : NULL;
	graveyard = e;
	unsaved = true;
	lease_revoke_by_token(e->t.id);
}

/* Children first, as Vault's depth-first revokeTreeInternal. */
static void
revoke_tree(tentry *e)
{
	while (e->child)
		revoke_tree(e->child);
	revoke_one(e);
}

/* revoke-orphan: the children stay, as orphans. */
static void
revoke_orphan(tentry *e)
{
	while (e->child)
	{
		tentry	   *c = e->child;

		child_unlink(c);
		c->t.parent[0] = '\0';
		c->t.orphan = true;
	}
	revoke_one(e);
}

/* ---- policies ---- */

static int
cmp_cstr(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

static bool
has_policy(const json_t *arr, const char *name)
{
	size_t		i;
	json_t	   *v;

	json_array_foreach(arr, i, v)
		if (json_is_string(v) && strcmp(json_string_value(v), name) == 0)
		return true;
	return false;
}

/*
 * policyutil.SanitizePolicies: trimmed, lower-cased, without empties and
 * duplicates, sorted; "root" excludes every other policy; "default" added
 * when asked for.  Returns a new array.
 */
static json_t *
sanitize_policies(const json_t *in, bool add_default)
{
	size_t		n = json_is_array(in) ? json_array_size(in) : 0;
	char	  **v = calloc(n + 1, sizeof(char *));
	size_t		k = 0,
				i;
	bool		root = false,
				have_default = false;
	json_t	   *out = json_array();

	if (v == NULL)
		abort();
	for (i = 0; i < n; i++)
	{
		const char *s = json_string_value(json_array_get(in, i));
		size_t		len;
		char	   *c,
				   *p;

		if (s == NULL)
			continue;
		while (isspace((unsigned char) *s))
			s++;
		c = strdup(s);
		len = strlen(c);
		while (len > 0 && isspace((unsigned char) c[len - 1]))
			c[--len] = '\0';
		for (p = c; *p; p++)
			*p = (char) tolower((unsigned char) *p);
		if (len == 0)
		{
			free(c);
			continue;
		}
		if (strcmp(c, "root") == 0)
			root = true;
		if (strcmp(c, "default") == 0)
			have_default = true;
		v[k++] = c;
	}
	if (root)
		json_array_append_new(out, json_string("root"));
	else
	{
		if (add_default && !have_default)
			v[k++] = strdup("default");
		qsort(v, k, sizeof(char *), cmp_cstr);
		for (i = 0; i < k; i++)
			if (i == 0 || strcmp(v[i], v[i - 1]) != 0)
				json_array_append_new(out, json_string(v[i]));
	}
	for (i = 0; i < k; i++)
		free(v[i]);
	free(v);
	return out;
}

static void
remove_policy(json_t *arr, const char *name)
{
	size_t		i;

	for (i = 0; i < json_array_size(arr); i++)
		if (strcmp(json_string_value(json_array_get(arr, i)), name) == 0)
			json_array_remove(arr, i--);
}

static bool
policies_subset(const json_t *sub, const json_t *super)
{
	size_t		i;
	json_t	   *v;

	json_array_foreach(sub, i, v)
		if (!has_policy(super, json_string_value(v)))
		return false;
	return true;
}

/* ---- creation ---- */

/* The mount whose tuned TTLs govern a token: the one that issued it. */
static const vmount *
token_mount(const vtoken *t)
{
	return mount_find(t->path[0] ? t->path : "auth/token/");
}

/*
 * The TTL of a new token: root tokens without a TTL, period or explicit
 * max never expire; 0 means so.
 */
static int64_t
initial_ttl(const vmount *m, int64_t ttl, int64_t period, int64_t explicit_max,
			bool root, int64_t now, vresp *resp)
{
	if (period > 0 || ttl > 0 || !root)
		ttl = calculate_ttl(m, 0, ttl, period, 0, explicit_max, now, resp);
	if (ttl <= 0)
		ttl = 0;
	if (ttl == 0 && explicit_max > 0)
		ttl = explicit_max;
	return ttl;
}

/* Insert a token whose policies (stolen) and TTL are final. */
static tentry *
token_insert(const char *id, json_t *policies, const json_t *meta,
			 const char *display_name, const char *path, tentry *parent,
			 int64_t now, int64_t ttl, int64_t explicit_max, int64_t period,
			 int num_uses, bool renewable)
{
	tentry	   *e = calloc(1, sizeof(*e));
	vtoken	   *t;

	if (e == NULL)
		abort();
	t = &e->t;
	if (id)
		snprintf(t->id, sizeof(t->id), "%s", id);
	else
		do
		{
			memcpy(t->id, SERVICE_PREFIX, strlen(SERVICE_PREFIX));
			rand_base62(t->id + strlen(SERVICE_PREFIX), TOKEN_RAND_LEN);
		} while (ix_get(&id_index, t->id));
	do
		rand_base62(t->accessor, TOKEN_RAND_LEN);
	while (ix_get(&accessor_index, t->accessor));

	t->policies = policies;
	t->meta = json_is_object(meta) ? json_deep_copy(meta) : NULL;
	snprintf(t->display_name, sizeof(t->display_name), "%s",
			 display_name ? display_name : "token");
	snprintf(t->path, sizeof(t->path), "%s", path ? path : "auth/token/create");
	snprintf(t->type, sizeof(t->type), "service");
	t->creation_time = now;
	t->issue_time = now;
	t->creation_ttl = ttl;
	t->expire_time = ttl > 0 ? now + ttl : 0;
	t->explicit_max_ttl = explicit_max;
	t->period = period;
	t->num_uses = num_uses;
	/* non-expiring tokens are not advertised as renewable */
	t->renewable = ttl > 0 && renewable;
	if (parent)
	{
		snprintf(t->parent, sizeof(t->parent), "%s", parent->t.id);
		snprintf(t->entity_id, sizeof(t->entity_id), "%s", parent->t.entity_id);
		child_link(parent, e);
	}
	t->orphan = parent == NULL;

	live_link(e);
	ix_add(&id_index, e);
	ix_add(&accessor_index, e);
	unsaved = true;
	return e;
}

vtoken *
token_create(const char *id, json_t *policies, json_t *meta,
			 const char *display_name, const char *path,
			 const char *parent, int64_t ttl, int64_t explicit_max_ttl,
			 int64_t period, int num_uses, bool renewable, bool no_default_policy)
{
	tentry	   *p = NULL;
	vtoken	   *existing;
	json_t	   *pols;
	int64_t		now = now_unix();

	if (id && strlen(id) >= sizeof(((vtoken *) NULL)->id))
		return NULL;
	/* a restart re-creates the root token the state file already holds */
	if (id && (existing = token_lookup(id)) != NULL)
		return existing;
	if (parent && *parent)
	{
		p = (tentry *) token_lookup(parent);
		if (p == NULL)
			return NULL;
	}
	pols = sanitize_policies(policies, !no_default_policy);
	if (no_default_policy)
		remove_policy(pols, "default");
	ttl = initial_ttl(mount_find("auth/token/"), ttl, period, explicit_max_ttl,
					  has_policy(pols, "root"), now, NULL);
	return &token_insert(id, pols, meta, display_name, path, p, now, ttl,
						 explicit_max_ttl, period, num_uses, renewable)->t;
}

/* ---- lookups ---- */

static bool
token_expired(const vtoken *t, int64_t now)
{
	return t->expire_time != 0 && now >= t->expire_time;
}

vtoken *
token_lookup(const char *id)
{
	tentry	   *e;

	if (id == NULL || *id == '\0')
		return NULL;
	e = ix_get(&id_index, id);
	if (e == NULL)
		return NULL;
	if (token_expired(&e->t, now_unix()))
	{
		revoke_tree(e);
		return NULL;
	}
	return &e->t;
}

vtoken *
token_lookup_accessor(const char *accessor)
{
	tentry	   *e;

	if (accessor == NULL || *accessor == '\0')
		return NULL;
	e = ix_get(&accessor_index, accessor);
	if (e == NULL)
		return NULL;
	if (token_expired(&e->t, now_unix()))
	{
		revoke_tree(e);
		return NULL;
	}
	return &e->t;
}

void
token_revoke(vtoken *t)
{
	if (t != NULL && !((tentry *) t)->revoked)
		revoke_tree((tentry *) t);
}

bool
token_use(vtoken *t)
{
	tentry	   *e = (tentry *) t;

	if (t == NULL || e->revoked)
		return false;
	if (t->num_uses == 0)
		return true;
	unsaved = true;
	if (t->num_uses > 1)
	{
		t->num_uses--;
		return true;
	}
	/* the last use: this request goes on, the token is gone after it */
	t->num_uses = -1;
	revoke_tree(e);
	return true;
}

int64_t
token_ttl_left(const vtoken *t)
{
	int64_t		left;

	if (t->expire_time == 0)
		return 0;
	left = t->expire_time - now_unix();
	return left > 0 ? left : 0;
}

bool
token_is_root(const vtoken *t)
{
	return t != NULL && has_policy(t->policies, "root");
}

json_t *
token_auth_json(const vtoken *t)
{
	return json_pack("{s:s, s:s, s:O, s:O, s:O?, s:I, s:b, s:s, s:s, s:b, s:n, s:i}",
					 "client_token", t->id,
					 "accessor", t->accessor,
					 "policies", t->policies,
					 "token_policies", t->policies,
					 "metadata", t->meta,
					 "lease_duration", (json_int_t) token_ttl_left(t),
					 "renewable", t->renewable,
					 "entity_id", t->entity_id,
					 "token_type", t->type,
					 "orphan", t->orphan,
					 "mfa_requirement",
					 "num_uses", t->num_uses);
}

static json_t *
time_json(int64_t secs)
{
	char	   *s = rfc3339(secs, 0);
	json_t	   *v = json_string(s);

	free(s);
	return v;
}

json_t *
token_lookup_json(const vtoken *t)
{
	json_t	   *d;

	d = json_pack("{s:s, s:s, s:O, s:s, s:O?, s:s, s:i, s:b, s:I, s:I, s:n, s:I, s:I, s:s, s:s}",
				  "id", t->id,
				  "accessor", t->accessor,
				  "policies", t->policies,
				  "path", t->path,
				  "meta", t->meta,
				  "display_name", t->display_name,
				  "num_uses", t->num_uses,
				  "orphan", t->orphan,
				  "creation_time", (json_int_t) t->creation_time,
				  "creation_ttl", (json_int_t) t->creation_ttl,
				  "expire_time",
				  "ttl", (json_int_t) 0,
				  "explicit_max_ttl", (json_int_t) t->explicit_max_ttl,
				  "entity_id", t->entity_id,
				  "type", t->type);
	if (t->period != 0)
		json_object_set_new(d, "period", json_integer(t->period));
	/* every token but the initial root one has a lease in Vault */
	if (strcmp(t->path, ROOT_TOKEN_PATH) != 0)
	{
		if (t->last_renewal)
		{
			json_object_set_new(d, "last_renewal_time", json_integer(t->last_renewal));
			json_object_set_new(d, "last_renewal", time_json(t->last_renewal));
		}
		if (t->expire_time)
		{
			json_object_set_new(d, "expire_time", time_json(t->expire_time));
			json_object_set_new(d, "ttl", json_integer(token_ttl_left(t)));
		}
		json_object_set_new(d, "renewable",
							json_boolean(t->renewable && token_ttl_left(t) > 0));
		json_object_set_new(d, "issue_time", time_json(t->issue_time));
	}
	return d;
}

/* ---- the sweep ---- */

bool
tokens_expire_due(void)
{
	int64_t		now = now_unix();
	bool		changed;
	tentry	  **due = NULL;
	size_t		n = 0,
				cap = 0,
				i;
	tentry	   *e;

	/* collect first: revoking a tree unlinks entries anywhere in the list */
	for (e = live; e; e = NEXT(e))
		if (token_expired(&e->t, now))
		{
			if (n == cap)
			{
				cap = cap ? cap * 2 : 16;
				due = realloc(due, cap * sizeof(tentry *));
				if (due == NULL)
					abort();
			}
			due[n++] = e;
		}
	for (i = 0; i < n; i++)
		if (!due[i]->revoked)
			revoke_tree(due[i]);
	free(due);

	/*
	 * A token revoked at its last use may have created leases during that
	 * request, after its revocation: revoke those too, then free it.
	 */
	while (graveyard)
	{
		e = graveyard;
		graveyard = NEXT(e);
		lease_revoke_by_token(e->t.id);
		entry_free(e);
	}
	changed = unsaved;
	unsaved = false;
	return changed;
}

/* ---- persistence ---- */

json_t *
tokens_save(void)
{
	json_t	   *arr = json_array();
	tentry	   *e;

	for (e = live; e; e = NEXT(e))
	{
		const vtoken *t = &e->t;

		json_array_append_new(arr,
							  json_pack("{s:s, s:s, s:O, s:O?, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:i, s:b, s:s, s:I, s:I}",
										"id", t->id,
										"accessor", t->accessor,
										"policies", t->policies,
										"meta", t->meta,
										"display_name", t->display_name,
										"path", t->path,
										"parent", t->parent,
										"type", t->type,
										"creation_time", (json_int_t) t->creation_time,
										"issue_time", (json_int_t) t->issue_time,
										"expire_time", (json_int_t) t->expire_time,
										"creation_ttl", (json_int_t) t->creation_ttl,
										"explicit_max_ttl", (json_int_t) t->explicit_max_ttl,
										"period", (json_int_t) t->period,
										"num_uses", t->num_uses,
										"renewable", t->renewable,
										"entity_id", t->entity_id,
										"max_ttl", (json_int_t) t->max_ttl,
										"last_renewal", (json_int_t) t->last_renewal));
	}
	return arr;
}

static void
copy_field(char *dst, size_t size, const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	snprintf(dst, size, "%s", s ? s : "");
}

static int64_t
int_field(const json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

void
tokens_load(json_t *saved)
{
	size_t		i;
	json_t	   *o;
	tentry	   *e;

	while (live)
	{
		e = live;
		live = NEXT(e);
		entry_free(e);
	}
	while (graveyard)
	{
		e = graveyard;
		graveyard = NEXT(e);
		entry_free(e);
	}
	ix_clear(&id_index);
	ix_clear(&accessor_index);
	if (!json_is_array(saved))
		return;

	json_array_foreach(saved, i, o)
	{
		const char *id = json_string_value(json_object_get(o, "id"));
		const char *acc = json_string_value(json_object_get(o, "accessor"));
		vtoken	   *t;

		if (id == NULL || acc == NULL || *id == '\0' ||
			strlen(id) >= sizeof(t->id) || strlen(acc) >= sizeof(t->accessor) ||
			ix_get(&id_index, id) || ix_get(&accessor_index, acc))
		{
			fprintf(stderr, "vault-dev: state file: skipping a malformed token\n");
			continue;
		}
		e = calloc(1, sizeof(*e));
		if (e == NULL)
			abort();
		t = &e->t;
		snprintf(t->id, sizeof(t->id), "%s", id);
		snprintf(t->accessor, sizeof(t->accessor), "%s", acc);
		t->policies = sanitize_policies(json_object_get(o, "policies"), false);
		t->meta = json_is_object(json_object_get(o, "meta")) ?
			json_deep_copy(json_object_get(o, "meta")) : NULL;
		copy_field(t->display_name, sizeof(t->display_name), o, "display_name");
		copy_field(t->path, sizeof(t->path), o, "path");
		copy_field(t->parent, sizeof(t->parent), o, "parent");
		copy_field(t->type, sizeof(t->type), o, "type");
		copy_field(t->entity_id, sizeof(t->entity_id), o, "entity_id");
		t->creation_time = int_field(o, "creation_time");
		t->issue_time = int_field(o, "issue_time");
		t->expire_time = int_field(o, "expire_time");
		t->creation_ttl = int_field(o, "creation_ttl");
		t->explicit_max_ttl = int_field(o, "explicit_max_ttl");
		t->period = int_field(o, "period");
		t->num_uses = (int) int_field(o, "num_uses");
		t->renewable = json_is_true(json_object_get(o, "renewable"));
		t->max_ttl = int_field(o, "max_ttl");
		t->last_renewal = int_field(o, "last_renewal");
		live_link(e);
		ix_add(&id_index, e);
		ix_add(&accessor_index, e);
	}

	/* rebuild the tree; a child whose parent is gone becomes an orphan */
	for (e = live; e; e = NEXT(e))
	{
		tentry	   *p = e->t.parent[0] ? ix_get(&id_index, e->t.parent) : NULL;

		if (p && p != e)
			child_link(p, e);
		else
			e->t.parent[0] = '\0';
		e->t.orphan = e->parent_ent == NULL;
	}
}

/* ---- the auth/token/ endpoints ---- */

/* Go kind names, for mapstructure's decoding errors. */
static const char *
go_kind(const json_t *v)
{
	if (json_is_string(v))
		return "string";
	if (json_is_number(v))
		return "float64";
	if (json_is_boolean(v))
		return "bool";
	if (json_is_array(v))
		return "slice";
	return "map";
}

/* "meta": a map of strings, with mapstructure's weak conversions. */
static bool
parse_meta(const vreq *req, vresp *resp, json_t **out)
{
	json_t	   *v = json_object_get(req->data, "meta");
	json_t	   *m,
			   *x;
	const char *k;

	*out = NULL;
	if (v == NULL || json_is_null(v))
		return true;
	if (!json_is_object(v))
	{
		resp_error(resp, 400, "Error decoding request: 1 error(s) decoding:\n\n* 'meta' expected a map, got '%s'",
				   go_kind(v));
		return false;
	}
	m = json_object();
	json_object_foreach(v, k, x)
	{
		char		buf[64];

		if (json_is_string(x))
		{
			json_object_set(m, k, x);
			continue;
		}
		if (json_is_integer(x))
			snprintf(buf, sizeof(buf), "%lld", (long long) json_integer_value(x));
		else if (json_is_real(x))
			snprintf(buf, sizeof(buf), "%.15g", json_real_value(x));
		else if (json_is_boolean(x))
			snprintf(buf, sizeof(buf), "%s", json_is_true(x) ? "1" : "0");
		else if (json_is_null(x))
			buf[0] = '\0';
		else
		{
			resp_error(resp, 400, "Error decoding request: 1 error(s) decoding:\n\n* 'meta[%s]' expected type 'string', got unconvertible type '%s'",
					   k, json_is_array(x) ? "[]interface {}" : "map[string]interface {}");
			json_decref(m);
			return false;
		}
		json_object_set_new(m, k, json_string(buf));
	}
	*out = m;
	return true;
}

/* "token-" + the name, every other character than [a-zA-Z0-9-] a '-'. */
static void
display_name_for(const char *given, char *out, size_t len)
{
	size_t		n = 0;
	const unsigned char *p;

	if (given == NULL || *given == '\0')
	{
		snprintf(out, len, "token");
		return;
	}
	snprintf(out, len, "token-");
	n = strlen(out);
	for (p = (const unsigned char *) given; *p && n + 1 < len; p++)
	{
		/* Go replaces per rune: skip UTF-8 continuation bytes */
		if ((*p & 0xC0) == 0x80)
			continue;
		out[n++] = (isalnum(*p) && *p < 0x80) || *p == '-' ? (char) *p : '-';
	}
	out[n] = '\0';
	if (n > 0 && out[n - 1] == '-')
		out[n - 1] = '\0';
}

static void
handle_create(vmount *m, vreq *req, vresp *resp, bool orphan_path)
{
	tentry	   *parent = (tentry *) req->token;
	tentry	   *child_of;
	tentry	   *e;
	bool		ok = true;
	bool		is_sudo = (req->caps & CAP_SUDO) != 0;
	bool		no_parent,
				no_default,
				renewable;
	int64_t		ttl,
				explicit_max,
				period,
				num_uses,
				now = now_unix();
	const char *type,
			   *id,
			   *alias;
	char		display[sizeof(((vtoken *) NULL)->display_name)];
	char		path[sizeof(((vtoken *) NULL)->path)];
	json_t	   *meta = NULL,
			   *pols = NULL,
			   *final = NULL;
	size_t		i;
	json_t	   *v;

	if (parent == NULL || parent->revoked)
	{
		resp_error(resp, 400, "parent token lookup failed: no parent found");
		return;
	}
	/* a use-limited token could escape its limit through children */
	if (parent->t.num_uses > 0)
	{
		resp_error(resp, 400, "restricted use token cannot generate child tokens");
		return;
	}
	if (!parse_meta(req, resp, &meta))
		return;
	no_parent = req_bool(req, "no_parent", false, &ok, resp);
	no_default = req_bool(req, "no_default_policy", false, &ok, resp);
	renewable = req_bool(req, "renewable", true, &ok, resp);
	ttl = req_has(req, "ttl") ? req_duration(req, "ttl", 0, &ok, resp) :
		req_duration(req, "lease", 0, &ok, resp);
	explicit_max = req_duration(req, "explicit_max_ttl", 0, &ok, resp);
	period = req_duration(req, "period", 0, &ok, resp);
	num_uses = req_int(req, "num_uses", 0, &ok, resp);
	if (!ok)
		goto out;

	type = req_str(req, "type");
	if (type && *type && strcmp(type, "service") != 0)
	{
		if (strcmp(type, "batch") == 0)
			resp_error(resp, 400, "batch tokens are not supported by this development server");
		else
			resp_error(resp, 400, "invalid 'token_type' value");
		goto out;
	}
	if (num_uses < 0)
	{
		resp_error(resp, 400, "number of uses cannot be negative");
		goto out;
	}
	alias = req_str(req, "entity_alias");
	if (alias && *alias)
	{
		resp_error(resp, 400, "'entity_alias' is only allowed in combination with token role");
		goto out;
	}
	display_name_for(req_str(req, "display_name"), display, sizeof(display));
	id = req_str(req, "id");
	if (id && *id == '\0')
		id = NULL;
	if (id && !is_sudo)
	{
		resp_error(resp, 400, "root or sudo privileges required to specify token id");
		goto out;
	}

	/* Vault's rules for the child's policies, "default" included */
	pols = req_strlist(req, "policies");
	if (json_array_size(pols) == 0)
		final = sanitize_policies(parent->t.policies, false);
	else if (!is_sudo)
	{
		json_t	   *in = sanitize_policies(pols, false);
		json_t	   *par = sanitize_policies(parent->t.policies, false);
		bool		subset = policies_subset(in, par);

		json_decref(in);
		json_decref(par);
		if (!subset)
		{
			resp_error(resp, 400, "child policies must be subset of parent");
			goto out;
		}
		final = sanitize_policies(pols, !no_default && has_policy(parent->t.policies, "default"));
	}
	else
		final = sanitize_policies(pols, !no_default);
	if (no_default)
		remove_policy(final, "default");
	json_array_foreach(final, i, v)
	{
		const char *p = json_string_value(v);

		if (strcmp(p, "response-wrapping") == 0 || strcmp(p, "control-group") == 0)
		{
			resp_error(resp, 400, "cannot assign policy \"%s\"", p);
			goto out;
		}
	}
	if (has_policy(final, "root") && !has_policy(parent->t.policies, "root"))
	{
		resp_error(resp, 400, "root tokens may not be created without parent token being root");
		goto out;
	}

	child_of = parent;
	if (no_parent)
	{
		if (!is_sudo)
		{
			resp_error(resp, 400, "root or sudo privileges required to create orphan token");
			goto out;
		}
		child_of = NULL;
	}
	else if (orphan_path)
		child_of = NULL;

	if (period > 0 && !is_sudo)
	{
		resp_error(resp, 400, "root or sudo privileges required to create periodic token");
		goto out;
	}

	ttl = initial_ttl(m, ttl, period, explicit_max, has_policy(final, "root"), now, resp);
	if (ttl == 0)
	{
		if (parent->t.expire_time != 0)
		{
			resp_error(resp, 400, "expiring root tokens cannot create non-expiring root tokens");
			goto out;
		}
		renewable = false;
	}

	if (id)
	{
		resp_warn(resp, "Supplying a custom ID for the token uses the weaker SHA1 hashing instead of the more secure SHA2-256 HMAC for token obfuscation. SHA1 hashed tokens on the wire leads to less secure lookups.");
		if (strncmp(id, SERVICE_PREFIX, strlen(SERVICE_PREFIX)) == 0)
			resp_error(resp, 400, "custom token ID cannot have the 'hvs.' prefix");
		else if (strncmp(id, "s.", 2) == 0)
			resp_error(resp, 400, "custom token ID cannot have the 's.' prefix");
		else if (strchr(id, '.'))
			resp_error(resp, 400, "custom token ID cannot have a '.' in the value");
		else if (strlen(id) >= sizeof(((vtoken *) NULL)->id))
			resp_error(resp, 400, "custom token ID is too long");
		else if (ix_get(&id_index, id))
			resp_error(resp, 400, "cannot create a token with a duplicate ID");
		if (resp->errors)
			goto out;
	}

	snprintf(path, sizeof(path), "auth/token/%s", req->rel);
	e = token_insert(id, final, meta, display, path, child_of, now, ttl,
					 explicit_max, period, (int) num_uses, renewable);
	final = NULL;

	json_array_foreach(e->t.policies, i, v)
		if (policy_get(json_string_value(v)) == NULL)
		resp_warn(resp, "Policy \"%s\" does not exist", json_string_value(v));
	resp->auth = token_auth_json(&e->t);
	resp->dirty = true;

out:
	json_decref(meta);
	json_decref(pols);
	json_decref(final);
}

static void
handle_lookup(vreq *req, vresp *resp, const char *id, bool hide_id)
{
	vtoken	   *t = (id && *id) ? token_lookup(id) : req->token;

	if (t == NULL)
	{
		resp_error(resp, 403, "bad token");
		return;
	}
	resp->data = token_lookup_json(t);
	if (hide_id)
		json_object_set_new(resp->data, "id", json_string(""));
}

static void
renew_token(vtoken *t, int64_t increment, bool hide_id, vresp *resp)
{
	int64_t		now = now_unix();
	int64_t		last_ttl,
				ttl;

	if (t == NULL || ((tentry *) t)->revoked)
	{
		resp_error(resp, 400, "token not found");
		return;
	}
	if (t->expire_time == 0 || !t->renewable)
	{
		resp_error(resp, 400, "lease is not renewable");
		return;
	}
	/* without an increment, the TTL granted last time is granted again */
	last_ttl = t->expire_time - (t->last_renewal ? t->last_renewal : t->issue_time);
	ttl = calculate_ttl(token_mount(t), increment, last_ttl, t->period,
						t->max_ttl, t->explicit_max_ttl, t->issue_time, resp);
	if (ttl < 0)
	{
		resp_error(resp, 400, "past the max TTL, cannot renew");
		return;
	}
	t->expire_time = now + ttl;
	t->last_renewal = now;
	resp->auth = token_auth_json(t);
	if (hide_id)
		json_object_set_new(resp->auth, "client_token", json_string(""));
	resp->dirty = true;
}

static json_t *
accessor_keys(void)
{
	size_t		n = 0,
				i;
	tentry	   *e;
	char	  **v;
	json_t	   *keys = json_array();

	for (e = live; e; e = NEXT(e))
		n++;
	v = calloc(n + 1, sizeof(char *));
	if (v == NULL)
		abort();
	n = 0;
	for (e = live; e; e = NEXT(e))
		v[n++] = e->t.accessor;
	qsort(v, n, sizeof(char *), cmp_cstr);
	for (i = 0; i < n; i++)
		json_array_append_new(keys, json_string(v[i]));
	free(v);
	return keys;
}

static bool
is_update(const vreq *req)
{
	return req->op == OP_UPDATE || req->op == OP_CREATE;
}

static void
token_handle(vmount *m, vreq *req, vresp *resp)
{
	const char *rel = req->rel;
	const char *arg;
	bool		ok = true;
	int64_t		inc;

	if (strcmp(rel, "accessors/") == 0)
	{
		if (req->op != OP_LIST)
			resp_unsupported_op(resp, req);
		else
			resp->data = json_pack("{s:o}", "keys", accessor_keys());
		return;
	}
	if (strcmp(rel, "roles/") == 0 && req->op == OP_LIST)
	{
		/* no token roles exist here: Vault's empty list */
		resp->status = 404;
		resp->errors = json_array();
		return;
	}

	/* lookup and lookup-self also answer GET; every other path is POST */
	if (strcmp(rel, "lookup") == 0 || strcmp(rel, "lookup-self") == 0)
	{
		if (req->op != OP_READ && !is_update(req))
			resp_unsupported_op(resp, req);
		else
			handle_lookup(req, resp, rel[6] ? NULL : req_str(req, "token"), false);
		return;
	}

	if (strcmp(rel, "create") != 0 && strcmp(rel, "create-orphan") != 0 &&
		path_after(rel, "create/") == NULL &&
		strcmp(rel, "lookup-accessor") != 0 &&
		strcmp(rel, "renew") != 0 && strcmp(rel, "renew-self") != 0 &&
		strcmp(rel, "renew-accessor") != 0 &&
		strcmp(rel, "revoke") != 0 && strcmp(rel, "revoke-self") != 0 &&
		strcmp(rel, "revoke-accessor") != 0 && strcmp(rel, "revoke-orphan") != 0 &&
		strcmp(rel, "tidy") != 0)
	{
		resp_unsupported_path(resp, req);
		return;
	}
	if (!is_update(req))
	{
		resp_unsupported_op(resp, req);
		return;
	}

	if (strcmp(rel, "create") == 0 || strcmp(rel, "create-orphan") == 0)
		handle_create(m, req, resp, strcmp(rel, "create-orphan") == 0);
	else if ((arg = path_after(rel, "create/")) != NULL)
	{
		if (!valid_name(arg))
			resp_unsupported_path(resp, req);
		else
			resp_error(resp, 400, "unknown role %s", arg);
	}
	else if (strcmp(rel, "lookup-accessor") == 0)
	{
		const char *acc = req_str(req, "accessor");

		if (acc == NULL || *acc == '\0')
			resp_error(resp, 400, "missing accessor");
		else if (token_lookup_accessor(acc) == NULL)
			resp_error(resp, 400, "invalid accessor");
		else
			handle_lookup(req, resp, token_lookup_accessor(acc)->id, true);
	}
	else if (strncmp(rel, "renew", 5) == 0)
	{
		inc = req_duration(req, "increment", 0, &ok, resp);
		if (!ok)
			return;
		if (strcmp(rel, "renew-self") == 0)
			renew_token(req->token, inc, false, resp);
		else if (strcmp(rel, "renew") == 0)
		{
			const char *id = req_str(req, "token");

			if (id == NULL || *id == '\0')
				resp_error(resp, 400, "missing token ID");
			else
				renew_token(token_lookup(id), inc, false, resp);
		}
		else
		{
			const char *acc = req_str(req, "accessor");

			if (acc == NULL || *acc == '\0')
				resp_error(resp, 400, "missing accessor");
			else if (token_lookup_accessor(acc) == NULL)
				resp_error(resp, 400, "invalid accessor");
			else
				renew_token(token_lookup_accessor(acc), inc, true, resp);
		}
	}
	else if (strcmp(rel, "revoke-self") == 0)
	{
		token_revoke(req->token);
		resp->dirty = true;
	}
	else if (strcmp(rel, "revoke") == 0)
	{
		const char *id = req_str(req, "token");

		if (id == NULL || *id == '\0')
			resp_error(resp, 400, "missing token ID");
		else
		{
			/* an unknown token is already revoked: success */
			token_revoke(token_lookup(id));
			resp->dirty = true;
		}
	}
	else if (strcmp(rel, "revoke-accessor") == 0)
	{
		const char *acc = req_str(req, "accessor");
		vtoken	   *t;

		if (acc == NULL || *acc == '\0')
			resp_error(resp, 400, "missing accessor");
		else if ((t = token_lookup_accessor(acc)) == NULL)
			resp_warn(resp, "No token found with this accessor");
		else
		{
			token_revoke(t);
			resp->dirty = true;
		}
	}
	else if (strcmp(rel, "revoke-orphan") == 0)
	{
		const char *id = req_str(req, "token");
		vtoken	   *t;

		if (!(req->caps & CAP_SUDO))
			resp_error(resp, 400, "root or sudo privileges required to revoke and orphan");
		else if (id == NULL || *id == '\0')
			resp_error(resp, 400, "missing token ID");
		else if ((t = token_lookup(id)) == NULL)
			resp_error(resp, 400, "token to revoke not found");
		else
		{
			revoke_orphan((tentry *) t);
			resp->dirty = true;
		}
	}
	else
	{
		/* tidy: the store keeps no stale indexes, but answer as Vault does */
		resp->status = 202;
		resp_warn(resp, "Tidy operation successfully started. Any information from the operation will be printed to Vault's server logs.");
	}
}

const vengine engine_token = {
	.type = "token",
	.is_auth = true,
	.handle = token_handle,
};
